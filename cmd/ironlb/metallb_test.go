package main

import (
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
)

// The environment and arguments of MetalLB v0.12.1's manifests/metallb.yaml.
var (
	metallbSpeakerEnv = map[string]string{
		"METALLB_NODE_NAME":     "kind-worker",
		"METALLB_HOST":          "172.18.0.3",
		"METALLB_ML_BIND_ADDR":  "172.18.0.3",
		"METALLB_ML_LABELS":     "app=metallb,component=speaker",
		"METALLB_ML_SECRET_KEY": "c2VjcmV0LWtleS1vZi10aGUtdGVzdA",
	}
	metallbControllerEnv = map[string]string{
		"METALLB_ML_SECRET_NAME": "memberlist",
		"METALLB_DEPLOYMENT":     "controller",
	}
)

func TestMetalLBCommand(t *testing.T) {
	for argv0, want := range map[string]string{
		"/speaker": "speaker", "/controller": "controller", "speaker": "speaker",
		"/ironlb": "", "ironlb": "", "/usr/local/bin/controller": "controller", "/speaker.test": "",
	} {
		if got := metallbCommand(argv0); got != want {
			t.Errorf("metallbCommand(%q) = %q, want %q", argv0, got, want)
		}
	}
}

func TestTranslateMetalLB(t *testing.T) {
	saNamespace := func(string) ([]byte, error) { return []byte("lb-system\n"), nil }
	noSA := func(string) ([]byte, error) { return nil, os.ErrNotExist }
	tests := []struct {
		name       string
		cmd        string
		args       []string
		env        map[string]string
		readFile   func(string) ([]byte, error)
		want       []string // ironlb's args
		wantSecret string
		wantOwner  [2]string // memberlist Secret name, Deployment
		wantNote   string    // substring of a logged note
		wantErr    string
	}{
		{
			name: "speaker as in MetalLB's manifest", cmd: "speaker",
			args: []string{"--port=7472", "--config=config", "--log-level=info"},
			env:  metallbSpeakerEnv, readFile: saNamespace,
			want: []string{"speaker", "--config-name=config", "--log-level=info", "--namespace=lb-system",
				"--metrics-addr=172.18.0.3:7472", "--node-name=kind-worker", "--ml-bind-addr=172.18.0.3",
				"--ml-labels=app=metallb,component=speaker"},
		},
		{
			name: "controller as in MetalLB's manifest", cmd: "controller",
			args: []string{"--port=7472", "--config=config", "--log-level=info"},
			env:  metallbControllerEnv, readFile: saNamespace,
			want:      []string{"controller", "--config-name=config", "--log-level=info", "--namespace=lb-system", "--port=7472"},
			wantOwner: [2]string{"memberlist", "controller"},
		},
		{
			name: "every speaker flag, separate values", cmd: "speaker",
			args: []string{"--port", "7473", "--config", "lbconf", "--namespace", "lb", "--kubeconfig", "/k",
				"--host", "fd00::3", "--ml-bindaddr", "fd00::3", "--ml-bindport", "7950", "--ml-labels", "app=x",
				"--ml-secret-key", "0123456789abcdef", "--node-name", "n1", "--log-level", "all"},
			env: map[string]string{}, readFile: noSA,
			want: []string{"speaker", "--config-name=lbconf", "--log-level=debug", "--namespace=lb", "--kubeconfig=/k",
				"--metrics-addr=[fd00::3]:7473", "--node-name=n1", "--ml-bind-addr=fd00::3", "--ml-bind-port=7950",
				"--ml-labels=app=x"},
			wantSecret: "0123456789abcdef",
		},
		{
			name: "bind port from the environment", cmd: "speaker",
			env: map[string]string{"METALLB_ML_BIND_PORT": "7947", "METALLB_ML_SECRET_KEY": "k", "METALLB_NAMESPACE": "env-ns"}, readFile: saNamespace,
			want: []string{"speaker", "--config-name=config", "--log-level=info", "--namespace=env-ns", "--port=7472", "--ml-bind-port=7947"},
		},
		{
			name: "no secret: unencrypted, as MetalLB", cmd: "speaker", env: map[string]string{}, readFile: noSA,
			want:     []string{"speaker", "--config-name=config", "--log-level=info", "--port=7472", "--ml-insecure"},
			wantNote: "unencrypted",
		},
		{
			name: "flags without use are accepted and noted", cmd: "controller",
			args: []string{"--disable-epslices", "--enable-pprof", "--log-level=none"}, env: map[string]string{}, readFile: noSA,
			want:     []string{"controller", "--config-name=config", "--log-level=error", "--port=7472"},
			wantNote: "--enable-pprof is ignored",
		},
		{name: "unknown flag", cmd: "speaker", args: []string{"--frr"}, env: map[string]string{}, readFile: noSA, wantErr: "flag provided but not defined: -frr"},
		{name: "speaker flag on the controller", cmd: "controller", args: []string{"--ml-bindaddr=1.2.3.4"}, env: map[string]string{}, readFile: noSA, wantErr: "not defined: -ml-bindaddr"},
		{name: "bad log level", cmd: "speaker", args: []string{"--log-level=chatty"}, env: map[string]string{}, readFile: noSA, wantErr: `--log-level "chatty"`},
		{name: "bad bind port", cmd: "speaker", env: map[string]string{"METALLB_ML_BIND_PORT": "79x6"}, readFile: noSA, wantErr: `METALLB_ML_BIND_PORT) "79x6"`},
		{name: "bad port", cmd: "controller", args: []string{"--port=0"}, env: map[string]string{}, readFile: noSA, wantErr: "--port 0"},
		{name: "positional argument", cmd: "speaker", args: []string{"speaker"}, env: map[string]string{}, readFile: noSA, wantErr: `unexpected argument "speaker"`},
		{name: "secret name without deployment", cmd: "controller", env: map[string]string{"METALLB_ML_SECRET_NAME": "memberlist"}, readFile: noSA, wantErr: "needs --deployment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := translateMetalLB(tc.cmd, tc.args, func(k string) string { return tc.env[k] }, tc.readFile, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(inv.args, tc.want) {
				t.Errorf("args\n got %q\nwant %q", inv.args, tc.want)
			}
			if inv.secret != tc.wantSecret {
				t.Errorf("secret %q, want %q", inv.secret, tc.wantSecret)
			}
			if got := [2]string{inv.mlSecretName, inv.deployment}; got != tc.wantOwner {
				t.Errorf("memberlist Secret/owner %q, want %q", got, tc.wantOwner)
			}
			if tc.wantNote != "" && !slices.ContainsFunc(inv.notes, func(n string) bool { return strings.Contains(n, tc.wantNote) }) {
				t.Errorf("notes %q, want one containing %q", inv.notes, tc.wantNote)
			}
			// The translation must be a command line ironlb itself accepts.
			if code := run(t.Context(), append(inv.args[:1:1], "-h"), strings.NewReader(""), io.Discard, io.Discard); code != 0 {
				t.Errorf("ironlb %s -h = %d", inv.args[0], code)
			}
		})
	}
}

