package layer2

import (
	"errors"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the Prometheus collectors of the layer-2 announcer. A nil
// *Metrics is valid and records nothing.
type Metrics struct {
	requests   *prometheus.CounterVec
	responses  *prometheus.CounterVec
	gratuitous *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	yields     *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them with reg (nil: not
// registered). Registering twice with the same registry reuses the collectors
// already registered, so tests and restarts within one process do not panic.
//
// The first three carry MetalLB v0.12's names, types, labels and help texts
// (no _total suffix: MetalLB's counters have none), so its dashboards work:
// metallb_layer2_requests_received{ip}, metallb_layer2_responses_sent{ip},
// metallb_layer2_gratuitous_sent{ip}. ironlb_layer2_duplicate_owner_total{ip}
// has no MetalLB counterpart.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	vec := func(name, help string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"ip"})
		if reg == nil {
			return c
		}
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					return existing
				}
			}
			panic("layer2: registering metric " + name + ": " + err.Error())
		}
		return c
	}
	return &Metrics{
		requests:   vec("metallb_layer2_requests_received", "Number of layer2 requests received for owned IPs"),
		responses:  vec("metallb_layer2_responses_sent", "Number of layer2 responses sent for owned IPs in response to requests"),
		gratuitous: vec("metallb_layer2_gratuitous_sent", "Number of gratuitous layer2 packets sent for owned IPs as a result of failovers"),
		duplicates: vec("ironlb_layer2_duplicate_owner_total", "ARP or NDP packets from another MAC claiming an IP this node owns (split brain)."),
		yields:     vec("ironlb_layer2_conflicts_yielded_total", "Times this node stopped answering for an IP it owns because another node announcing it won the tie-break (split brain)."),
	}
}

func (m *Metrics) inc(v *prometheus.CounterVec, ip netip.Addr) {
	if m == nil {
		return
	}
	v.WithLabelValues(ip.String()).Inc()
}

func (m *Metrics) requestReceived(ip netip.Addr) {
	if m != nil {
		m.inc(m.requests, ip)
	}
}

func (m *Metrics) responseSent(ip netip.Addr) {
	if m != nil {
		m.inc(m.responses, ip)
	}
}

func (m *Metrics) gratuitousSent(ip netip.Addr) {
	if m != nil {
		m.inc(m.gratuitous, ip)
	}
}

func (m *Metrics) duplicateSeen(ip netip.Addr) {
	if m != nil {
		m.inc(m.duplicates, ip)
	}
}

func (m *Metrics) yielded(ip netip.Addr) {
	if m != nil {
		m.inc(m.yields, ip)
	}
}
