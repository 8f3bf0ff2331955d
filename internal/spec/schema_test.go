package spec

import (
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"testing"

	"github.com/invopop/jsonschema"
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
