package spec_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
)

// FuzzParse feeds arbitrary bytes to the stack file parser, validates what
// parses, and resolves what validates into a plan. Nothing may panic, every
// problem must carry a position, and a file without errors must give a plan.
// The seed corpus is in testdata/fuzz/FuzzParse (the example and broken
// variants); crashers found by go test -fuzz are kept there as regressions.
func FuzzParse(f *testing.F) {
	// Relative paths (files:, publicKeyFile:) resolve against a directory
	// holding only app/, so the host's files do not change the outcome and
	// the example's files: app resolves.
	dir := f.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "app"), 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := spec.Parse("moat.yaml", data)
		if err != nil {
			var ps spec.Problems
			if !errors.As(err, &ps) || len(ps.Errors()) == 0 {
				t.Fatalf("Parse error %v is not Problems with errors", err)
			}
			checkPositions(t, ps)
			return
		}
		file.Dir = dir
		ps := spec.Validate(file)
		checkPositions(t, ps)
		_ = spec.WithDefaults(file.Stack)
		p, bps := plan.Build(file)
		if (p == nil) != (len(bps.Errors()) > 0) {
			t.Fatalf("Build gave plan %v with %d errors", p != nil, len(bps.Errors()))
		}
		if p != nil {
			checkPlan(t, p)
		}
	})
}

func checkPositions(t *testing.T, ps spec.Problems) {
	t.Helper()
	for _, p := range ps {
		if p.Pos.File != "moat.yaml" || p.Message == "" {
			t.Fatalf("problem without file or message: %+v", p)
		}
	}
}

// TestFuzzSeedsBuild makes sure the seed corpus reaches the plan: the
// example seed must validate and resolve.
func TestFuzzSeedsBuild(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../examples/realtime/moat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file, err := spec.Parse("moat.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	file.Dir = dir
	if p, ps := plan.Build(file); p == nil {
		t.Fatal(ps)
	}
}

// checkPlan checks invariants of a resolved plan: fixed addresses lie in
// their subnet's assignable range and are unique; references resolve.
func checkPlan(t *testing.T, p *plan.Plan) {
	t.Helper()
	seen := map[netip.Addr]string{}
	for _, s := range p.Subnets {
		if !p.VPC.CIDR.Contains(s.CIDR.Addr()) || !s.CIDR.Contains(s.Gateway) || s.LastHost.Less(s.FirstHost) {
			t.Fatalf("subnet %+v in VPC %s", s, p.VPC.CIDR)
		}
		for _, a := range s.Static {
			if a.Addr.Less(s.FirstHost) || s.LastHost.Less(a.Addr) {
				t.Fatalf("%s address %s outside %s's hosts %s-%s", a.Node, a.Addr, s.Name, s.FirstHost, s.LastHost)
			}
			if other, dup := seen[a.Addr]; dup {
				t.Fatalf("%s and %s share %s", a.Node, other, a.Addr)
			}
			seen[a.Addr] = a.Node
		}
	}
	for _, lb := range p.LoadBalancers {
		for _, n := range lb.Nodes {
			if s, ok := p.Subnet(n.Subnet); !ok || !s.Public || !s.CIDR.Contains(n.Address) {
				t.Fatalf("load balancer %s node %+v", lb.Name, n)
			}
		}
	}
	for _, g := range p.AutoScalingGroups {
		if _, ok := p.LaunchTemplate(g.LaunchTemplate); !ok || g.MinSize > g.DesiredCapacity || g.DesiredCapacity > g.MaxSize {
			t.Fatalf("auto scaling group %+v", g)
		}
	}
}
