package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is replaced by this placeholder in golden files, so they do not
// depend on where the repository is checked out.
const repoPlaceholder = "$REPO"

var versionRE = regexp.MustCompile(`"version": "[0-9a-f]+"`)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string, equal func(got, want string) bool) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/moat -run %s -update)", err, t.Name())
	}
	if !equal(got, string(want)) {
		t.Errorf("%s differs from the golden file; if the change is intended, run go test ./cmd/moat -run %s -update\ngot:\n%s", path, t.Name(), got)
	}
}

func TestPlanGoldenText(t *testing.T) {
	stdout, stderr, code := run(t, "plan", "-f", exampleFile)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden(t, "plan.golden.txt", strings.ReplaceAll(stdout, repoRoot(t), repoPlaceholder),
		func(got, want string) bool { return got == want })
}

func TestPlanGoldenJSON(t *testing.T) {
	stdout, stderr, code := run(t, "plan", "-f", exampleFile, "-o", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// Paths are JSON strings; the root has no characters JSON escapes. A
	// launch template's version hashes its absolute files directory, so it
	// too depends on the checkout; it is tested in package plan.
	got := strings.ReplaceAll(stdout, repoRoot(t), repoPlaceholder)
	got = versionRE.ReplaceAllString(got, `"version": "$$VERSION"`)
	golden(t, "plan.golden.json", got, func(got, want string) bool {
		var g, w any
		if err := json.Unmarshal([]byte(got), &g); err != nil {
			t.Fatalf("output is not JSON: %v", err)
		}
		if err := json.Unmarshal([]byte(want), &w); err != nil {
			t.Fatalf("golden file is not JSON: %v", err)
		}
		return reflect.DeepEqual(g, w)
	})
}

// TestPlanJSONListsEverything is the "must show": the JSON plan
// lists every subnet, security group rule and endpoint.
func TestPlanJSONListsEverything(t *testing.T) {
	stdout, _, code := run(t, "plan", "-f", exampleFile, "-o", "json")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	var p struct {
		Subnets []struct {
			Name, CIDR, Gateway string
		}
		SecurityGroups []struct {
			Name            string
			Ingress, Egress []struct{ Protocol string }
		}
		Endpoints []struct{ Kind, Name, Publish string }
	}
	if err := json.Unmarshal([]byte(stdout), &p); err != nil {
		t.Fatal(err)
	}
	rules := 0
	for _, g := range p.SecurityGroups {
		rules += len(g.Ingress) + len(g.Egress)
	}
	if len(p.Subnets) != 4 || len(p.SecurityGroups) != 3 || rules != 7 || len(p.Endpoints) != 4 {
		t.Errorf("%d subnets, %d groups, %d rules, %d endpoints", len(p.Subnets), len(p.SecurityGroups), rules, len(p.Endpoints))
	}
	for _, s := range p.Subnets {
		if s.CIDR == "" || s.Gateway == "" {
			t.Errorf("subnet %+v", s)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	path := copyExample(t, "port: 8000, group: lb}", "port: 8000, group: lbb}")
	_, stderr, code := run(t, "plan", "-f", path)
	if code != exitInvalid || !strings.Contains(stderr, `did you mean "lb"?`) {
		t.Errorf("invalid file: exit %d: %s", code, stderr)
	}
	_, stderr, code = run(t, "plan", "-f", exampleFile, "-o", "yaml")
	if code != exitUsage {
		t.Errorf("-o yaml: exit %d: %s", code, stderr)
	}
	// Warnings go to stderr and do not stop the plan.
	path = copyExample(t, "port: 8000, group: lb}", "port: 8001, group: lb}")
	stdout, stderr, code := run(t, "plan", "-f", path)
	if code != exitOK || !strings.Contains(stderr, "warning: ") || !strings.Contains(stdout, "SUBNET") {
		t.Errorf("warning: exit %d, stderr %s", code, stderr)
	}
}
