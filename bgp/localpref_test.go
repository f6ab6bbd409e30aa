package bgp

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// localPrefs returns, per prefix, the LOCAL_PREF of what s learnt, or -1 without one.
func localPrefs(t *testing.T, s *Speaker) map[netip.Prefix]int64 {
	t.Helper()
	out := map[netip.Prefix]int64{}
	for pfx, path := range receivedPaths(t, s) {
		out[pfx] = -1
		for _, a := range path.Pattrs {
			m, err := a.UnmarshalNew()
			if err != nil {
				t.Fatal(err)
			}
			if lp, ok := m.(*api.LocalPrefAttribute); ok {
				out[pfx] = int64(lp.LocalPref)
			}
		}
	}
	return out
}

// TestIBGPLocalPref: on iBGP every route carries LOCAL_PREF, 0 when the advertisement sets
// none, as MetalLB v0.12.1's native speaker writes it (GoBGP on its own would send its
// default, 100, and make ironlb's unset routes win over MetalLB's). eBGP sessions carry
// none (TestSpeakerToSpeaker).
func TestIBGPLocalPref(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	port := freePort(t)
	b := newSpeaker(t, Options{RouterID: netip.MustParseAddr("10.0.0.2"), ListenPort: int(port), ConnectRetry: time.Second})
	a := newSpeaker(t, Options{RouterID: netip.MustParseAddr("10.0.0.1"), ListenPort: -1, ConnectRetry: time.Second})

	unset := netip.MustParsePrefix("10.1.0.1/32")
	set := netip.MustParsePrefix("10.1.0.2/32")
	if err := a.SetAdvertisements([]Advertisement{{Prefix: unset}, {Prefix: set, LocalPref: 150}}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetPeers([]Peer{{Addr: lo, Port: freePort(t), ASN: 65001, MyASN: 65001}}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetPeers([]Peer{{Addr: lo, Port: port, ASN: 65001, MyASN: 65001}}); err != nil {
		t.Fatal(err)
	}
	want := map[netip.Prefix]int64{unset: 0, set: 150}
	waitFor(t, 30*time.Second, "B learns A's prefixes over iBGP with their LOCAL_PREF", func() error {
		if got := localPrefs(t, b); fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("B has LOCAL_PREF by prefix %v, want %v", got, want)
		}
		return nil
	})
}

// TestAPIPathLocalPref: the path handed to GoBGP always holds LOCAL_PREF (GoBGP strips it
// on eBGP sessions itself, after the export policy).
func TestAPIPathLocalPref(t *testing.T) {
	for _, lp := range []uint32{0, 1, 150, 1<<32 - 1} {
		for _, pfx := range []string{"10.0.0.1/32", "2001:db8::1/128"} {
			t.Run(fmt.Sprintf("%s localpref %d", pfx, lp), func(t *testing.T) {
				p, err := apiPath(Advertisement{Prefix: netip.MustParsePrefix(pfx), LocalPref: lp})
				if err != nil {
					t.Fatal(err)
				}
				var got []uint32
				for _, a := range p.Pattrs {
					m, err := a.UnmarshalNew()
					if err != nil {
						t.Fatal(err)
					}
					if v, ok := m.(*api.LocalPrefAttribute); ok {
						got = append(got, v.LocalPref)
					}
				}
				if len(got) != 1 || got[0] != lp {
					t.Errorf("LOCAL_PREF attributes %v, want exactly [%d]", got, lp)
				}
			})
		}
	}
}
