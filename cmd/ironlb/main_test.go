package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunFlagsAndUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // substring of stdout+stderr
	}{
		{"no command", nil, 2, "Usage:"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"version", []string{"version"}, 0, "ironlb "},
		{"controller help", []string{"controller", "-h"}, 0, "-lb-class"},
		{"speaker help", []string{"speaker", "-h"}, 0, "-ml-bind-addr"},
		{"speaker help: MetalLB's --ignore-exclude-lb", []string{"speaker", "-h"}, 0, "-ignore-exclude-lb\n    \tannounce from nodes labelled node.kubernetes.io/exclude-from-external-load-balancers too"},
		{"status takes the speakers' --ignore-exclude-lb", []string{"status", "-h"}, 0, "-ignore-exclude-lb"},
		{"bad log format", []string{"controller", "--log-format", "xml"}, 2, `--log-format "xml": want text or json`},
		{"bad log level", []string{"speaker", "--log-level", "loud"}, 2, `--log-level "loud"`},
		{"speaker without a node IP", []string{"speaker", "--ml-bind-addr", "not-an-ip"}, 2, "--ml-bind-addr must be this node's IP address"},
		{"status bad output", []string{"status", "-o", "yaml"}, 2, `-o "yaml": want text or json`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) {
				t.Fatalf("run(%q) = %d, output:\n%s\nwant code %d and %q", tc.args, code, out, tc.wantCode, tc.wantOut)
			}
		})
	}
}
