package controller

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironlb/ironlb/internal/configmetrics"
)

type metrics struct {
	poolSize  *prometheus.GaugeVec
	poolInUse *prometheus.GaugeVec
	config    configmetrics.Gauges
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
		config: configmetrics.New(reg),
	}
	if reg != nil {
		reg.MustRegister(m.poolSize, m.poolInUse)
	}
	return m
}
