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
	}
	for _, c := range cases {
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
