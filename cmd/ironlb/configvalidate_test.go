package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validManifest = `apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - 172.18.255.200-172.18.255.250
`

const bareBGP = `peers:
- peer-address: 172.18.0.5
  peer-asn: 64501
  my-asn: 64500
  node-selectors:
  - match-labels: {rack: a}
address-pools:
- name: v6
  protocol: bgp
  auto-assign: false
  addresses: ["fd00:1::/64", "fd00:2::-fd00:2::ffff:ffff:ffff:ffff"]
  bgp-advertisements:
  - {aggregation-length-v6: 64, localpref: 50, communities: ["65535:65281"]}
`

func TestRunConfigValidate(t *testing.T) {
	dir := t.TempDir() // removed by the testing package's cleanup
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	manifest := write("configmap.yaml", validManifest)
	bare := write("bare.yaml", bareBGP)
	invalid := write("invalid.yaml", strings.Replace(validManifest, "172.18.255.250", "172.18.255.1", 1))
	noKey := write("nokey.yaml", "apiVersion: v1\nkind: ConfigMap\ndata:\n  other: ''\n")

	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantOut    []string // lines expected in stdout, in order
		wantErr    string   // substring of stderr
		wantNoOut  bool
		wantNoErrs bool
	}{
		{
			name: "valid manifest", args: []string{"-f", manifest}, wantCode: 0, wantNoErrs: true,
			wantOut: []string{"OK", `pool "default": layer2, 51 addresses: 172.18.255.200-172.18.255.250`},
		},
		{
			name: "bare content with ipv6 count and a peer", args: []string{"-f", bare}, wantCode: 0, wantNoErrs: true,
			wantOut: []string{
				"OK",
				`pool "v6": bgp, 36893488147419103232 addresses, auto-assign off: fd00:1::-fd00:1::ffff:ffff:ffff:ffff fd00:2::-fd00:2::ffff:ffff:ffff:ffff; advertisement 0: /32, /64, localpref 50, communities 65535:65281`,
				"peer 172.18.0.5:179: peer-asn 64501, my-asn 64500, hold-time 1m30s, keepalive-time 30s, nodes matching 1 selector(s)",
			},
		},
		{
			name: "stdin by default", stdin: validManifest, wantCode: 0, wantNoErrs: true,
			wantOut: []string{"OK", `pool "default": layer2, 51 addresses`},
		},
		{
			name: "stdin with -f -", args: []string{"-f", "-"}, stdin: bareBGP, wantCode: 0,
			wantOut: []string{"OK", `pool "v6"`, "peer 172.18.0.5:179"},
		},
		{
			name: "ipv6 /64 count printed exactly", stdin: "address-pools: [{name: six, protocol: layer2, addresses: ['fd00::/64']}]\n", wantCode: 0,
			wantOut: []string{"OK", `pool "six": layer2, 18446744073709551616 addresses: fd00::-fd00::ffff:ffff:ffff:ffff`},
		},
		{
			name: "empty stdin is a valid empty config", stdin: "", wantCode: 0, wantOut: []string{"OK"},
		},
		{
			name: "invalid config", args: []string{"-f", invalid}, wantCode: 1, wantNoOut: true,
			wantErr: `invalid.yaml: invalid configuration: data["config"]: address-pools[0] "default": addresses[0] "172.18.255.200-172.18.255.1": range start is after end`,
		},
		{
			name: "invalid on stdin", stdin: "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, hold-time: 2s}\n", wantCode: 1, wantNoOut: true,
			wantErr: `<stdin>: invalid configuration: peers[0]: hold-time "2s": must be at least 3s`,
		},
		{
			// As MetalLB: a missing key reads as "", an empty configuration.
			name: "manifest without the key is empty", args: []string{"-f", noKey}, wantCode: 0, wantNoErrs: true, wantOut: []string{"OK\n"},
		},
		{
			name: "usable count with avoid-buggy-ips, as MetalLB counts it", wantCode: 0, wantNoErrs: true,
			stdin:   "address-pools:\n- {name: a, protocol: layer2, avoid-buggy-ips: true, auto-assign: false, addresses: [10.0.0.0/24, 10.0.1.250-10.0.2.5]}\n",
			wantOut: []string{"OK", `pool "a": layer2, 264 addresses (of 268, avoiding .0/.255), auto-assign off: 10.0.0.0-10.0.0.255 10.0.1.250-10.0.2.5`},
		},
		{
			name: "bfd-profile refused", wantCode: 1, wantNoOut: true,
			stdin:   "bfd-profiles: [{name: f}]\npeers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, bfd-profile: f}\n",
			wantErr: `peers[0]: bfd-profile "f": not supported: ironlb's BGP speaker (GoBGP) has no BFD`,
		},
		{
			name: "hold-time 0 refused", wantCode: 1, wantNoOut: true,
			stdin:   "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, hold-time: 0s}\n",
			wantErr: `peers[0]: hold-time "0s": 0 (no keepalives) is not supported`,
		},
		{
			name: "pool of every address refused", wantCode: 1, wantNoOut: true,
			stdin:   "address-pools:\n- {name: all, protocol: layer2, addresses: [0.0.0.0/0]}\n",
			wantErr: `address-pools[0] "all": addresses[0] "0.0.0.0/0": includes 0.0.0.0/32 (the unspecified address)`,
		},
		{
			name: "alias bomb refused", wantCode: 1, wantNoOut: true,
			stdin:   "address-pools:\n- name: &a \"" + strings.Repeat("A", 100_000) + "\"\n  addresses: [" + strings.Repeat("*a, ", 9_999) + "*a]\n",
			wantErr: "document expands, through its YAML aliases",
		},
		{
			name: "password kept as written", wantCode: 0,
			stdin:   "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, password: 0123}\n",
			wantOut: []string{"OK", "password set"},
		},
		{
			name: "other key", args: []string{"-f", noKey, "-key", "other"}, wantCode: 0, wantOut: []string{"OK"},
		},
		{
			name: "missing file", args: []string{"-f", filepath.Join(dir, "nope.yaml")}, wantCode: 1, wantNoOut: true,
			wantErr: "nope.yaml: no such file or directory",
		},
		{
			name: "unknown flag", args: []string{"-x"}, wantCode: 2, wantNoOut: true, wantErr: "flag provided but not defined",
		},
		{
			name: "stray argument", args: []string{manifest}, wantCode: 2, wantNoOut: true, wantErr: "unexpected argument",
		},
		{
			name: "help", args: []string{"-h"}, wantCode: 0, wantNoOut: true, wantErr: `FILE "-", the default, reads standard input`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runConfigValidate(tc.args, strings.NewReader(tc.stdin), &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tc.wantCode, stderr.String())
			}
			out := stdout.String()
			rest := out
			for _, want := range tc.wantOut {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Errorf("stdout %q lacks %q (in order)", out, want)
					break
				}
				rest = rest[i+len(want):]
			}
			if tc.wantNoOut && out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
			if tc.wantErr != "" && !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.wantErr)
			}
			if tc.wantNoErrs && stderr.Len() > 0 {
				t.Errorf("stderr = %q, want nothing", stderr.String())
			}
		})
	}
}
