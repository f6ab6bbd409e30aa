package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// NodeSelector selects nodes by their labels, as a Kubernetes metav1.LabelSelector: every
// label in MatchLabels and every requirement in MatchExpressions must hold. An empty
// selector selects every node.
type NodeSelector struct {
	MatchLabels      map[string]string
	MatchExpressions []SelectorRequirement
}

// SelectorRequirement is one label-selector expression.
type SelectorRequirement struct {
	Key      string
	Operator string // In, NotIn, Exists or DoesNotExist
	Values   []string
}

// The operators of a SelectorRequirement.
const (
	OpIn           = "In"
	OpNotIn        = "NotIn"
	OpExists       = "Exists"
	OpDoesNotExist = "DoesNotExist"
)

// Matches reports whether a node with these labels is selected. O(labels + requirements ×
// values).
func (s NodeSelector) Matches(labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, r := range s.MatchExpressions {
		if !r.matches(labels) {
			return false
		}
	}
	return true
}

func (r SelectorRequirement) matches(labels map[string]string) bool {
	v, ok := labels[r.Key]
	switch r.Operator {
	case OpIn:
		return ok && slices.Contains(r.Values, v)
	case OpNotIn:
		return !ok || !slices.Contains(r.Values, v)
	case OpExists:
		return ok
	case OpDoesNotExist:
		return !ok
	}
	return false // unreachable for a parsed config: Parse rejects other operators
}

func parseNodeSelector(rs rawNodeSelector, p path) (NodeSelector, error) {
	var s NodeSelector
	for _, k := range sortedKeys(rs.MatchLabels) {
		v := rs.MatchLabels[k]
		lp := p.with("match-labels %q", k)
		if err := validateLabelKey(k); err != nil {
			return s, lp.errorf(ErrInvalid, "invalid label key: %v", err)
		}
		if err := validateLabelValue(v); err != nil {
			return s, lp.errorf(ErrInvalid, "invalid label value %q: %v", v, err)
		}
		if s.MatchLabels == nil {
			s.MatchLabels = map[string]string{}
		}
		s.MatchLabels[k] = v
	}
	for i, re := range rs.MatchExpressions {
		ep := p.with("match-expressions[%d]", i)
		if err := validateLabelKey(re.Key); err != nil {
			return s, ep.errorf(ErrInvalid, "key %q: %v", re.Key, err)
		}
		switch re.Operator {
		case OpIn, OpNotIn:
			if len(re.Values) == 0 {
				return s, ep.errorf(ErrInvalid, "values: must not be empty for operator %s", re.Operator)
			}
		case OpExists, OpDoesNotExist:
			if len(re.Values) != 0 {
				return s, ep.errorf(ErrInvalid, "values: must be empty for operator %s", re.Operator)
			}
		case "":
			return s, ep.errorf(ErrMissing, "operator: missing (want In, NotIn, Exists or DoesNotExist)")
		default:
			return s, ep.errorf(ErrInvalid, "operator %q: unknown (want In, NotIn, Exists or DoesNotExist)", re.Operator)
		}
		for j, v := range re.Values {
			if err := validateLabelValue(v); err != nil {
				return s, ep.errorf(ErrInvalid, "values[%d] %q: %v", j, v, err)
			}
		}
		s.MatchExpressions = append(s.MatchExpressions, SelectorRequirement{
			Key: re.Key, Operator: re.Operator, Values: slices.Clone(re.Values),
		})
	}
	return s, nil
}

// The syntax Kubernetes accepts for label keys and values (apimachinery's
// validation.IsQualifiedName and IsValidLabelValue).
var (
	qualifiedName = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	labelValue    = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	dnsSubdomain  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

func validateLabelKey(k string) error {
	name := k
	if prefix, rest, ok := strings.Cut(k, "/"); ok {
		switch {
		case strings.Contains(rest, "/"):
			return fmt.Errorf("at most one '/' allowed (optional DNS prefix, then name)")
		case prefix == "":
			return fmt.Errorf("prefix before '/' must not be empty")
		case len(prefix) > 253:
			return fmt.Errorf("prefix must be at most 253 characters")
		case !dnsSubdomain.MatchString(prefix):
			return fmt.Errorf("prefix %q must be a lowercase DNS subdomain", prefix)
		}
		name = rest
	}
	switch {
	case name == "":
		return fmt.Errorf("name part must not be empty")
	case len(name) > 63:
		return fmt.Errorf("name part must be at most 63 characters")
	case !qualifiedName.MatchString(name):
		return fmt.Errorf("name part must be alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character")
	}
	return nil
}

func validateLabelValue(v string) error {
	switch {
	case len(v) > 63:
		return fmt.Errorf("must be at most 63 characters")
	case !labelValue.MatchString(v):
		return fmt.Errorf("must be empty or alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character")
	}
	return nil
}
