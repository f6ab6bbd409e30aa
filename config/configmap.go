package config

import (
	"fmt"

	"sigs.k8s.io/yaml"
)

// configMap is the part of a core/v1 ConfigMap manifest ParseConfigMap reads; everything
// else in the manifest (metadata, binaryData, ...) is ignored.
type configMap struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Data       map[string]string `json:"data"`
}

// ParseConfigMap parses either a whole ConfigMap manifest, taking the configuration from
// data[key], or the bare configuration content. A document is a manifest when it has a
// top-level apiVersion or kind (keys the configuration itself never has). A manifest must
// be apiVersion v1, kind ConfigMap, and hold key (ErrNoKey otherwise).
func ParseConfigMap(data []byte, key string) (*Config, error) {
	var top map[string]any
	if err := yaml.Unmarshal(data, &top); err != nil {
		// Not a mapping at all (or malformed): let Parse report it in its own words.
		return Parse(data)
	}
	_, hasKind := top["kind"]
	_, hasAPIVersion := top["apiVersion"]
	if !hasKind && !hasAPIVersion {
		return Parse(data)
	}
	var cm configMap
	if err := yaml.Unmarshal(data, &cm); err != nil {
		return nil, &Error{Reason: "could not parse ConfigMap manifest: " + cleanYAMLError(err), Kind: ErrSyntax}
	}
	if cm.APIVersion != "v1" || cm.Kind != "ConfigMap" {
		return nil, &Error{
			Reason: fmt.Sprintf("apiVersion %q kind %q: not a ConfigMap manifest (want apiVersion v1, kind ConfigMap)", cm.APIVersion, cm.Kind),
			Kind:   ErrInvalid,
		}
	}
	content, ok := cm.Data[key]
	if !ok {
		return nil, &Error{Reason: fmt.Sprintf("ConfigMap data has no key %q (keys: %v)", key, sortedKeys(cm.Data)), Kind: ErrNoKey}
	}
	cfg, err := Parse([]byte(content))
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
