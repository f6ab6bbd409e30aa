// Package metricstest checks a component's /metrics against MetalLB v0.12.1's metric set and
// evaluates the alerts of MetalLB's Helm chart on it with promtool, for the controller's and the
// speaker's compatibility tests.
//
// The tables below are written from MetalLB v0.12.1's source (go.universe.tf/metallb@v0.12.1:
// internal/allocator/stats.go, internal/k8s/stats.go, speaker/main.go, internal/layer2/stats.go,
// internal/bgp/native/stats.go), independently of ironlb's code, so that renaming a metric or a
// label in ironlb fails the tests instead of silently breaking users' dashboards.
package metricstest

import (
	_ "embed"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"
)

// Metric is one metric family as MetalLB v0.12.1 exports it.
type Metric struct {
	Name   string
	Type   dto.MetricType
	Help   string
	Labels []string // sorted
}

var k8sClient = []Metric{
	{"metallb_k8s_client_updates_total", dto.MetricType_COUNTER, "Number of k8s object updates that have been processed.", nil},
	{"metallb_k8s_client_update_errors_total", dto.MetricType_COUNTER, "Number of k8s object updates that failed for some reason.", nil},
	{"metallb_k8s_client_config_loaded_bool", dto.MetricType_GAUGE, "1 if the MetalLB configuration was successfully loaded at least once.", nil},
	{"metallb_k8s_client_config_stale_bool", dto.MetricType_GAUGE, "1 if running on a stale configuration, because the latest config failed to load.", nil},
}

// Controller is what MetalLB v0.12.1's controller exports. (v0.12.1 registers
// services_allocated_total but never sets it; ironlb does.)
var Controller = append([]Metric{
	{"metallb_allocator_addresses_total", dto.MetricType_GAUGE, "Number of usable IP addresses, per pool", []string{"pool"}},
	{"metallb_allocator_addresses_in_use_total", dto.MetricType_GAUGE, "Number of IP addresses in use, per pool", []string{"pool"}},
	{"metallb_allocator_services_allocated_total", dto.MetricType_GAUGE, "Number of services allocated, per pool", []string{"pool"}},
}, k8sClient...)

// Speaker is what MetalLB v0.12.1's speaker exports with its native BGP implementation.
var Speaker = append([]Metric{
	{"metallb_speaker_announced", dto.MetricType_GAUGE, "Services being announced from this node. This is desired state, it does not guarantee that the routing protocols have converged.", []string{"ip", "node", "protocol", "service"}},
	{"metallb_layer2_requests_received", dto.MetricType_COUNTER, "Number of layer2 requests received for owned IPs", []string{"ip"}},
	{"metallb_layer2_responses_sent", dto.MetricType_COUNTER, "Number of layer2 responses sent for owned IPs in response to requests", []string{"ip"}},
	{"metallb_layer2_gratuitous_sent", dto.MetricType_COUNTER, "Number of gratuitous layer2 packets sent for owned IPs as a result of failovers", []string{"ip"}},
	{"metallb_bgp_session_up", dto.MetricType_GAUGE, "BGP session state (1 is up, 0 is down)", []string{"peer"}},
	{"metallb_bgp_updates_total", dto.MetricType_COUNTER, "Number of BGP UPDATE messages sent", []string{"peer"}},
	{"metallb_bgp_announced_prefixes_total", dto.MetricType_GAUGE, "Number of prefixes currently being advertised on the BGP session", []string{"peer"}},
	{"metallb_bgp_pending_prefixes_total", dto.MetricType_GAUGE, "Number of prefixes that should be advertised on the BGP session", []string{"peer"}},
}, k8sClient...)

// Retired are ironlb's former names of metrics MetalLB has; exporting them as well would
// duplicate every series.
var Retired = []string{
	"ironlb_config_loaded", "ironlb_config_stale",
	"ironlb_allocator_addresses_total", "ironlb_allocator_addresses_in_use_total",
	"ironlb_speaker_announced",
	"ironlb_layer2_requests_received_total", "ironlb_layer2_responses_sent_total", "ironlb_layer2_gratuitous_sent_total",
	"ironlb_bgp_session_up", "ironlb_bgp_updates_total", "ironlb_bgp_announced_prefixes_total",
}

