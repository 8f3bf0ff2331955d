package awscfn

//go:generate sh -c "cd schemas && python3 refresh.py"

import (
	"embed"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/moat-dev/moat/internal/suggest"
)

//go:embed schemas/*.json
var schemaFS embed.FS

// resourceSchema is one CloudFormation resource provider schema (the JSON
// Schema dialect the CloudFormation registry uses).
type resourceSchema struct {
	TypeName           string               `json:"typeName"`
	Definitions        map[string]*jsonNode `json:"definitions"`
	ReadOnlyProperties []string             `json:"readOnlyProperties"`
	root               *jsonNode            // the schema itself, as a node
	attrs              map[string]bool      // GetAtt names: readOnlyProperties as A.B
}

// patterns caches compiled registry patterns (nil: RE2 cannot compile it).
var patterns sync.Map

// jsonNode is the subset of JSON Schema keywords the registry schemas use
// for property values. Unknown keywords (insertionOrder, relationshipRef,
// tagging, ...) are documentation and are ignored.
type jsonNode struct {
	Ref                  string               `json:"$ref"`
	Type                 any                  `json:"type"` // string or []string
	Properties           map[string]*jsonNode `json:"properties"`
	PatternProperties    map[string]*jsonNode `json:"patternProperties"`
	AdditionalProperties any                  `json:"additionalProperties"` // bool or schema
	Required             []string             `json:"required"`
	RequiredXor          []string             `json:"requiredXor"`
	DependentRequired    map[string][]string  `json:"dependentRequired"`
	DependentExcluded    map[string][]string  `json:"dependentExcluded"`
	Enum                 []any                `json:"enum"`
	Pattern              string               `json:"pattern"`
	MinLength            *int                 `json:"minLength"`
	MaxLength            *int                 `json:"maxLength"`
	Minimum              *float64             `json:"minimum"`
	Maximum              *float64             `json:"maximum"`
	Items                *jsonNode            `json:"items"`
	MinItems             *int                 `json:"minItems"`
	MaxItems             *int                 `json:"maxItems"`
	AnyOf                []*jsonNode          `json:"anyOf"`
	OneOf                []*jsonNode          `json:"oneOf"`
	AllOf                []*jsonNode          `json:"allOf"`
	Format               string               `json:"format"`
}

var (
	schemasOnce sync.Once
	schemas     map[string]*resourceSchema
	schemasErr  error
)

// loadSchemas parses the embedded schemas once.
func loadSchemas() (map[string]*resourceSchema, error) {
	schemasOnce.Do(func() {
		schemas = map[string]*resourceSchema{}
		entries, err := schemaFS.ReadDir("schemas")
		if err != nil {
			schemasErr = err
			return
		}
		for _, e := range entries {
			b, err := schemaFS.ReadFile("schemas/" + e.Name())
			if err != nil {
				schemasErr = err
				return
			}
			var s resourceSchema
			var root jsonNode
			if err := json.Unmarshal(b, &s); err != nil {
				schemasErr = fmt.Errorf("schema %s: %w", e.Name(), err)
				return
			}
			if err := json.Unmarshal(b, &root); err != nil {
				schemasErr = fmt.Errorf("schema %s: %w", e.Name(), err)
				return
			}
			s.root, s.attrs = &root, map[string]bool{}
			for _, p := range s.ReadOnlyProperties {
				s.attrs[strings.ReplaceAll(strings.TrimPrefix(p, "/properties/"), "/", ".")] = true
			}
			schemas[s.TypeName] = &s
		}
	})
	return schemas, schemasErr
}

// SchemaTypes lists the resource types with a vendored schema.
func SchemaTypes() []string {
	s, _ := loadSchemas()
	return sortedKeys(s)
}

// checker validates one resource's properties against its schema.
type checker struct {
	s        *resourceSchema
	findings []Finding
}

func (c *checker) addf(path, format string, a ...any) {
	c.findings = append(c.findings, Finding{Path: path, Message: fmt.Sprintf(format, a...)})
}

