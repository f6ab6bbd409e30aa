package bgp

import (
	"context"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports the sessions of the speakers created with it. Values are
// read from GoBGP at scrape time, so they cannot drift from the sessions'
// real state.
type Metrics struct {
	mu       sync.Mutex
	speakers []*Speaker

	sessionUp, updates, announced, pending *prometheus.Desc
}

// NewMetrics registers the BGP metrics with reg (if not nil), under MetalLB
// v0.12's names, types, labels and help texts, with peer="ip:port" (IPv6 in
// brackets) as MetalLB writes it:
//
//	metallb_bgp_session_up{peer}               gauge, 1 established, 0 otherwise
//	metallb_bgp_updates_total{peer}            counter, UPDATE messages sent
//	metallb_bgp_announced_prefixes_total{peer} gauge, prefixes advertised now
//	metallb_bgp_pending_prefixes_total{peer}   gauge, prefixes that should be
//	                                           advertised (of the peer's family)
//
// Every configured peer is exported, whatever its session state.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	labels := []string{"peer"}
	m := &Metrics{
		sessionUp: prometheus.NewDesc("metallb_bgp_session_up",
			"BGP session state (1 is up, 0 is down)", labels, nil),
		updates: prometheus.NewDesc("metallb_bgp_updates_total",
			"Number of BGP UPDATE messages sent", labels, nil),
		announced: prometheus.NewDesc("metallb_bgp_announced_prefixes_total",
			"Number of prefixes currently being advertised on the BGP session", labels, nil),
		pending: prometheus.NewDesc("metallb_bgp_pending_prefixes_total",
			"Number of prefixes that should be advertised on the BGP session", labels, nil),
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
	ch <- m.pending
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	speakers := append([]*Speaker(nil), m.speakers...)
	m.mu.Unlock()
	for _, s := range speakers {
		for _, pm := range s.peerMetrics(context.Background()) {
			up := 0.0
			if pm.Up {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(m.sessionUp, prometheus.GaugeValue, up, pm.peer)
			ch <- prometheus.MustNewConstMetric(m.updates, prometheus.CounterValue, float64(pm.UpdatesSent), pm.peer)
			ch <- prometheus.MustNewConstMetric(m.announced, prometheus.GaugeValue, float64(pm.Advertised), pm.peer)
			ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(pm.pending), pm.peer)
		}
	}
}

// peerMetric is one session's state with what the metrics add to it.
type peerMetric struct {
	SessionState
	peer    string // "ip:port"
	pending int
}

// peerMetrics reads every configured session from GoBGP. Pending counts the
// desired prefixes of the peer's address family: a session carries only its
// own family (see apiPeer).
func (s *Speaker) peerMetrics(ctx context.Context) []peerMetric {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	var v4, v6 int
	for pfx := range s.ads {
		if pfx.Addr().Is4() {
			v4++
		} else {
			v6++
		}
	}
	var out []peerMetric
	for _, in := range s.instances {
		for _, st := range listPeers(ctx, in.srv) {
			p, ok := s.peers[st.Peer]
			if !ok {
				continue // being removed
			}
			pm := peerMetric{SessionState: st, peer: netip.AddrPortFrom(p.Addr, p.Port).String(), pending: v6}
			if p.Addr.Is4() {
				pm.pending = v4
			}
			out = append(out, pm)
		}
	}
	return out
}
