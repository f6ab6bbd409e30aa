package config

import (
	"fmt"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// ParseConfigMap parses either a whole ConfigMap manifest, taking the configuration from
// data[key], or the bare configuration content. A document is a manifest when it has a
// top-level apiVersion or kind (keys the configuration itself never has). A manifest must
// be apiVersion v1, kind ConfigMap; everything else in it (metadata, binaryData, ...) is
// ignored. A manifest without key in its data is an empty configuration, as in MetalLB
// (see FromData).
//
// The manifest is bounded like the configuration itself (MaxDocumentSize, alias expansion)
// before any of it is expanded.
func ParseConfigMap(data []byte, key string) (*Config, error) {
	root, err := parseTree(data)
	if err != nil {
		return nil, err // malformed or too large, as the bare content would be
	}
	if root == nil || root.Kind != yaml.MappingNode {
		// Empty or not a mapping: Parse reports it in its own words.
		return Parse(data)
	}
	fields := map[string]*yaml.Node{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := resolveAlias(root.Content[i]); k.Kind == yaml.ScalarNode {
			fields[k.Value] = root.Content[i+1]
		}
	}
	_, hasKind := fields["kind"]
	_, hasAPIVersion := fields["apiVersion"]
	if !hasKind && !hasAPIVersion {
		return Parse(data)
	}
	var apiVersion, kind string
	var cmData map[string]string
	for _, f := range []struct {
		key string
		out any
	}{{"apiVersion", &apiVersion}, {"kind", &kind}, {"data", &cmData}} {
		n, ok := fields[f.key]
		if !ok {
			continue
		}
		if err := decodeNode(n, reflect.ValueOf(f.out).Elem(), path{f.key}); err != nil {
			return nil, err
		}
	}
	if apiVersion != "v1" || kind != "ConfigMap" {
		return nil, &Error{
			Reason: fmt.Sprintf("apiVersion %q kind %q: not a ConfigMap manifest (want apiVersion v1, kind ConfigMap)", apiVersion, kind),
			Kind:   ErrInvalid,
		}
	}
	return FromData(cmData, key)
}

// FromData parses the configuration held under key in a ConfigMap's data, as the
// controller and speaker read it. A ConfigMap without that key (or without data) is an
// empty configuration, as in MetalLB, which reads a missing key as "". Errors are located
// under data[key].
func FromData(data map[string]string, key string) (*Config, error) {
	cfg, err := Parse([]byte(data[key]))
	if err != nil {
		if e, ok := err.(*Error); ok {
			// Say where the content came from; keep the rest of the location as it was.
			prefixed := *e
			prefixed.Path = fmt.Sprintf("data[%q]", key)
			if e.Path != "" {
				prefixed.Path += ": " + e.Path
			}
			return nil, &prefixed
		}
		return nil, err
	}
	return cfg, nil
}
