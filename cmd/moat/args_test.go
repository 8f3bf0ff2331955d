package main

import (
	"strings"
	"testing"
)

// TestWrongArgumentsAreUsageErrors: wrong positional arguments exit 2,
// like bad flags, and -f with a stack file on logs/events (where -f is
// --follow) gets a hint. An unknown command exits 2 too, at the root
// and under a group such as keypair.
func TestWrongArgumentsAreUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		hint string
	}{
		{[]string{"scale", "web"}, "accepts 2 arg(s)"},
		{[]string{"terminate"}, "arg"},
		{[]string{"logs", "i-0123456789abcdef0", "-f", "moat.yaml"}, "--file moat.yaml"},
		{[]string{"events", "-f", "stack.yml"}, "--file stack.yml"},
		{[]string{"reach", "bastion"}, "arg"},
		{[]string{"stauts"}, "did you mean status?"},
		{[]string{"psx"}, "did you mean ps or ssh?"},
		{[]string{"keypair", "lst"}, "did you mean list?"},
		{[]string{"keypair", "nonsense"}, "see moat keypair --help"},
		{[]string{"scale", "web", "-1"}, "a negative number such as -1 is not a valid argument"},
	}
	for _, c := range cases {
		if stubbed(c.args[0]) {
			continue
		}
		_, stderr, code := run(t, c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.hint) {
			t.Errorf("moat %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(c.args, " "), code, stderr, exitUsage, c.hint)
		}
	}
}

// TestGroupsWithoutArgumentsPrintHelp: moat and moat keypair alone still
// print their help and succeed.
func TestGroupsWithoutArgumentsPrintHelp(t *testing.T) {
	for _, args := range [][]string{{}, {"keypair"}} {
		stdout, stderr, code := run(t, args...)
		if code != exitOK || !strings.Contains(stdout, "Available Commands:") {
			t.Errorf("moat %s: exit %d, stdout %q, stderr %q; want help and exit 0", strings.Join(args, " "), code, stdout, stderr)
		}
	}
}

// TestOutputFormatIsChecked: every listing's -o takes text or json and
// refuses anything else as bad usage before it does any work (ps -o yaml
// used to print the table).
func TestOutputFormatIsChecked(t *testing.T) {
	t.Setenv("MOAT_HOME", t.TempDir())
	for _, args := range [][]string{
		{"ps", "-o", "yaml"},
		{"targets", "-o", "yaml"},
		{"top", "-o", "yaml"},
		{"status", "-o", "table"},
		{"events", "-o", "yaml"},
		{"activity", "web", "-o", "yaml"},
		{"validate", "-f", exampleFile, "-o", "yaml"},
		{"plan", "-f", exampleFile, "--output=yaml"},
		{"reach", "-f", exampleFile, "internet", "lb:web", "80", "-o", "yaml"},
		{"outputs", "-o", "yaml"},
	} {
		if stubbed(args[0]) {
			continue
		}
		_, stderr, code := run(t, args...)
		if code != exitUsage || !strings.Contains(stderr, `invalid argument "`) || !strings.Contains(stderr, "use text or json") {
			t.Errorf("moat %s: exit %d, stderr %q; want exit %d and 'use text or json'", strings.Join(args, " "), code, stderr, exitUsage)
		}
	}
	for _, o := range []string{"text", "json"} {
		if _, stderr, code := run(t, "plan", "-f", exampleFile, "-o", o); code != exitOK {
			t.Errorf("plan -o %s: exit %d, %q", o, code, stderr)
		}
	}
}
