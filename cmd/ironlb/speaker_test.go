package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironlb/ironlb/internal/serve"
)

func TestSpeakerListenAddr(t *testing.T) {
	bind := netip.MustParseAddr("172.18.0.3")
	tests := []struct {
		name, metricsAddr, host string
		want                    string
	}{
		{"node IP from METALLB_HOST", "", "172.18.0.4", "172.18.0.4:7472"},
		{"bind address without METALLB_HOST", "", "", "172.18.0.3:7472"},
		{"unparsable METALLB_HOST falls back", "", "kind-worker", "172.18.0.3:7472"},
		{"IPv6 node", "", "fd00::3", "[fd00::3]:7472"},
		{"explicit address wins", "0.0.0.0:9000", "172.18.0.4", "0.0.0.0:9000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := speakerListenAddr(tc.metricsAddr, 7472, tc.host, bind); got != tc.want {
				t.Fatalf("speakerListenAddr = %q, want %q", got, tc.want)
			}
		})
	}
}

// The default listener answers on the node IP and nowhere else (here
// 127.0.0.2 plays the node IP and 127.0.0.1 another interface).
func TestSpeakerServesOnNodeIPOnly(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	addr := speakerListenAddr("", port, "127.0.0.2", netip.MustParseAddr("127.0.0.9"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve.Run(ctx, addr, prometheus.NewRegistry(), func() bool { return true }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	client := &http.Client{Timeout: 2 * time.Second}
	var resp *http.Response
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err = client.Get("http://" + addr + "/healthz")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /healthz on the node IP %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz on %s: %s", addr, resp.Status)
	}
	other := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)).String()
	if c, err := net.DialTimeout("tcp", other, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s accepted a connection: the speaker must listen on the node IP only", other)
	}
}
