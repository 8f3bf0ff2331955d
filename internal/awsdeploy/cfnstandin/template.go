// Templates: parsing, change set diffs (with replacements), and the made-up
// values of outputs.

package cfnstandin

import (
	"encoding/json"

	"fmt"
	"github.com/moat-dev/moat/internal/awscfn"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

func parseTemplate(body []byte) (*template, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(body, &root); err != nil {
		return nil, err
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("template is not an object")
	}
	t := &template{body: body, resources: map[string]resource{}, params: map[string]param{}}
	top := root.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		key, val := top.Content[i].Value, top.Content[i+1]
		switch key {
		case "Resources":
			for j := 0; j+1 < len(val.Content); j += 2 {
				id := val.Content[j].Value
				var r struct {
					Type       string         `yaml:"Type"`
					Properties map[string]any `yaml:"Properties"`
				}
				if err := val.Content[j+1].Decode(&r); err != nil {
					return nil, fmt.Errorf("resource %s: %v", id, err)
				}
				if r.Type == "" {
					return nil, fmt.Errorf("[/Resources/%s] Every Resources object must contain a Type member.", id)
				}
				t.order = append(t.order, id)
				t.resources[id] = resource{typ: r.Type, props: r.Properties}
			}
		case "Parameters":
			for j := 0; j+1 < len(val.Content); j += 2 {
				var p struct {
					Default     *string `yaml:"Default"`
					Description string  `yaml:"Description"`
				}
				if err := val.Content[j+1].Decode(&p); err != nil {
					return nil, fmt.Errorf("parameter %s: %v", val.Content[j].Value, err)
				}
				pp := param{hasDefault: p.Default != nil, desc: p.Description}
				if p.Default != nil {
					pp.def = *p.Default
				}
				t.params[val.Content[j].Value] = pp
			}
		case "Outputs":
			for j := 0; j+1 < len(val.Content); j += 2 {
				var o struct {
					Description string `yaml:"Description"`
					Value       any    `yaml:"Value"`
				}
				if err := val.Content[j+1].Decode(&o); err != nil {
					return nil, fmt.Errorf("output %s: %v", val.Content[j].Value, err)
				}
				t.outputs = append(t.outputs, outputDef{name: val.Content[j].Value, desc: o.Description, value: o.Value})
			}
		}
	}
	if len(t.order) == 0 {
		return nil, fmt.Errorf("At least one Resources member must be defined.")
	}
	return t, nil
}

// capability returns the capability the template needs, if any.
func (t *template) capability() string {
	need := ""
	for _, r := range t.resources {
		if !strings.HasPrefix(r.typ, "AWS::IAM::") {
			continue
		}
		need = "CAPABILITY_IAM"
		for _, n := range []string{"RoleName", "InstanceProfileName", "UserName", "GroupName", "ManagedPolicyName"} {
			if _, ok := r.props[n]; ok {
				return "CAPABILITY_NAMED_IAM"
			}
		}
	}
	return need
}

// resolveParams replaces {"Ref": parameter} with the parameter's value.
func resolveParams(v any, params map[string]string) any {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["Ref"].(string); ok && len(x) == 1 {
			if p, ok := params[ref]; ok {
				return p
			}
		}
		out := map[string]any{}
		for k, vv := range x {
			out[k] = resolveParams(vv, params)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, vv := range x {
			out[i] = resolveParams(vv, params)
		}
		return out
	}
	return v
}

// diff compares the deployed template with a new one, as a change set does.
func diff(oldT *template, oldParams map[string]string, newT *template, newParams map[string]string) []change {
	var out []change
	for _, id := range newT.order {
		nr := newT.resources[id]
		if oldT == nil {
			out = append(out, change{"Add", id, nr.typ, ""})
			continue
		}
		or, ok := oldT.resources[id]
		switch {
		case !ok:
			out = append(out, change{"Add", id, nr.typ, ""})
		case or.typ != nr.typ:
			out = append(out, change{"Modify", id, nr.typ, "True"})
		default:
			op, np := resolveParams(or.props, oldParams), resolveParams(nr.props, newParams)
			switch {
			case reflect.DeepEqual(op, np):
			case replaces(nr.typ, op, np):
				out = append(out, change{"Modify", id, nr.typ, "True"})
			default:
				out = append(out, change{"Modify", id, nr.typ, "False"})
			}
		}
	}
	if oldT != nil {
		for _, id := range oldT.order {
			if _, ok := newT.resources[id]; !ok {
				out = append(out, change{"Remove", id, oldT.resources[id].typ, ""})
			}
		}
	}
	return out
}

