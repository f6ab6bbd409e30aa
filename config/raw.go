package config

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// rawConfig mirrors MetalLB v0.12's configFile: the document as written, before validation.
// The json tags are the YAML keys (sigs.k8s.io/yaml goes through encoding/json).
type rawConfig struct {
	Peers          []rawPeer         `json:"peers"`
	BGPCommunities map[string]string `json:"bgp-communities"`
	Pools          []rawPool         `json:"address-pools"`
	BFDProfiles    []rawBFDProfile   `json:"bfd-profiles"`
}

type rawPeer struct {
	MyASN         uint32            `json:"my-asn"`
	ASN           uint32            `json:"peer-asn"`
	Addr          string            `json:"peer-address"`
	SrcAddr       string            `json:"source-address"`
	Port          uint16            `json:"peer-port"`
	HoldTime      string            `json:"hold-time"`
	KeepaliveTime string            `json:"keepalive-time"`
	RouterID      string            `json:"router-id"`
	NodeSelectors []rawNodeSelector `json:"node-selectors"`
	Password      string            `json:"password"`
	BFDProfile    string            `json:"bfd-profile"`
	EBGPMultiHop  bool              `json:"ebgp-multihop"`
}

type rawNodeSelector struct {
	MatchLabels      map[string]string   `json:"match-labels"`
	MatchExpressions []rawSelectorReqmnt `json:"match-expressions"`
}

type rawSelectorReqmnt struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values"`
}

type rawPool struct {
	Name              string               `json:"name"`
	Protocol          string               `json:"protocol"`
	Addresses         []string             `json:"addresses"`
	AvoidBuggyIPs     bool                 `json:"avoid-buggy-ips"`
	AutoAssign        *bool                `json:"auto-assign"`
	BGPAdvertisements []rawBGPAdvertisment `json:"bgp-advertisements"`
}

type rawBGPAdvertisment struct {
	AggregationLength   *int     `json:"aggregation-length"`
	AggregationLengthV6 *int     `json:"aggregation-length-v6"`
	LocalPref           *uint32  `json:"localpref"`
	Communities         []string `json:"communities"`
}

type rawBFDProfile struct {
	Name             string  `json:"name"`
	ReceiveInterval  *uint32 `json:"receive-interval"`
	TransmitInterval *uint32 `json:"transmit-interval"`
	DetectMultiplier *uint32 `json:"detect-multiplier"`
	EchoInterval     *uint32 `json:"echo-interval"`
	EchoMode         *bool   `json:"echo-mode"`
	PassiveMode      *bool   `json:"passive-mode"`
	MinimumTTL       *uint32 `json:"minimum-ttl"`
}

// decode turns the document into a rawConfig. It first walks a generic decoding of the
// document against the shape of rawConfig, which gives errors with a precise location and
// matches keys case-sensitively (encoding/json, under sigs.k8s.io/yaml, would accept
// "Name" for "name" where MetalLB's yaml.v2 does not). The strict typed decoding that
// follows then catches what is left, such as duplicate keys.
func decode(data []byte) (*rawConfig, error) {
	var generic any
	if err := yaml.Unmarshal(data, &generic); err != nil {
		return nil, &Error{Reason: "could not parse YAML: " + cleanYAMLError(err), Kind: ErrSyntax}
	}
	if err := checkShape(generic, reflect.TypeFor[rawConfig](), nil); err != nil {
		return nil, err
	}
	var raw rawConfig
	if err := yaml.UnmarshalStrict(data, &raw); err != nil {
		return nil, &Error{Reason: "could not parse YAML: " + cleanYAMLError(err), Kind: ErrSyntax}
	}
	return &raw, nil
}

// cleanYAMLError drops the conversion-layer prefixes sigs.k8s.io/yaml adds, which say
// nothing to a user.
func cleanYAMLError(err error) string {
	s := err.Error()
	for _, prefix := range []string{"error converting YAML to JSON: ", "error unmarshaling JSON: ", "while decoding JSON: "} {
		s = strings.TrimPrefix(s, prefix)
	}
	return strings.Join(strings.Fields(s), " ")
}

// checkShape verifies that v, a value decoded generically from YAML (through JSON: maps are
// map[string]any, numbers float64), fits type t. p is where v sits in the document.
func checkShape(v any, t reflect.Type, p path) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return nil // null leaves the zero value, as yaml.v2 does
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return valueError(p, v, "must be a mapping")
		}
		keys := sortedKeys(m)
		for _, k := range keys {
			f, ok := fieldByTag(t, k)
			if !ok {
				return p.errorf(ErrUnknownField, "unknown field %q (known fields: %s)", k, strings.Join(tags(t), ", "))
			}
			if err := checkShape(m[k], f.Type, p.with("%s", k)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return valueError(p, v, "must be a list")
		}
		for i, e := range l {
			seg := fmt.Sprintf("[%d]", i)
			if m, ok := e.(map[string]any); ok {
				if name, ok := m["name"].(string); ok {
					seg += fmt.Sprintf(" %q", name)
				}
			}
			if err := checkShape(e, t.Elem(), appendIndex(p, seg)); err != nil {
				return err
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return valueError(p, v, "must be a mapping")
		}
		for _, k := range sortedKeys(m) {
			if err := checkShape(m[k], t.Elem(), appendIndex(p, fmt.Sprintf(" %q", k))); err != nil {
				return err
			}
		}
	case reflect.String:
		// sigs.k8s.io/yaml, like yaml.v2, turns an unquoted number or boolean into its text
		// when the target is a string (a password of digits, for instance).
		switch v.(type) {
		case string, float64, bool:
		default:
			return valueError(p, v, "must be a string")
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return valueError(p, v, "must be true or false")
		}
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		lo, hi := intBounds(t.Kind())
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) || f < lo || f > hi {
			return valueError(p, v, fmt.Sprintf("must be an integer from %.0f to %.0f", lo, hi))
		}
	}
	return nil
}

// appendIndex attaches an index or key suffix to the last segment of p ("peers" → "peers[0]").
func appendIndex(p path, suffix string) path {
	if len(p) == 0 {
		return path{strings.TrimSpace(suffix)}
	}
	out := slices.Clone(p)
	out[len(out)-1] += suffix
	return out
}

func valueError(p path, v any, reason string) *Error {
	var shown string
	switch x := v.(type) {
	case string:
		shown = fmt.Sprintf("%q", x)
	case map[string]any:
		shown = "(a mapping)"
	case []any:
		shown = "(a list)"
	default:
		shown = fmt.Sprint(x)
	}
	if len(p) == 0 {
		return &Error{Reason: "the document " + reason, Kind: ErrType}
	}
	last := p[len(p)-1]
	return &Error{Path: path(p[:len(p)-1]).with("%s %s", last, shown).String(), Reason: reason, Kind: ErrType}
}

func intBounds(k reflect.Kind) (lo, hi float64) {
	switch k {
	case reflect.Uint16:
		return 0, math.MaxUint16
	case reflect.Uint32:
		return 0, math.MaxUint32
	case reflect.Uint64:
		return 0, math.MaxUint64
	case reflect.Int32:
		return math.MinInt32, math.MaxInt32
	default:
		return math.MinInt64, math.MaxInt64
	}
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if jsonName(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tags(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		out = append(out, jsonName(t.Field(i)))
	}
	return out
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
