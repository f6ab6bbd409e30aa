package controller

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestWalkthroughFirstServiceGetsFirstAddress(t *testing.T) {
	e := newEnv(t)
	e.applyConfig(t, walkthroughConfig)
	e.startController(t, nil)

	e.create(t, lbService("default", "loadbalancer-service"))
	e.waitIPs(t, "default", "loadbalancer-service", "172.18.255.200")
	e.waitEvent(t, "default", "loadbalancer-service", ReasonIPAllocated, "172.18.255.200")
	e.waitEvent(t, "default", "loadbalancer-service", ReasonIPAllocated, "pool default")

	e.create(t, lbService("default", "second"))
	e.waitIPs(t, "default", "second", "172.18.255.201")

	// Deleting the first frees .200 for the next Service.
	if err := e.cs.CoreV1().Services("default").Delete(context.Background(), "loadbalancer-service", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let the delete reach the informer before the create
	e.create(t, lbService("default", "third"))
	e.waitIPs(t, "default", "third", "172.18.255.200")
	e.holdIPs(t, "default", "second", "172.18.255.201", time.Second)
}

func TestRequestedAddressAndPool(t *testing.T) {
	e := newEnv(t)
	e.applyConfig(t, `
address-pools:
- name: default
  protocol: layer2
  addresses: [172.18.255.200-172.18.255.250]
- name: reserved
  protocol: layer2
  auto-assign: false
  addresses: [10.10.0.0/24]
`)
	e.startController(t, nil)

	tests := []struct {
		name   string
		mutate func(*corev1.Service)
		want   string
	}{
		{"spec.loadBalancerIP", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "172.18.255.240" }, "172.18.255.240"},
		{"loadBalancerIPs annotation", func(s *corev1.Service) {
			s.Annotations["metallb.universe.tf/loadBalancerIPs"] = "172.18.255.241"
		}, "172.18.255.241"},
		{"metallb.io annotation", func(s *corev1.Service) {
			s.Annotations["metallb.io/loadBalancerIPs"] = "172.18.255.242"
		}, "172.18.255.242"},
		{"pool annotation on a non auto-assign pool", func(s *corev1.Service) {
			s.Annotations["metallb.universe.tf/address-pool"] = "reserved"
		}, "10.10.0.0"},
		{"requested address in a non auto-assign pool", func(s *corev1.Service) {
			s.Spec.LoadBalancerIP = "10.10.0.77"
		}, "10.10.0.77"},
		{"no request takes the lowest auto-assign address", nil, "172.18.255.200"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc := lbService("default", fmt.Sprintf("req-%d", i))
			if tc.mutate != nil {
				tc.mutate(svc)
			}
			e.create(t, svc)
			e.waitIPs(t, "default", svc.Name, tc.want)
		})
	}

	t.Run("requested address outside every pool", func(t *testing.T) {
		svc := lbService("default", "outside")
		svc.Spec.LoadBalancerIP = "192.0.2.1"
		e.create(t, svc)
		e.waitEvent(t, "default", "outside", ReasonAllocationFailed, "192.0.2.1")
		e.holdIPs(t, "default", "outside", "", 500*time.Millisecond)
	})
	t.Run("unknown pool", func(t *testing.T) {
		svc := lbService("default", "nopool")
		svc.Annotations["metallb.universe.tf/address-pool"] = "nope"
		e.create(t, svc)
		e.waitEvent(t, "default", "nopool", ReasonAllocationFailed, "nope")
	})
	t.Run("requested address in use", func(t *testing.T) {
		svc := lbService("default", "taken")
		svc.Spec.LoadBalancerIP = "172.18.255.240"
		e.create(t, svc)
		e.waitEvent(t, "default", "taken", ReasonAllocationFailed, "default/req-0")
	})
	t.Run("changing the request moves the address", func(t *testing.T) {
		svc := e.get(t, "default", "req-0")
		svc.Spec.LoadBalancerIP = "172.18.255.245"
		if _, err := e.cs.CoreV1().Services("default").Update(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		e.waitIPs(t, "default", "req-0", "172.18.255.245")
		e.waitEvent(t, "default", "req-0", ReasonIPAllocated, "replacing 172.18.255.240")
	})
}