// isIntrinsic reports whether v is an intrinsic function call, which may
// stand for a value of any type: CloudFormation resolves it at deploy time.
func isIntrinsic(v any) bool {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false
	}
	for k := range m {
		return k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::")
	}
	return false
}

func (c *checker) resolve(n *jsonNode) *jsonNode {
	for i := 0; n != nil && n.Ref != "" && i < 16; i++ {
		name := strings.TrimPrefix(n.Ref, "#/definitions/")
		n = c.s.Definitions[name]
	}
	return n
}

// check validates v at path against n.
func (c *checker) check(path string, v any, n *jsonNode) {
	n = c.resolve(n)
	if n == nil || isIntrinsic(v) {
		return
	}
	if len(n.AnyOf) > 0 || len(n.OneOf) > 0 {
		alts := n.AnyOf
		if len(alts) == 0 {
			alts = n.OneOf
		}
		var best []Finding
		matched := false
		for _, alt := range alts {
			sub := &checker{s: c.s}
			sub.check(path, v, alt)
			if len(sub.findings) == 0 {
				matched = true
				break
			}
			if best == nil || len(sub.findings) < len(best) {
				best = sub.findings
			}
		}
		if !matched {
			c.addf(path, "matches none of the allowed shapes (closest: %s)", best[0].Message)
			return
		}
	}
	for _, a := range n.AllOf {
		c.check(path, v, a)
	}
	if !c.checkType(path, v, n) {
		return
	}
	if len(n.Enum) > 0 {
		ok := false
		for _, e := range n.Enum {
			if fmt.Sprint(e) == fmt.Sprint(v) {
				ok = true
			}
		}
		if !ok {
			var allowed []string
			for _, e := range n.Enum {
				allowed = append(allowed, fmt.Sprint(e))
			}
			c.addf(path, "value %q is not one of %s", fmt.Sprint(v), strings.Join(allowed, ", "))
		}
	}
	switch x := v.(type) {
	case string:
		c.checkString(path, x, n)
	case map[string]any:
		c.checkObject(path, x, n)
	case []any:
		if n.MinItems != nil && len(x) < *n.MinItems {
			c.addf(path, "has %d items, at least %d required", len(x), *n.MinItems)
		}
		if n.MaxItems != nil && len(x) > *n.MaxItems {
			c.addf(path, "has %d items, at most %d allowed", len(x), *n.MaxItems)
		}
		for i, item := range x {
			c.check(fmt.Sprintf("%s[%d]", path, i), item, n.Items)
		}
	}
	if f, ok := number(v); ok {
		if n.Minimum != nil && f < *n.Minimum {
			c.addf(path, "%v is below the minimum %v", f, *n.Minimum)
		}
		if n.Maximum != nil && f > *n.Maximum {
			c.addf(path, "%v is above the maximum %v", f, *n.Maximum)
		}
	}
}

// number reads a JSON number, or a string CloudFormation would convert.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

