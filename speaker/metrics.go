package speaker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironlb/ironlb/internal/configmetrics"
)

// metrics are the speaker's own metrics. metallb_speaker_announced and the
// metallb_k8s_client_* metrics (internal/configmetrics) carry MetalLB v0.12's names, types and
// labels; the layer-2 and BGP engines register theirs (layer2.NewMetrics, bgp.NewMetrics).
// ironlb_speaker_services_unannounced has no MetalLB counterpart.
type metrics struct {
	announced   *prometheus.GaugeVec
	unannounced prometheus.Gauge
	config      configmetrics.Metrics
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		// 1 while announced; the series is deleted on withdraw (MetalLB v0.12.1 deletes it with a
		// wrong label name, so its series stays at 1 forever: not copied).
		announced: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "metallb_speaker_announced",
			Help: "Services being announced from this node. This is desired state, it does not guarantee that the routing protocols have converged.",
		}, []string{"service", "protocol", "node", "ip"}),
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

func (m *metrics) announce(a announcement, node string) {
	m.announced.With(m.labels(a, node)).Set(1)
}

func (m *metrics) withdraw(a announcement, node string) {
	m.announced.Delete(m.labels(a, node))
}

func (m *metrics) labels(a announcement, node string) prometheus.Labels {
	return prometheus.Labels{"service": a.Service, "protocol": string(a.Protocol), "node": node, "ip": a.IP.String()}
}
