package awscfn

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"go.yaml.in/yaml/v3"
)

// kv is one key of an ordered JSON object.
type kv struct {
	k string
	v any
}

// ordered is a JSON object that keeps its keys in insertion order.
type ordered []kv

func (o ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := marshal(e.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := marshal(e.v)
		if err != nil {
			return nil, fmt.Errorf("marshal %s: %w", e.k, err)
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshal is json.Marshal without HTML escaping, so user data scripts
// read as written (<<'EOF', &&, >).
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// indent renders v as indented JSON without HTML escaping.
func indent(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// doc is the template as CloudFormation reads it, in a fixed order:
// parameters, resources and outputs as rendered; properties sorted by name.
func (t *Template) doc() ordered {
	d := ordered{{"AWSTemplateFormatVersion", "2010-09-09"}}
	if t.Description != "" {
		d = append(d, kv{"Description", t.Description})
	}
	if len(t.Parameters) > 0 {
		var ps ordered
		for _, p := range t.Parameters {
			po := ordered{{"Type", p.Type}}
			if p.Default != "" {
				po = append(po, kv{"Default", p.Default})
			}
			if p.Description != "" {
				po = append(po, kv{"Description", p.Description})
			}
			ps = append(ps, kv{p.Name, po})
		}
		d = append(d, kv{"Parameters", ps})
	}
	var rs ordered
	for _, r := range t.Resources {
		ro := ordered{{"Type", r.Type}}
		if len(r.DependsOn) > 0 {
			ro = append(ro, kv{"DependsOn", r.DependsOn})
		}
		if len(r.Properties) > 0 {
			ro = append(ro, kv{"Properties", r.Properties})
		}
		if r.CreationPolicy != nil {
			ro = append(ro, kv{"CreationPolicy", r.CreationPolicy})
		}
		if r.UpdatePolicy != nil {
			ro = append(ro, kv{"UpdatePolicy", r.UpdatePolicy})
		}
		rs = append(rs, kv{r.ID, ro})
	}
	d = append(d, kv{"Resources", rs})
	if len(t.Outputs) > 0 {
		var os ordered
		for _, o := range t.Outputs {
			oo := ordered{}
			if o.Description != "" {
				oo = append(oo, kv{"Description", o.Description})
			}
			oo = append(oo, kv{"Value", o.Value})
			os = append(os, kv{o.Name, oo})
		}
		d = append(d, kv{"Outputs", os})
	}
	return d
}

// yaml converts the JSON rendering (YAML is a superset of JSON, so the
// decoder keeps the order) to block-style YAML. Intrinsic functions keep
// their long form (Fn::GetAtt: [...]), which every YAML tool reads.
func (t *Template) yaml() ([]byte, error) {
	j, err := t.JSON()
	if err != nil {
		return nil, err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(j, &n); err != nil {
		return nil, fmt.Errorf("render YAML: %w", err)
	}
	blockStyle(&n)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("render YAML: %w", err)
	}
	return b.Bytes(), nil
}

// blockStyle drops the flow and quoting styles JSON implies; the encoder
// still quotes strings that would otherwise read as numbers or booleans,
// and uses literal blocks for multi-line strings such as user data.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && bytes.ContainsRune([]byte(n.Value), '\n') {
		n.Style = yaml.LiteralStyle
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

var templateSections = map[string]bool{
	"AWSTemplateFormatVersion": true, "Description": true, "Metadata": true, "Parameters": true, "Rules": true,
	"Mappings": true, "Conditions": true, "Transform": true, "Resources": true, "Outputs": true,
}

// ParseJSON reads a template rendered by JSON back (for tests and for
// validating a template file). Resources, parameters and outputs come back
// sorted by logical id.
func ParseJSON(b []byte) (*Template, error) {
	var raw struct {
		Description string
		Parameters  map[string]struct{ Type, Default, Description string }
		Resources   map[string]struct {
			Type           string
			Properties     map[string]any
			DependsOn      any
			UpdatePolicy   map[string]any
			CreationPolicy map[string]any
		}
		Outputs map[string]struct {
			Description string
			Value       any
		}
	}
	// Template sections are case-sensitive; encoding/json is not.
	var sections map[string]json.RawMessage
	if err := json.Unmarshal(b, &sections); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	for k := range sections {
		if !templateSections[k] {
			return nil, fmt.Errorf("parse template: unknown section %q", k)
		}
	}
	if _, ok := sections["Resources"]; !ok {
		return nil, fmt.Errorf("parse template: no Resources section")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	t := &Template{Description: raw.Description}
	for _, name := range sortedKeys(raw.Parameters) {
		p := raw.Parameters[name]
		t.Parameters = append(t.Parameters, Parameter{Name: name, Type: p.Type, Default: p.Default, Description: p.Description})
	}
	for _, id := range sortedKeys(raw.Resources) {
		r := raw.Resources[id]
		res := Resource{ID: id, Type: r.Type, Properties: r.Properties, UpdatePolicy: r.UpdatePolicy, CreationPolicy: r.CreationPolicy}
		switch d := r.DependsOn.(type) {
		case string:
			res.DependsOn = []string{d}
		case []any:
			for _, x := range d {
				if s, ok := x.(string); ok {
					res.DependsOn = append(res.DependsOn, s)
				}
			}
		}
		t.Resources = append(t.Resources, res)
	}
	for _, name := range sortedKeys(raw.Outputs) {
		o := raw.Outputs[name]
		t.Outputs = append(t.Outputs, Output{Name: name, Description: o.Description, Value: o.Value})
	}
	return t, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
