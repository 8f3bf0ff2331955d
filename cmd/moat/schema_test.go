package main

import (
	"encoding/json"
	"testing"
)

func TestSchemaCommand(t *testing.T) {
	stdout, stderr, code := run(t, "schema")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		Schema string                     `json:"$schema"`
		Ref    string                     `json:"$ref"`
		Defs   map[string]json.RawMessage `json:"$defs"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Schema != "https://json-schema.org/draft/2020-12/schema" || doc.Ref != "#/$defs/Stack" || doc.Defs["LoadBalancer"] == nil {
		t.Errorf("schema %s ref %s defs %d", doc.Schema, doc.Ref, len(doc.Defs))
	}
	if _, _, code := run(t, "schema", "extra"); code == exitOK {
		t.Error("an argument was accepted")
	}
}
