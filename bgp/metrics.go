package bgp

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports the sessions of the speakers created with it. Values are
// read from GoBGP at scrape time, so they cannot drift from the sessions'
// real state.
type Metrics struct {
	mu       sync.Mutex
	speakers []*Speaker

	sessionUp, updates, announced *prometheus.Desc
}

// NewMetrics registers the BGP metrics with reg (if not nil):
// ironlb_bgp_session_up{peer}, ironlb_bgp_updates_total{peer} (UPDATE
// messages sent) and ironlb_bgp_announced_prefixes_total{peer} (prefixes
// currently advertised, a gauge named like MetalLB's).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessionUp: prometheus.NewDesc("ironlb_bgp_session_up",
			"BGP session state (1 established, 0 otherwise).", []string{"peer"}, nil),
		updates: prometheus.NewDesc("ironlb_bgp_updates_total",
			"BGP UPDATE messages sent to the peer.", []string{"peer"}, nil),
		announced: prometheus.NewDesc("ironlb_bgp_announced_prefixes_total",
			"Prefixes currently advertised to the peer.", []string{"peer"}, nil),
	}
	if reg != nil {
		reg.MustRegister(m)
	}
	return m
}

func (m *Metrics) add(s *Speaker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.speakers = append(m.speakers, s)
}

func (m *Metrics) remove(s *Speaker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, x := range m.speakers {
		if x == s {
			m.speakers = append(m.speakers[:i], m.speakers[i+1:]...)
			return
		}
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.sessionUp
	ch <- m.updates
	ch <- m.announced
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	speakers := append([]*Speaker(nil), m.speakers...)
	m.mu.Unlock()
	for _, s := range speakers {
		for _, st := range s.sessionsForMetrics(context.Background()) {
			peer := st.Peer.String()
			up := 0.0
			if st.Up {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(m.sessionUp, prometheus.GaugeValue, up, peer)
			ch <- prometheus.MustNewConstMetric(m.updates, prometheus.CounterValue, float64(st.UpdatesSent), peer)
			ch <- prometheus.MustNewConstMetric(m.announced, prometheus.GaugeValue, float64(st.Advertised), peer)
		}
	}
}

func (s *Speaker) sessionsForMetrics(ctx context.Context) []SessionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	var out []SessionState
	for _, in := range s.instances {
		out = append(out, listPeers(ctx, in.srv)...)
	}
	return out
}
