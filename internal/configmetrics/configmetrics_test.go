package configmetrics

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// values gathers reg into name → value.
func values(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			out[f.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return out
}

func TestStates(t *testing.T) {
	tests := []struct {
		name                    string
		do                      func(Metrics)
		loaded, stale           float64
		updates, updateFailures float64
	}{
		{"nothing loaded yet", func(Metrics) {}, 0, 0, 0, 0},
		{"accepted", func(m Metrics) { m.Accepted() }, 1, 0, 0, 0},
		{"rejected before any was loaded", func(m Metrics) { m.Rejected() }, 0, 1, 0, 0},
		{"rejected after one was loaded: loaded stays 1", func(m Metrics) { m.Accepted(); m.Rejected() }, 1, 1, 0, 0},
		{"accepted again clears stale", func(m Metrics) { m.Accepted(); m.Rejected(); m.Accepted() }, 1, 0, 0, 0},
		{"sync passes and failures", func(m Metrics) {
			m.Synced(nil)
			m.Synced(errors.New("conflict"))
			m.Synced(nil)
		}, 0, 0, 3, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := New(reg)
			tc.do(m)
			got := values(t, reg)
			want := map[string]float64{
				"metallb_k8s_client_config_loaded_bool":  tc.loaded,
				"metallb_k8s_client_config_stale_bool":   tc.stale,
				"metallb_k8s_client_updates_total":       tc.updates,
				"metallb_k8s_client_update_errors_total": tc.updateFailures,
			}
			if len(got) != len(want) {
				t.Errorf("exported %v, want exactly %v", got, want)
			}
			for name, w := range want {
				if v, ok := got[name]; !ok || v != w {
					t.Errorf("%s = %v (exported %v), want %v", name, v, ok, w)
				}
			}
		})
	}
}
