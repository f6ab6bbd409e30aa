// Command prober requests URLs at a fixed interval and logs each outcome, for the e2e tests
// that measure how long a Service stops answering (e2e/metallb_test.go). It runs inside the
// client container on the kind network, where a shell loop of curl processes cannot keep a
// 20 ms pace on a busy machine.
//
//	prober -out DIR [-interval 20ms] [-timeout 500ms] URL...
//
// For the i-th URL it appends "<unix seconds.nanoseconds> ok|FAIL" lines to DIR/http-<i>.log,
// one per request, until DIR/stop exists. Every request opens a new connection, so a lost
// neighbour entry or a moved IP shows as it would to a new client.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

func main() {
	out := flag.String("out", "", "directory for the logs and the stop file")
	interval := flag.Duration("interval", 20*time.Millisecond, "time between the starts of two requests to one URL")
	timeout := flag.Duration("timeout", 500*time.Millisecond, "timeout of one request")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: prober -out DIR [-interval 20ms] [-timeout 500ms] URL...")
		os.Exit(2)
	}
	if err := run(*out, *interval, *timeout, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "prober:", err)
		os.Exit(1)
	}
}

func run(dir string, interval, timeout time.Duration, urls []string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(dir, "stop")); err == nil {
				cancel()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	client := &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(urls))
	for i, u := range urls {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("http-%d.log", i)))
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer f.Close()
			w := bufio.NewWriter(f)
			errs[i] = probe(ctx, client, u, interval, w)
			if err := w.Flush(); err != nil && errs[i] == nil {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// probe requests url every interval until ctx ends, writing one line per request.
func probe(ctx context.Context, client *http.Client, url string, interval time.Duration, w io.Writer) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		result := "ok"
		resp, err := client.Get(url)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %s", resp.Status)
			}
		}
		if err != nil {
			result = "FAIL"
		}
		now := time.Now()
		if _, err := fmt.Fprintf(w, "%d.%09d %s\n", now.Unix(), now.Nanosecond(), result); err != nil {
			return err
		}
	}
}
