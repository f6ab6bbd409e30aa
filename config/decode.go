package config

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Limits on the work a document may cause. YAML aliases let a small document stand for a
// huge one (a 100 KB string anchored once and aliased 10,000 times is 1 GB), so the
// document is parsed into its node tree, where an alias is a single node, and the size of
// its expansion is computed on that tree before anything is expanded.
const (
	// MaxDocumentSize is the largest document accepted, in bytes. A ConfigMap holds at
	// most 1 MiB; the rest leaves room for the manifest around it.
	MaxDocumentSize = 2 << 20
	// maxNodes bounds the YAML nodes of a document, written or expanded. The parser's
	// tree costs about 400 bytes of allocation per node, so this keeps the parse of any
	// document under 128 MiB (about 100 MiB at worst); a real configuration has a few
	// hundred nodes.
	maxNodes = 200_000
	// maxExpansionRatio bounds the expanded document against the document as written,
	// counting nodes and scalar bytes separately (see expansion).
	maxExpansionRatio = 4
	// Below these floors any expansion is accepted: a small document that reuses an anchor
	// many times (a node selector shared by every peer) costs nothing worth refusing.
	minExpandedNodes = 1 << 14
	minExpandedBytes = 1 << 20
)

// parseTree parses data into its YAML node tree and checks that expanding it stays within
// the limits above. It returns nil for an empty document (or one holding only comments).
// Only the first document of a stream is read, as MetalLB does.
func parseTree(data []byte) (*yaml.Node, error) {
	if len(data) > MaxDocumentSize {
		return nil, &Error{
			Reason: fmt.Sprintf("document of %d bytes is larger than the %d bytes allowed (a ConfigMap holds at most 1 MiB)", len(data), MaxDocumentSize),
			Kind:   ErrTooLarge,
		}
	}
	if est := nodeBound(data); est > maxNodes {
		return nil, &Error{
			Reason: fmt.Sprintf("document may hold up to %d YAML nodes (it has %d of the characters %q that start them), more than the %d allowed",
				est, (est-1)/3, nodeStarters, maxNodes),
			Kind: ErrTooLarge,
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Error{Reason: "could not parse YAML: " + strings.TrimPrefix(err.Error(), "yaml: "), Kind: ErrSyntax}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if err := checkExpansion(root); err != nil {
		return nil, err
	}
	return root, nil
}

// nodeStarters are the characters without which YAML has no new node: every item of a
// sequence follows '-', '[' or ',', every pair of a mapping follows ':', '?', '{' or ',' (a
// pair is two nodes, and a pair written alone in a flow sequence adds a mapping node).
const nodeStarters = ",[{-:?"

// nodeBound returns an upper bound of the number of nodes the YAML parser can build from
// data, without parsing it: 1 (the root) + 3 per node-starting character. Characters in
// comments and quoted text are counted too, which only makes the bound looser. O(len(data)).
func nodeBound(data []byte) int {
	n := 0
	for _, b := range data {
		switch b {
		case ',', '[', '{', '-', ':', '?':
			n++
		}
	}
	return 1 + 3*n
}

// size measures a YAML tree: its nodes and the bytes of its scalars.
type size struct{ nodes, bytes int64 }

func (s size) add(o size) size { return size{s.nodes + o.nodes, s.bytes + o.bytes} }

// checkExpansion refuses a tree whose expansion (every alias replaced by a copy of what it
// names) has more than maxExpansionRatio times the nodes or scalar bytes of the tree as
// written, beyond the floors. It costs O(nodes of the tree): the expanded size of each
// anchored node is computed once.
func checkExpansion(root *yaml.Node) error {
	e := expansion{memo: map[*yaml.Node]size{}, open: map[*yaml.Node]bool{}}
	written := e.written(root)
	limit := size{
		nodes: min(max(maxExpansionRatio*written.nodes, minExpandedNodes), maxNodes),
		bytes: max(maxExpansionRatio*written.bytes, minExpandedBytes),
	}
	e.limit = limit
	expanded, err := e.expanded(root)
	if err != nil {
		return err
	}
	if expanded.nodes > limit.nodes || expanded.bytes > limit.bytes {
		return e.tooBig(expanded, written)
	}
	return nil
}

type expansion struct {
	memo  map[*yaml.Node]size
	open  map[*yaml.Node]bool // anchored nodes being measured, to catch an alias inside its own anchor
	limit size
}

// written is the size of the tree as written: an alias counts as one node.
func (e *expansion) written(n *yaml.Node) size {
	s := size{nodes: 1, bytes: int64(len(n.Value))}
	if n.Kind == yaml.AliasNode {
		s.bytes = 0
		return s
	}
	for _, c := range n.Content {
		s = s.add(e.written(c))
	}
	return s
}

// expanded is the size of n with every alias expanded. It stops early (returning a size
// over the limit) as soon as the total passes the limit, so the sizes it adds stay small.
func (e *expansion) expanded(n *yaml.Node) (size, error) {
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return size{}, &Error{Reason: fmt.Sprintf("alias *%s: refers to no anchor", n.Value), Kind: ErrSyntax}
		}
		return e.expanded(n.Alias)
	}
	if s, ok := e.memo[n]; ok {
		return s, nil
	}
	if e.open[n] {
		return size{}, &Error{Reason: fmt.Sprintf("line %d: anchor &%s contains an alias to itself", n.Line, n.Anchor), Kind: ErrSyntax}
	}
	if n.Anchor != "" {
		e.open[n] = true
		defer delete(e.open, n)
	}
	s := size{nodes: 1, bytes: int64(len(n.Value))}
	for _, c := range n.Content {
		cs, err := e.expanded(c)
		if err != nil {
			return size{}, err
		}
		s = s.add(cs)
		if s.nodes > e.limit.nodes || s.bytes > e.limit.bytes {
			return s, nil // already too big; the caller reports it
		}
	}
	if n.Anchor != "" {
		e.memo[n] = s
	}
	return s, nil
}

