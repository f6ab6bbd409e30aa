package main

import (
	"context"
	"flag"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/ironlb/ironlb/internal/serve"
	"github.com/ironlb/ironlb/speaker"
)

// runSpeaker implements "ironlb speaker".
func runSpeaker(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("ironlb speaker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var common commonFlags
	common.register(fs)
	nodeName := fs.String("node-name", envOr("METALLB_NODE_NAME", os.Getenv("NODE_NAME")), "name of this node (default: env METALLB_NODE_NAME)")
	bindAddr := fs.String("ml-bind-addr", envOr("METALLB_ML_BIND_ADDR", os.Getenv("METALLB_HOST")), "node IP for memberlist (default: env METALLB_ML_BIND_ADDR, then METALLB_HOST)")
	bindPort := fs.Int("ml-bind-port", 7946, "memberlist port")
	mlLabels := fs.String("ml-labels", envOr("METALLB_ML_LABELS", "app=metallb,component=speaker"), "label selector of the speaker pods, used to find the other members")
	insecure := fs.Bool("ml-insecure", false, "run memberlist without encryption when no secret is given")
	interfaces := fs.String("interfaces", "", "comma-separated interfaces for layer-2 announcements; empty = every up, non-loopback interface with an address")
	lbClass := fs.String("lb-class", "", "announce Services of this spec.loadBalancerClass; empty announces Services without a class")
	ignoreExcludeLB := fs.Bool("ignore-exclude-lb", false, ignoreExcludeLBHelp)
	restartGrace := fs.Duration("restart-grace", 3*time.Second, "keep a crashed speaker whose host still answers as owner for this long, so a container restart does not move its IPs twice")
	logger, code, ok := common.parse(fs, args, stderr)
	if !ok {
		return code
	}
	addr, err := netip.ParseAddr(*bindAddr)
	if err != nil {
		logger.Error("--ml-bind-addr must be this node's IP address", "value", *bindAddr)
		return 2
	}
	listen := speakerListenAddr(common.metricsAddr, common.port, os.Getenv("METALLB_HOST"), addr)
	client, err := kubeClient(common.kubeconfig, "ironlb-speaker")
	if err != nil {
		logger.Error("kubernetes client", "error", err)
		return 1
	}
	client = speakerClient(ctx, client, common.namespace, logger) // MetalLB's RBAC: see rbac.go
	secret := os.Getenv("METALLB_ML_SECRET_KEY")
	if secret == "" {
		secret = os.Getenv("IRONLB_ML_SECRET_KEY")
	}
	// A second key accepted during a rotation of the memberlist Secret (membership package doc).
	var extra [][]byte
	if k := os.Getenv("IRONLB_ML_EXTRA_SECRET_KEY"); k != "" {
		extra = append(extra, []byte(k))
	}
	var ifaces []string
	for _, i := range strings.Split(*interfaces, ",") {
		if i = strings.TrimSpace(i); i != "" {
			ifaces = append(ifaces, i)
		}
	}
	reg := newRegistry()
	sp, err := speaker.New(speaker.Options{
		Client:        client,
		NodeName:      *nodeName,
		Namespace:     common.namespace,
		ConfigName:    common.configName,
		LBClass:       *lbClass,
		BindAddr:      addr,
		BindPort:      *bindPort,
		SpeakerLabels: *mlLabels,
		Secret:        []byte(secret),
		ExtraSecrets:  extra,
		Insecure:      *insecure,
		RestartGrace:  *restartGrace,
		Interfaces:    ifaces,
		Logger:        logger,
		Registerer:    reg,

		IgnoreExcludeLB: *ignoreExcludeLB,
	})
	if err != nil {
		logger.Error("speaker", "error", err)
		return 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	serveErr := make(chan error, 1)
	logger.Info("serving /metrics, /healthz and /readyz", "addr", listen)
	go func() { serveErr <- serve.Run(ctx, listen, reg, sp.Ready) }()
	runErr := make(chan error, 1)
	go func() { runErr <- sp.Run(ctx) }()
	select {
	case err = <-runErr:
	case err = <-serveErr:
		cancel()
		<-runErr
	}
	if err != nil {
		logger.Error("speaker stopped", "error", err)
		return 1
	}
	return 0
}

// speakerListenAddr is where the speaker serves /metrics, /healthz and /readyz: --metrics-addr
// when set; otherwise --port on the node IP (METALLB_HOST, else the memberlist bind address),
// not on every interface, since the speaker runs in the host's network namespace.
func speakerListenAddr(metricsAddr string, port int, host string, bind netip.Addr) string {
	if metricsAddr != "" {
		return metricsAddr
	}
	ip := bind
	if h, err := netip.ParseAddr(host); err == nil {
		ip = h
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)).String()
}
