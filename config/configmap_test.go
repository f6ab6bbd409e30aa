package config

import (
	"errors"
	"strings"
	"testing"
)

const walkthroughManifest = `apiVersion: v1
kind: ConfigMap
metadata: {namespace: metallb-system, name: config}
data:
  config: |
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - 172.18.255.200-172.18.255.250
`

func TestParseConfigMap(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		key       string
		wantPools []string
		kind      error
		wantErr   string
	}{
		{name: "manifest", in: walkthroughManifest, key: "config", wantPools: []string{"default"}},
		{name: "bare content", in: "address-pools:\n- {name: a, protocol: bgp, addresses: [10.0.0.0/24]}\n", key: "config", wantPools: []string{"a"}},
		{name: "empty bare content", in: "", key: "config"},
		{name: "manifest with an empty config", in: "apiVersion: v1\nkind: ConfigMap\ndata:\n  config: ''\n", key: "config"},
		{name: "other key", in: "apiVersion: v1\nkind: ConfigMap\ndata:\n  alt: |\n    address-pools: [{name: x, protocol: layer2, addresses: [10.9.0.0/16]}]\n", key: "alt", wantPools: []string{"x"}},
		// MetalLB reads a missing key as "": an empty configuration.
		{name: "manifest without the key", in: "apiVersion: v1\nkind: ConfigMap\ndata:\n  other: |\n    address-pools: [{name: x, protocol: layer2, addresses: [10.9.0.0/16]}]\n", key: "config"},
		{name: "manifest without data", in: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\n", key: "config"},
		{name: "manifest with null data", in: "apiVersion: v1\nkind: ConfigMap\ndata:\n", key: "config"},
		{name: "data not a mapping", in: "apiVersion: v1\nkind: ConfigMap\ndata: [config]\n", key: "config", kind: ErrType, wantErr: "data (a list): must be a mapping"},
		{name: "data value not a string", in: "apiVersion: v1\nkind: ConfigMap\ndata: {config: {a: b}}\n", key: "config", kind: ErrType, wantErr: `data "config" (a mapping): must be a string`},
		{name: "duplicate data key", in: "apiVersion: v1\nkind: ConfigMap\ndata:\n  config: ''\n  config: ''\n", key: "config", kind: ErrSyntax, wantErr: `key "config" already set`},
		{name: "metadata and binaryData are ignored", in: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, labels: {a: b}}\nbinaryData: {x: AAAA}\nimmutable: true\ndata: {config: ''}\n", key: "config"},
		{name: "not a configmap", in: "apiVersion: v1\nkind: Secret\ndata: {config: ''}\n", key: "config", kind: ErrInvalid, wantErr: `kind "Secret": not a ConfigMap manifest`},
		{name: "wrong apiVersion", in: "apiVersion: apps/v1\nkind: ConfigMap\ndata: {config: ''}\n", key: "config", kind: ErrInvalid, wantErr: "not a ConfigMap manifest"},
		{name: "invalid content is located in data", in: strings.Replace(walkthroughManifest, "172.18.255.250", "172.18.255.100", 1), key: "config", kind: ErrInvalid,
			wantErr: `data["config"]: address-pools[0] "default": addresses[0] "172.18.255.200-172.18.255.100": range start is after end`},
		{name: "malformed bare content", in: "address-pools: [\n", key: "config", kind: ErrSyntax, wantErr: "could not parse YAML"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfigMap([]byte(tc.in), tc.key)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, tc.kind) {
					t.Fatalf("ParseConfigMap error = %v, want %v containing %q", err, tc.kind, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfigMap: %v", err)
			}
			var names []string
			for _, p := range cfg.Pools {
				names = append(names, p.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.wantPools, ",") {
				t.Errorf("pools = %v, want %v", names, tc.wantPools)
			}
		})
	}
}
