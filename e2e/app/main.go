// Command app is the web server of the end-to-end tests and the demo: GET /host answers
// "NODE: <node>, POD IP:<ip>" from the MY_NODE_NAME and MY_POD_IP environment variables (set from
// the downward API), so a client can tell which pod and node a request reached; GET /healthz
// answers "ok" for the readiness probe.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("listen", ":8080", "address to serve HTTP on")
	flag.Parse()
	if err := run(*addr); err != nil {
		slog.Error("app failed", "err", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: addr, Handler: handler(os.Getenv("MY_NODE_NAME"), os.Getenv("MY_POD_IP")),
		ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	slog.Info("serving", "addr", addr)
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func handler(node, podIP string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /host", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "NODE: %s, POD IP:%s\n", node, podIP)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	return mux
}
