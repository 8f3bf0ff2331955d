package secgroup

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/plan"
)

// naclPlan is testdata/stack.yaml with testdata/nacl.yaml.
func naclPlan(t testing.TB) *plan.Plan { return testPlanWith(t, "nacl.yaml") }

func TestCompileNACLsGolden(t *testing.T) {
	got, _ := json.MarshalIndent(CompileNACLs(naclPlan(t)), "", "  ")
	path := filepath.Join("testdata", "golden", "nacl.json")
	if *update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	var g, w NACLRuleSet
	json.Unmarshal(got, &g)
	if err := json.Unmarshal(data, &w); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("network ACL rule set differs from %s (run with -update to accept):\n%s", path, got)
	}
	if rs := CompileNACLs(testPlan(t)); len(rs.Subnets) != 0 {
		t.Errorf("without network ACLs: %+v, want no chains", rs)
	}
}

// TestReachNetworkACLs: Reach follows the request and the reply through
// the network ACLs of the subnets crossed, names the entry that decides,
// and says how to fix a denial.
func TestReachNetworkACLs(t *testing.T) {
	p := naclPlan(t)
	m := liveMembership(p) // lb-web-0 10.42.0.6 and bastion 10.42.0.5 in public-a, lb-web-1 in public-b, web-hypothetical in private-a, i-app2 in private-b
	cases := []struct {
		from, to string
		proto    string
		port     int
		allowed  bool
		reason   string // substring
		fix      string
	}{
		{"lb-web-0", "web-hypothetical", "tcp", 8000, true, "allowed", ""},
		{"lb-web-1", "web-hypothetical", "tcp", 8000, false,
			"reply (tcp 32768-60999 to 10.42.1.6) leaving subnet private-a: denied by nacl private out rule * (no entry allows it)",
			`add to network ACL private outbound: {ruleNumber: 110, protocol: tcp, portRange: "1024-65535", cidr: 10.42.1.0/24, ruleAction: allow}`},
		{"bastion", "web-hypothetical", "tcp", 22, false,
			"request (tcp 22 from 10.42.0.5) entering subnet private-a: denied by nacl private in 90 deny tcp 22 10.42.0.0/24",
			"in network ACL private inbound, allow it before rule 90: {ruleNumber: 89, protocol: tcp, portRange: 22, cidr: 10.42.0.0/24, ruleAction: allow}, or remove rule 90"},
		{"web-hypothetical", "internet", "tcp", 443, false,
			"request (tcp 443 to 198.18.0.2) leaving subnet private-a: denied by nacl private out rule *",
			"add to network ACL private outbound: {ruleNumber: 110, protocol: tcp, portRange: 443, cidr: 0.0.0.0/0, ruleAction: allow}"},
		{"i-app2", "internet", "tcp", 443, true, "allowed", ""},                                                       // private-b: the default network ACL
		{"lb-web-1", "i-app2", "tcp", 8000, true, "allowed", ""},                                                      // reply enters public-b by 120
		{"i-app2", "web-hypothetical", "icmp", 0, false, "reply (icmp to 10.42.129.10) leaving subnet private-a", ""}, // the security group admits it; the reply has no entry
	}
	for _, c := range cases {
		v := reachNames(t, p, m, c.from, c.to, c.proto, c.port)
		if v.Allowed != c.allowed || !strings.Contains(v.Reason, c.reason) || (c.fix != "" && v.Fix != c.fix) {
			t.Errorf("Reach(%s -> %s %s/%d):\n got allowed=%v reason=%q\n     fix=%q\nwant allowed=%v reason~%q\n     fix=%q",
				c.from, c.to, c.proto, c.port, v.Allowed, v.Reason, v.Fix, c.allowed, c.reason, c.fix)
		}
		if c.allowed && c.from == "lb-web-0" && len(v.NetworkACLs) != 4 {
			t.Errorf("Reach(%s -> %s): %d network ACL decisions, want 4 (request out and in, reply out and in): %q", c.from, c.to, len(v.NetworkACLs), v.NetworkACLs)
		}
	}
}

// TestReachListsEveryBlocker: Reach goes on after the first blocker and
// reports each, in the order the packets meet them, with AWS's
// explanation code; Reason and Fix are the first one's.
func TestReachListsEveryBlocker(t *testing.T) {
	p := naclPlan(t)
	m := liveMembership(p)
	cases := []struct {
		from, to string
		port     int
		codes    []string
		first    string // substring of the first blocker
	}{
		// The network ACL has no entry for 9000, and the app's group does
		// not admit the bastion on it: both reported.
		{"bastion", "web-hypothetical", 9000, []string{CodeSubnetACL, CodeSecurityGroups},
			"request (tcp 9000 from 10.42.0.5) entering subnet private-a: denied by nacl private in rule *"},
		// The request passes the network ACLs; the reply does not, and the
		// group does not admit the load balancer on 22.
		{"lb-web-1", "web-hypothetical", 22, []string{CodeSubnetACL, CodeSecurityGroups},
			"reply (tcp 32768-60999 to 10.42.1.6) leaving subnet private-a: denied by nacl private out rule *"},
		// No route, neither way through the network ACL, and no rule.
		{"internet", "web-hypothetical", 8000, []string{CodeNoPublicIP, CodeSubnetACL, CodeSubnetACL, CodeSecurityGroups},
			"no route from the internet to a private subnet"},
		{"lb-web-0", "web-hypothetical", 8000, nil, ""},
	}
	for _, c := range cases {
		v := reachNames(t, p, m, c.from, c.to, plan.ProtoTCP, c.port)
		var codes []string
		for _, b := range v.Blockers {
			codes = append(codes, b.Code)
			if b.Fix == "" {
				t.Errorf("%s -> %s tcp/%d: blocker %q has no fix", c.from, c.to, c.port, b.Message)
			}
		}
		if !reflect.DeepEqual(codes, c.codes) || v.Allowed != (len(c.codes) == 0) {
			t.Errorf("%s -> %s tcp/%d: allowed=%v blockers %q, want %q\n%+v", c.from, c.to, c.port, v.Allowed, codes, c.codes, v.Blockers)
			continue
		}
		if len(c.codes) > 0 && (!strings.Contains(v.Blockers[0].Message, c.first) || v.Reason != v.Blockers[0].Message || v.Fix != v.Blockers[0].Fix) {
			t.Errorf("%s -> %s tcp/%d: first blocker %+v, reason %q, fix %q; want the first to say %q and be the reason", c.from, c.to, c.port, v.Blockers[0], v.Reason, v.Fix, c.first)
		}
	}
}
