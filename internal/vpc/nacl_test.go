package vpc

import (
	"context"
	"net/netip"
	"os/exec"
	"slices"
	"testing"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
	"github.com/moat-dev/moat/internal/testutil"
)

// TestNetworkACLs: the router enforces the network ACLs statelessly, at
// subnet boundaries only, and moat reach (secgroup.Reach) predicts every
// answer the kernel gives; a changed network ACL applies at once.
func TestNetworkACLs(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, nftables")
	const stack = "mtest-nacl"
	w := up(t, stack, "single", func(p *plan.Plan) { *p = *testPlan(t, stack, "single", "../secgroup/testdata/nacl.yaml") })
	addFixed(t, w) // lb-web-0 in public-a, lb-web-1 in public-b, bastion in public-a
	addNode(t, w, NodeSpec{Name: "i-app1", Kind: secgroup.KindInstance, Owner: "web", Subnet: "private-a", Groups: []string{"app"}})
	addNode(t, w, NodeSpec{Name: "i-app2", Kind: secgroup.KindInstance, Owner: "web", Subnet: "private-b", Groups: []string{"app"}})
	// Members of the bastion's group elsewhere: the app's security group
	// admits them on 22.
	addNode(t, w, NodeSpec{Name: "i-peer", Kind: secgroup.KindInstance, Subnet: "private-a", Groups: []string{"bastion"}})
	addNode(t, w, NodeSpec{Name: "jump-b", Kind: secgroup.KindInstance, Subnet: "public-b", Groups: []string{"bastion"}})
	for _, n := range []string{"i-app1", "i-app2"} {
		serve(t, w.path(n), "0.0.0.0:8000")
		serve(t, w.path(n), "0.0.0.0:22")
	}
	serve(t, w.path("lb-web-0"), "0.0.0.0:80")
	serve(t, w.path("bastion"), "0.0.0.0:22")
	serve(t, w.path("internet"), "0.0.0.0:80")

	type pair struct {
		from, to string
		port     int
		want     bool
		why      string
	}
	run := func(cases []pair) {
		t.Helper()
		for _, c := range cases {
			w.check(t, c.from, c.to, c.port, c.want)
		}
	}
	run([]pair{
		{"lb-web-0", "i-app1", 8000, true, "public out 100, private in 100, reply: private out 100, public in 120"},
		{"lb-web-1", "i-app1", 8000, false, "the reply to public-b matches no outbound entry of private (rule *)"},
		{"lb-web-1", "i-app2", 8000, true, "private-b has the default network ACL"},
		{"lb-web-0", "i-app2", 8000, true, ""},
		{"bastion", "i-app1", 22, false, "in 90 denies 22 from public-a"},
		{"jump-b", "i-app1", 22, false, "in 110 admits it, but the reply to public-b matches no outbound entry"},
		{"i-peer", "i-app1", 22, true, "within private-a: no network ACL applies"},
		{"bastion", "i-app2", 22, true, ""},
		{"i-app1", "lb-web-0", 80, false, "private out allows only 1024-65535"},
		{"i-app1", "internet", 80, false, "private out: nothing to the internet"},
		{"i-app2", "internet", 80, true, "private-b via NAT"},
		{"internet", "lb-web-0", 80, true, "public in 100, out 100"},
		{"internet", "bastion", 22, true, "public in 110"},
	})
	if testing.Verbose() {
		if out, err := exec.Command("ip", "netns", "exec", NamespaceName(stack, RouterNode), "nft", "list", "table", "inet", "moat-nacl").CombinedOutput(); err == nil {
			t.Logf("router's network ACLs:\n%s", out)
		}
	}

	// Live, in two steps: network ACL private lets replies out to
	// public-b too; then private-a goes back to the default network ACL.
	acls := slices.Clone(w.p.NetworkACLs)
	priv := &acls[1]
	priv.Outbound = append(slices.Clone(priv.Outbound), plan.ACLEntry{RuleNumber: 110, Allow: true,
		Rule: plan.Rule{Protocol: plan.ProtoTCP, FromPort: 1024, ToPort: 65535, CIDR: netip.MustParsePrefix("10.42.1.0/24")}})
	w.p = updateACLs(t, w, acls, true)
	run([]pair{
		{"lb-web-1", "i-app1", 8000, true, "outbound 110 now lets the reply out"},
		{"jump-b", "i-app1", 22, true, "and this reply too"},
		{"bastion", "i-app1", 22, false, "in 90 still denies"},
	})
	priv.Subnets = nil
	w.p = updateACLs(t, w, acls, true)
	run([]pair{
		{"bastion", "i-app1", 22, true, "private-a is back on the default network ACL"},
		{"i-app1", "internet", 80, true, ""},
	})
	w.p = updateACLs(t, w, acls, false) // the same again: nothing to do
}

// updateACLs applies network ACLs live and returns the plan moat reach
// should now reason over.
func updateACLs(t *testing.T, w world, acls []plan.NetworkACL, wantChanged bool) *plan.Plan {
	t.Helper()
	changed, err := w.v.UpdateNetworkACLs(context.Background(), acls)
	if err != nil {
		t.Fatal(err)
	}
	if changed != wantChanged {
		t.Errorf("UpdateNetworkACLs changed=%v, want %v", changed, wantChanged)
	}
	return w.p.WithNetworkACLs(acls)
}
