package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/ironlb/ironlb/election"
	"github.com/ironlb/ironlb/internal/apitest"
)

// apiWorld is a speaker's informers over a real kube-apiserver, without memberlist or the
// protocol engines: what every speaker decides is computed from its caches the way reconcile
// does it (the same Inputs, with every node's speaker alive).
type apiWorld struct {
	s     *Speaker
	cs    kubernetes.Interface
	nodes []string
}

func newAPIWorld(t *testing.T, config string, nodes ...string) *apiWorld {
	t.Helper()
	srv := apitest.Start(t)
	cs := srv.Client(t, "ironlb-test")
	ctx := context.Background()
	for _, obj := range []struct {
		what string
		err  error
	}{
		{"namespace", func() error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "metallb-system"}}, metav1.CreateOptions{})
			return err
		}()},
		{"configmap", func() error {
			_, err := cs.CoreV1().ConfigMaps("metallb-system").Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: "metallb-system", Name: "config"},
				Data:       map[string]string{"config": config},
			}, metav1.CreateOptions{})
			return err
		}()},
	} {
		if obj.err != nil {
			t.Fatalf("create %s: %v", obj.what, obj.err)
		}
	}
	for _, n := range nodes {
		if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create node %s: %v", n, err)
		}
	}
	s, err := New(Options{
		Client:   srv.Client(t, "ironlb-speaker"),
		NodeName: nodes[0],
		BindAddr: netip.MustParseAddr("127.0.0.1"),
		Insecure: true,
		Logger:   slog.New(slog.NewTextHandler(testLog{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		s.factory.Shutdown()
		s.nsFactory.Shutdown()
		s.cmFactory.Shutdown()
	})
	s.factory.Start(stop)
	s.nsFactory.Start(stop)
	s.cmFactory.Start(stop)
	if !cache.WaitForCacheSync(stop, s.synced...) {
		t.Fatal("informer caches did not sync")
	}
	return &apiWorld{s: s, cs: cs, nodes: nodes}
}

// announcers decides for every node from the speaker's caches and returns, per node, the IPs
// of svcKey it announces (layer 2 or BGP), plus the Service's NotAnnounced reason.
func (a *apiWorld) announcers(svcKey string) (map[string][]string, string) {
	nodes, _ := a.s.nodes.List(labels.Everything())
	svcs, _ := a.s.services.List(labels.Everything())
	alive := map[string]bool{}
	for _, n := range a.nodes {
		alive[n] = true
	}
	in := Inputs{Config: a.s.loadConfig(svcs), Nodes: nodes, Services: svcs, EndpointSlices: a.s.endpointSlices, Alive: alive}
	got := map[string][]string{}
	why := ""
	for _, n := range a.nodes {
		d := decide(snapshot(n, in))
		for _, an := range d.Announcements {
			if an.Service == svcKey {
				got[n] = append(got[n], an.IP.String())
			}
		}
		why = d.NotAnnounced[svcKey]
	}
	return got, why
}

// eventually polls cond until it holds; the caches follow the API server asynchronously. The
// bound is generous and not a performance assertion.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after 30s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (a *apiWorld) createLB(t *testing.T, name string, policy corev1.ServiceExternalTrafficPolicy, families []corev1.IPFamily, ingress ...string) {
	t.Helper()
	ctx := context.Background()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: policy,
			Selector:              map[string]string{"app": name},
			Ports:                 []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}},
			IPFamilies:            families,
		},
	}
	if len(families) == 2 {
		svc.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicyRequireDualStack)
	}
	created, err := a.cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service %s: %v", name, err)
	}
	for _, ip := range ingress {
		created.Status.LoadBalancer.Ingress = append(created.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	if _, err := a.cs.CoreV1().Services("default").UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("status of service %s: %v", name, err)
	}
}

// setEndpoint writes the Service's only EndpointSlice with one endpoint on node.
func (a *apiWorld) setEndpoint(t *testing.T, svc, node string, c discoveryv1.EndpointConditions) {
	t.Helper()
	ctx := context.Background()
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: svc + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.5"}, NodeName: ptr(node), Conditions: c}},
		Ports:       []discoveryv1.EndpointPort{{Port: ptr(int32(8080))}},
	}
	old, err := a.cs.DiscoveryV1().EndpointSlices("default").Get(ctx, slice.Name, metav1.GetOptions{})
	if err == nil {
		slice.ResourceVersion = old.ResourceVersion
		_, err = a.cs.DiscoveryV1().EndpointSlices("default").Update(ctx, slice, metav1.UpdateOptions{})
	} else {
		_, err = a.cs.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("write EndpointSlice of %s: %v", svc, err)
	}
}

