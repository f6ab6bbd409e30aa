package metricstest

import (
	"context"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironlb/ironlb/internal/serve"
)

// Serve serves reg's /metrics the way the components do, on a loopback port, for the test's
// duration, and returns the URL to scrape.
func Serve(t *testing.T, reg prometheus.Gatherer) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve.Serve(ctx, l, reg, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("metrics server: %v", err)
		}
	})
	return "http://" + l.Addr().String() + "/metrics"
}
