package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProberLogsEveryRequestUntilStopped(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("hi")) }))
	t.Cleanup(ok.Close)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	t.Cleanup(broken.Close)
	dir := t.TempDir()
	done := make(chan error, 1)
	go func() { done <- run(dir, 10*time.Millisecond, time.Second, []string{ok.URL, broken.URL}) }()
	time.Sleep(300 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(dir, "stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("prober did not stop after the stop file appeared")
	}
	tests := []struct {
		file, want string
	}{
		{"http-0.log", "ok"},
		{"http-1.log", "FAIL"},
	}
	for _, tc := range tests {
		b, err := os.ReadFile(filepath.Join(dir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) < 3 {
			t.Fatalf("%s: %d lines, want one per request:\n%s", tc.file, len(lines), b)
		}
		for _, l := range lines {
			if f := strings.Fields(l); len(f) != 2 || f[1] != tc.want || !strings.Contains(f[0], ".") {
				t.Errorf("%s: line %q, want \"<unix.nanos> %s\"", tc.file, l, tc.want)
			}
		}
	}
}
