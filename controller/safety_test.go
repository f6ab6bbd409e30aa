package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The tests in this file pin DESIGN.md §6: the API server is the only state, an address in a
// Service's status stays that Service's own until a deliberate change of that Service, and no
// configuration takes one away.

func (e *env) annotate(t *testing.T, ns, name, key, value string) {
	t.Helper()
	svc := e.get(t, ns, name)
	if svc.Annotations == nil {
		svc.Annotations = map[string]string{}
	}
	svc.Annotations[key] = value
	if _, err := e.cs.CoreV1().Services(ns).Update(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("annotate %s/%s: %v", ns, name, err)
	}
}

func (e *env) delete(t *testing.T, ns, name string) {
	t.Helper()
	if err := e.cs.CoreV1().Services(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete %s/%s: %v", ns, name, err)
	}
}

// A Service whose loadBalancerIPs annotation stopped parsing while no controller ran keeps its
// address over a restart, and the next new Service does not get the same one.
func TestRestartKeepsAddressOfServiceWithBrokenRequest(t *testing.T) {
	for _, tc := range []struct{ name, key, value string }{
		{"trailing comma", "metallb.universe.tf/loadBalancerIPs", "172.18.255.200,"},
		{"not an address", "metallb.io/loadBalancerIPs", "banana"},
		{"two IPv4 addresses", "metallb.universe.tf/loadBalancerIPs", "172.18.255.200,172.18.255.201"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.applyConfig(t, walkthroughConfig)
			stop := e.startController(t, nil)
			e.create(t, lbService("default", "old"))
			e.waitIPs(t, "default", "old", "172.18.255.200")
			stop()

			e.annotate(t, "default", "old", tc.key, tc.value)
			e.startController(t, nil)
			e.create(t, lbService("default", "new"))
			e.waitIPs(t, "default", "new", "172.18.255.201")
			e.waitEvent(t, "default", "old", ReasonAllocationFailed, "it keeps 172.18.255.200")
			e.holdIPs(t, "default", "old", "172.18.255.200", 300*time.Millisecond)
		})
	}
}

// The controller starts while the ConfigMap is invalid and new Services wait; once the
// ConfigMap is fixed, the Service that already had the only address keeps it, every time
// (before, queue order decided: the old Service lost its address in most runs).
func TestStartWithoutValidConfigKeepsTheOldestAddress(t *testing.T) {
	const onePool = `
address-pools:
- name: one
  protocol: layer2
  addresses: [172.18.255.200/32]
`
	e := newEnv(t)
	e.applyConfig(t, onePool)
	stop := e.startController(t, nil)
	e.create(t, lbService("default", "old"))
	e.waitIPs(t, "default", "old", "172.18.255.200")
	stop()

	const runs = 20
	for run := range runs {
		e.applyConfig(t, "address-pools: [{name: one, protocol: layer2, addresses: [not-an-address]}]")
		var newcomers []string
		for i := range 5 {
			name := fmt.Sprintf("new-%d-%d", run, i)
			e.create(t, lbService("default", name))
			newcomers = append(newcomers, name)
		}
		reg := prometheus.NewRegistry()
		stop := e.startController(t, func(o *Options) { o.Registerer = reg })
		e.waitEvent(t, "default", newcomers[4], ReasonAllocationFailed, "no configuration loaded")
		e.applyConfig(t, onePool)
		for _, n := range newcomers {
			e.waitEvent(t, "default", n, ReasonAllocationFailed, "no free address")
		}
		if got := ingressIPs(e.get(t, "default", "old")); got != "172.18.255.200" {
			t.Fatalf("run %d: the old Service's address is now %q", run+1, got)
		}
		for _, n := range newcomers {
			if got := ingressIPs(e.get(t, "default", n)); got != "" {
				t.Fatalf("run %d: %s got %q", run+1, n, got)
			}
		}
		stop()
		for _, n := range newcomers {
			e.delete(t, "default", n)
		}
	}
}