func (e *expansion) tooBig(expanded, written size) *Error {
	what := fmt.Sprintf("more than %d nodes, %d written", e.limit.nodes, written.nodes)
	if expanded.bytes > e.limit.bytes {
		what = fmt.Sprintf("more than %d bytes of values, %d written", e.limit.bytes, written.bytes)
	}
	return &Error{
		Reason: fmt.Sprintf("document expands, through its YAML aliases, to %s; refusing it (allowed: %d times what is written or %d nodes and %d bytes, whichever is more, and never more than %d nodes)",
			what, maxExpansionRatio, minExpandedNodes, minExpandedBytes, maxNodes),
		Kind: ErrTooLarge,
	}
}

// decodeNode stores the YAML node n, found at p, into v, strictly: keys are matched
// case-sensitively against the `yaml` tags of v's struct types, unknown and duplicate keys
// are errors, and every scalar must fit its field. Scalars keep the text as written when
// the field is a string (`password: 0123` is "0123", not 83), and are read with YAML 1.1's
// rules, as MetalLB's yaml.v2 reads them, when it is a boolean or an integer (`yes`,
// `0x10`, `0123` are true, 16, 83). A null leaves the zero value. The tree must have
// passed checkExpansion, which bounds the work and rules out alias cycles.
func decodeNode(n *yaml.Node, v reflect.Value, p path) error {
	n = resolveAlias(n)
	if v.Kind() == reflect.Pointer {
		if isNull(n) {
			return nil
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decodeNode(n, v.Elem(), p)
	}
	if isNull(n) {
		return nil // as yaml.v2: null leaves the zero value
	}
	switch v.Kind() {
	case reflect.Struct:
		return decodeStruct(n, v, p)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return valueError(p, n, "must be a list")
		}
		// An empty list is a non-nil empty slice, as yaml.v2 makes it: MetalLB's duplicate
		// checks compare raw values, where [] and an absent field differ.
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			if err := decodeNode(e, out.Index(i), appendIndex(p, elementSegment(i, e))); err != nil {
				return err
			}
		}
		v.Set(out)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return valueError(p, n, "must be a mapping")
		}
		entries, err := mappingEntries(n, p)
		if err != nil {
			return err
		}
		m := reflect.MakeMapWithSize(v.Type(), len(entries))
		for _, kv := range entries {
			ev := reflect.New(v.Type().Elem()).Elem()
			if err := decodeNode(kv.val, ev, appendIndex(p, fmt.Sprintf(" %q", shorten(kv.key)))); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(kv.key), ev)
		}
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return valueError(p, n, "must be a string")
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, ok := resolveBool(n)
		if !ok {
			return valueError(p, n, "must be true or false")
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		lo, hi := intBounds(v.Kind())
		f, ok := resolveNumber(n)
		if !ok || f != math.Trunc(f) || f < lo || f > hi {
			return valueError(p, n, fmt.Sprintf("must be an integer from %.0f to %.0f", lo, hi))
		}
		if v.CanUint() {
			v.SetUint(uint64(f))
		} else {
			v.SetInt(int64(f))
		}
	default:
		panic(fmt.Sprintf("config: decodeNode: unsupported field kind %s", v.Kind()))
	}
	return nil
}