// Scrape is one /metrics response, parsed.
type Scrape struct {
	Body     string
	Families map[string]*dto.MetricFamily
}

// Get scrapes url over HTTP as Prometheus does (text format).
func Get(t testing.TB, url string) Scrape {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: status %d, %v", url, resp.StatusCode, err)
	}
	return Parse(t, string(body))
}

// Parse parses a text-format exposition.
func Parse(t testing.TB, body string) Scrape {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return Scrape{Body: body, Families: fams}
}

// Value returns the value of the sample of name whose labels include labels.
func (s Scrape) Value(name string, labels map[string]string) (float64, bool) {
	f := s.Families[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if hasLabels(m, labels) {
			return sampleValue(f.GetType(), m), true
		}
	}
	return 0, false
}

// CheckValues fails t unless every sample named in want, as name or name{label=value,...}, is
// exported with the value given.
func CheckValues(t testing.TB, s Scrape, want map[string]float64) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		name, labels := key, map[string]string{}
		if i := strings.IndexByte(key, '{'); i >= 0 && strings.HasSuffix(key, "}") {
			name = key[:i]
			for _, kv := range strings.Split(key[i+1:len(key)-1], ",") {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("CheckValues: bad key %q", key)
				}
				labels[k] = v
			}
		}
		got, ok := s.Value(name, labels)
		if !ok {
			t.Errorf("%s: not exported", key)
		} else if got != want[key] {
			t.Errorf("%s = %v, want %v", key, got, want[key])
		}
	}
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func sampleValue(typ dto.MetricType, m *dto.Metric) float64 {
	switch typ {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	default:
		return m.GetUntyped().GetValue()
	}
}

// CheckFamilies fails t unless every metric of want is in s with MetalLB's type, help and
// exactly MetalLB's label names on every sample; s has no other metallb_ family and none of the
// Retired names.
func CheckFamilies(t testing.TB, s Scrape, want []Metric) {
	t.Helper()
	known := map[string]bool{}
	for _, w := range want {
		known[w.Name] = true
		f := s.Families[w.Name]
		if f == nil {
			t.Errorf("%s: not exported", w.Name)
			continue
		}
		if f.GetType() != w.Type {
			t.Errorf("%s: type %v, want %v", w.Name, f.GetType(), w.Type)
		}
		if f.GetHelp() != w.Help {
			t.Errorf("%s: help %q, want MetalLB's %q", w.Name, f.GetHelp(), w.Help)
		}
		if len(f.GetMetric()) == 0 {
			t.Errorf("%s: no samples", w.Name)
		}
		for _, m := range f.GetMetric() {
			var names []string
			for _, l := range m.GetLabel() {
				names = append(names, l.GetName())
			}
			sort.Strings(names)
			if !slices.Equal(names, w.Labels) {
				t.Errorf("%s: sample with labels %v, want label names %v", w.Name, names, w.Labels)
			}
		}
	}
	for name := range s.Families {
		if strings.HasPrefix(name, "metallb_") && !known[name] {
			t.Errorf("%s: exported but not a metric of this MetalLB component", name)
		}
		if slices.Contains(Retired, name) {
			t.Errorf("%s: retired ironlb name still exported next to MetalLB's", name)
		}
	}
}

//go:embed metallb-prometheusrules.yaml
var rules []byte

// Alert is an alert expected to fire, by name and the labels of its series (the alert rule's own
// labels, such as severity, are added by CheckAlerts). A rule that matches on(pool) keeps only
// the pool label, so its alert does not carry the target's labels.
type Alert struct {
	Name   string
	Labels map[string]string
}

// Target is what Prometheus attaches to every scraped series; MetalLB's alerts select
// job="metallb" (the chart's default name) and their messages name the pod and the container.
type Target struct {
	Job, Pod, Container string
}

func (tg Target) labels() map[string]string {
	return map[string]string{"job": tg.Job, "pod": tg.Pod, "container": tg.Container}
}

