package awsrules

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseMatcher(t *testing.T) {
	for _, tc := range []struct {
		m       string
		match   []int
		nomatch []int
		err     string // part of the error; "" for none
	}{
		{m: "200", match: []int{200}, nomatch: []int{201, 199}},
		{m: "200,202", match: []int{200, 202}, nomatch: []int{201}},
		{m: "200-299", match: []int{200, 250, 299}, nomatch: []int{300, 199}},
		{m: "200-204,302,404", match: []int{203, 302, 404}, nomatch: []int{301, 205}},
		{m: "499", match: []int{499}},
		{m: "299-200", err: `matcher range "299-200" runs from high to low and matches no code`},
		{m: "200-599", err: "matcher code 599 is out of range"},
		{m: "199", err: "matcher code 199 is out of range"},
		{m: "ok", err: `matcher "ok" is not valid`},
		{m: "", err: `matcher "" is not valid`},
		{m: "200,", err: "is not valid"},
		{m: " 200", err: "is not valid"},
		{m: "+20", err: "is not valid"},
		{m: "200-", err: "is not valid"},
		{m: "200-300-400", err: "is not valid"},
	} {
		got, err := ParseMatcher(tc.m)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseMatcher(%q) = %v, %v; want an error with %q", tc.m, got, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseMatcher(%q): %v", tc.m, err)
			continue
		}
		for _, c := range tc.match {
			if !got.Matches(c) {
				t.Errorf("%q does not match %d", tc.m, c)
			}
		}
		for _, c := range tc.nomatch {
			if got.Matches(c) {
				t.Errorf("%q matches %d", tc.m, c)
			}
		}
	}
	// The fix of a backwards range is the range turned round.
	_, err := ParseMatcher("299-200")
	if me, ok := err.(*MatcherError); !ok || me.Fix != `write the range low to high: "200-299"` {
		t.Errorf("fix for 299-200: %#v", err)
	}
}

func TestHealthCheckProblems(t *testing.T) {
	def := HealthCheck{}.WithDefaults()
	if def != (HealthCheck{Path: "/", Port: "traffic-port", IntervalSeconds: 30, TimeoutSeconds: 5,
		HealthyThreshold: 5, UnhealthyThreshold: 2, Matcher: "200"}) {
		t.Fatalf("defaults: %+v", def)
	}
	if ps := def.Problems(); len(ps) != 0 {
		t.Fatalf("AWS's defaults break its rules: %+v", ps)
	}
	for _, tc := range []struct {
		edit  func(*HealthCheck)
		field string
	}{
		{func(h *HealthCheck) { h.IntervalSeconds, h.TimeoutSeconds = 4, 2 }, "intervalSeconds"},
		{func(h *HealthCheck) { h.IntervalSeconds = 301 }, "intervalSeconds"},
		{func(h *HealthCheck) { h.TimeoutSeconds = 1 }, "timeoutSeconds"},
		{func(h *HealthCheck) { h.IntervalSeconds, h.TimeoutSeconds = 5, 5 }, "timeoutSeconds"},
		{func(h *HealthCheck) { h.HealthyThreshold = 11 }, "healthyThreshold"},
		{func(h *HealthCheck) { h.UnhealthyThreshold = 1 }, "unhealthyThreshold"},
		{func(h *HealthCheck) { h.Matcher = "299-200" }, "matcher"},
		{func(h *HealthCheck) { h.Path = "health" }, "path"},
		{func(h *HealthCheck) { h.Path = "/" + strings.Repeat("a", 1024) }, "path"},
		{func(h *HealthCheck) { h.Port = "70000" }, "port"},
	} {
		hc := def
		tc.edit(&hc)
		ps := hc.Problems()
		if len(ps) != 1 || ps[0].Field != tc.field || ps[0].Problem == "" || ps[0].Fix == "" {
			t.Errorf("%+v: problems %+v, want one on %s with a fix", hc, ps, tc.field)
		}
	}
}

func TestAdmits(t *testing.T) {
	lbSubnets := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("10.0.1.0/24")}
	lb := Source{Groups: []string{"lb"}, Blocks: lbSubnets}
	tcp := func(from, to int, group, cidr string) Ingress {
		r := Ingress{Protocol: "tcp", FromPort: from, ToPort: to, SourceGroup: group}
		if cidr != "" {
			r.SourceCIDR = netip.MustParsePrefix(cidr)
		}
		return r
	}
	for _, tc := range []struct {
		name  string
		rules []Ingress
		src   Source
		port  int
		want  bool
	}{
		{"group rule on the port", []Ingress{tcp(8000, 8000, "lb", "")}, lb, 8000, true},
		{"group rule, other port", []Ingress{tcp(80, 80, "lb", "")}, lb, 8000, false},
		{"another group", []Ingress{tcp(8000, 8000, "bastion", "")}, lb, 8000, false},
		{"port range", []Ingress{tcp(8000, 8100, "lb", "")}, lb, 8050, true},
		{"all traffic from the group", []Ingress{{Protocol: "-1", SourceGroup: "lb"}}, lb, 8000, true},
		{"all traffic, by name", []Ingress{{Protocol: "all", SourceGroup: "lb"}}, lb, 8000, true},
		{"AWS's number for tcp", []Ingress{{Protocol: "6", FromPort: 8000, ToPort: 8000, SourceGroup: "lb"}}, lb, 8000, true},
		{"udp does not carry tcp", []Ingress{{Protocol: "udp", FromPort: 8000, ToPort: 8000, SourceGroup: "lb"}}, lb, 8000, false},
		{"block holding every subnet", []Ingress{tcp(8000, 8000, "", "10.0.0.0/16")}, lb, 8000, true},
		{"block holding one subnet of two", []Ingress{tcp(8000, 8000, "", "10.0.0.0/24")}, lb, 8000, false},
		{"block inside the subnet", []Ingress{tcp(8000, 8000, "", "10.0.0.0/25")}, lb, 8000, false},
		{"block without blocks to match", []Ingress{tcp(22, 22, "", "0.0.0.0/0")}, Source{Groups: []string{"lb"}}, 22, false},
		{"operator network on 22", []Ingress{tcp(22, 22, "", "203.0.113.0/24")}, Source{Blocks: []netip.Prefix{netip.MustParsePrefix("203.0.113.7/32")}}, 22, true},
		{"no rules", nil, lb, 8000, false},
	} {
		if got := Admits(tc.rules, tc.src, tc.port); got != tc.want {
			t.Errorf("%s: Admits = %v, want %v", tc.name, got, tc.want)
		}
	}
}