// TestTranslatedFlagsParse feeds each translated command line to ironlb's own flag parsing (it
// then fails on the missing cluster, not on a flag).
func TestTranslatedFlagsParse(t *testing.T) {
	for _, cmd := range []string{"speaker", "controller"} {
		env := metallbSpeakerEnv
		if cmd == "controller" {
			env = metallbControllerEnv
		}
		inv, err := translateMetalLB(cmd, []string{"--port=7472", "--config=config", "--log-level=info"},
			func(k string) string { return env[k] }, func(string) ([]byte, error) { return nil, errors.New("none") }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		args := append(slices.Clone(inv.args), "--kubeconfig=/nonexistent/kubeconfig")
		code := run(t.Context(), args, strings.NewReader(""), io.Discard, &stderr)
		if code == 2 || strings.Contains(stderr.String(), "flag provided but not defined") {
			t.Errorf("ironlb %q: usage error (code %d):\n%s", args, code, stderr.String())
		}
	}
}

func TestRedactSecret(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"--port=7472", "--ml-secret-key=hunter2", "--log-level=info"}, []string{"--port=7472", "--ml-secret-key=<redacted>", "--log-level=info"}},
		{[]string{"-ml-secret-key", "hunter2", "--port", "7472"}, []string{"-ml-secret-key", "<redacted>", "--port", "7472"}},
		{[]string{"--ml-labels=ml-secret-key=x"}, []string{"--ml-labels=ml-secret-key=x"}},
		{nil, []string{}},
	}
	for _, tc := range tests {
		if got := redactSecret(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("redactSecret(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