// TestSpeakerCachesFollowEndpoints runs the speaker's informers against a real API server: a
// Cluster Service whose only pod goes through a rolling update is announced while the pod is
// ready or terminating-but-serving, withdrawn (layer 2 and BGP) when nothing serves, and
// announced again when a pod is ready.
func TestSpeakerCachesFollowEndpoints(t *testing.T) {
	a := newAPIWorld(t, endpointTestConfig, "kind-worker", "kind-worker2", "kind-worker3")
	cluster := corev1.ServiceExternalTrafficPolicyCluster
	a.createLB(t, "web", cluster, nil, "172.18.255.200")
	a.createLB(t, "routed", cluster, nil, "10.99.0.5")

	steps := []struct {
		name       string
		conds      *discoveryv1.EndpointConditions // nil: no EndpointSlice yet
		wantL2     int                             // nodes announcing web (0 or 1)
		wantBGP    int                             // nodes advertising routed
		wantReason string
	}{
		{name: "no EndpointSlice", wantReason: "no ready or serving endpoint"},
		{name: "ready", conds: &discoveryv1.EndpointConditions{Ready: yes, Serving: yes, Terminating: no}, wantL2: 1, wantBGP: 3},
		{name: "terminating, still serving", conds: &discoveryv1.EndpointConditions{Ready: no, Serving: yes, Terminating: yes}, wantL2: 1, wantBGP: 3},
		{name: "terminating, no longer serving", conds: &discoveryv1.EndpointConditions{Ready: no, Serving: no, Terminating: yes}, wantReason: "no ready or serving endpoint"},
		{name: "ready again", conds: &discoveryv1.EndpointConditions{Ready: yes, Serving: yes, Terminating: no}, wantL2: 1, wantBGP: 3},
	}
	for _, st := range steps {
		if st.conds != nil {
			a.setEndpoint(t, "web", "kind-worker2", *st.conds)
			a.setEndpoint(t, "routed", "kind-worker2", *st.conds)
		}
		eventually(t, st.name, func() (bool, string) {
			web, why := a.announcers("default/web")
			routed, _ := a.announcers("default/routed")
			state := fmt.Sprintf("web announced by %v, routed by %v, reason %q", web, routed, why)
			return len(web) == st.wantL2 && len(routed) == st.wantBGP && strings.Contains(why, st.wantReason), state
		})
	}
}

// TestSpeakerCachesDualStackOrder: the API server keeps .status.loadBalancer.ingress in the
// order written, and the speaker elects one node for both IPs over the first one.
func TestSpeakerCachesDualStackOrder(t *testing.T) {
	nodes := []string{"kind-worker", "kind-worker2", "kind-worker3"}
	a := newAPIWorld(t, endpointTestConfig, nodes...)
	v4, v6 := "172.18.255.210", "fc00:f853:ccd:e793::d0"
	if election.Owner(netip.MustParseAddr(v4), nodes) == election.Owner(netip.MustParseAddr(v6), nodes) {
		t.Fatalf("a per-IP election gives %s and %s the same node; pick addresses it splits, or the test proves nothing", v4, v6)
	}
	a.createLB(t, "dual", corev1.ServiceExternalTrafficPolicyCluster, []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}, v6, v4)
	a.setEndpoint(t, "dual", "kind-worker", discoveryv1.EndpointConditions{Ready: yes})
	want := election.Owner(netip.MustParseAddr(v6), nodes)
	eventually(t, "dual-stack Service announced", func() (bool, string) {
		got, why := a.announcers("default/dual")
		owned := slices.Clone(got[want])
		slices.Sort(owned)
		return len(got) == 1 && slices.Equal(owned, []string{v4, v6}), fmt.Sprintf("announcers %v (reason %q), want %s owning both", got, why, want)
	})
}

// testLog sends log lines to t.Log so they show only for failing tests (or -v).
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
