package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(handler("kind-worker2", "10.244.2.7"))
	t.Cleanup(srv.Close)
	tests := []struct {
		name, path string
		code       int
		body       string
	}{
		{"host", "/host", http.StatusOK, "NODE: kind-worker2, POD IP:10.244.2.7\n"},
		{"healthz", "/healthz", http.StatusOK, "ok\n"},
		{"unknown", "/nope", http.StatusNotFound, "404 page not found\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatalf("GET %s: %v", tc.path, err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
			if resp.StatusCode != tc.code || string(b) != tc.body {
				t.Errorf("GET %s = %d %q, want %d %q", tc.path, resp.StatusCode, b, tc.code, tc.body)
			}
		})
	}
}