func types(n *jsonNode) []string {
	switch t := n.Type.(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, x := range t {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return nil
}

// checkType reports whether v has one of n's types. Like CloudFormation,
// it accepts strings for numbers and booleans ("10", "true"), and scalars
// for strings.
func (c *checker) checkType(path string, v any, n *jsonNode) bool {
	ts := types(n)
	if len(ts) == 0 {
		return true
	}
	for _, t := range ts {
		if hasType(v, t) {
			return true
		}
	}
	c.addf(path, "is %s, want %s", kind(v), strings.Join(ts, " or "))
	return false
}

func hasType(v any, t string) bool {
	switch t {
	case "string":
		switch v.(type) {
		case string, int, float64, json.Number, bool:
			return true
		}
	case "integer":
		if f, ok := number(v); ok {
			return f == math.Trunc(f)
		}
		if s, ok := v.(string); ok {
			_, err := strconv.Atoi(s)
			return err == nil
		}
	case "number":
		if _, ok := number(v); ok {
			return true
		}
		if s, ok := v.(string); ok {
			_, err := strconv.ParseFloat(s, 64)
			return err == nil
		}
	case "boolean":
		switch x := v.(type) {
		case bool:
			return true
		case string:
			return x == "true" || x == "false"
		}
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	}
	return false
}

func kind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case nil:
		return "null"
	}
	if _, ok := number(v); ok {
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

func (c *checker) checkString(path, s string, n *jsonNode) {
	if n.MinLength != nil && len(s) < *n.MinLength {
		c.addf(path, "is %d characters, at least %d required", len(s), *n.MinLength)
	}
	if n.MaxLength != nil && len(s) > *n.MaxLength {
		c.addf(path, "is %d characters, at most %d allowed", len(s), *n.MaxLength)
	}
	if n.Pattern != "" {
		cached, ok := patterns.Load(n.Pattern)
		if !ok {
			// Registry patterns are ECMAScript regular expressions; the
			// few RE2 cannot compile (look-arounds) are skipped.
			re, _ := regexp.Compile(n.Pattern)
			cached, _ = patterns.LoadOrStore(n.Pattern, re)
		}
		re := cached.(*regexp.Regexp)
		if re != nil && !re.MatchString(s) {
			c.addf(path, "value %q does not match the pattern %s", s, n.Pattern)
		}
	}
	switch n.Format {
	case "ipv4-network":
		if p, err := netip.ParsePrefix(s); err != nil || !p.Addr().Is4() {
			c.addf(path, "value %q is not an IPv4 CIDR block", s)
		}
	case "ipv4":
		if a, err := netip.ParseAddr(s); err != nil || !a.Is4() {
			c.addf(path, "value %q is not an IPv4 address", s)
		}
	}
}

func (c *checker) checkObject(path string, m map[string]any, n *jsonNode) {
	for _, r := range n.Required {
		if _, ok := m[r]; !ok {
			c.addf(join2(path, r), "required property is missing")
		}
	}
	if len(n.RequiredXor) > 0 {
		var set []string
		for _, k := range n.RequiredXor {
			if _, ok := m[k]; ok {
				set = append(set, k)
			}
		}
		if len(set) != 1 {
			c.addf(path, "exactly one of %s is required, have %d", strings.Join(n.RequiredXor, ", "), len(set))
		}
	}
	for k, deps := range n.DependentRequired {
		if _, ok := m[k]; !ok {
			continue
		}
		for _, d := range deps {
			if _, ok := m[d]; !ok {
				c.addf(join2(path, d), "required when %s is set", k)
			}
		}
	}
	for k, excl := range n.DependentExcluded {
		if _, ok := m[k]; !ok {
			continue
		}
		for _, d := range excl {
			if _, ok := m[d]; ok {
				c.addf(join2(path, d), "must not be set together with %s", k)
			}
		}
	}
	keys := sortedKeys(m)
	for _, k := range keys {
		v := m[k]
		p := join2(path, k)
		if ps, ok := n.Properties[k]; ok {
			c.check(p, v, ps)
			continue
		}
		matched := false
		for pat, ps := range n.PatternProperties {
			if re, err := regexp.Compile(pat); err == nil && re.MatchString(k) {
				c.check(p, v, ps)
				matched = true
			}
		}
		if matched {
			continue
		}
		switch ap := n.AdditionalProperties.(type) {
		case bool:
			if !ap {
				c.addf(p, "unknown property%s", didYouMean(k, n.Properties))
			}
		case map[string]any:
			b, _ := json.Marshal(ap)
			var sub jsonNode
			if json.Unmarshal(b, &sub) == nil {
				c.check(p, v, &sub)
			}
		}
	}
}

// didYouMean names the closest known property, for typos.
func didYouMean(k string, props map[string]*jsonNode) string {
	if best := suggest.Closest(k, sortedKeys(props)); best != "" {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	return ""
}

func join2(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}