// A valid configuration under which an assigned address would leave every pool or become
// unusable is refused like an invalid one; once the Services in its way are gone, it applies.
func TestConfigThatTakesAddressesIsRefused(t *testing.T) {
	const start = `
address-pools:
- name: default
  protocol: layer2
  addresses: [10.60.0.0/24]
- name: other
  protocol: layer2
  auto-assign: false
  addresses: [10.70.0.0/24]
`
	for _, tc := range []struct {
		name    string
		config  *string // nil: the ConfigMap loses its config key
		blocked []string
		frags   []string
	}{
		{"empty config", ptr(""), []string{"default/zero", "default/one", "default/pinned", "default/later"}, []string{"3 service(s)", "default/zero (10.60.0.0 would be in no pool)"}},
		{"config key removed", nil, []string{"default/zero", "default/one", "default/pinned", "default/later"}, []string{"would be in no pool"}},
		{"avoid-buggy-ips turned on", ptr(`
address-pools:
- name: default
  protocol: layer2
  avoid-buggy-ips: true
  addresses: [10.60.0.0/24]
- name: other
  protocol: layer2
  auto-assign: false
  addresses: [10.70.0.0/24]
`), []string{"default/zero"}, []string{"1 service(s)", "default/zero (10.60.0.0 would become unusable"}},
		{"pool removed", ptr(`
address-pools:
- name: default
  protocol: layer2
  addresses: [10.60.0.0/24]
`), []string{"default/pinned"}, []string{"default/pinned (10.70.0.5 would be in no pool)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.applyConfig(t, start)
			reg := prometheus.NewRegistry()
			e.startController(t, func(o *Options) { o.Registerer = reg })
			e.create(t, lbService("default", "zero"))
			e.waitIPs(t, "default", "zero", "10.60.0.0")
			e.create(t, lbService("default", "one"))
			e.waitIPs(t, "default", "one", "10.60.0.1")
			pinned := lbService("default", "pinned")
			pinned.Spec.LoadBalancerIP = "10.70.0.5"
			e.create(t, pinned)
			e.waitIPs(t, "default", "pinned", "10.70.0.5")

			if tc.config == nil {
				e.setConfigMapData(t, map[string]string{"other-key": "x"})
			} else {
				e.applyConfig(t, *tc.config)
			}
			for _, f := range append(tc.frags, "Move those Services") {
				e.waitEvent(t, "metallb-system", "config", ReasonConfigInvalid, f)
			}
			waitGauge(t, reg, "metallb_k8s_client_config_stale_bool", "", 1)
			for name, want := range map[string]string{"zero": "10.60.0.0", "one": "10.60.0.1", "pinned": "10.70.0.5"} {
				e.holdIPs(t, "default", name, want, 100*time.Millisecond)
			}
			// The last good configuration stays in force for everything.
			e.create(t, lbService("default", "later"))
			e.waitIPs(t, "default", "later", "10.60.0.2")

			// Deleting the Services in the way (the one created meanwhile included) lets the refused
			// configuration apply.
			for _, key := range tc.blocked {
				e.delete(t, "default", strings.TrimPrefix(key, "default/"))
			}
			waitGauge(t, reg, "metallb_k8s_client_config_stale_bool", "", 0)
		})
	}
}

// Turning auto-assign off or widening a pool takes nothing away and applies at once.
func TestConfigThatOnlyAddsApplies(t *testing.T) {
	e := newEnv(t)
	e.applyConfig(t, walkthroughConfig)
	reg := prometheus.NewRegistry()
	e.startController(t, func(o *Options) { o.Registerer = reg })
	e.create(t, lbService("default", "a"))
	e.waitIPs(t, "default", "a", "172.18.255.200")
	e.applyConfig(t, `
address-pools:
- name: default
  protocol: layer2
  auto-assign: false
  addresses: [172.18.255.200-172.18.255.250]
- name: more
  protocol: layer2
  addresses: [10.80.0.0/24]
`)
	waitGauge(t, reg, "metallb_allocator_addresses_total", "more", 256)
	waitGauge(t, reg, "metallb_k8s_client_config_stale_bool", "", 0)
	e.create(t, lbService("default", "b"))
	e.waitIPs(t, "default", "b", "10.80.0.0")
	e.holdIPs(t, "default", "a", "172.18.255.200", 300*time.Millisecond)
}

