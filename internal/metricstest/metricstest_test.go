package metricstest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// recorder stands in for the testing.TB of a component test, so the checks themselves can be
// shown to fail.
type recorder struct {
	testing.TB
	msgs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// run calls check with a recorder on its own goroutine (Fatalf ends it) and returns the failures.
func run(t *testing.T, check func(testing.TB)) []string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(r)
	}()
	<-done
	return r.msgs
}

const controllerScrape = `# HELP metallb_allocator_addresses_in_use_total Number of IP addresses in use, per pool
# TYPE metallb_allocator_addresses_in_use_total gauge
metallb_allocator_addresses_in_use_total{pool="tiny"} 2
# HELP metallb_allocator_addresses_total Number of usable IP addresses, per pool
# TYPE metallb_allocator_addresses_total gauge
metallb_allocator_addresses_total{pool="tiny"} 2
# HELP metallb_allocator_services_allocated_total Number of services allocated, per pool
# TYPE metallb_allocator_services_allocated_total gauge
metallb_allocator_services_allocated_total{pool="tiny"} 2
# HELP metallb_k8s_client_config_loaded_bool 1 if the MetalLB configuration was successfully loaded at least once.
# TYPE metallb_k8s_client_config_loaded_bool gauge
metallb_k8s_client_config_loaded_bool 1
# HELP metallb_k8s_client_config_stale_bool 1 if running on a stale configuration, because the latest config failed to load.
# TYPE metallb_k8s_client_config_stale_bool gauge
metallb_k8s_client_config_stale_bool 0
# HELP metallb_k8s_client_update_errors_total Number of k8s object updates that failed for some reason.
# TYPE metallb_k8s_client_update_errors_total counter
metallb_k8s_client_update_errors_total 0
# HELP metallb_k8s_client_updates_total Number of k8s object updates that have been processed.
# TYPE metallb_k8s_client_updates_total counter
metallb_k8s_client_updates_total 7
`

var target = Target{Job: "metallb", Pod: "controller-1", Container: "controller"}

var exhausted = []Alert{
	{Name: "MetalLBAddressPoolExhausted", Labels: map[string]string{"pool": "tiny"}},
	{Name: "MetalLBAddressPoolUsage75Percent", Labels: map[string]string{"pool": "tiny"}},
	{Name: "MetalLBAddressPoolUsage85Percent", Labels: map[string]string{"pool": "tiny"}},
	{Name: "MetalLBAddressPoolUsage95Percent", Labels: map[string]string{"pool": "tiny"}},
}

func TestChecksFailOnRenames(t *testing.T) {
	tests := []struct {
		name     string
		scrape   string
		check    func(testing.TB, Scrape)
		wantFail string // substring of a failure; "" for none
	}{
		{"MetalLB's output passes the table", controllerScrape,
			func(t testing.TB, s Scrape) { CheckFamilies(t, s, Controller) }, ""},
		{"MetalLB's output raises the pool alerts", controllerScrape,
			func(t testing.TB, s Scrape) { CheckAlerts(t, s, target, exhausted) }, ""},
		{"an alert expected but not raised", controllerScrape,
			func(t testing.TB, s Scrape) {
				CheckAlerts(t, s, target, append(exhausted, Alert{Name: "MetalLBStaleConfig", Labels: target.Labels()}))
			}, "MetalLBStaleConfig"},
		{"renamed label", strings.ReplaceAll(controllerScrape, `{pool=`, `{pool_name=`),
			func(t testing.TB, s Scrape) { CheckFamilies(t, s, Controller) }, "want label names [pool]"},
		{"renamed label silences the alert", strings.ReplaceAll(controllerScrape, `{pool=`, `{pool_name=`),
			func(t testing.TB, s Scrape) { CheckAlerts(t, s, target, exhausted) }, "promtool"},
		{"old ironlb name", strings.ReplaceAll(controllerScrape, "metallb_k8s_client_config_loaded_bool", "ironlb_config_loaded"),
			func(t testing.TB, s Scrape) { CheckFamilies(t, s, Controller) }, "retired"},
		{"wrong type", strings.ReplaceAll(controllerScrape, "metallb_k8s_client_updates_total counter", "metallb_k8s_client_updates_total gauge"),
			func(t testing.TB, s Scrape) { CheckFamilies(t, s, Controller) }, "type GAUGE"},
		{"wrong help", strings.ReplaceAll(controllerScrape, "Number of usable IP addresses, per pool", "Pool size."),
			func(t testing.TB, s Scrape) { CheckFamilies(t, s, Controller) }, "help"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Parse(t, tc.scrape)
			msgs := run(t, func(r testing.TB) { tc.check(r, s) })
			all := strings.Join(msgs, "\n")
			switch {
			case tc.wantFail == "" && len(msgs) > 0:
				t.Errorf("unexpected failures:\n%s", all)
			case tc.wantFail != "" && !strings.Contains(all, tc.wantFail):
				t.Errorf("want a failure mentioning %q, got:\n%s", tc.wantFail, all)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	got := expand("{{ $labels.job }} - MetalLB {{ $labels.container }} on {{$labels.pod}}: {{ $labels.missing }}.",
		map[string]string{"job": "metallb", "container": "speaker", "pod": "speaker-x"})
	if want := "metallb - MetalLB speaker on speaker-x: ."; got != want {
		t.Errorf("expand = %q, want %q", got, want)
	}
}
