package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ironlb/ironlb/controller"
	"github.com/ironlb/ironlb/internal/logging"
	"github.com/ironlb/ironlb/internal/queuemetrics"
	"github.com/ironlb/ironlb/internal/serve"
)

// commonFlags are shared by the controller and the speaker.
type commonFlags struct {
	namespace, configName string
	kubeconfig            string
	metricsAddr           string
	port                  int
	logFormat, logLevel   string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.namespace, "namespace", envOr("METALLB_NAMESPACE", "metallb-system"), "namespace of the ConfigMap (and of the Lease / speaker pods)")
	fs.StringVar(&c.configName, "config-name", "config", "name of the MetalLB-format ConfigMap; its key \"config\" holds the configuration")
	fs.StringVar(&c.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file; empty uses the in-cluster service account")
	fs.IntVar(&c.port, "port", 7472, "port serving /metrics, /healthz and /readyz: the controller's on all addresses, the speaker's on the node IP (ignored when --metrics-addr is set)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "address serving /metrics, /healthz and /readyz, e.g. 127.0.0.1:7472, or 0.0.0.0:7472 for every interface")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// parse parses args and builds the logger. When ok is false the command ends with code (0 for
// -h, 2 for a usage error, which has been printed).
func (c *commonFlags) parse(fs *flag.FlagSet, args []string, stderr io.Writer) (logger *slog.Logger, code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0, false
		}
		return nil, 2, false
	}
	logger, err := logging.New(stderr, c.logFormat, c.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return nil, 2, false
	}
	return logger, 0, true
}

func (c *commonFlags) listenAddr() string {
	if c.metricsAddr != "" {
		return c.metricsAddr
	}
	return fmt.Sprintf(":%d", c.port)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// newRegistry returns a registry with the Go and process collectors every component exposes.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// runController implements "ironlb controller".
func runController(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("ironlb controller", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var common commonFlags
	common.register(fs)
	lbClass := fs.String("lb-class", "", "handle Services with this spec.loadBalancerClass; empty handles Services without a class")
	leaderElect := fs.Bool("leader-elect", true, "run only while holding the Lease, so several replicas can run")
	leaseName := fs.String("lease-name", "ironlb-controller", "name of the coordination.k8s.io Lease used for leader election")
	logger, code, ok := common.parse(fs, args, stderr)
	if !ok {
		return code
	}
	if err := controllerMain(ctx, logger, common, *lbClass, *leaderElect, *leaseName); err != nil {
		logger.Error("controller failed", "error", err)
		return 1
	}
	return 0
}

func controllerMain(ctx context.Context, logger *slog.Logger, common commonFlags, lbClass string, leaderElect bool, leaseName string) error {
	client, err := kubeClient(common.kubeconfig, "ironlb-controller")
	if err != nil {
		return err
	}
	reg := newRegistry()
	queuemetrics.Register(reg)
	ctrl, err := controller.New(controller.Options{
		Client:     client,
		Namespace:  common.namespace,
		ConfigName: common.configName,
		LBClass:    lbClass,
		Logger:     logger,
		Registerer: reg,
	})
	if err != nil {
		return err
	}

	leading := make(chan struct{})
	ready := func() bool {
		select {
		case <-leading:
			return ctrl.Ready()
		default:
			return true // a standby is healthy and ready to take over
		}
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- serve.Run(ctx, common.listenAddr(), reg, ready) }()

	run := func(ctx context.Context) {
		close(leading)
		if err := ctrl.Run(ctx, 1); err != nil {
			logger.Error("controller stopped", "error", err)
		}
	}
	if leaderElect && !leasesAllowed(ctx, client, common.namespace, logger) { // MetalLB's RBAC: see rbac.go
		leaderElect = false
	}
	if !leaderElect {
		run(ctx)
		return nil
	}
	identity, err := replicaIdentity()
	if err != nil {
		return err
	}
	electErr := make(chan error, 1)
	go func() {
		electErr <- controller.RunElected(ctx, controller.LeaderOptions{
			Client:    client,
			Namespace: common.namespace,
			LeaseName: leaseName,
			Identity:  identity,
			Logger:    logger,
		}, run)
	}()
	select {
	case err := <-serveErr:
		return err
	case err := <-electErr:
		return err
	}
}

// replicaIdentity names this replica in the Lease: the pod name plus a random suffix, so a
// restarted container never mistakes its predecessor's lease for its own.
func replicaIdentity() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", err
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return host + "_" + hex.EncodeToString(b), nil
}
