package secgroup

import (
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testPlan(t testing.TB) *plan.Plan { return testPlanWith(t, "") }

// testPlanWith builds testdata/stack.yaml with more testdata files
// appended (e.g. nacl.yaml).
func testPlanWith(t testing.TB, more ...string) *plan.Plan {
	t.Helper()
	return planFile(t, "testdata/stack.yaml", more...)
}

// planFile builds the plan of a stack file with more testdata files
// appended.
func planFile(t testing.TB, path string, more ...string) *plan.Plan {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range more {
		if m == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join("testdata", m))
		if err != nil {
			t.Fatal(err)
		}
		src = append(append(src, '\n'), b...)
	}
	f, err := spec.Parse(path, src)
	if err != nil {
		t.Fatal(err)
	}
	p, problems := plan.Build(f)
	if p == nil {
		t.Fatalf("build plan: %v", problems)
	}
	return p
}

// liveMembership is the offline membership plus a second app instance and
// an instance of the "other" and "locked" groups.
func liveMembership(p *plan.Plan) Membership {
	m := OfflineMembership(p)
	m.Members = append(m.Members,
		Member{Name: "i-app2", Kind: KindInstance, Owner: "web", Subnet: "private-b", Addr: netip.MustParseAddr("10.42.129.10"), Groups: []string{"app"}},
		Member{Name: "i-locked", Kind: KindInstance, Subnet: "private-b", Addr: netip.MustParseAddr("10.42.129.11"), Groups: []string{"locked"}},
	)
	return m
}

func TestCompileGolden(t *testing.T) {
	p := testPlan(t)
	m := liveMembership(p)
	for _, n := range m.Members {
		t.Run(n.Name, func(t *testing.T) {
			rs, err := Compile(p, n.Name, n.Groups, m)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.MarshalIndent(rs, "", "  ")
			path := filepath.Join("testdata", "golden", n.Name+".json")
			if *update {
				os.MkdirAll(filepath.Dir(path), 0o755)
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			var want RuleSet
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatalf("parse %s: %v", path, err)
			}
			var gotParsed RuleSet
			json.Unmarshal(got, &gotParsed)
			if !reflect.DeepEqual(gotParsed, want) {
				t.Errorf("rule set of %s differs from %s (run with -update to accept):\n%s", n.Name, path, got)
			}
		})
	}
}

func TestCompileUnknownGroup(t *testing.T) {
	p := testPlan(t)
	if _, err := Compile(p, "x", []string{"nope"}, Membership{}); err == nil {
		t.Fatal("want an error for an unknown group")
	}
}

func TestRuleMatches(t *testing.T) {
	sets := map[string][]netip.Addr{"sg_lb": {netip.MustParseAddr("10.0.0.6")}}
	cases := []struct {
		name  string
		r     NftRule
		peer  string
		proto string
		port  int
		want  bool
	}{
		{"set member", NftRule{Set: "sg_lb", Protocol: "tcp", FromPort: 8000, ToPort: 8000}, "10.0.0.6", "tcp", 8000, true},
		{"not a member", NftRule{Set: "sg_lb", Protocol: "tcp", FromPort: 8000, ToPort: 8000}, "10.0.0.7", "tcp", 8000, false},
		{"wrong port", NftRule{Set: "sg_lb", Protocol: "tcp", FromPort: 8000, ToPort: 8000}, "10.0.0.6", "tcp", 8001, false},
		{"range", NftRule{CIDR: netip.MustParsePrefix("0.0.0.0/0"), Protocol: "tcp", FromPort: 9000, ToPort: 9100}, "1.2.3.4", "tcp", 9050, true},
		{"udp vs tcp", NftRule{CIDR: netip.MustParsePrefix("0.0.0.0/0"), Protocol: "udp", FromPort: 53, ToPort: 53}, "1.2.3.4", "tcp", 53, false},
		{"all", NftRule{CIDR: netip.MustParsePrefix("10.0.0.0/8"), Protocol: "all"}, "10.9.9.9", "udp", 1, true},
		{"cidr miss", NftRule{CIDR: netip.MustParsePrefix("10.0.0.0/8"), Protocol: "all"}, "11.0.0.1", "udp", 1, false},
		{"icmp", NftRule{CIDR: netip.MustParsePrefix("0.0.0.0/0"), Protocol: "icmp"}, "1.1.1.1", "icmp", 0, true},
	}
	for _, c := range cases {
		if got := c.r.Matches(sets, netip.MustParseAddr(c.peer), c.proto, c.port); got != c.want {
			t.Errorf("%s: got %v want %v", c.name, got, c.want)
		}
	}
}

