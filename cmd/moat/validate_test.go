package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidateExample(t *testing.T) {
	stdout, stderr, code := runBin(t, "validate", exampleFile)
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "is valid") {
		t.Errorf("stdout %q", stdout)
	}
}

// TestValidateMustShow is issue 2's "must show": a subnet outside the VPC, a
// misspelt group reference and an unknown key are all reported, each with
// file:line:column and a fix hint, and moat exits 3.
func TestValidateMustShow(t *testing.T) {
	path := copyExample(t,
		"  nat: single\n", `  nat: single
  subnets:
    - {name: public-a, zone: a, type: public, cidr: 10.0.0.0/24}
    - {name: public-b, zone: b, type: public, cidr: 10.0.1.0/24}
    - {name: private-a, zone: a, type: private, cidr: 10.0.128.0/24}
    - {name: private-b, zone: b, type: private, cidr: 10.1.0.0/24}
`,
		"port: 8000, group: lb}", "port: 8000, group: lbb}",
		"    healthCheckType: ELB", "    healthCheckTyp: ELB",
	)
	_, stderr, code := runBin(t, "validate", path)
	if code != exitInvalid {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitInvalid, stderr)
	}
	for _, want := range []struct{ at, msg, fix string }{
		{lineOf(t, path, "10.1.0.0/24"), "vpc.subnets[3].cidr: subnet private-b (10.1.0.0/24) is outside the VPC block 10.0.0.0/16", "fix: choose a block inside 10.0.0.0/16"},
		{lineOf(t, path, "lbb}"), `securityGroups[2].ingress[0].group: security group "lbb" is not defined`, `fix: did you mean "lb"?`},
		{lineOf(t, path, "healthCheckTyp:"), `autoScalingGroups[0].healthCheckTyp: unknown field "healthCheckTyp"`, `fix: did you mean "healthCheckType"?`},
	} {
		line := path + ":" + want.at + ": " + want.msg + "\n    " + want.fix
		if !strings.Contains(stderr, line) {
			t.Errorf("stderr lacks\n%s\ngot:\n%s", line, stderr)
		}
	}
	if !strings.Contains(stderr, "3 errors") {
		t.Errorf("stderr lacks the count:\n%s", stderr)
	}
}

func TestValidateJSON(t *testing.T) {
	path := copyExample(t, "port: 8000, group: lb}", "port: 8000, group: lbb}")
	stdout, _, code := run(t, "validate", "-o", "json", "-f", path)
	if code != exitInvalid {
		t.Fatalf("exit %d", code)
	}
	var ps []struct {
		Severity string `json:"severity"`
		Position struct {
			File         string
			Line, Column int
		} `json:"position"`
		Path, Message, Hint string
	}
	if err := json.Unmarshal([]byte(stdout), &ps); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	// Only the error: the misspelling does not also raise a reachability warning.
	if len(ps) != 1 || ps[0].Severity != "error" || ps[0].Path != "securityGroups[2].ingress[0].group" ||
		ps[0].Position.Line == 0 || ps[0].Hint == "" {
		t.Errorf("got %+v", ps)
	}
	// A valid file gives an empty list, not null.
	stdout, _, code = run(t, "validate", "-o", "json", exampleFile)
	if code != exitOK || strings.TrimSpace(stdout) != "[]" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
}

func TestValidateFileLookup(t *testing.T) {
	path := copyExample(t)
	t.Setenv("MOAT_FILE", path)
	if _, stderr, code := run(t, "validate"); code != exitOK {
		t.Errorf("MOAT_FILE: exit %d: %s", code, stderr)
	}
	t.Setenv("MOAT_FILE", "")
	t.Chdir(t.TempDir())
	_, stderr, code := run(t, "validate")
	if code != exitInvalid || !strings.Contains(stderr, "moat.yaml") {
		t.Errorf("no file: exit %d: %s", code, stderr)
	}
}

// TestValidateBackwardsMatcher: a health check matcher whose range runs
// from high to low ("299-200" matches no code: every target would be
// unhealthy at run time) is refused by moat validate and moat template,
// with file:line:column and the range turned round as the fix.
func TestValidateBackwardsMatcher(t *testing.T) {
	path := copyExample(t, "      unhealthyThreshold: 2\n", "      unhealthyThreshold: 2\n      matcher: \"299-200\"\n")
	line := path + ":" + lineOf(t, path, `"299-200"`) + `: targetGroups[0].healthCheck.matcher: matcher range "299-200" runs from high to low and matches no code` +
		"\n    " + `fix: write the range low to high: "200-299"`
	for _, args := range [][]string{{"validate", path}, {"template", "-f", path}} {
		_, stderr, code := runBin(t, args...)
		if code != exitInvalid {
			t.Errorf("moat %s: exit %d, want %d; stderr:\n%s", args[0], code, exitInvalid, stderr)
		}
		if !strings.Contains(stderr, line) {
			t.Errorf("moat %s: stderr lacks\n%s\ngot:\n%s", args[0], line, stderr)
		}
	}
}
