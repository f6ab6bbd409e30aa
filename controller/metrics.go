package controller

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironlb/ironlb/internal/configmetrics"
)

// metrics are the controller's Prometheus metrics, under MetalLB v0.12's names:
//
//	metallb_allocator_addresses_total{pool}           gauge, usable addresses of the pool
//	metallb_allocator_addresses_in_use_total{pool}    gauge, distinct addresses held by Services
//	metallb_allocator_services_allocated_total{pool}  gauge, Services holding addresses of the pool
//	metallb_k8s_client_*                              see internal/configmetrics
//
// They are registered only while Run runs, that is while this replica leads: a standby replica
// knows no pools and has loaded no configuration, and exporting that would raise MetalLB's
// "config not loaded" alert for every healthy standby.
type metrics struct {
	reg    prometheus.Registerer
	config configmetrics.Metrics

	poolSize, poolInUse, poolServices *prometheus.Desc
}

// newMetrics creates the controller's metrics; register publishes them on reg (nil: never).
func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		reg:    reg,
		config: configmetrics.New(nil),
		poolSize: prometheus.NewDesc("metallb_allocator_addresses_total",
			"Number of usable IP addresses, per pool", []string{"pool"}, nil),
		poolInUse: prometheus.NewDesc("metallb_allocator_addresses_in_use_total",
			"Number of IP addresses in use, per pool", []string{"pool"}, nil),
		poolServices: prometheus.NewDesc("metallb_allocator_services_allocated_total",
			"Number of services allocated, per pool", []string{"pool"}, nil),
	}
}

// poolMetric is one pool's figures at scrape time.
type poolMetric struct {
	name                string
	size                float64
	inUse, servicesUsed int
}

// register publishes the metrics, with the pool figures read from pools at every scrape (so a
// removed pool disappears and no figure can drift from the allocator), until the returned
// function is called.
func (m *metrics) register(pools func() []poolMetric) (unregister func()) {
	if m.reg == nil {
		return func() {}
	}
	cs := append(m.config.Collectors(), &poolCollector{m: m, pools: pools})
	m.reg.MustRegister(cs...)
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, c := range cs {
				m.reg.Unregister(c)
			}
		})
	}
}

type poolCollector struct {
	m     *metrics
	pools func() []poolMetric
}

// Describe implements prometheus.Collector.
func (p *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.m.poolSize
	ch <- p.m.poolInUse
	ch <- p.m.poolServices
}

// Collect implements prometheus.Collector.
func (p *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, pm := range p.pools() {
		ch <- prometheus.MustNewConstMetric(p.m.poolSize, prometheus.GaugeValue, pm.size, pm.name)
		ch <- prometheus.MustNewConstMetric(p.m.poolInUse, prometheus.GaugeValue, float64(pm.inUse), pm.name)
		ch <- prometheus.MustNewConstMetric(p.m.poolServices, prometheus.GaugeValue, float64(pm.servicesUsed), pm.name)
	}
}

// poolMetrics reads every pool of the configuration in force. Sizes come from ipam, which counts
// usable addresses as MetalLB does (a /24 with avoid-buggy-ips has 254). Cost: O(pools +
// Services), paid per scrape rather than per sync.
func (c *Controller) poolMetrics() []poolMetric {
	services := map[string]int{}
	if svcs, err := c.services.List(everything); err == nil {
		for _, svc := range svcs {
			if asg, ok := c.alloc.Get(svc.Namespace + "/" + svc.Name); ok {
				services[asg.Pool]++
			}
		}
	}
	stats := c.alloc.Stats()
	out := make([]poolMetric, 0, len(stats))
	for _, st := range stats {
		size, _ := st.Size.Float64()
		out = append(out, poolMetric{name: st.Name, size: size, inUse: st.InUse, servicesUsed: services[st.Name]})
	}
	return out
}
