package main

// MetalLB v0.12's manifests run the binaries /speaker and /controller with MetalLB's flags and
// environment. ironlb's speaker and controller images hold this same binary under those names;
// when it is started as one of them, the MetalLB command line is translated into the ironlb
// subcommand's, so MetalLB's manifest needs nothing changed but its image references.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/ironlb/ironlb/internal/logging"
)

// serviceAccountNamespace is where a pod finds its own namespace; MetalLB falls back to it when
// neither --namespace nor METALLB_NAMESPACE is set.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// metallbCommand returns "speaker" or "controller" when the binary was started under MetalLB's
// entrypoint name (argv[0] /speaker or /controller), else "".
func metallbCommand(argv0 string) string {
	switch filepath.Base(argv0) {
	case "speaker":
		return "speaker"
	case "controller":
		return "controller"
	}
	return ""
}

// metallbInvocation is a MetalLB command line translated for ironlb.
type metallbInvocation struct {
	args []string // ironlb's argv after the program name, starting with the subcommand
	// secret is a memberlist key given by --ml-secret-key (ironlb reads it only from the
	// environment, so that it never shows in the process list); "" when not given as a flag.
	secret string
	// mlSecretName and deployment: the controller creates the memberlist Secret when it is
	// missing, owned by that Deployment, as MetalLB v0.12's controller does.
	mlSecretName, deployment string
	logLevel                 string
	notes                    []string // accepted flags ironlb has no use for, to be logged
}

// metallbLogLevels maps MetalLB's levels onto ironlb's (slog has no "all" or "none").
var metallbLogLevels = map[string]string{
	"all": "debug", "debug": "debug", "info": "info", "warn": "warn", "error": "error", "none": "error",
}

// translateMetalLB parses a MetalLB v0.12.1 speaker or controller command line (flags, with
// defaults from the METALLB_* environment as MetalLB reads them) into ironlb's. readFile reads
// the service account namespace file.
func translateMetalLB(cmd string, args []string, getenv func(string) string, readFile func(string) ([]byte, error), stderr io.Writer) (*metallbInvocation, error) {
	fs := flag.NewFlagSet("MetalLB "+cmd+" (ironlb)", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 7472, "HTTP listening port (metrics, health)")
	config := fs.String("config", "config", "name of the ConfigMap holding the configuration")
	namespace := fs.String("namespace", getenv("METALLB_NAMESPACE"), "namespace of the ConfigMap (default: env METALLB_NAMESPACE, then the pod's own)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (only needed outside of Kubernetes)")
	logLevel := fs.String("log-level", "info", "log level: all, debug, info, warn, error or none")
	disableEpSlices := fs.Bool("disable-epslices", false, "accepted for MetalLB compatibility; ironlb always uses EndpointSlices")
	enablePprof := fs.Bool("enable-pprof", false, "accepted for MetalLB compatibility; ironlb serves no pprof endpoint")
	var host, mlBindAddr, mlBindPort, mlLabels, mlSecret, nodeName, mlSecretName, deployment *string
	switch cmd {
	case "speaker":
		host = fs.String("host", getenv("METALLB_HOST"), "address serving metrics and health (default: env METALLB_HOST)")
		mlBindAddr = fs.String("ml-bindaddr", getenv("METALLB_ML_BIND_ADDR"), "memberlist address (default: env METALLB_ML_BIND_ADDR)")
		mlBindPort = fs.String("ml-bindport", getenv("METALLB_ML_BIND_PORT"), "memberlist port (default: env METALLB_ML_BIND_PORT, then 7946)")
		mlLabels = fs.String("ml-labels", getenv("METALLB_ML_LABELS"), "label selector of the speaker pods (default: env METALLB_ML_LABELS)")
		mlSecret = fs.String("ml-secret-key", "", "memberlist secret (default: env METALLB_ML_SECRET_KEY)")
		nodeName = fs.String("node-name", getenv("METALLB_NODE_NAME"), "this node's name (default: env METALLB_NODE_NAME)")
	case "controller":
		mlSecretName = fs.String("ml-secret-name", getenv("METALLB_ML_SECRET_NAME"), "memberlist Secret to create when missing (default: env METALLB_ML_SECRET_NAME)")
		deployment = fs.String("deployment", getenv("METALLB_DEPLOYMENT"), "the controller's Deployment, owner of a created memberlist Secret (default: env METALLB_DEPLOYMENT)")
	default:
		return nil, fmt.Errorf("unknown MetalLB command %q: want speaker or controller", cmd)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%s: unexpected argument %q (MetalLB's %s takes flags only)", fs.Name(), fs.Arg(0), cmd)
	}
	level, ok := metallbLogLevels[*logLevel]
	if !ok {
		return nil, fmt.Errorf("--log-level %q: want all, debug, info, warn, error or none", *logLevel)
	}
	if *port < 1 || *port > 65535 {
		return nil, fmt.Errorf("--port %d: want a TCP port between 1 and 65535", *port)
	}
	inv := &metallbInvocation{logLevel: level}
	if *namespace == "" {
		if b, err := readFile(serviceAccountNamespace); err == nil {
			*namespace = strings.TrimSpace(string(b))
		}
	}
	a := []string{cmd, "--config-name=" + *config, "--log-level=" + level}
	if *namespace != "" {
		a = append(a, "--namespace="+*namespace)
	}
	if *kubeconfig != "" {
		a = append(a, "--kubeconfig="+*kubeconfig)
	}
	if *disableEpSlices {
		inv.notes = append(inv.notes, "--disable-epslices is ignored: ironlb always reads EndpointSlices")
	}
	if *enablePprof {
		inv.notes = append(inv.notes, "--enable-pprof is ignored: ironlb serves no pprof endpoint")
	}

	switch cmd {
	case "speaker":
		// MetalLB serves metrics on host:port, host being the node IP in its manifest.
		if *host != "" {
			a = append(a, "--metrics-addr="+net.JoinHostPort(*host, strconv.Itoa(*port)))
		} else {
			a = append(a, "--port="+strconv.Itoa(*port))
		}
		if *nodeName != "" {
			a = append(a, "--node-name="+*nodeName)
		}
		if *mlBindAddr != "" {
			a = append(a, "--ml-bind-addr="+*mlBindAddr)
		}
		if *mlBindPort != "" {
			p, err := strconv.Atoi(*mlBindPort)
			if err != nil || p < 1 || p > 65535 {
				return nil, fmt.Errorf("--ml-bindport (or METALLB_ML_BIND_PORT) %q: want a port between 1 and 65535", *mlBindPort)
			}
			a = append(a, "--ml-bind-port="+strconv.Itoa(p))
		}
		if *mlLabels != "" {
			a = append(a, "--ml-labels="+*mlLabels)
		}
		inv.secret = *mlSecret
		if *mlSecret == "" && getenv("METALLB_ML_SECRET_KEY") == "" {
			// MetalLB runs memberlist unencrypted without a key; so does ironlb here, loudly.
			a = append(a, "--ml-insecure")
			inv.notes = append(inv.notes, "no memberlist secret (--ml-secret-key, METALLB_ML_SECRET_KEY): memberlist runs unencrypted, as MetalLB does")
		}
	case "controller":
		a = append(a, "--port="+strconv.Itoa(*port))
		inv.mlSecretName, inv.deployment = *mlSecretName, *deployment
		if inv.mlSecretName != "" && inv.deployment == "" {
			return nil, fmt.Errorf("--ml-secret-name %q needs --deployment (or METALLB_DEPLOYMENT): the created Secret is owned by the controller's Deployment", inv.mlSecretName)
		}
	}
	inv.args = a
	return inv, nil
}

// runMetalLB runs ironlb as MetalLB's speaker or controller.
func runMetalLB(ctx context.Context, cmd string, args []string, stderr io.Writer) int {
	inv, err := translateMetalLB(cmd, args, os.Getenv, os.ReadFile, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "ironlb (as MetalLB's %s): %v\n", cmd, err)
		return 2
	}
	logger, err := logging.New(stderr, "text", inv.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "ironlb: %v\n", err)
		return 2
	}
	logger.Info("running as MetalLB's "+cmd, "metallbArgs", redactSecret(args), "ironlbArgs", inv.args)
	for _, n := range inv.notes {
		logger.Warn(n)
	}
	if inv.secret != "" {
		if err := os.Setenv("METALLB_ML_SECRET_KEY", inv.secret); err != nil {
			logger.Error("memberlist secret", "error", err)
			return 1
		}
	}
	if inv.mlSecretName != "" {
		ns := flagValue(inv.args, "--namespace=", "metallb-system")
		client, err := kubeClient(flagValue(inv.args, "--kubeconfig=", os.Getenv("KUBECONFIG")), "ironlb-controller")
		if err == nil {
			err = ensureMemberlistSecret(ctx, client, ns, inv.mlSecretName, inv.deployment, logger)
		}
		if err != nil {
			logger.Error("memberlist secret", "namespace", ns, "name", inv.mlSecretName, "error", err)
			return 1
		}
	}
	return run(ctx, inv.args, os.Stdin, os.Stdout, stderr)
}