func TestSharing(t *testing.T) {
	e := newEnv(t)
	e.applyConfig(t, walkthroughConfig)
	e.startController(t, nil)

	const key = "metallb.universe.tf/allow-shared-ip"
	dns := lbService("default", "dns-tcp")
	dns.Annotations[key] = "dns"
	dns.Spec.Ports[0].Port = 53
	e.create(t, dns)
	e.waitIPs(t, "default", "dns-tcp", "172.18.255.200")

	udp := lbService("default", "dns-udp")
	udp.Annotations[key] = "dns"
	udp.Spec.Selector = map[string]string{"app": "dns-tcp"}
	udp.Spec.Ports[0].Port = 53
	udp.Spec.Ports[0].Protocol = corev1.ProtocolUDP
	e.create(t, udp)
	e.waitIPs(t, "default", "dns-udp", "172.18.255.200")

	// Same key but the same port: cannot share, gets the next address.
	clash := lbService("default", "dns-clash")
	clash.Annotations[key] = "dns"
	clash.Spec.Ports[0].Port = 53
	e.create(t, clash)
	e.waitIPs(t, "default", "dns-clash", "172.18.255.201")

	// Asking for the shared address explicitly with a different key is refused with a reason.
	other := lbService("default", "other-key")
	other.Annotations[key] = "web"
	other.Spec.LoadBalancerIP = "172.18.255.200"
	e.create(t, other)
	e.waitEvent(t, "default", "other-key", ReasonAllocationFailed, "172.18.255.200")

	// Local traffic policy with different pods may not share.
	local := lbService("default", "local")
	local.Annotations[key] = "dns"
	local.Spec.Ports[0].Port = 5353
	local.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	local.Spec.LoadBalancerIP = "172.18.255.200"
	e.create(t, local)
	e.waitEvent(t, "default", "local", ReasonAllocationFailed, "172.18.255.200")
}

func TestExhaustionThenWiderPool(t *testing.T) {
	e := newEnv(t)
	e.applyConfig(t, `
address-pools:
- name: tiny
  protocol: layer2
  addresses: [172.18.255.200/31]
`)
	e.startController(t, nil)
	for _, n := range []string{"a", "b"} {
		e.create(t, lbService("default", n))
	}
	e.waitIPs(t, "default", "a", "172.18.255.200")
	e.waitIPs(t, "default", "b", "172.18.255.201")
	e.create(t, lbService("default", "c"))
	e.waitEvent(t, "default", "c", ReasonAllocationFailed, "tiny")
	e.holdIPs(t, "default", "c", "", 500*time.Millisecond)

	e.applyConfig(t, `
address-pools:
- name: tiny
  protocol: layer2
  addresses: [172.18.255.200/30]
`)
	e.waitIPs(t, "default", "c", "172.18.255.202")
	e.holdIPs(t, "default", "a", "172.18.255.200", 300*time.Millisecond)

	// Freeing an address also retries a pending Service.
	e.create(t, lbService("default", "d"))
	e.waitIPs(t, "default", "d", "172.18.255.203")
	e.create(t, lbService("default", "e"))
	e.waitEvent(t, "default", "e", ReasonAllocationFailed, "tiny")
	if err := e.cs.CoreV1().Services("default").Delete(context.Background(), "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitIPs(t, "default", "e", "172.18.255.201")
}

func TestInvalidConfigKeepsLastGood(t *testing.T) {
	e := newEnv(t)
	e.applyConfig(t, walkthroughConfig)
	reg := prometheus.NewRegistry()
	e.startController(t, func(o *Options) { o.Registerer = reg })
	e.create(t, lbService("default", "before"))
	e.waitIPs(t, "default", "before", "172.18.255.200")
	waitGauge(t, reg, "metallb_k8s_client_config_stale_bool", "", 0)
	waitGauge(t, reg, "metallb_k8s_client_config_loaded_bool", "", 1)
	waitGauge(t, reg, "metallb_allocator_addresses_total", "default", 51)
	waitGauge(t, reg, "metallb_allocator_addresses_in_use_total", "default", 1)

	e.applyConfig(t, `
address-pools:
- name: default
  protocol: layer2
  addresses: [172.18.255.250-172.18.255.200]
`)
	e.waitEvent(t, "metallb-system", "config", ReasonConfigInvalid, "range start is after end")
	waitGauge(t, reg, "metallb_k8s_client_config_stale_bool", "", 1)

	e.create(t, lbService("default", "after"))
	e.waitIPs(t, "default", "after", "172.18.255.201")
	e.holdIPs(t, "default", "before", "172.18.255.200", 300*time.Millisecond)
	waitGauge(t, reg, "metallb_allocator_addresses_in_use_total", "default", 2)
}

// waitGauge waits until the gauge name (with label pool=pool when pool is not "") has value want.
func waitGauge(t *testing.T, reg *prometheus.Registry, name, pool string, want float64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s{pool=%q} = %v", name, pool, want), func() (bool, string) {
		families, err := reg.Gather()
		if err != nil {
			return false, err.Error()
		}
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				match := pool == ""
				for _, l := range m.GetLabel() {
					if l.GetName() == "pool" && l.GetValue() == pool {
						match = true
					}
				}
				if match {
					got := m.GetGauge().GetValue()
					return got == want, fmt.Sprintf("value %v", got)
				}
			}
		}
		return false, "not exported"
	})
}

