package speaker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironlb/ironlb/internal/configmetrics"
)

type metrics struct {
	announced   *prometheus.GaugeVec
	unannounced prometheus.Gauge
	config      configmetrics.Gauges
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		announced: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ironlb_speaker_announced",
			Help: "1 for each Service IP this node announces, by protocol.",
		}, []string{"service", "ip", "protocol", "node"}),
		unannounced: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ironlb_speaker_services_unannounced",
			Help: "Services with an assigned address that no node announces (no eligible node, or the address is in no pool); the log says why.",
		}),
		config: configmetrics.New(reg),
	}
	if reg != nil {
		reg.MustRegister(m.announced, m.unannounced)
	}
	return m
}
