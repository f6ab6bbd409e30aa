package membership

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// Timings are memberlist's failure-detection and dissemination knobs. A zero
// field takes its DefaultTimings value. See the package documentation for
// why the defaults are what they are.
type Timings struct {
	// ProbeInterval: each member probes one other member (round-robin over
	// a shuffled list) every interval.
	ProbeInterval time.Duration
	// ProbeTimeout: how long to wait for the direct ack before asking
	// IndirectChecks other members to probe too. The indirect probes and a
	// TCP probe then have until the end of the ProbeInterval.
	ProbeTimeout time.Duration
	// IndirectChecks: members asked to probe on our behalf.
	IndirectChecks int
	// SuspicionMult: a suspected member is declared dead after
	// SuspicionMult × max(1, log10(N)) × ProbeInterval unless it refutes.
	// Below 3, memberlist expects no confirmations from other members and
	// uses that minimum directly.
	SuspicionMult int
	// SuspicionMaxTimeoutMult: with SuspicionMult ≥ 3 the suspicion timer
	// starts at this multiple of the minimum and shrinks as other members
	// confirm the suspicion (Lifeguard).
	SuspicionMaxTimeoutMult int
	// AwarenessMaxMultiplier: a member that notices it is itself slow (its
	// probes fail without the nacks that healthy peers would send) stretches
	// its probe interval up to this factor (Lifeguard), trading detection
	// speed for fewer false suspicions.
	AwarenessMaxMultiplier int
	// GossipInterval and GossipNodes: how often and to how many members
	// pending news (suspect, dead, alive) is sent. Idle gossip sends nothing.
	GossipInterval time.Duration
	GossipNodes    int
	// GossipToTheDeadTime: how long news is still gossiped to dead members,
	// so that a falsely declared member learns it and refutes.
	GossipToTheDeadTime time.Duration
	// RetransmitMult: each piece of news is sent RetransmitMult ×
	// ceil(log10(N+1)) times.
	RetransmitMult int
	// PushPullInterval: full state exchange with one random member over
	// TCP (anti-entropy); memberlist stretches it above 32 members.
	PushPullInterval time.Duration
	// TCPTimeout bounds join and push/pull connections.
	TCPTimeout time.Duration
}

// DefaultTimings returns ironlb's tuned timings: a silently vanished member
// is declared dead in about 0.4 s in a 4-node cluster (0.6 s at 100 nodes),
// see the package documentation.
func DefaultTimings() Timings {
	return Timings{
		ProbeInterval:           100 * time.Millisecond,
		ProbeTimeout:            40 * time.Millisecond,
		IndirectChecks:          3,
		SuspicionMult:           2,
		SuspicionMaxTimeoutMult: 4,
		AwarenessMaxMultiplier:  8,
		GossipInterval:          50 * time.Millisecond,
		GossipNodes:             3,
		GossipToTheDeadTime:     15 * time.Second,
		RetransmitMult:          4,
		PushPullInterval:        15 * time.Second,
		TCPTimeout:              time.Second,
	}
}

func (t Timings) withDefaults() Timings {
	d := DefaultTimings()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&t.ProbeInterval, d.ProbeInterval)
	setDur(&t.ProbeTimeout, d.ProbeTimeout)
	setInt(&t.IndirectChecks, d.IndirectChecks)
	setInt(&t.SuspicionMult, d.SuspicionMult)
	setInt(&t.SuspicionMaxTimeoutMult, d.SuspicionMaxTimeoutMult)
	setInt(&t.AwarenessMaxMultiplier, d.AwarenessMaxMultiplier)
	setDur(&t.GossipInterval, d.GossipInterval)
	setInt(&t.GossipNodes, d.GossipNodes)
	setDur(&t.GossipToTheDeadTime, d.GossipToTheDeadTime)
	setInt(&t.RetransmitMult, d.RetransmitMult)
	setDur(&t.PushPullInterval, d.PushPullInterval)
	setDur(&t.TCPTimeout, d.TCPTimeout)
	return t
}

func (t Timings) validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"ProbeInterval", int64(t.ProbeInterval)},
		{"ProbeTimeout", int64(t.ProbeTimeout)},
		{"IndirectChecks", int64(t.IndirectChecks)},
		{"SuspicionMult", int64(t.SuspicionMult)},
		{"SuspicionMaxTimeoutMult", int64(t.SuspicionMaxTimeoutMult)},
		{"AwarenessMaxMultiplier", int64(t.AwarenessMaxMultiplier)},
		{"GossipInterval", int64(t.GossipInterval)},
		{"GossipNodes", int64(t.GossipNodes)},
		{"GossipToTheDeadTime", int64(t.GossipToTheDeadTime)},
		{"RetransmitMult", int64(t.RetransmitMult)},
		{"PushPullInterval", int64(t.PushPullInterval)},
		{"TCPTimeout", int64(t.TCPTimeout)},
	} {
		if f.v < 0 {
			return fmt.Errorf("%w: Timings.%s is negative (%d)", ErrInvalidOptions, f.name, f.v)
		}
	}
	if t.ProbeTimeout >= t.ProbeInterval {
		return fmt.Errorf("%w: Timings.ProbeTimeout %s must be shorter than ProbeInterval %s, which also has to fit the indirect probes",
			ErrInvalidOptions, t.ProbeTimeout, t.ProbeInterval)
	}
	return nil
}

func (t Timings) apply(c *memberlist.Config) {
	c.ProbeInterval = t.ProbeInterval
	c.ProbeTimeout = t.ProbeTimeout
	c.IndirectChecks = t.IndirectChecks
	c.SuspicionMult = t.SuspicionMult
	c.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	c.AwarenessMaxMultiplier = t.AwarenessMaxMultiplier
	c.GossipInterval = t.GossipInterval
	c.GossipNodes = t.GossipNodes
	c.GossipToTheDeadTime = t.GossipToTheDeadTime
	c.RetransmitMult = t.RetransmitMult
	c.PushPullInterval = t.PushPullInterval
	c.TCPTimeout = t.TCPTimeout
}
