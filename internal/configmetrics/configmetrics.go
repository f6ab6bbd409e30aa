// Package configmetrics holds the metrics that the controller and the speaker both export under
// MetalLB v0.12's metallb_k8s_client_* names, so that dashboards and the alerts of MetalLB's Helm
// chart (stale config, config not loaded) work unchanged: whether a valid configuration has been
// loaded, whether the latest one was rejected, and how many sync passes ran and failed.
package configmetrics

import "github.com/prometheus/client_golang/prometheus"

// Metrics are metallb_k8s_client_config_loaded_bool, metallb_k8s_client_config_stale_bool,
// metallb_k8s_client_updates_total and metallb_k8s_client_update_errors_total. The help texts
// are MetalLB's, so a scrape reads the same as MetalLB's.
type Metrics struct {
	Loaded       prometheus.Gauge
	Stale        prometheus.Gauge
	Updates      prometheus.Counter
	UpdateErrors prometheus.Counter
}

// New creates the metrics and registers them on reg when it is not nil.
func New(reg prometheus.Registerer) Metrics {
	m := Metrics{
		Loaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "metallb_k8s_client_config_loaded_bool",
			Help: "1 if the MetalLB configuration was successfully loaded at least once.",
		}),
		Stale: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "metallb_k8s_client_config_stale_bool",
			Help: "1 if running on a stale configuration, because the latest config failed to load.",
		}),
		Updates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "metallb_k8s_client_updates_total",
			Help: "Number of k8s object updates that have been processed.",
		}),
		UpdateErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "metallb_k8s_client_update_errors_total",
			Help: "Number of k8s object updates that failed for some reason.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Collectors()...)
	}
	return m
}

// Collectors lists the metrics, for a caller that registers them itself.
func (m Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Loaded, m.Stale, m.Updates, m.UpdateErrors}
}

// Accepted records that a configuration was loaded. Loaded never goes back to 0: like MetalLB's,
// it says whether a configuration was loaded at least once.
func (m Metrics) Accepted() {
	m.Loaded.Set(1)
	m.Stale.Set(0)
}

// Rejected records that the latest configuration was refused and an older one (or none) is in
// force.
func (m Metrics) Rejected() { m.Stale.Set(1) }

// Synced counts one pass of a sync handler driven by a Kubernetes object change (MetalLB counts
// every workqueue item it processes), and the pass as an error when err is not nil (MetalLB: an
// item that is retried).
func (m Metrics) Synced(err error) {
	m.Updates.Inc()
	if err != nil {
		m.UpdateErrors.Inc()
	}
}
