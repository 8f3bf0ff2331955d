package ec2facts

import (
	"strings"
	"testing"
)

func TestCheckDescription(t *testing.T) {
	for _, c := range []struct {
		s   string
		bad string // "" = allowed; else a substring of the error
	}{
		{"", ""},
		{"load balancer to the app, bastion to SSH", ""},
		{"a-z A-Z 0-9 ._-:/()#,@[]+=&;{}!$*", ""},
		{strings.Repeat("x", 255), ""},
		{strings.Repeat("x", 256), "256 characters; EC2 takes at most 255"},
		{"the LB's traffic", `character "'"`},
		{`say "hi"`, `character "\""`},
		{"web – all", `character "–"`},
		{"opérateurs", `character "é"`},
		{"tab\there", `character "\t"`},
		{"50% of it", `character "%"`},
		{"a|b", `character "|"`},
		{"back\\slash", `character "\\"`},
		{"x?", `character "?"`},
	} {
		err := CheckDescription(c.s)
		switch {
		case c.bad == "" && err != nil:
			t.Errorf("CheckDescription(%q) = %v, want nil", c.s, err)
		case c.bad != "" && (err == nil || !strings.Contains(err.Error(), c.bad)):
			t.Errorf("CheckDescription(%q) = %v, want an error with %q", c.s, err, c.bad)
		}
	}
}
