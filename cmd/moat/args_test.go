package main

import (
	"strings"
	"testing"
)

// TestWrongArgumentsAreUsageErrors: wrong positional arguments exit 2,
// like bad flags, and -f with a stack file on logs/events (where -f is
// --follow) gets a hint.
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
	}
	for _, c := range cases {
		_, stderr, code := run(t, c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.hint) {
			t.Errorf("moat %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(c.args, " "), code, stderr, exitUsage, c.hint)
		}
	}
}