// replaces reports whether a change of a resource's properties replaces it:
// whether a create-only property of its type (from AWS's provider schema)
// changed.
func replaces(typ string, oldProps, newProps any) bool {
	paths, _ := awscfn.CreateOnlyProperties(typ)
	for _, p := range paths {
		if !reflect.DeepEqual(lookup(oldProps, p), lookup(newProps, p)) {
			return true
		}
	}
	return false
}

// lookup returns the value at a path ("A/B") below a resource's properties.
func lookup(v any, path string) any {
	for _, k := range strings.Split(path, "/") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// nameProperty is the property that gives a resource type its physical
// name: a resource that sets it is custom-named, and CloudFormation cannot
// replace it under the same name (the new resource is made before the old
// one is deleted, and the name is taken).
var nameProperty = map[string]string{
	"AWS::EC2::KeyPair":                         "KeyName",
	"AWS::EC2::SecurityGroup":                   "GroupName",
	"AWS::EC2::LaunchTemplate":                  "LaunchTemplateName",
	"AWS::ElasticLoadBalancingV2::LoadBalancer": "Name",
	"AWS::ElasticLoadBalancingV2::TargetGroup":  "Name",
	"AWS::AutoScaling::AutoScalingGroup":        "AutoScalingGroupName",
	"AWS::IAM::Role":                            "RoleName",
	"AWS::IAM::InstanceProfile":                 "InstanceProfileName",
	"AWS::CloudWatch::Alarm":                    "AlarmName",
}

// customName returns the name a replacement would reuse: the resource's
// name property when the old and new templates give it the same value.
func (s *Server) customName(st *stack, typ string, oldProps, newProps map[string]any, newParams map[string]string) (string, bool) {
	prop, ok := nameProperty[typ]
	if !ok || oldProps[prop] == nil || newProps[prop] == nil {
		return "", false
	}
	oldName := s.eval(st, resolveParams(oldProps[prop], st.params))
	newName := s.eval(st, resolveParams(newProps[prop], newParams))
	return oldName, oldName == newName
}

func (s *Server) resolveOutputs(st *stack) [][3]string {
	var out [][3]string
	for _, o := range st.tmpl.outputs {
		out = append(out, [3]string{o.name, s.eval(st, o.value), o.desc})
	}
	return out
}

var subRE = regexp.MustCompile(`\$\{([^}]+)\}`)

// eval gives an output value a made-up but recognisable string.
func (s *Server) eval(st *stack, v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if ref, ok := x["Ref"].(string); ok {
			return s.ref(st, ref)
		}
		if ga, ok := x["Fn::GetAtt"]; ok {
			parts := getAttParts(ga)
			return s.getAtt(st, parts[0], parts[1])
		}
		if sub, ok := x["Fn::Sub"]; ok {
			var str string
			vars := map[string]any{}
			switch y := sub.(type) {
			case string:
				str = y
			case []any:
				str, _ = y[0].(string)
				if len(y) > 1 {
					vars, _ = y[1].(map[string]any)
				}
			}
			return subRE.ReplaceAllStringFunc(str, func(m string) string {
				name := m[2 : len(m)-1]
				if v, ok := vars[name]; ok {
					return s.eval(st, v)
				}
				if a, b, ok := strings.Cut(name, "."); ok {
					return s.getAtt(st, a, b)
				}
				return s.ref(st, name)
			})
		}
		if j, ok := x["Fn::Join"].([]any); ok && len(j) == 2 {
			sep, _ := j[0].(string)
			items, _ := j[1].([]any)
			var parts []string
			for _, it := range items {
				parts = append(parts, s.eval(st, it))
			}
			return strings.Join(parts, sep)
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func getAttParts(v any) [2]string {
	switch y := v.(type) {
	case string:
		a, b, _ := strings.Cut(y, ".")
		return [2]string{a, b}
	case []any:
		if len(y) == 2 {
			a, _ := y[0].(string)
			b, _ := y[1].(string)
			return [2]string{a, b}
		}
	}
	return [2]string{"?", "?"}
}

func (s *Server) ref(st *stack, name string) string {
	switch name {
	case "AWS::Region":
		return "us-east-1"
	case "AWS::AccountId":
		return Account
	case "AWS::StackName":
		return st.name
	}
	if p, ok := st.params[name]; ok {
		return p
	}
	if p, ok := st.physical[name]; ok {
		return p
	}
	return name
}

func (s *Server) getAtt(st *stack, id, attr string) string {
	if attr == "PublicIp" {
		return "192.0.2.10" // TEST-NET-1: documentation addresses, never routed
	}
	return strings.ToLower(id+"."+attr) + ".standin.invalid"
}
