package console

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
	"github.com/moat-dev/moat/internal/spec"
)

func examplePlan(t testing.TB) *plan.Plan {
	t.Helper()
	f, err := spec.LoadFile("../../examples/realtime/moat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, ps := plan.Build(f)
	if p == nil || len(ps) != 0 {
		t.Fatalf("plan: %v", ps)
	}
	return p
}

// edgeStrings are a map's edges as kind from->to.
func edgeStrings(m Map) []string {
	var out []string
	for _, e := range m.Edges {
		out = append(out, fmt.Sprintf("%s %s->%s", e.Kind, e.From, e.To))
	}
	return out
}

func nodeOf(m Map, name string) (MapNode, bool) {
	i := slices.IndexFunc(m.Nodes, func(n MapNode) bool { return n.Name == name })
	if i < 0 {
		return MapNode{}, false
	}
	return m.Nodes[i], true
}

func TestBuildMap(t *testing.T) {
	p := examplePlan(t)
	insts := []api.Instance{
		{ID: "i-a", Group: "web", Zone: "a", Subnet: "private-a", IP: "10.0.128.10", State: "running"},
		{ID: "i-b", Group: "web", Zone: "b", Subnet: "private-b", IP: "10.0.129.10", State: "pending"},
	}
	targets := []api.Target{
		{TargetGroup: "web", ID: "i-a", Address: "10.0.128.10:8000", State: "healthy"},
		{TargetGroup: "web", ID: "i-b", Address: "10.0.129.10:8000", State: "initial", Reason: "Elb.InitialHealthChecking"},
	}
	// The live membership gives instances their security groups (here
	// one more than the launch template's, as after a live change).
	mem := secgroup.Membership{Members: []secgroup.Member{
		{Name: "i-a", Kind: secgroup.KindInstance, Subnet: "private-a", Addr: netip.MustParseAddr("10.0.128.10"), Groups: []string{"app", "extra"}},
	}}
	for _, c := range []struct {
		name      string
		mem       secgroup.Membership
		insts     []api.Instance
		targets   []api.Target
		wantNodes []string // name kind subnet zone groups
		wantEdges []string
	}{
		{
			name: "starting: no instances yet",
			wantNodes: []string{"internet internet   []", "igw igw   []",
				"lb-web-0 lb public-a a [lb]", "lb-web-1 lb public-b b [lb]",
				"nat-a nat public-a a []", "bastion bastion public-a a [bastion]"},
			wantEdges: []string{"internet internet->igw", "ingress igw->lb-web-0", "ingress igw->lb-web-1", "ingress igw->bastion",
				"egress nat-a->igw", "nat private-a->nat-a", "nat private-b->nat-a"},
		},
		{
			name: "two instances, one live member", mem: mem, insts: insts, targets: targets,
			wantNodes: []string{"internet internet   []", "igw igw   []",
				"lb-web-0 lb public-a a [lb]", "lb-web-1 lb public-b b [lb]",
				"nat-a nat public-a a []", "bastion bastion public-a a [bastion]",
				"i-a instance private-a a [app extra]", "i-b instance private-b b [app]"},
			wantEdges: []string{"internet internet->igw", "ingress igw->lb-web-0", "ingress igw->lb-web-1", "ingress igw->bastion",
				"egress nat-a->igw", "nat private-a->nat-a", "nat private-b->nat-a",
				// each target from the load balancer's node in its zone
				"target lb-web-0->i-a", "target lb-web-1->i-b", "ssh bastion->i-a", "ssh bastion->i-b"},
		},
		{
			name: "an instance that is no target (deregistered) has no target edge", insts: insts[:1],
			wantNodes: []string{"internet internet   []", "igw igw   []",
				"lb-web-0 lb public-a a [lb]", "lb-web-1 lb public-b b [lb]",
				"nat-a nat public-a a []", "bastion bastion public-a a [bastion]",
				"i-a instance private-a a [app]"},
			wantEdges: []string{"internet internet->igw", "ingress igw->lb-web-0", "ingress igw->lb-web-1", "ingress igw->bastion",
				"egress nat-a->igw", "nat private-a->nat-a", "nat private-b->nat-a", "ssh bastion->i-a"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := BuildMap(p, c.mem, c.insts, c.targets)
			var nodes []string
			for _, n := range m.Nodes {
				nodes = append(nodes, fmt.Sprintf("%s %s %s %s %v", n.Name, n.Kind, n.Subnet, n.Zone, n.Groups))
			}
			if !slices.Equal(nodes, c.wantNodes) {
				t.Errorf("nodes:\n got %q\nwant %q", nodes, c.wantNodes)
			}
			if got := edgeStrings(m); !slices.Equal(got, c.wantEdges) {
				t.Errorf("edges:\n got %q\nwant %q", got, c.wantEdges)
			}
			if len(m.Zones) != 2 || len(m.Subnets) != 4 || m.VPC != "10.0.0.0/16" || len(m.RouteTables) == 0 {
				t.Errorf("zones %v subnets %v vpc %s route tables %d", m.Zones, m.Subnets, m.VPC, len(m.RouteTables))
			}
		})
	}
	// Instances carry what moat ps and moat targets say.
	m := BuildMap(p, mem, insts, targets)
	b, _ := nodeOf(m, "i-b")
	if b.Instance == nil || b.Instance.State != "pending" || len(b.Targets) != 1 || b.Targets[0].Reason != "Elb.InitialHealthChecking" {
		t.Errorf("i-b = %+v", b)
	}
	// Map names are the names moat reach resolves on a live stack
	// (whose membership has the load balancer nodes and the bastion too).
	live := secgroup.Membership{Members: append(mem.Members, secgroup.OfflineMembership(p).Members...)}
	for _, n := range m.Nodes {
		if n.Kind == NodeIGW || n.Kind == secgroup.KindNAT || n.Name == "i-b" {
			continue // not nodes with an interface of their own (i-b: not in this membership)
		}
		e, err := secgroup.ResolveEndpoint(p, live, n.Name)
		if err != nil || (n.Kind != NodeInternet && e.Node.Name != n.Name) {
			t.Errorf("reach resolves map node %s to %+v, %v", n.Name, e, err)
		}
	}
}

// BenchmarkBuildMap: the map of the example with 50 instances, as every
// snapshot builds it.
func BenchmarkBuildMap(b *testing.B) {
	p := examplePlan(b)
	f := newFakeStack(p, 50)
	insts, _ := f.Instances(context.Background(), false)
	targets, _ := f.Targets(context.Background())
	mem, _ := f.Membership(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		BuildMap(p, mem, insts, targets)
	}
}

// BenchmarkSnapshot: reading and encoding one snapshot of 50 instances
// (the stand-in's reads are in memory: this is the console's own cost).
func BenchmarkSnapshot(b *testing.B) {
	p := examplePlan(b)
	h := newHub(p, newFakeStack(p, 50), slog.New(slog.DiscardHandler), "e1")
	ctx := context.Background()
	var n int
	b.ReportAllocs()
	for b.Loop() {
		buf, err := json.Marshal(h.snapshot(ctx))
		if err != nil {
			b.Fatal(err)
		}
		n = len(buf)
	}
	b.ReportMetric(float64(n), "bytes/snapshot")
}