// Labels returns the target's labels with the name=value pairs kv added.
func (tg Target) Labels(kv ...string) map[string]string {
	l := tg.labels()
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

// CheckAlerts evaluates every alert of MetalLB's Helm chart (rendered with its default values)
// with `promtool test rules` over the samples of s, held constant for 5 minutes as scraped from
// target, and fails t unless exactly the alerts in want fire after 2 minutes (the rules have
// `for: 1m`). promtool comes from Debian's prometheus package (hack/install-deps.sh).
func CheckAlerts(t testing.TB, s Scrape, target Target, want []Alert) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found: run hack/install-deps.sh (or apt-get install -y --no-install-recommends prometheus)")
	}
	var ruleFile struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `json:"alert"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(rules, &ruleFile); err != nil {
		t.Fatalf("metallb-prometheusrules.yaml: %v", err)
	}

	type expAlert struct {
		ExpLabels      map[string]string `json:"exp_labels"`
		ExpAnnotations map[string]string `json:"exp_annotations"`
	}
	type alertTest struct {
		EvalTime  string     `json:"eval_time"`
		Alertname string     `json:"alertname"`
		ExpAlerts []expAlert `json:"exp_alerts"`
	}
	var tests []alertTest
	seen := map[string]bool{}
	for _, g := range ruleFile.Groups {
		for _, r := range g.Rules {
			seen[r.Alert] = true
			at := alertTest{EvalTime: "2m", Alertname: r.Alert, ExpAlerts: []expAlert{}}
			for _, a := range want {
				if a.Name != r.Alert {
					continue
				}
				labels := map[string]string{}
				for k, v := range a.Labels {
					labels[k] = v
				}
				for k, v := range r.Labels {
					labels[k] = v
				}
				annotations := map[string]string{}
				for k, v := range r.Annotations {
					annotations[k] = expand(v, labels)
				}
				at.ExpAlerts = append(at.ExpAlerts, expAlert{ExpLabels: labels, ExpAnnotations: annotations})
			}
			tests = append(tests, at)
		}
	}
	for _, a := range want {
		if !seen[a.Name] {
			t.Fatalf("alert %s is not in MetalLB's rules", a.Name)
		}
	}

	type series struct {
		Series string `json:"series"`
		Values string `json:"values"`
	}
	var input []series
	for _, f := range s.Families {
		if !strings.HasPrefix(f.GetName(), "metallb_") {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := target.labels()
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			v := strconv.FormatFloat(sampleValue(f.GetType(), m), 'g', -1, 64)
			input = append(input, series{Series: selector(f.GetName(), labels), Values: v + "x5"})
		}
	}
	sort.Slice(input, func(i, j int) bool { return input[i].Series < input[j].Series })
	type testGroup struct {
		Interval    string      `json:"interval"`
		InputSeries []series    `json:"input_series"`
		AlertTests  []alertTest `json:"alert_rule_test"`
	}
	doc := struct {
		RuleFiles          []string    `json:"rule_files"`
		EvaluationInterval string      `json:"evaluation_interval"`
		Tests              []testGroup `json:"tests"`
	}{[]string{"rules.yaml"}, "1m", []testGroup{{Interval: "1m", InputSeries: input, AlertTests: tests}}}
	testYAML, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "test.yaml"), testYAML, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "test", "rules", "test.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("MetalLB's alerts on ironlb's metrics: promtool test rules: %v\n%s\ntest file:\n%s", err, out, testYAML)
	}
}

// selector writes a series in PromQL notation.
func selector(name string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(labels[k])
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// expand renders the `{{ $labels.x }}` references of an alert annotation, the only template
// construct MetalLB's alert messages use.
func expand(text string, labels map[string]string) string {
	var b strings.Builder
	for {
		i := strings.Index(text, "{{")
		if i < 0 {
			b.WriteString(text)
			return b.String()
		}
		j := strings.Index(text[i:], "}}")
		if j < 0 {
			panic(fmt.Sprintf("unterminated template in %q", text))
		}
		b.WriteString(text[:i])
		ref := strings.TrimSpace(text[i+2 : i+j])
		b.WriteString(labels[strings.TrimPrefix(ref, "$labels.")])
		text = text[i+j+2:]
	}
}
