package speaker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/ironlb/ironlb/internal/apitest"
	"github.com/ironlb/ironlb/internal/metricstest"
	"github.com/ironlb/ironlb/layer2/netlab"
)

// The metrics test runs a real Speaker, and the API server it watches, inside a network
// namespace of its own (the test binary re-executes itself there), so that its ARP replies,
// gratuitous ARPs and BGP connection attempts stay on a veth pair whose other end is a client
// namespace the test also created.
const (
	envMetricsChild  = "IRONLB_SPEAKER_METRICS_CHILD" // the client namespace, set in the child
	metricsNodeIP    = "10.251.0.1"
	metricsClientIP  = "10.251.0.2" // also the BGP peer, where nothing listens: the session stays down
	metricsL2IP      = "10.251.0.100"
	metricsBGPIP     = "10.252.0.10"
	metricsSpeakerIf = "ilbm0"
	metricsClientIf  = "ilbm1"
)

var speakerTarget = metricstest.Target{Job: "metallb", Pod: "speaker-8hq2x", Container: "speaker"}

const metricsConfig = `
peers:
- peer-address: ` + metricsClientIP + `
  peer-asn: 64501
  my-asn: 64500
address-pools:
- name: l2
  protocol: layer2
  addresses: [` + metricsL2IP + `/32]
- name: routed
  protocol: bgp
  addresses: [` + metricsBGPIP + `/32]
`

// TestMetricsMatchMetalLB scrapes a running speaker's /metrics over HTTP and checks it against
// MetalLB v0.12.1's names, types and labels, the values (announced, ARP requests answered,
// pending BGP prefixes), the withdraw of metallb_speaker_announced, and which of MetalLB's Helm
// chart alerts fire on it.
func TestMetricsMatchMetalLB(t *testing.T) {
	if client := os.Getenv(envMetricsChild); client != "" {
		speakerMetricsChild(t, client)
		return
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root for network namespaces: run the tests as root (CI does), after hack/install-deps.sh")
	}
	ctx := context.Background()
	id := fmt.Sprintf("ilbm-%d", os.Getpid())
	speakerNS, clientNS := id+"-s", id+"-c"
	for _, ns := range []string{speakerNS, clientNS} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	steps := [][]string{
		{speakerNS, "link", "add", metricsSpeakerIf, "type", "veth", "peer", "name", metricsClientIf, "netns", clientNS},
		{speakerNS, "link", "set", "lo", "up"},
		{speakerNS, "addr", "add", metricsNodeIP + "/24", "dev", metricsSpeakerIf},
		{speakerNS, "link", "set", metricsSpeakerIf, "up"},
		// kube-apiserver refuses to start without a default route; this one ends in the client
		// namespace, which forwards nothing.
		{speakerNS, "route", "add", "default", "via", metricsClientIP},
		{clientNS, "link", "set", "lo", "up"},
		{clientNS, "addr", "add", metricsClientIP + "/24", "dev", metricsClientIf},
		{clientNS, "link", "set", metricsClientIf, "up"},
	}
	for _, s := range steps {
		if _, err := netlab.IP(ctx, s[0], s[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"netns", "exec", speakerNS, os.Args[0], "-test.run", "^TestMetricsMatchMetalLB$", "-test.count", "1", "-test.v"}
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), envMetricsChild+"="+clientNS)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("speaker in namespace %s: %v\n%s", speakerNS, err, out)
	}
	if testing.Verbose() {
		t.Logf("child:\n%s", out)
	}
}

