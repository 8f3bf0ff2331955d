package secgroup

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/plan"
)

// examplePlan is the bundled example's plan.
func examplePlan(t testing.TB) *plan.Plan { return planFile(t, "../../examples/realtime/moat.yaml") }

// exposures renders Exposed's answer as "target proto ports from [nodes]".
func exposures(es []Exposure) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s %s from %s %v", e.Target, e.Ports(), e.From, e.Nodes))
	}
	return out
}

// openGroup adds a security group "open" (tcp 1000-2000 from
// 203.0.113.0/24, icmp from anywhere, tcp 9000 from inside the VPC) and
// a member of it in public-b.
func openGroup(p *plan.Plan, m *Membership) {
	p.SecurityGroups = append(p.SecurityGroups, plan.SecurityGroup{Name: "open", Ingress: []plan.Rule{
		{Protocol: plan.ProtoTCP, FromPort: 1000, ToPort: 2000, CIDR: netip.MustParsePrefix("203.0.113.0/24")},
		{Protocol: plan.ProtoICMP, CIDR: netip.MustParsePrefix("0.0.0.0/0")},
		{Protocol: plan.ProtoTCP, FromPort: 9000, ToPort: 9000, CIDR: netip.MustParsePrefix("10.42.0.0/16")},
	}})
	m.Members = append(m.Members, Member{Name: "i-open", Kind: KindInstance, Subnet: "public-b", Addr: netip.MustParseAddr("10.42.1.20"), Groups: []string{"open"}})
}

// TestExposed: everything the internet reaches, and nothing else: the
// example exposes exactly the load balancer's listener and the bastion's
// SSH; a group open to a narrower block is listed with that block; a
// network ACL takes away what it does not let in.
func TestExposed(t *testing.T) {
	cases := []struct {
		name string
		plan func(t *testing.T) (*plan.Plan, Membership)
		want []string
	}{
		{"example", func(t *testing.T) (*plan.Plan, Membership) {
			p := examplePlan(t)
			return p, OfflineMembership(p)
		}, []string{
			"bastion tcp 22 from anywhere [bastion]",
			"lb:web tcp 80 from anywhere [lb-web-0 lb-web-1]",
		}},
		{"an open group in a public subnet", func(t *testing.T) (*plan.Plan, Membership) {
			p := testPlan(t)
			m := liveMembership(p)
			openGroup(p, &m)
			return p, m
		}, []string{
			"bastion tcp 22 from anywhere [bastion]",
			"i-open icmp from anywhere [i-open]",
			"i-open tcp 1000-2000 from 203.0.113.0/24 [i-open]",
			"lb:web tcp 80 from anywhere [lb-web-0 lb-web-1]",
		}},
		{"network ACLs take the open group away", func(t *testing.T) (*plan.Plan, Membership) {
			p := naclPlan(t)
			m := liveMembership(p)
			openGroup(p, &m)
			return p, m
		}, []string{
			"bastion tcp 22 from anywhere [bastion]",
			"lb:web tcp 80 from anywhere [lb-web-0 lb-web-1]",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, m := c.plan(t)
			es := Exposed(p, m)
			if got := exposures(es); !slices.Equal(got, c.want) {
				t.Errorf("Exposed:\n got %q\nwant %q", got, c.want)
			}
			for _, e := range es {
				if len(e.AllowedBy) == 0 {
					t.Errorf("%s %s: no rule named", e.Target, e.Ports())
				}
			}
		})
	}
	// The rules are named: the listener, the security group rule and,
	// with network ACLs, the entries both ways.
	p := naclPlan(t)
	es := Exposed(p, liveMembership(p))
	lb := es[1]
	want := []string{"nacl public in 100 allow tcp 80 0.0.0.0/0", "nacl public out 100 allow all all 0.0.0.0/0", "sg lb ingress #1: tcp 80 0.0.0.0/0"}
	if lb.Listener != "HTTP:80" || !slices.Equal(lb.AllowedBy, want) {
		t.Errorf("load balancer exposure %+v; want listener HTTP:80, allowed by %q", lb, want)
	}
	if b := es[0]; !strings.HasPrefix(b.AllowedBy[len(b.AllowedBy)-1], "sg bastion ingress #1") {
		t.Errorf("bastion exposure allowed by %q", b.AllowedBy)
	}
}

// BenchmarkExposed: --exposed on the network ACL test stack with 50 live
// instances (Reach once per node, source, protocol and port interval).
func BenchmarkExposed(b *testing.B) {
	p := naclPlan(b)
	m := liveMembership(p)
	for i := range 50 {
		sn := []string{"private-a", "private-b"}[i%2]
		m.Members = append(m.Members, Member{Name: fmt.Sprintf("i-%02d", i), Kind: KindInstance, Owner: "web", Subnet: sn,
			Addr: netip.AddrFrom4([4]byte{10, 42, byte(128 + i%2), byte(20 + i)}), Groups: []string{"app"}})
	}
	for b.Loop() {
		if es := Exposed(p, m); len(es) != 2 {
			b.Fatalf("%d exposures", len(es))
		}
	}
}