func TestRestartKeepsEveryAddress(t *testing.T) {
	e := newEnv(t)
	e.applyConfig(t, `
address-pools:
- name: default
  protocol: layer2
  addresses: [10.50.0.0/16]
`)
	stop := e.startController(t, nil)
	const n = 200
	for i := range n {
		e.create(t, lbService("default", fmt.Sprintf("svc-%03d", i)))
	}
	before := map[string]string{}
	waitFor(t, "all services assigned", func() (bool, string) {
		list, err := e.cs.CoreV1().Services("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		done := 0
		for _, s := range list.Items {
			if ip := ingressIPs(&s); ip != "" {
				before[s.Name] = ip
				done++
			}
		}
		return done == n, fmt.Sprintf("%d/%d assigned", done, n)
	})
	stop()

	// Free some low addresses in a way the old controller never saw: delete Services while no
	// controller runs. A restart must keep every remaining address and give the freed ones out
	// only to new Services.
	for _, name := range []string{"svc-000", "svc-005"} {
		if err := e.cs.CoreV1().Services("default").Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		delete(before, name)
	}
	// A new Service created while the controller was down must not steal anyone's address.
	e.create(t, lbService("default", "newcomer"))

	e.startController(t, nil)
	e.waitIPs(t, "default", "newcomer", "10.50.0.0")
	list, err := e.cs.CoreV1().Services("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	changed := 0
	for _, s := range list.Items {
		if want, ok := before[s.Name]; ok && ingressIPs(&s) != want {
			changed++
			t.Errorf("%s moved from %s to %s", s.Name, want, ingressIPs(&s))
		}
	}
	if changed == 0 && len(before) != n-2 {
		t.Fatalf("expected %d services to compare, got %d", n-2, len(before))
	}
}

func TestIPv6AndDualStack(t *testing.T) {
	e := newEnv(t)
	e.applyConfig(t, `
address-pools:
- name: dual
  protocol: layer2
  addresses:
  - 172.18.255.200-172.18.255.250
  - fc00:f853:ccd:e799::/64
`)
	e.startController(t, nil)

	v6 := lbService("default", "v6")
	single := corev1.IPFamilyPolicySingleStack
	v6.Spec.IPFamilyPolicy = &single
	v6.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	e.create(t, v6)
	e.waitIPs(t, "default", "v6", "fc00:f853:ccd:e799::")

	dual := lbService("default", "dual")
	require := corev1.IPFamilyPolicyRequireDualStack
	dual.Spec.IPFamilyPolicy = &require
	dual.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	e.create(t, dual)
	e.waitIPs(t, "default", "dual", "172.18.255.200,fc00:f853:ccd:e799::1")
}

func TestServicesOfOtherClassesAndTypes(t *testing.T) {
	e := newEnv(t)
	e.applyConfig(t, walkthroughConfig)
	e.startController(t, nil)

	other := lbService("default", "other-class")
	class := "example.com/other"
	other.Spec.LoadBalancerClass = &class
	e.create(t, other)
	e.create(t, lbService("default", "mine"))
	e.waitIPs(t, "default", "mine", "172.18.255.200")
	e.holdIPs(t, "default", "other-class", "", 500*time.Millisecond)

	// A Service that stops being a LoadBalancer gives its address back and loses its status.
	svc := e.get(t, "default", "mine")
	svc.Spec.Type = corev1.ServiceTypeClusterIP
	for i := range svc.Spec.Ports {
		svc.Spec.Ports[i].NodePort = 0
	}
	if _, err := e.cs.CoreV1().Services("default").Update(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitIPs(t, "default", "mine", "")
	e.create(t, lbService("default", "next"))
	e.waitIPs(t, "default", "next", "172.18.255.200")

	t.Run("controller with a class handles only that class", func(t *testing.T) {
		classed := lbService("default", "classed")
		c := "ironlb.io/test"
		classed.Spec.LoadBalancerClass = &c
		classed.Spec.LoadBalancerIP = "172.18.255.230"
		e.create(t, classed)
		e.holdIPs(t, "default", "classed", "", 300*time.Millisecond)
		e.startController(t, func(o *Options) { o.LBClass = c })
		e.waitIPs(t, "default", "classed", "172.18.255.230")
	})
}

func TestOnlyTheLeaderWrites(t *testing.T) {
	e := newEnv(t)
	e.applyConfig(t, walkthroughConfig)

	type replica struct {
		name   string
		cancel context.CancelFunc
		done   chan struct{}
	}
	var mu sync.Mutex
	leaders := []string{}
	start := func(name string) *replica {
		client := e.srv.Client(t, "ironlb-"+name)
		ctx, cancel := context.WithCancel(context.Background())
		r := &replica{name: name, cancel: cancel, done: make(chan struct{})}
		c, err := New(Options{Client: client, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer close(r.done)
			_ = RunElected(ctx, LeaderOptions{
				Client: client, Namespace: "metallb-system", LeaseName: "ironlb-controller", Identity: name,
				Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
				LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond,
			}, func(ctx context.Context) {
				mu.Lock()
				leaders = append(leaders, name)
				mu.Unlock()
				_ = c.Run(ctx, 1)
			})
		}()
		t.Cleanup(func() { cancel(); <-r.done })
		return r
	}
	a := start("replica-a")
	waitFor(t, "a leads", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(leaders) == 1, fmt.Sprint(leaders)
	})
	start("replica-b")

	e.create(t, lbService("default", "one"))
	e.waitIPs(t, "default", "one", "172.18.255.200")
	if got := statusWriters(t, e, "one"); got != "ironlb-replica-a" {
		t.Fatalf("status written by %q, want only the leader ironlb-replica-a", got)
	}

	// The leader goes away; the standby takes over and serves new Services.
	a.cancel()
	<-a.done
	e.create(t, lbService("default", "two"))
	e.waitIPs(t, "default", "two", "172.18.255.201")
	if got := statusWriters(t, e, "two"); got != "ironlb-replica-b" {
		t.Fatalf("status written by %q, want ironlb-replica-b", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(leaders, ",") != "replica-a,replica-b" {
		t.Fatalf("leaders %v, want replica-a then replica-b", leaders)
	}
}

// statusWriters returns the field managers that wrote the Service's status.
func statusWriters(t *testing.T, e *env, name string) string {
	t.Helper()
	svc := e.get(t, "default", name)
	var managers []string
	for _, mf := range svc.ManagedFields {
		if mf.Subresource == "status" {
			managers = append(managers, mf.Manager)
		}
	}
	return strings.Join(managers, ",")
}