// setConfigMapData replaces the ConfigMap's data wholesale.
func (e *env) setConfigMapData(t *testing.T, data map[string]string) {
	t.Helper()
	cms := e.cs.CoreV1().ConfigMaps("metallb-system")
	cm, err := cms.Get(context.Background(), "config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data = data
	if _, err := cms.Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

// MetalLB's rules for what a Service asks for (current MetalLB where it fixed v0.12).
func TestRequestRulesAsMetalLB(t *testing.T) {
	e := newEnv(t)
	e.applyConfig(t, `
address-pools:
- name: v4
  protocol: layer2
  addresses: [172.18.255.200-172.18.255.250]
- name: reserved
  protocol: layer2
  auto-assign: false
  addresses: [10.10.0.0/24]
- name: dual
  protocol: layer2
  auto-assign: false
  addresses: [10.20.0.0/24, "fd00:20::/120"]
`)
	e.startController(t, nil)

	t.Run("metallb.io annotation wins over metallb.universe.tf", func(t *testing.T) {
		svc := lbService("default", "both-prefixes")
		svc.Annotations["metallb.universe.tf/loadBalancerIPs"] = "172.18.255.210"
		svc.Annotations["metallb.io/loadBalancerIPs"] = "172.18.255.211"
		svc.Annotations["metallb.universe.tf/address-pool"] = "reserved"
		svc.Annotations["metallb.io/address-pool"] = "v4"
		e.create(t, svc)
		e.waitIPs(t, "default", svc.Name, "172.18.255.211")
	})
	t.Run("spec.loadBalancerIP with the annotation is an error", func(t *testing.T) {
		svc := lbService("default", "ip-twice")
		svc.Spec.LoadBalancerIP = "172.18.255.220"
		svc.Annotations["metallb.universe.tf/loadBalancerIPs"] = "172.18.255.221"
		e.create(t, svc)
		e.waitEvent(t, "default", svc.Name, ReasonAllocationFailed, "can not have both metallb.universe.tf/loadBalancerIPs")
		e.holdIPs(t, "default", svc.Name, "", 300*time.Millisecond)
	})
	t.Run("a dual-stack Service requesting one address is refused", func(t *testing.T) {
		svc := lbService("default", "dual-one")
		policy := corev1.IPFamilyPolicyRequireDualStack
		svc.Spec.IPFamilyPolicy = &policy
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
		svc.Annotations["metallb.universe.tf/loadBalancerIPs"] = "10.20.0.9"
		e.create(t, svc)
		e.waitEvent(t, "default", svc.Name, ReasonAllocationFailed, "does not cover the Service's ipFamilies [IPv4 IPv6]")
		e.holdIPs(t, "default", svc.Name, "", 300*time.Millisecond)
	})
	t.Run("PreferDualStack gets one family where the pool has one", func(t *testing.T) {
		svc := lbService("default", "prefer")
		policy := corev1.IPFamilyPolicyPreferDualStack
		svc.Spec.IPFamilyPolicy = &policy
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
		e.create(t, svc)
		if fams := e.get(t, "default", svc.Name).Spec.IPFamilies; len(fams) != 2 {
			t.Fatalf("the API server gave the Service families %v; the test needs a dual-stack service CIDR", fams)
		}
		e.waitIPs(t, "default", svc.Name, "172.18.255.200")
	})
	t.Run("PreferDualStack gets both families where the pool has both", func(t *testing.T) {
		svc := lbService("default", "prefer-dual")
		policy := corev1.IPFamilyPolicyPreferDualStack
		svc.Spec.IPFamilyPolicy = &policy
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
		svc.Annotations["metallb.io/address-pool"] = "dual"
		e.create(t, svc)
		e.waitIPs(t, "default", svc.Name, "10.20.0.0,fd00:20::")
	})
	t.Run("the pool is written in metallb.io/ip-allocated-from-pool", func(t *testing.T) {
		svc := lbService("default", "annotated")
		svc.Annotations["metallb.universe.tf/ip-allocated-from-pool"] = "stale"
		svc.Annotations["metallb.io/address-pool"] = "reserved"
		e.create(t, svc)
		e.waitIPs(t, "default", svc.Name, "10.10.0.0")
		waitFor(t, "pool annotation", func() (bool, string) {
			a := e.get(t, "default", svc.Name).Annotations
			_, old := a["metallb.universe.tf/ip-allocated-from-pool"]
			return a["metallb.io/ip-allocated-from-pool"] == "reserved" && !old, fmt.Sprint(a)
		})
		// No longer a LoadBalancer: the status and the annotation go.
		cur := e.get(t, "default", svc.Name)
		cur.Spec.Type = corev1.ServiceTypeClusterIP
		if _, err := e.cs.CoreV1().Services("default").Update(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		e.waitIPs(t, "default", svc.Name, "")
		waitFor(t, "pool annotation removed", func() (bool, string) {
			a := e.get(t, "default", svc.Name).Annotations
			_, ok := a["metallb.io/ip-allocated-from-pool"]
			return !ok, fmt.Sprint(a)
		})
	})
}
