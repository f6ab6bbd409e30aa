// Command podroutes is the pod network of the e2e kind clusters, which run without kindnetd
// (its image cannot be built offline). Each node's containerd renders a ptp + host-local CNI
// config from the node's spec.podCIDR; this DaemonSet (hostNetwork, NET_ADMIN) adds the routes
// between nodes: `<podCIDR of node N> via <InternalIP of N>` for every other node, plus an
// unreachable route for the whole cluster CIDR so pod traffic never leaks to the Docker gateway
// before a route exists. It reconciles on every Node change and every few seconds, so routes come
// back after a node restart or a link down/up (which flushes them).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

func main() {
	var (
		node     = flag.String("node-name", os.Getenv("NODE_NAME"), "name of the node this runs on")
		cidrs    = flag.String("cluster-cidr", "10.244.0.0/16", "comma-separated pod CIDRs of the cluster")
		interval = flag.Duration("resync", 5*time.Second, "how often routes are re-checked without Node events")
	)
	flag.Parse()
	if err := run(*node, *cidrs, *interval); err != nil {
		slog.Error("podroutes failed", "err", err)
		os.Exit(1)
	}
}

func run(self, cidrList string, interval time.Duration) error {
	if self == "" {
		return fmt.Errorf("node name: empty (set --node-name or NODE_NAME)")
	}
	var clusterCIDRs []netip.Prefix
	for _, s := range strings.Split(cidrList, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("--cluster-cidr %q: %w", s, err)
		}
		clusterCIDRs = append(clusterCIDRs, p.Masked())
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return fmt.Errorf("in-cluster config: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	factory := informers.NewSharedInformerFactory(cs, 0)
	nodes := factory.Core().V1().Nodes()
	kick := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    poke,
		UpdateFunc: func(_, n any) { poke(n) },
		DeleteFunc: poke,
	}); err != nil {
		return fmt.Errorf("node event handler: %w", err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), nodes.Informer().HasSynced) {
		return fmt.Errorf("node cache did not sync: %w", ctx.Err())
	}
	slog.Info("podroutes running", "node", self, "clusterCIDRs", clusterCIDRs, "resync", interval)

	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last string
	for {
		list, err := nodes.Lister().List(labels.Everything())
		if err != nil {
			return fmt.Errorf("list nodes: %w", err)
		}
		want := desiredRoutes(self, list, clusterCIDRs)
		errs := syncRoutes(h, want, clusterCIDRs)
		// Log only changes, so a healthy node's log stays quiet.
		if msg := fmt.Sprint(want, errs); msg != last {
			slog.Info("routes synced", "routes", want, "errors", errs)
			last = msg
		}
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case <-tick.C:
		}
	}
}
