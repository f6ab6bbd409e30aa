package speaker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ironlb/ironlb/internal/apitest"
	"github.com/ironlb/ironlb/membership"
)

// Two real speakers (real memberlist on loopback, the API in a real
// kube-apiserver; layer 2 on an interface that does not exist, so nothing
// is sent): one starts while the ConfigMap is invalid, so it has no
// configuration. It must join on standby, report not ready and win
// nothing, so the other keeps every IP; once the ConfigMap is fixed it
// takes its share.
func TestSpeakerWithoutConfigStandsBy(t *testing.T) {
	srv := apitest.Start(t)
	client := srv.Client(t, "speaker-test")
	ctx := context.Background()
	const ns = "metallb-system"
	mustCreate := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	mustCreate(err)
	good := "address-pools:\n- name: default\n  protocol: layer2\n  addresses: [192.0.2.0/24]\n"
	setConfig := func(doc string) {
		t.Helper()
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"}, Data: map[string]string{"config": doc}}
		if _, err := client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			_, err = client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
			mustCreate(err)
		}
	}
	setConfig(good)

	// Same memberlist port on two loopback addresses, as on two nodes.
	base := 30 + time.Now().Nanosecond()%100
	ips := []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 3, byte(base)}), netip.AddrFrom4([4]byte{127, 0, 3, byte(base + 1)})}
	port := freeUDPTCPPort(t, ips)
	names := []string{"node-a", "node-b"}
	for i, name := range names {
		_, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		mustCreate(err)
		pod, err := client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "speaker-" + name, Labels: map[string]string{"app": "metallb", "component": "speaker"}},
			Spec:       corev1.PodSpec{NodeName: name, Containers: []corev1.Container{{Name: "speaker", Image: "ironlb"}}},
		}, metav1.CreateOptions{})
		mustCreate(err)
		pod.Status.PodIP = ips[i].String()
		pod.Status.HostIP = ips[i].String()
		_, err = client.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		mustCreate(err)
	}
	var vips []netip.Addr
	for i := range 10 {
		vip := netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)})
		vips = append(vips, vip)
		createLBService(t, client, "default", fmt.Sprintf("svc-%d", i), vip, names)
	}

	start := func(i int) *Speaker {
		t.Helper()
		s, err := New(Options{
			Client: srv.Client(t, "speaker-"+names[i]), NodeName: names[i],
			BindAddr: ips[i], BindPort: port, Secret: []byte("speaker-test-secret-value"),
			MemberTimings: membership.Timings{ProbeInterval: 250 * time.Millisecond, ProbeTimeout: 150 * time.Millisecond, SuspicionMult: 4},
			Interfaces:    []string{"ironlb-none0"},
			Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
			Registerer:    prometheus.NewRegistry(),
		})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(rctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("speaker %s: %v", names[i], err)
			}
		})
		waitUntilTrue(t, 30*time.Second, names[i]+" made its first decision", func() bool { return s.ready.Load() })
		return s
	}
	a := start(0)
	waitUntilTrue(t, 10*time.Second, "node-a owns every IP alone", func() bool { return len(a.announcer.Owned()) == len(vips) })

	setConfig("address-pools:\n- name: default\n  protocol: layer2\n  addresses: [not-an-address]\n")
	waitUntilTrue(t, 10*time.Second, "node-a rejected the invalid ConfigMap", func() bool {
		return gaugeValue(t, a.metrics.config.Stale) == 1
	})
	b := start(1)
	waitUntilTrue(t, 20*time.Second, "node-a sees node-b alive", func() bool { return slices.Contains(a.members.Alive(), "node-b") })
	// Let node-a decide with node-b present.
	a.poke()
	time.Sleep(time.Second)
	if b.Ready() {
		t.Error("node-b without a configuration reports ready")
	}
	if got := a.members.Candidates(); !slices.Equal(got, []string{"node-a"}) {
		t.Errorf("node-a's candidates %v, want only itself while node-b has no configuration", got)
	}
	if got := a.announcer.Owned(); len(got) != len(vips) {
		t.Errorf("node-a owns %d of %d IPs while node-b stands by: the others would be dark", len(got), len(vips))
	}
	if got := b.announcer.Owned(); len(got) != 0 {
		t.Errorf("node-b without a configuration owns %v", got)
	}

	setConfig(good)
	waitUntilTrue(t, 20*time.Second, "node-b loads the fixed configuration and becomes a candidate", func() bool {
		return b.Ready() && slices.Equal(a.members.Candidates(), names)
	})
	waitUntilTrue(t, 20*time.Second, "the IPs are shared, each owned once", func() bool {
		oa, ob := a.announcer.Owned(), b.announcer.Owned()
		all := append(slices.Clone(oa), ob...)
		slices.SortFunc(all, netip.Addr.Compare)
		return len(ob) > 0 && slices.Equal(all, vips)
	})
}

func createLBService(t *testing.T, client kubernetes.Interface, ns, name string, vip netip.Addr, nodes []string) {
	t.Helper()
	ctx := context.Background()
	svc, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: vip.String()}}
	if _, err := client.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready := true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i, n := range nodes {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.244.%d.10", i)},
			NodeName:   &n,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready},
		})
	}
	if _, err := client.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// freeUDPTCPPort finds a port free for TCP and UDP on every address.
func freeUDPTCPPort(t *testing.T, addrs []netip.Addr) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", netip.AddrPortFrom(addrs[0], 0).String())
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := true
		for _, a := range addrs {
			ap := netip.AddrPortFrom(a, uint16(port)).String()
			tl, err1 := net.Listen("tcp", ap)
			ul, err2 := net.ListenPacket("udp", ap)
			if tl != nil {
				tl.Close()
			}
			if ul != nil {
				ul.Close()
			}
			ok = ok && err1 == nil && err2 == nil
		}
		if ok {
			return port
		}
	}
	t.Fatal("no port free on every address")
	return 0
}

func waitUntilTrue(t *testing.T, budget time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(budget)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", budget, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