func decodeStruct(n *yaml.Node, v reflect.Value, p path) error {
	if n.Kind != yaml.MappingNode {
		return valueError(p, n, "must be a mapping")
	}
	entries, err := mappingEntries(n, p)
	if err != nil {
		return err
	}
	t := v.Type()
	for _, kv := range entries {
		i, ok := fieldByTag(t, kv.key)
		if !ok {
			return p.errorf(ErrUnknownField, "unknown field %q (known fields: %s)", kv.key, strings.Join(tags(t), ", "))
		}
		if err := decodeNode(kv.val, v.Field(i), p.with("%s", kv.key)); err != nil {
			return err
		}
	}
	return nil
}

type keyValue struct {
	key string
	val *yaml.Node
}

// mappingEntries lists the entries of a mapping node in document order, with YAML merge
// keys (`<<: *defaults`) applied: the keys written in the mapping win over merged ones,
// and an earlier merged mapping wins over a later one. A key written twice is an error,
// as in MetalLB's strict decoding.
func mappingEntries(n *yaml.Node, p path) ([]keyValue, error) {
	var own, merged []keyValue
	first := map[string]int{} // key → line of its first occurrence
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolveAlias(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, p.errorf(ErrType, "line %d: a mapping key must be a plain value, not a list or mapping", k.Line)
		}
		if k.Tag == "!!merge" && k.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
			m, err := mergedEntries(val, p)
			if err != nil {
				return nil, err
			}
			merged = append(merged, m...)
			continue
		}
		if line, dup := first[k.Value]; dup {
			return nil, p.errorf(ErrSyntax, "key %q already set (line %d, then again at line %d)", k.Value, line, k.Line)
		}
		first[k.Value] = k.Line
		own = append(own, keyValue{k.Value, val})
	}
	for _, kv := range merged {
		if _, ok := first[kv.key]; !ok {
			first[kv.key] = 0
			own = append(own, kv)
		}
	}
	return own, nil
}

func mergedEntries(val *yaml.Node, p path) ([]keyValue, error) {
	val = resolveAlias(val)
	switch val.Kind {
	case yaml.MappingNode:
		return mappingEntries(val, p)
	case yaml.SequenceNode:
		var out []keyValue
		for _, e := range val.Content {
			if e = resolveAlias(e); e.Kind != yaml.MappingNode {
				return nil, p.errorf(ErrType, "line %d: a merge key (<<) takes a mapping or a list of mappings", e.Line)
			}
			m, err := mappingEntries(e, p)
			if err != nil {
				return nil, err
			}
			out = append(out, m...)
		}
		return out, nil
	}
	return nil, p.errorf(ErrType, "line %d: a merge key (<<) takes a mapping or a list of mappings", val.Line)
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// plain reports whether a scalar is subject to type resolution: written without quotes
// or block style, and without a tag that forces a string.
func plain(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return false
	}
	return n.Style&yaml.TaggedStyle == 0 || n.Tag != "!!str" && n.Tag != "!!binary"
}

