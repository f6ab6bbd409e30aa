package bgp

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestBuild(t *testing.T) {
	ip := netip.MustParseAddr
	pfx := netip.MustParsePrefix
	tests := []struct {
		name  string
		ips   []netip.Addr
		specs []AdvertisementSpec
		want  []Advertisement
	}{
		{
			name: "no specs: one host route per IP",
			ips:  []netip.Addr{ip("10.0.0.2"), ip("2001:db8::5"), ip("10.0.0.1")},
			want: []Advertisement{
				{Prefix: pfx("10.0.0.1/32")},
				{Prefix: pfx("10.0.0.2/32")},
				{Prefix: pfx("2001:db8::5/128")},
			},
		},
		{
			name:  "zero lengths mean host routes, attributes kept",
			ips:   []netip.Addr{ip("10.0.0.1"), ip("2001:db8::1")},
			specs: []AdvertisementSpec{{LocalPref: 150, Communities: []uint32{65000<<16 | 2, 65000<<16 | 1}}},
			want: []Advertisement{
				{Prefix: pfx("10.0.0.1/32"), LocalPref: 150, Communities: []uint32{65000<<16 | 1, 65000<<16 | 2}},
				{Prefix: pfx("2001:db8::1/128"), LocalPref: 150, Communities: []uint32{65000<<16 | 1, 65000<<16 | 2}},
			},
		},
		{
			name:  "aggregation: several IPs give one prefix each family",
			ips:   []netip.Addr{ip("10.0.0.1"), ip("10.0.0.200"), ip("10.0.1.7"), ip("2001:db8:0:1::1"), ip("2001:db8:0:1::ff")},
			specs: []AdvertisementSpec{{AggregationLength: 24, AggregationLengthV6: 64}},
			want: []Advertisement{
				{Prefix: pfx("10.0.0.0/24")},
				{Prefix: pfx("10.0.1.0/24")},
				{Prefix: pfx("2001:db8:0:1::/64")},
			},
		},
		{
			name: "several specs give several announcements of the same IP",
			ips:  []netip.Addr{ip("10.0.0.5")},
			specs: []AdvertisementSpec{
				{Communities: []uint32{1}},
				{AggregationLength: 16, LocalPref: 50},
			},
			want: []Advertisement{
				{Prefix: pfx("10.0.0.0/16"), LocalPref: 50},
				{Prefix: pfx("10.0.0.5/32"), Communities: []uint32{1}},
			},
		},
		{
			name: "same prefix from two specs merges communities and keeps the highest localpref",
			ips:  []netip.Addr{ip("10.0.0.5"), ip("10.0.0.5")},
			specs: []AdvertisementSpec{
				{LocalPref: 100, Communities: []uint32{3, 1}},
				{LocalPref: 200, Communities: []uint32{2, 1}},
			},
			want: []Advertisement{{Prefix: pfx("10.0.0.5/32"), LocalPref: 200, Communities: []uint32{1, 2, 3}}},
		},
		{
			name:  "IPv4-mapped IPv6 addresses are treated as IPv4; invalid IPs and lengths skipped",
			ips:   []netip.Addr{ip("::ffff:10.0.0.9"), {}, ip("2001:db8::1")},
			specs: []AdvertisementSpec{{AggregationLength: 30, AggregationLengthV6: 129}},
			want:  []Advertisement{{Prefix: pfx("10.0.0.8/30")}},
		},
		{
			name: "no IPs",
			want: []Advertisement{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Build(tc.ips, tc.specs)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Build() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBuildDeterministic(t *testing.T) {
	ips := []netip.Addr{netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}
	specs := []AdvertisementSpec{{Communities: []uint32{2}}, {Communities: []uint32{1}}}
	first := Build(ips, specs)
	for range 20 {
		rev := []netip.Addr{ips[2], ips[0], ips[1]}
		if got := Build(rev, []AdvertisementSpec{specs[1], specs[0]}); !reflect.DeepEqual(got, first) {
			t.Fatalf("Build depends on input order: %+v vs %+v", got, first)
		}
	}
}

func TestFormatCommunity(t *testing.T) {
	if got, want := FormatCommunity(64500<<16|100), "64500:100"; got != want {
		t.Fatalf("FormatCommunity = %q, want %q", got, want)
	}
}
