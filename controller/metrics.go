package controller

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	poolSize     *prometheus.GaugeVec
	poolInUse    *prometheus.GaugeVec
	configLoaded prometheus.Gauge
	configStale  prometheus.Gauge
}

// newMetrics creates the controller's collectors and registers them on reg when it is not nil.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		poolSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ironlb_allocator_addresses_total",
			Help: "Number of usable addresses in each pool.",
		}, []string{"pool"}),
		poolInUse: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ironlb_allocator_addresses_in_use_total",
			Help: "Number of addresses of each pool assigned to Services.",
		}, []string{"pool"}),
		configLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ironlb_config_loaded",
			Help: "1 when a valid configuration has been loaded.",
		}),
		configStale: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ironlb_config_stale",
			Help: "1 when the latest ConfigMap was rejected and an older configuration is in force.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.poolSize, m.poolInUse, m.configLoaded, m.configStale)
	}
	return m
}
