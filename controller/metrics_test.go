package controller

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ironlb/ironlb/internal/metricstest"
)

var controllerTarget = metricstest.Target{Job: "metallb", Pod: "controller-7f4b9c-x2x9z", Container: "controller"}

// TestMetricsMatchMetalLB scrapes a controller running against a real API server over HTTP at
// each stage of its life and checks the output against MetalLB v0.12.1's names, types and
// labels, the values, and which of MetalLB's Helm chart alerts fire on it.
func TestMetricsMatchMetalLB(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	url := metricstest.Serve(t, reg)

	// A replica that does not lead (never Run) exports none of them.
	if _, err := New(Options{Client: e.cs, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if s := metricstest.Get(t, url); len(s.Families) != 0 {
		t.Errorf("a controller that is not running exports %d metric families:\n%s", len(s.Families), s.Body)
	}

	e.startController(t, func(o *Options) { o.Registerer = reg })

	t.Run("no ConfigMap yet: config not loaded", func(t *testing.T) {
		s := metricstest.Get(t, url)
		metricstest.CheckValues(t, s, map[string]float64{
			"metallb_k8s_client_config_loaded_bool": 0,
			"metallb_k8s_client_config_stale_bool":  0,
		})
		metricstest.CheckAlerts(t, s, controllerTarget, []metricstest.Alert{{Name: "MetalLBConfigNotLoaded", Labels: controllerTarget.Labels()}})
	})

	e.applyConfig(t, `
address-pools:
- name: default
  protocol: layer2
  addresses: [172.18.255.200-172.18.255.250]
- name: tiny
  protocol: layer2
  auto-assign: false
  addresses: [10.20.0.0/31]
- name: buggy
  protocol: layer2
  auto-assign: false
  avoid-buggy-ips: true
  addresses: [10.30.0.0/24]
`)
	// default: a and b share .210 (3 Services, 2 addresses); tiny: both addresses taken.
	for _, name := range []string{"a", "b"} {
		svc := lbService("default", name)
		svc.Spec.LoadBalancerIP = "172.18.255.210"
		svc.Annotations["metallb.universe.tf/allow-shared-ip"] = "k"
		if name == "b" {
			svc.Spec.Ports[0].Port = 81
		}
		e.create(t, svc)
	}
	e.create(t, lbService("default", "c"))
	for _, name := range []string{"t1", "t2"} {
		svc := lbService("default", name)
		svc.Annotations["metallb.universe.tf/address-pool"] = "tiny"
		e.create(t, svc)
	}
	e.waitIPs(t, "default", "a", "172.18.255.210")
	e.waitIPs(t, "default", "b", "172.18.255.210")
	e.waitIPs(t, "default", "c", "172.18.255.200")
	waitFor(t, "tiny pool full", func() (bool, string) {
		got := ingressIPs(e.get(t, "default", "t1")) + " " + ingressIPs(e.get(t, "default", "t2"))
		return got == "10.20.0.0 10.20.0.1" || got == "10.20.0.1 10.20.0.0", got
	})

	tinyAlerts := []metricstest.Alert{
		{Name: "MetalLBAddressPoolExhausted", Labels: map[string]string{"pool": "tiny"}},
		{Name: "MetalLBAddressPoolUsage75Percent", Labels: map[string]string{"pool": "tiny"}},
		{Name: "MetalLBAddressPoolUsage85Percent", Labels: map[string]string{"pool": "tiny"}},
		{Name: "MetalLBAddressPoolUsage95Percent", Labels: map[string]string{"pool": "tiny"}},
	}
	t.Run("config loaded, one pool full", func(t *testing.T) {
		var s metricstest.Scrape
		waitFor(t, "metallb_allocator_services_allocated_total{pool=default} = 3", func() (bool, string) {
			s = metricstest.Get(t, url)
			v, _ := s.Value("metallb_allocator_services_allocated_total", map[string]string{"pool": "default"})
			return v == 3, fmt.Sprint(v)
		})
		metricstest.CheckFamilies(t, s, metricstest.Controller)
		metricstest.CheckValues(t, s, map[string]float64{
			"metallb_k8s_client_config_loaded_bool":                  1,
			"metallb_k8s_client_config_stale_bool":                   0,
			"metallb_allocator_addresses_total{pool=default}":        51,
			"metallb_allocator_addresses_total{pool=tiny}":           2,
			"metallb_allocator_addresses_total{pool=buggy}":          254, // a /24 less .0 and .255, as MetalLB counts
			"metallb_allocator_addresses_in_use_total{pool=default}": 2,
			"metallb_allocator_addresses_in_use_total{pool=tiny}":    2,
			"metallb_allocator_addresses_in_use_total{pool=buggy}":   0,
			"metallb_allocator_services_allocated_total{pool=tiny}":  2,
			"metallb_allocator_services_allocated_total{pool=buggy}": 0,
		})
		if v, _ := s.Value("metallb_k8s_client_updates_total", nil); v < 6 {
			t.Errorf("metallb_k8s_client_updates_total = %v, want at least one per Service and one for the ConfigMap (6)", v)
		}
		metricstest.CheckAlerts(t, s, controllerTarget, tinyAlerts)
	})

	t.Run("invalid config: stale, pools unchanged", func(t *testing.T) {
		e.applyConfig(t, "address-pools: [{name: x, protocol: layer2, addresses: [10.9.0.9-10.9.0.1]}]")
		var s metricstest.Scrape
		waitFor(t, "config stale", func() (bool, string) {
			s = metricstest.Get(t, url)
			v, _ := s.Value("metallb_k8s_client_config_stale_bool", nil)
			return v == 1, fmt.Sprint(v)
		})
		metricstest.CheckValues(t, s, map[string]float64{
			"metallb_k8s_client_config_loaded_bool":        1,
			"metallb_allocator_addresses_total{pool=tiny}": 2,
		})
		metricstest.CheckAlerts(t, s, controllerTarget, append(tinyAlerts, metricstest.Alert{Name: "MetalLBStaleConfig", Labels: controllerTarget.Labels()}))
	})

	t.Run("pool removed, address freed: series follow", func(t *testing.T) {
		e.applyConfig(t, `
address-pools:
- name: default
  protocol: layer2
  addresses: [172.18.255.200-172.18.255.250]
- name: tiny
  protocol: layer2
  auto-assign: false
  addresses: [10.20.0.0/31]
`)
		if err := e.cs.CoreV1().Services("default").Delete(context.Background(), "t2", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		var s metricstest.Scrape
		waitFor(t, "buggy gone, tiny half used", func() (bool, string) {
			s = metricstest.Get(t, url)
			_, buggy := s.Value("metallb_allocator_addresses_total", map[string]string{"pool": "buggy"})
			tiny, _ := s.Value("metallb_allocator_addresses_in_use_total", map[string]string{"pool": "tiny"})
			return !buggy && tiny == 1, fmt.Sprintf("buggy exported %v, tiny in use %v", buggy, tiny)
		})
		metricstest.CheckFamilies(t, s, metricstest.Controller)
		metricstest.CheckValues(t, s, map[string]float64{
			"metallb_k8s_client_config_stale_bool":                  0,
			"metallb_allocator_services_allocated_total{pool=tiny}": 1,
		})
		metricstest.CheckAlerts(t, s, controllerTarget, nil)
	})
}

// TestMetricsCountFailedSyncs runs the controller as a user that may read Services but not write
// their status: every sync of the Service fails and is retried, and each failure counts in
// metallb_k8s_client_update_errors_total, as MetalLB counts its retried workqueue items. Once
// the permission is granted the status is written and the errors stop growing.
func TestMetricsCountFailedSyncs(t *testing.T) {
	e := newEnv(t)
	e.applyConfig(t, walkthroughConfig)
	ctx := context.Background()
	rules := []rbacv1.PolicyRule{
		// Everything the controller does but writing a Service's status.
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
	}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "no-status"}, Rules: rules}
	if _, err := e.cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "no-status"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "no-status"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "ironlb-limited"}},
	}
	if _, err := e.cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(e.srv.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "ironlb-limited"}
	limited, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	url := metricstest.Serve(t, reg)
	e.startController(t, func(o *Options) { o.Client = limited; o.Registerer = reg })
	e.create(t, lbService("default", "svc"))

	var errs float64
	waitFor(t, "two failed status writes counted", func() (bool, string) {
		s := metricstest.Get(t, url)
		errs, _ = s.Value("metallb_k8s_client_update_errors_total", nil)
		updates, _ := s.Value("metallb_k8s_client_updates_total", nil)
		return errs >= 2 && updates > errs, fmt.Sprintf("updates %v, errors %v", updates, errs)
	})
	if got := ingressIPs(e.get(t, "default", "svc")); got != "" {
		t.Fatalf("status written as %q without the permission", got)
	}

	role.Rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"services/status"}, Verbs: []string{"update"}})
	if _, err := e.cs.RbacV1().ClusterRoles().Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitIPs(t, "default", "svc", "172.18.255.200")
	s := metricstest.Get(t, url)
	before, _ := s.Value("metallb_k8s_client_update_errors_total", nil)
	e.create(t, lbService("default", "svc2"))
	e.waitIPs(t, "default", "svc2", "172.18.255.201")
	s = metricstest.Get(t, url)
	if after, _ := s.Value("metallb_k8s_client_update_errors_total", nil); after != before {
		t.Errorf("update errors grew from %v to %v while every write succeeded", before, after)
	}
}