func TestReach(t *testing.T) {
	p := testPlan(t)
	m := liveMembership(p)
	cases := []struct {
		from, to string
		proto    string
		port     int
		allowed  bool
		fix      string
	}{
		{"web", "web-hypothetical", "tcp", 8000, true, ""},
		{"lb-web-1", "i-app2", "tcp", 8000, true, ""},
		{"lb-web-0", "i-app2", "tcp", 22, false, "add to security group app ingress: {protocol: tcp, port: 22, group: lb}"},
		{"bastion", "app", "tcp", 22, true, ""},
		{"bastion", "web", "tcp", 22, false, "add to security group lb ingress: {protocol: tcp, port: 22, group: bastion}"},
		{"bastion", "app", "tcp", 8000, false, "add to security group app ingress: {protocol: tcp, port: 8000, group: bastion}"},
		{"internet", "web", "tcp", 80, true, ""},
		{"internet", "bastion", "tcp", 22, true, ""},
		{"internet", "i-app2", "tcp", 8000, false, "reach it through the load balancer or the bastion in a public subnet"},
		{"other", "i-app2", "tcp", 8000, false, "add to security group app ingress: {protocol: tcp, port: 8000, group: other}"},
		{"i-app2", "internet", "tcp", 443, true, ""},
		{"i-locked", "internet", "tcp", 443, true, ""},
		{"i-locked", "internet", "tcp", 80, false, "add to security group locked egress: {protocol: tcp, port: 80, cidr: 0.0.0.0/0}"},
		{"i-locked", "i-app2", "udp", 53, false, "add to security group app ingress: {protocol: udp, port: 53, group: locked}"},
		{"i-locked", "i-app2", "tcp", 8000, false, "add to security group locked egress: {protocol: tcp, port: 8000, group: app}"},
		{"i-app2", "i-locked", "icmp", 0, true, ""},
		{"internet", "i-locked", "icmp", 0, false, "reach it through the load balancer or the bastion in a public subnet"},
		{"10.42.0.6", "10.42.129.10", "tcp", 8000, true, ""},
		{"bastion", "10.42.129.99", "tcp", 22, false, ""},
	}
	for _, c := range cases {
		v := reachNames(t, p, m, c.from, c.to, c.proto, c.port)
		if v.Allowed != c.allowed || v.Fix != c.fix {
			t.Errorf("Reach(%s -> %s %s/%d) = %+v; want allowed=%v fix=%q", c.from, c.to, c.proto, c.port, v, c.allowed, c.fix)
		}
		if v.Route == "" && c.to != "10.42.129.99" {
			t.Errorf("Reach(%s -> %s): no route explained", c.from, c.to)
		}
	}
}

// reachNames resolves two command-line names and asks Reach.
func reachNames(t *testing.T, p *plan.Plan, m Membership, from, to, proto string, port int) Verdict {
	t.Helper()
	fe, err := ResolveEndpoint(p, m, from)
	if err != nil {
		t.Fatal(err)
	}
	te, err := ResolveEndpoint(p, m, to)
	if err != nil {
		t.Fatal(err)
	}
	return Reach(p, m, fe, te, proto, port)
}

func TestReachWithoutNAT(t *testing.T) {
	p := testPlan(t)
	// Drop the NAT routes: private subnets keep only the local route.
	for i := range p.RouteTables {
		if p.RouteTables[i].Name != "public" {
			p.RouteTables[i].Routes = p.RouteTables[i].Routes[:1]
		}
	}
	m := liveMembership(p)
	from, _ := ResolveEndpoint(p, m, "i-app2")
	to, _ := ResolveEndpoint(p, m, "internet")
	v := Reach(p, m, from, to, "tcp", 443)
	if v.Allowed || v.Fix == "" {
		t.Fatalf("want denied with a fix, got %+v", v)
	}
	from, _ = ResolveEndpoint(p, m, "bastion")
	if v := Reach(p, m, from, to, "tcp", 443); !v.Allowed {
		t.Fatalf("public subnet to internet: want allowed, got %+v", v)
	}
}

func TestResolveEndpointErrors(t *testing.T) {
	p := testPlan(t)
	m := OfflineMembership(p)
	if _, err := ResolveEndpoint(p, m, "nothing-of-that-name"); err == nil {
		t.Fatal("want an error")
	}
	if _, err := ResolveEndpoint(p, m, "locked"); err == nil {
		t.Fatal("want an error for a group without members")
	}
}

// TestResolveEndpointKinds: lb:, asg: and sg: say which kind a name is
// (the example has a load balancer and an auto scaling group both named
// web); a bare name prefers the load balancer.
func TestResolveEndpointKinds(t *testing.T) {
	p := testPlan(t)
	m := OfflineMembership(p)
	cases := []struct {
		in, kind string
	}{
		{"lb:web", KindLoadBalancer},
		{"asg:web", KindInstance},
		{"web", KindLoadBalancer},
		{"sg:app", KindInstance},
	}
	for _, c := range cases {
		e, err := ResolveEndpoint(p, m, c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if e.Node.Kind != c.kind {
			t.Errorf("%s resolved to a %s (%s), want a %s", c.in, e.Node.Kind, e.Node.Name, c.kind)
		}
	}
	for _, bad := range []string{"lb:nope", "asg:nope", "sg:nope"} {
		if _, err := ResolveEndpoint(p, m, bad); err == nil || !strings.Contains(err.Error(), "nope") {
			t.Errorf("%s: err %v, want one naming it", bad, err)
		}
	}
}
