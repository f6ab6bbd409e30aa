package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

func classedService(ns, name, class string, ips ...string) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
	}
	if class != "" {
		svc.Spec.LoadBalancerClass = &class
	}
	for _, ip := range ips {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return svc
}

func TestTakenAway(t *testing.T) {
	pools := func(avoid bool) string {
		return fmt.Sprintf(`
address-pools:
- name: a
  protocol: layer2
  avoid-buggy-ips: %t
  addresses: [10.0.0.0/24, "fd00::/120"]
`, avoid)
	}
	tests := []struct {
		name string
		cfg  string
		svcs []*corev1.Service
		want []string // "ns/name ip"
	}{
		{"all in pools", pools(false), []*corev1.Service{classedService("d", "s", "", "10.0.0.5", "fd00::5")}, nil},
		{"a .0 address is fine without avoid-buggy-ips", pools(false), []*corev1.Service{classedService("d", "s", "", "10.0.0.0")}, nil},
		{"a .0 address under avoid-buggy-ips", pools(true), []*corev1.Service{classedService("d", "s", "", "10.0.0.0"), classedService("d", "t", "", "10.0.0.255")},
			[]string{"d/s 10.0.0.0", "d/t 10.0.0.255"}},
		{"empty config takes everything", "", []*corev1.Service{classedService("d", "s", "", "10.0.0.5", "fd00::5")},
			[]string{"d/s 10.0.0.5", "d/s fd00::5"}},
		{"another class is not ours", "", []*corev1.Service{classedService("d", "s", "other", "10.0.0.5")}, nil},
		{"not a LoadBalancer", "", []*corev1.Service{func() *corev1.Service {
			s := classedService("d", "s", "", "10.0.0.5")
			s.Spec.Type = corev1.ServiceTypeClusterIP
			return s
		}()}, nil},
		{"outside every pool", pools(false), []*corev1.Service{classedService("d", "s", "", "10.0.1.5")}, []string{"d/s 10.0.1.5"}},
		{"dual stack split over two pools", `
address-pools:
- name: a
  protocol: layer2
  addresses: [10.0.0.0/24, "fd00::/120"]
- name: b
  protocol: layer2
  addresses: ["fd00:1::/120"]
`, []*corev1.Service{classedService("d", "same", "", "10.0.0.5", "fd00::5"), classedService("d", "split", "", "10.0.0.6", "fd00:1::6")},
			[]string{"d/split fd00:1::6"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, l := range takenAway(mustConfig(t, tc.cfg), tc.svcs, "") {
				got = append(got, l.Service+" "+l.IP.String())
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("takenAway = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDescribeLostNamesTenAndCounts(t *testing.T) {
	var lost []lostAddress
	for i := range 12 {
		lost = append(lost, lostAddress{Service: fmt.Sprintf("d/s%02d", i), IP: netip.MustParseAddr("10.0.0.1"), Why: "in no pool"})
	}
	got := describeLost(lost)
	for _, want := range []string{"12 Services would lose an address", "d/s00: 10.0.0.1 would be in no pool", "d/s09", "and 2 more Services"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q does not contain %q", got, want)
		}
	}
	if strings.Contains(got, "d/s10") {
		t.Errorf("%q names more than 10 Services", got)
	}
}

// configSpeaker is a Speaker whose ConfigMap informer runs against a fake
// client; only loadConfig is exercised.
type configSpeaker struct {
	*Speaker
	client *fake.Clientset
	events *record.FakeRecorder
	reg    *prometheus.Registry
}

func newConfigSpeaker(t *testing.T) *configSpeaker {
	t.Helper()
	client := fake.NewClientset()
	reg := prometheus.NewRegistry()
	s, err := New(Options{Client: client, NodeName: "n1", BindAddr: netip.MustParseAddr("10.1.0.1"), Insecure: true, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	rec := record.NewFakeRecorder(100)
	s.recorder = rec
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		s.cmFactory.Shutdown()
	})
	s.cmFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), s.synced[len(s.synced)-1]) {
		t.Fatal("ConfigMap informer did not sync")
	}
	return &configSpeaker{Speaker: s, client: client, events: rec, reg: reg}
}

// put writes the ConfigMap (nil data: without the config key) and waits
// until the informer has it.
func (cs *configSpeaker) put(t *testing.T, data *string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "metallb-system", Name: "config"}}
	if data != nil {
		cm.Data = map[string]string{"config": *data}
	}
	ctx := context.Background()
	var rv string
	if old, err := cs.client.CoreV1().ConfigMaps("metallb-system").Get(ctx, "config", metav1.GetOptions{}); err == nil {
		n := 0
		fmt.Sscan(old.ResourceVersion, &n)
		cm.ResourceVersion = fmt.Sprint(n + 1)
		if _, err := cs.client.CoreV1().ConfigMaps("metallb-system").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	} else {
		cm.ResourceVersion = "1"
		if _, err := cs.client.CoreV1().ConfigMaps("metallb-system").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rv = cm.ResourceVersion
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := cs.configMaps.ConfigMaps("metallb-system").Get("config")
		if err == nil && got.ResourceVersion == rv {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("informer did not see ConfigMap version %s", rv)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (cs *configSpeaker) event(t *testing.T) string {
	t.Helper()
	select {
	case e := <-cs.events.Events:
		return e
	default:
		return ""
	}
}

func TestLoadConfigRefusesTakingAddresses(t *testing.T) {
	cs := newConfigSpeaker(t)
	pool := func(avoid bool, cidr string) *string {
		s := fmt.Sprintf("address-pools:\n- name: a\n  protocol: layer2\n  avoid-buggy-ips: %t\n  addresses: [%s]\n", avoid, cidr)
		return &s
	}
	empty := ""
	svc := classedService("d", "web", "", "10.0.0.0")
	withSvc := []*corev1.Service{svc}

	type step struct {
		name  string
		put   bool
		data  *string
		svcs  []*corev1.Service
		pools int // -1: no configuration at all
		stale float64
		event string // substring of the Event, "" none
	}
	steps := []step{
		{"no ConfigMap: no configuration", false, nil, withSvc, -1, 0, ""},
		{"a first configuration is taken even if it leaves an address out", true, pool(false, "10.9.0.0/24"), withSvc, 1, 0, ""},
		{"one that homes the address", true, pool(false, "10.0.0.0/24"), withSvc, 1, 0, ""},
		{"empty config refused", true, &empty, withSvc, 1, 1, "d/web: 10.0.0.0 would be in no pool"},
		{"still refused at the next decision, no second Event", false, nil, withSvc, 1, 1, ""},
		{"the Service is deleted: the pending config applies", false, nil, nil, 0, 0, ""},
		{"a pool again", true, pool(false, "10.0.0.0/24"), withSvc, 1, 0, ""},
		{"avoid-buggy-ips on a .0 address refused", true, pool(true, "10.0.0.0/24"), withSvc, 1, 1, "avoid-buggy-ips"},
		{"no config key is an empty config, refused too", true, nil, withSvc, 1, 1, "would be in no pool"},
		{"invalid config rejected", true, pool(false, "10.0.0.300/24"), withSvc, 1, 1, "configuration rejected"},
	}
	cs.ready.Store(true) // as after the first decision
	for _, st := range steps {
		if st.put {
			cs.put(t, st.data)
		}
		cfg := cs.loadConfig(st.svcs)
		got := -1
		if cfg != nil {
			got = len(cfg.Pools)
		}
		if got != st.pools {
			t.Fatalf("%s: config with %d pools, want %d", st.name, got, st.pools)
		}
		if ready := cs.Ready(); ready != (cfg != nil) {
			t.Fatalf("%s: Ready() = %t with config %v: /readyz must fail exactly while there is none", st.name, ready, cfg != nil)
		}
		if v := gaugeValue(t, cs.metrics.config.Stale); v != st.stale {
			t.Fatalf("%s: config_stale = %v, want %v", st.name, v, st.stale)
		}
		ev := cs.event(t)
		if st.event == "" && ev != "" {
			t.Fatalf("%s: unexpected Event %q", st.name, ev)
		}
		if st.event != "" && !strings.Contains(ev, st.event) {
			t.Fatalf("%s: Event %q, want one containing %q", st.name, ev, st.event)
		}
	}
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

func TestNewRefusesShortSecrets(t *testing.T) {
	base := Options{Client: fake.NewClientset(), NodeName: "n1", BindAddr: netip.MustParseAddr("10.1.0.1")}
	tests := []struct {
		name   string
		secret string
		extra  []string
		want   string // "" accepted
	}{
		{"walkthrough secret", strings.Repeat("k", 172), nil, ""},
		{"16 bytes", "0123456789abcdef", nil, ""},
		{"15 bytes", "0123456789abcde", nil, "the memberlist secret is 15 bytes long, need at least 16"},
		{"short extra key", "0123456789abcdef", []string{"old"}, "extra memberlist secret 0 is 3 bytes long"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			o.Secret = []byte(tc.secret)
			for _, k := range tc.extra {
				o.ExtraSecrets = append(o.ExtraSecrets, []byte(k))
			}
			_, err := New(o)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("New error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
