package main

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ironlb/ironlb/election"
)

func TestStatusReport(t *testing.T) {
	node := func(name string, labels map[string]string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	speakerPod := func(node string, ready corev1.ConditionStatus) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "metallb-system", Name: "speaker-" + node, Labels: map[string]string{"app": "metallb", "component": "speaker"}},
			Spec:       corev1.PodSpec{NodeName: node},
			Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}},
		}
	}
	lb := func(name, ip string, local bool) *corev1.Service {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		}
		if local {
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}
		if ip != "" {
			svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		}
		return svc
	}
	worker3 := "worker3"
	notReady := false
	objects := []runtime.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "metallb-system", Name: "config"}, Data: map[string]string{"config": `
address-pools:
- name: l2
  protocol: layer2
  addresses: [172.18.255.200-172.18.255.250]
- name: routed
  protocol: bgp
  addresses: [10.99.0.0/24]
`}},
		node("control-plane", map[string]string{"node.kubernetes.io/exclude-from-external-load-balancers": ""}),
		node("worker1", nil), node("worker2", nil), node("worker3", nil),
		speakerPod("control-plane", corev1.ConditionTrue), speakerPod("worker1", corev1.ConditionTrue),
		speakerPod("worker2", corev1.ConditionFalse), speakerPod("worker3", corev1.ConditionTrue),
		lb("web", "172.18.255.200", false),
		lb("local", "10.99.0.1", true),
		&discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "local-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "local"}},
			Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"10.244.3.5"}, NodeName: &worker3}},
		},
		&discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.7"}, NodeName: &worker3}},
		},
		// Assigned an address, but its only pod is not ready: nobody announces it.
		lb("idle", "172.18.255.201", false),
		&discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "idle-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "idle"}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.8"}, NodeName: &worker3,
				Conditions: discoveryv1.EndpointConditions{Ready: &notReady, Serving: &notReady}}},
		},
		lb("waiting", "", false),
		&corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Namespace: "default", Name: "waiting.1"},
			InvolvedObject: corev1.ObjectReference{Kind: "Service", Namespace: "default", Name: "waiting"},
			Reason:         "AllocationFailed",
			Message:        `no free address in pool "l2" for IPv4`,
		},
	}
	client := fake.NewClientset(objects...)
	rows, warnings, err := statusReport(context.Background(), client, statusOptions{namespace: "metallb-system", configName: "config", mlLabels: "app=metallb,component=speaker"})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	byService := map[string]statusRow{}
	for _, r := range rows {
		byService[r.Service] = r
	}
	if len(rows) != 4 {
		t.Fatalf("rows %+v, want web, local, idle and waiting", rows)
	}
	if idle := byService["default/idle"]; len(idle.Nodes) != 0 || idle.Pool != "l2" || !strings.Contains(idle.Why, "no ready or serving endpoint") {
		t.Errorf("idle: %+v, want pool l2, no node, and the missing endpoint as the reason", idle)
	}

	web := byService["default/web"]
	wantOwner := election.Owner(mustAddr(t, "172.18.255.200"), []string{"worker1", "worker3"})
	if web.Protocol != "layer2" || web.Pool != "l2" || strings.Join(web.Nodes, ",") != wantOwner {
		t.Errorf("web: %+v, want layer2 from pool l2 announced by %s", web, wantOwner)
	}
	for _, want := range []string{"worker1, worker3", "control-plane: node is labelled", "worker2: "} {
		if !strings.Contains(web.Why, want) {
			t.Errorf("web: why %q does not mention %q", web.Why, want)
		}
	}
	local := byService["default/local"]
	if local.Protocol != "bgp" || strings.Join(local.Nodes, ",") != "worker3" {
		t.Errorf("local: %+v, want bgp advertised by worker3 only (the node with the endpoint)", local)
	}
	// The same cluster explained for speakers run with --ignore-exclude-lb: the labelled control
	// plane is a candidate like any other node.
	rows, _, err = statusReport(context.Background(), client, statusOptions{namespace: "metallb-system", configName: "config", mlLabels: "app=metallb,component=speaker", ignoreExcludeLB: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Service != "default/web" {
			continue
		}
		want := election.Owner(mustAddr(t, "172.18.255.200"), []string{"control-plane", "worker1", "worker3"})
		if strings.Join(r.Nodes, ",") != want || !strings.Contains(r.Why, "control-plane, worker1, worker3") || strings.Contains(r.Why, "node is labelled") {
			t.Errorf("--ignore-exclude-lb: web %+v, want %s elected among control-plane, worker1, worker3", r, want)
		}
	}

	waiting := byService["default/waiting"]
	if !waiting.Pending || !strings.Contains(waiting.Why, `no free address in pool "l2"`) {
		t.Errorf("waiting: %+v, want pending with the AllocationFailed reason", waiting)
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