func speakerMetricsChild(t *testing.T, clientNS string) {
	ctx := context.Background()
	srv := apitest.Start(t)
	cs := srv.Client(t, "ironlb-test")
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "metallb-system"}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}, metav1.CreateOptions{})
		return err
	})
	applyMetricsConfig(t, cs, metricsConfig)
	for name, ip := range map[string]string{"web": metricsL2IP, "routed": metricsBGPIP} {
		createAnnouncedService(t, cs, name, ip)
	}

	reg := prometheus.NewRegistry()
	sp, err := New(Options{
		Client:     srv.Client(t, "ironlb-speaker"),
		NodeName:   "node1",
		BindAddr:   netip.MustParseAddr(metricsNodeIP),
		BindPort:   7946,
		Insecure:   true,
		Interfaces: []string{metricsSpeakerIf},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sp.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("speaker: %v", err)
		}
	})
	url := metricstest.Serve(t, reg)

	web := map[string]string{"service": "default/web", "ip": metricsL2IP, "protocol": "layer2", "node": "node1"}
	routed := map[string]string{"service": "default/routed", "ip": metricsBGPIP, "protocol": "bgp", "node": "node1"}
	peer := map[string]string{"peer": metricsClientIP + ":179"}
	s := waitScrape(t, url, "both Services announced, the BGP prefix pending, a gratuitous ARP sent", func(s metricstest.Scrape) bool {
		a, _ := s.Value("metallb_speaker_announced", web)
		b, _ := s.Value("metallb_speaker_announced", routed)
		p, _ := s.Value("metallb_bgp_pending_prefixes_total", peer)
		g, _ := s.Value("metallb_layer2_gratuitous_sent", map[string]string{"ip": metricsL2IP})
		return a == 1 && b == 1 && p == 1 && g > 0
	})

	// A client asks for the layer-2 address: the speaker answers and counts both.
	if out, err := netlab.Exec(ctx, clientNS, "arping", "-c", "1", "-w", "5", "-I", metricsClientIf, metricsL2IP); err != nil {
		t.Fatalf("arping %s: %v (is arping installed? hack/install-deps.sh)\n%s", metricsL2IP, err, out)
	}
	s = waitScrape(t, url, "the ARP request counted", func(s metricstest.Scrape) bool {
		r, _ := s.Value("metallb_layer2_requests_received", map[string]string{"ip": metricsL2IP})
		a, _ := s.Value("metallb_layer2_responses_sent", map[string]string{"ip": metricsL2IP})
		return r >= 1 && a >= 1
	})

	t.Run("names, types, labels and values", func(t *testing.T) {
		metricstest.CheckFamilies(t, s, metricstest.Speaker)
		metricstest.CheckValues(t, s, map[string]float64{
			"metallb_k8s_client_config_loaded_bool":                                  1,
			"metallb_k8s_client_config_stale_bool":                                   0,
			"metallb_bgp_session_up{peer=" + metricsClientIP + ":179}":               0,
			"metallb_bgp_announced_prefixes_total{peer=" + metricsClientIP + ":179}": 0,
			"metallb_bgp_updates_total{peer=" + metricsClientIP + ":179}":            0,
		})
		if v, _ := s.Value("metallb_k8s_client_updates_total", nil); v < 1 {
			t.Errorf("metallb_k8s_client_updates_total = %v, want every reconcile pass counted", v)
		}
	})
	t.Run("MetalLB's alerts: BGP session down", func(t *testing.T) {
		metricstest.CheckAlerts(t, s, speakerTarget, []metricstest.Alert{
			{Name: "MetalLBBGPSessionDown", Labels: speakerTarget.Labels("peer", metricsClientIP+":179")},
		})
	})

	t.Run("withdraw deletes metallb_speaker_announced", func(t *testing.T) {
		if err := cs.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitScrape(t, url, "default/web no longer exported, default/routed still 1", func(s metricstest.Scrape) bool {
			_, stillWeb := s.Value("metallb_speaker_announced", web)
			r, _ := s.Value("metallb_speaker_announced", routed)
			return !stillWeb && r == 1
		})
	})

	t.Run("invalid config: stale", func(t *testing.T) {
		applyMetricsConfig(t, cs, "address-pools: [{name: x, protocol: layer2, addresses: [10.9.0.9-10.9.0.1]}]")
		s := waitScrape(t, url, "config stale", func(s metricstest.Scrape) bool {
			v, _ := s.Value("metallb_k8s_client_config_stale_bool", nil)
			return v == 1
		})
		metricstest.CheckAlerts(t, s, speakerTarget, []metricstest.Alert{
			{Name: "MetalLBStaleConfig", Labels: speakerTarget.Labels()},
			{Name: "MetalLBBGPSessionDown", Labels: speakerTarget.Labels("peer", metricsClientIP+":179")},
		})
	})
}

func mustCreate(t *testing.T, create func() error) {
	t.Helper()
	if err := create(); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func applyMetricsConfig(t *testing.T, cs kubernetes.Interface, data string) {
	t.Helper()
	ctx := context.Background()
	cms := cs.CoreV1().ConfigMaps("metallb-system")
	cm, err := cms.Get(ctx, "config", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: "metallb-system", Name: "config"},
			Data:       map[string]string{"config": data},
		}, metav1.CreateOptions{})
	} else if err == nil {
		cm.Data = map[string]string{"config": data}
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatalf("apply config: %v", err)
	}
}

// createAnnouncedService creates a LoadBalancer Service with ip in its status (as the controller
// would write it) and a ready endpoint on node1.
func createAnnouncedService(t *testing.T, cs kubernetes.Interface, name, ip string) {
	t.Helper()
	ctx := context.Background()
	svc, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
	if _, err := cs.CoreV1().Services("default").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready, node := true, "node1"
	port, proto := int32(8080), corev1.ProtocolTCP
	_, err = cs.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"10.244.0.7"},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			NodeName:   &node,
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr("http"), Port: &port, Protocol: &proto}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// waitScrape scrapes url until cond holds (60s at most) and returns that scrape.
func waitScrape(t *testing.T, url, what string, cond func(metricstest.Scrape) bool) metricstest.Scrape {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := metricstest.Get(t, url)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			var lines []string
			for _, l := range strings.Split(s.Body, "\n") {
				if strings.HasPrefix(l, "metallb_") || strings.HasPrefix(l, "ironlb_") {
					lines = append(lines, l)
				}
			}
			t.Fatalf("timed out waiting for %s; last scrape:\n%s", what, strings.Join(lines, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
