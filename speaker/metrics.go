package speaker

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	announced    *prometheus.GaugeVec
	configLoaded prometheus.Gauge
	configStale  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		announced: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ironlb_speaker_announced",
			Help: "1 for each Service IP this node announces, by protocol.",
		}, []string{"service", "ip", "protocol", "node"}),
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
		reg.MustRegister(m.announced, m.configLoaded, m.configStale)
	}
	return m
}