// redactSecret returns args with the value of --ml-secret-key hidden, for logging.
func redactSecret(args []string) []string {
	out := make([]string, len(args))
	hideNext := false
	for i, a := range args {
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case hideNext:
			out[i], hideNext = "<redacted>", false
		case strings.HasPrefix(a, "-") && name == "ml-secret-key" && hasValue:
			out[i] = a[:strings.Index(a, "=")+1] + "<redacted>"
		case strings.HasPrefix(a, "-") && name == "ml-secret-key":
			out[i], hideNext = a, true
		default:
			out[i] = a
		}
	}
	return out
}

// flagValue returns the value of the "--name=" flag in args, or def.
func flagValue(args []string, prefix, def string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, prefix); ok {
			return v
		}
	}
	return def
}

// ensureMemberlistSecret creates the memberlist Secret (key "secretkey") when there is none,
// owned by the controller's Deployment so that deleting MetalLB's manifest deletes it too, as
// MetalLB v0.12's controller does. An existing Secret is never changed: the speakers already
// running use its key.
func ensureMemberlistSecret(ctx context.Context, client kubernetes.Interface, ns, name, deployment string, logger *slog.Logger) error {
	// A list restricted to the name, not a get: MetalLB's RBAC grants only that.
	l, err := client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(),
	})
	if err != nil {
		return fmt.Errorf("looking for Secret %s/%s: %w", ns, name, err)
	}
	if len(l.Items) > 0 {
		return nil
	}
	d, err := client.AppsV1().Deployments(ns).Get(ctx, deployment, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading the owner of the new Secret, Deployment %s/%s: %w", ns, deployment, err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	_, err = client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID}},
		},
		Data: map[string][]byte{"secretkey": []byte(base64.RawStdEncoding.EncodeToString(key))},
	}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil // another replica was first; its key is the one
	}
	if err != nil {
		return fmt.Errorf("creating Secret %s/%s: %w", ns, name, err)
	}
	logger.Info("created the memberlist Secret", "namespace", ns, "name", name, "owner", "Deployment/"+d.Name)
	return nil
}
