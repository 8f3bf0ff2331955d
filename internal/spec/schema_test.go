package spec

import (
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/invopop/jsonschema"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite generated files in the package directory")

// TestSchemaComments keeps schema_comments.json in step with the doc
// comments in the source; -update rewrites it.
func TestSchemaComments(t *testing.T) {
	r := &jsonschema.Reflector{}
	if err := r.AddGoComments("github.com/moat-dev/moat/internal/spec", "."); err != nil {
		t.Fatal(err)
	}
	want, err := json.MarshalIndent(r.CommentMap, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *update {
		if err := os.WriteFile("schema_comments.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	var got, wantMap map[string]string
	if err := json.Unmarshal(schemaComments, &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(want, &wantMap)
	if !reflect.DeepEqual(got, wantMap) {
		t.Error("schema_comments.json is out of date: run go test ./internal/spec -run TestSchemaComments -update")
	}
}

// schemaDoc is the schema as plain JSON, to walk it as an editor would.
func schemaDoc(t *testing.T) map[string]any {
	t.Helper()
	b, err := json.Marshal(Schema())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestSchemaStructure(t *testing.T) {
	doc := schemaDoc(t)
	if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" || doc["$id"] != SchemaID {
		t.Errorf("$schema %v $id %v", doc["$schema"], doc["$id"])
	}
	defs := doc["$defs"].(map[string]any)
	def := func(name string) map[string]any {
		d, ok := defs[name].(map[string]any)
		if !ok {
			t.Fatalf("no $defs.%s", name)
		}
		return d
	}
	stack := def("Stack")
	if stack["additionalProperties"] != false {
		t.Error("Stack admits additional properties")
	}
	for _, c := range []struct {
		def      string
		required []string
	}{
		{"Stack", []string{"name", "vpc"}},
		{"VPC", []string{"cidr", "zones"}},
		{"Subnet", []string{"name", "zone", "type", "cidr"}},
		{"LaunchTemplate", []string{"name", "command", "port", "securityGroups"}},
		{"AutoScalingGroup", []string{"name", "launchTemplate", "subnets", "minSize", "maxSize"}},
	} {
		var got []string
		for _, r := range def(c.def)["required"].([]any) {
			got = append(got, r.(string))
		}
		if !reflect.DeepEqual(got, c.required) {
			t.Errorf("%s required %v, want %v", c.def, got, c.required)
		}
	}
	props := func(d string) map[string]any { return def(d)["properties"].(map[string]any) }
	for _, c := range []struct {
		def, field string
		enum       []any
	}{
		{"VPC", "nat", []any{"none", "single", "per-zone"}},
		{"Subnet", "type", []any{"public", "private"}},
		{"AutoScalingGroup", "healthCheckType", []any{"EC2", "ELB"}},
		{"TargetGroup", "algorithm", []any{"round_robin", "least_outstanding_requests", "weighted_random"}},
	} {
		if got := props(c.def)[c.field].(map[string]any)["enum"]; !reflect.DeepEqual(got, c.enum) {
			t.Errorf("%s.%s enum %v, want %v", c.def, c.field, got, c.enum)
		}
	}
	// Field names are the YAML ones and carry the doc comments.
	if d, _ := props("Stack")["securityGroups"].(map[string]any); d == nil {
		t.Error("Stack has no securityGroups property")
	}
	if desc, _ := props("VPC")["cidr"].(map[string]any)["description"].(string); desc == "" {
		t.Error("vpc.cidr has no description")
	}
	if port := def("PortRange"); port["oneOf"] == nil {
		t.Errorf("port range schema %v", port)
	}
}

// TestExampleMatchesSchema checks the example against the schema's
// properties, required fields and enums: a small subset of JSON Schema,
// enough to catch a schema that would flag a valid file in an editor.
func TestExampleMatchesSchema(t *testing.T) {
	doc := schemaDoc(t)
	defs := doc["$defs"].(map[string]any)
	var src any
	if err := yaml.Unmarshal([]byte(example(t)), &src); err != nil {
		t.Fatal(err)
	}
	var check func(path string, v any, s map[string]any)
	check = func(path string, v any, s map[string]any) {
		if ref, ok := s["$ref"].(string); ok {
			s = defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		}
		if enum, ok := s["enum"].([]any); ok {
			found := false
			for _, e := range enum {
				found = found || e == v
			}
			if !found {
				t.Errorf("%s: %v not in %v", path, v, enum)
			}
		}
		switch v := v.(type) {
		case map[string]any:
			props, _ := s["properties"].(map[string]any)
			for k, child := range v {
				if props == nil {
					if ap, ok := s["additionalProperties"].(map[string]any); ok {
						check(path+"."+k, child, ap)
					}
					continue
				}
				ps, ok := props[k].(map[string]any)
				if !ok {
					t.Errorf("%s.%s: not in the schema", path, k)
					continue
				}
				check(path+"."+k, child, ps)
			}
			req, _ := s["required"].([]any)
			for _, r := range req {
				if _, ok := v[r.(string)]; !ok {
					t.Errorf("%s: required %s missing", path, r)
				}
			}
		case []any:
			items, _ := s["items"].(map[string]any)
			for i, child := range v {
				if items != nil {
					check(path+"["+strconv.Itoa(i)+"]", child, items)
				}
			}
		}
	}
	check("", src, defs["Stack"].(map[string]any))
}
