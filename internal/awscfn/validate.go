package awscfn

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// pseudoParameters are the parameters every stack has.
var pseudoParameters = map[string]bool{
	"AWS::AccountId": true, "AWS::NotificationARNs": true, "AWS::NoValue": true, "AWS::Partition": true,
	"AWS::Region": true, "AWS::StackId": true, "AWS::StackName": true, "AWS::URLSuffix": true,
}

var logicalID = regexp.MustCompile(`^[A-Za-z0-9]{1,255}$`)

// validator holds the template's index for the rules.
type validator struct {
	t        *Template
	res      map[string]*Resource
	params   map[string]bool
	schemas  map[string]*resourceSchema
	findings []Finding
}

func (v *validator) addf(path, format string, a ...any) {
	v.findings = append(v.findings, Finding{Path: path, Message: fmt.Sprintf(format, a...)})
}

// validate runs every rule over the template: the template's own quotas
// and names, each resource against its provider schema (schema.go), then
// the rule families, one file each: references and cycles
// (validate_refs.go), the network (validate_network.go), security groups
// (validate_security.go), images (validate_images.go) and scaling
// (validate_scaling.go).
func validate(t *Template) []Finding {
	v := &validator{t: t, res: map[string]*Resource{}, params: map[string]bool{}}
	s, err := loadSchemas()
	if err != nil {
		return []Finding{{Path: "(schemas)", Message: err.Error()}}
	}
	v.schemas = s
	for _, p := range t.Parameters {
		if !logicalID.MatchString(p.Name) {
			v.addf(fmt.Sprintf("Parameters[%q]", p.Name), "parameter name must be 1-255 letters and digits")
		}
		v.params[p.Name] = true
	}
	for i := range t.Resources {
		r := &t.Resources[i]
		if !logicalID.MatchString(r.ID) {
			v.addf(fmt.Sprintf("Resources[%q]", r.ID), "logical id must be 1-255 letters and digits")
		}
		if _, dup := v.res[r.ID]; dup || v.params[r.ID] {
			v.addf(r.ID, "logical id is used twice")
		}
		v.res[r.ID] = r
	}
	if len(t.Resources) == 0 {
		v.addf("Resources", "a template needs at least one resource")
	}
	// CloudFormation's quotas per template.
	if n := len(t.Description); n > 1024 {
		v.addf("Description", "%d bytes; CloudFormation takes at most 1024", n)
	}
	if n := len(t.Resources); n > 500 {
		v.addf("Resources", "%d resources; CloudFormation takes at most 500 per template", n)
	}
	if n := len(t.Parameters); n > 200 {
		v.addf("Parameters", "%d parameters; CloudFormation takes at most 200", n)
	}
	if n := len(t.Outputs); n > 200 {
		v.addf("Outputs", "%d outputs; CloudFormation takes at most 200", n)
	}
	for _, o := range t.Outputs {
		if !logicalID.MatchString(o.Name) {
			v.addf(fmt.Sprintf("Outputs[%q]", o.Name), "output name must be 1-255 letters and digits")
		}
	}
	if b, err := t.JSON(); err == nil && len(b) > 1_000_000 {
		v.addf("(template)", "%d bytes; CloudFormation takes at most 1,000,000 (from S3)", len(b))
	}
	for i := range t.Resources {
		v.schema(&t.Resources[i])
	}
	v.references()
	v.cycles()
	v.subnetsInVPC()
	v.zones()
	v.loadBalancers()
	v.ruleDescriptions()
	v.imageArchitectures()
	v.targetPorts()
	v.resourceLabels()
	sort.SliceStable(v.findings, func(i, j int) bool { return v.findings[i].Path < v.findings[j].Path })
	return v.findings
}

// schema checks a resource's properties against its provider schema.
func (v *validator) schema(r *Resource) {
	s, ok := v.schemas[r.Type]
	if !ok {
		v.addf(r.ID+".Type", "resource type %s has no vendored schema (unknown type, or add it to schemas/refresh.py)", r.Type)
		return
	}
	c := &checker{s: s}
	props := map[string]any(r.Properties)
	if props == nil {
		props = map[string]any{}
	}
	// Normalise to what the JSON decoder produces, so a rendered template
	// and a parsed one are checked alike.
	c.check(r.ID+".Properties", normalise(props), s.root)
	for _, ro := range s.ReadOnlyProperties {
		name := strings.TrimPrefix(ro, "/properties/")
		if strings.Contains(name, "/") {
			continue
		}
		if _, set := props[name]; set {
			// Read-only properties are outputs (GetAtt), not inputs.
			if _, declared := s.root.Properties[name]; declared {
				c.addf(r.ID+".Properties."+name, "is read-only: CloudFormation sets it")
			}
		}
	}
	v.findings = append(v.findings, c.findings...)
}

// normalise round-trips a value through JSON (ints become json.Number).
func normalise(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		return m
	}
	var out map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if dec.Decode(&out) != nil {
		return m
	}
	return out
}

// refTarget returns the logical id v refers to (Ref or GetAtt), if any.
func refTarget(v any) string {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return ""
	}
	if s, ok := m["Ref"].(string); ok {
		return s
	}
	if a, ok := m["Fn::GetAtt"]; ok {
		id, _ := getAttArgs(a)
		return id
	}
	return ""
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	}
	return nil
}

func (v *validator) ofType(typ string) []*Resource {
	var out []*Resource
	for i := range v.t.Resources {
		if v.t.Resources[i].Type == typ {
			out = append(out, &v.t.Resources[i])
		}
	}
	// By id, so findings do not depend on the order of the resources.
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func contains(s []string, x string) bool {
	for _, e := range s {
		if e == x {
			return true
		}
	}
	return false
}
