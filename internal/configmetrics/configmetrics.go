// Package configmetrics holds the configuration gauges that the controller and the speaker both
// export: whether a valid configuration is loaded, and whether the latest one was rejected.
package configmetrics

import "github.com/prometheus/client_golang/prometheus"

// Gauges are ironlb_config_loaded and ironlb_config_stale.
type Gauges struct {
	Loaded prometheus.Gauge
	Stale  prometheus.Gauge
}

// New creates the gauges and registers them on reg when it is not nil.
func New(reg prometheus.Registerer) Gauges {
	g := Gauges{
		Loaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ironlb_config_loaded",
			Help: "1 when a valid configuration has been loaded.",
		}),
		Stale: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ironlb_config_stale",
			Help: "1 when the latest ConfigMap was rejected and an older configuration is in force.",
		}),
	}
	if reg != nil {
		reg.MustRegister(g.Loaded, g.Stale)
	}
	return g
}

// Accepted records that a configuration was loaded.
func (g Gauges) Accepted() {
	g.Loaded.Set(1)
	g.Stale.Set(0)
}

// Rejected records that the latest configuration was refused.
func (g Gauges) Rejected() { g.Stale.Set(1) }