func isNull(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode {
		return false
	}
	if n.Style&yaml.TaggedStyle != 0 && n.Tag == "!!null" {
		return true
	}
	if !plain(n) {
		return false
	}
	switch n.Value {
	case "", "~", "null", "Null", "NULL":
		return true
	}
	return false
}

// resolveBool reads a YAML 1.1 boolean, as yaml.v2 does (MetalLB accepts `auto-assign: no`).
func resolveBool(n *yaml.Node) (bool, bool) {
	if !plain(n) {
		return false, false
	}
	switch n.Value {
	case "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON":
		return true, true
	case "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF":
		return false, true
	}
	return false, false
}

// yamlFloat is YAML 1.1's decimal float syntax, as yaml.v2 accepts it.
var yamlFloat = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// resolveNumber reads a YAML 1.1 integer (decimal, 0x hex, 0 or 0o octal, 0b binary, with
// optional sign and '_' separators) or decimal float, as yaml.v2 does. The caller decides
// whether a float that is a whole number is acceptable.
func resolveNumber(n *yaml.Node) (float64, bool) {
	if !plain(n) || n.Value == "" {
		return 0, false
	}
	switch n.Value {
	case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF":
		return math.Inf(1), true
	case "-.inf", "-.Inf", "-.INF":
		return math.Inf(-1), true
	case ".nan", ".NaN", ".NAN":
		return math.NaN(), true
	}
	s := strings.ReplaceAll(n.Value, "_", "")
	if s != "" && strings.ContainsAny(s[:1], "+-0123456789") {
		if i, err := strconv.ParseInt(s, 0, 64); err == nil {
			return float64(i), true
		}
		if u, err := strconv.ParseUint(s, 0, 64); err == nil {
			return float64(u), true
		}
	}
	if yamlFloat.MatchString(s) {
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f, true
		}
	}
	return 0, false
}

// elementSegment names list element i for error paths: "[i]", followed by the element's
// name when it has one ("[1] \"blue\"").
func elementSegment(i int, e *yaml.Node) string {
	seg := fmt.Sprintf("[%d]", i)
	e = resolveAlias(e)
	if e.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(e.Content); j += 2 {
			if k, v := e.Content[j], resolveAlias(e.Content[j+1]); k.Value == "name" && v.Kind == yaml.ScalarNode && !isNull(v) {
				return seg + fmt.Sprintf(" %q", shorten(v.Value))
			}
		}
	}
	return seg
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

// valueError reports a value of the wrong type, showing it as written: numbers, booleans
// and nulls bare, other text quoted.
func valueError(p path, n *yaml.Node, reason string) *Error {
	var shown string
	switch {
	case n.Kind == yaml.MappingNode:
		shown = "(a mapping)"
	case n.Kind == yaml.SequenceNode:
		shown = "(a list)"
	case plain(n) && (isNull(n) || func() bool { _, ok := resolveNumber(n); return ok }() || func() bool { _, ok := resolveBool(n); return ok }()):
		shown = shorten(n.Value)
	default:
		shown = fmt.Sprintf("%q", shorten(n.Value))
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

func fieldByTag(t reflect.Type, key string) (int, bool) {
	for i := range t.NumField() {
		if yamlName(t.Field(i)) == key {
			return i, true
		}
	}
	return 0, false
}

func tags(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		out = append(out, yamlName(t.Field(i)))
	}
	return out
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
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
