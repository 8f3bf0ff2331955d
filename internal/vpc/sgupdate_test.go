package vpc

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
	"github.com/moat-dev/moat/internal/testutil"
)

// TestUpdateSecurityGroups: a changed security group applies to running
// nodes at once, as on AWS; a connection the old rules allowed stays
// open (tracked), new ones follow the new rules, and moat reach (over the
// new plan) agrees with the kernel.
func TestUpdateSecurityGroups(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, nftables")
	w := up(t, "sgupdate", "single")
	addFixed(t, w)
	addNode(t, w, NodeSpec{Name: "i-app1", Kind: secgroup.KindInstance, Owner: "web", Subnet: "private-a", Groups: []string{"app"}})
	addNode(t, w, NodeSpec{Name: "i-other", Kind: secgroup.KindInstance, Owner: "other", Subnet: "private-b", Groups: []string{"other"}})
	serve(t, w.path("i-app1"), "0.0.0.0:8000")
	serve(t, w.path("i-app1"), "0.0.0.0:22")

	// An echo on 8001, which only the rule added in step 1 admits: its
	// connection must outlive that rule's removal in step 2.
	serveWith(t, w.path("i-app1"), "0.0.0.0:8001", func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			c.Write([]byte(line))
		}
	})

	groups := func(edit func(app *plan.SecurityGroup)) []plan.SecurityGroup {
		out := slices.Clone(w.p.SecurityGroups)
		for i := range out {
			if out[i].Name == "app" {
				g := out[i]
				g.Ingress = slices.Clone(g.Ingress)
				edit(&g)
				out[i] = g
			}
		}
		return out
	}
	apply := func(gs []plan.SecurityGroup, wantChanged int) {
		t.Helper()
		changed, err := w.v.UpdateSecurityGroups(context.Background(), gs)
		if err != nil {
			t.Fatal(err)
		}
		if len(changed) != wantChanged {
			t.Errorf("changed nodes %v, want %d", changed, wantChanged)
		}
		np := *w.p
		np.SecurityGroups = gs
		w.p = &np
	}

	// Step 1: the app group also admits the load balancer on 8001.
	apply(groups(func(app *plan.SecurityGroup) {
		app.Ingress = append(app.Ingress, plan.Rule{Protocol: plan.ProtoTCP, FromPort: 8001, ToPort: 8001, Group: "lb"})
	}), 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := DialFunc(w.path("lb-web-0"))(ctx, "tcp", netip.AddrPortFrom(w.addr("i-app1"), 8001).String())
	if err != nil {
		t.Fatalf("lb -> app:8001 after the rule was added: %v", err)
	}
	defer c.Close()
	echo := func(c net.Conn, msg string) error {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte(msg + "\n")); err != nil {
			return err
		}
		_, err := bufio.NewReader(c).ReadString('\n')
		return err
	}
	if err := echo(c, "one"); err != nil {
		t.Fatalf("echo before the change: %v", err)
	}

	// Step 2: the app group drops every load balancer rule and admits the
	// other group on 8000 instead.
	apply(groups(func(app *plan.SecurityGroup) {
		app.Ingress = slices.DeleteFunc(app.Ingress, func(r plan.Rule) bool { return r.Group == "lb" })
		app.Ingress = append(app.Ingress, plan.Rule{Protocol: plan.ProtoTCP, FromPort: 8000, ToPort: 8000, Group: "other"})
	}), 1)
	if err := echo(c, "two"); err != nil {
		t.Errorf("the established connection broke when its rule was removed: %v", err)
	}
	w.check(t, "lb-web-0", "i-app1", 8000, false)
	w.check(t, "i-other", "i-app1", 8000, true)
	w.check(t, "bastion", "i-app1", 22, true)

	// The same groups again change nothing.
	apply(w.p.SecurityGroups, 0)
}

// TestUpdateSecurityGroupsFailure: an update that fails (cancelled before
// it starts, or refused by one node's kernel half-way) changes nothing:
// running nodes keep (or get back) their rules, and a node added
// afterwards gets the rules the others enforce, not the refused ones.
func TestUpdateSecurityGroupsFailure(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, nftables")
	w := up(t, "sgfail", "single")
	addFixed(t, w)
	addNode(t, w, NodeSpec{Name: "i-app1", Kind: secgroup.KindInstance, Owner: "web", Subnet: "private-a", Groups: []string{"app"}})
	addNode(t, w, NodeSpec{Name: "i-app2", Kind: secgroup.KindInstance, Owner: "web", Subnet: "private-b", Groups: []string{"app"}})
	gs := slices.Clone(w.p.SecurityGroups)
	for i := range gs {
		if gs[i].Name == "app" {
			gs[i].Ingress = append(slices.Clone(gs[i].Ingress), plan.Rule{Protocol: plan.ProtoTCP, FromPort: 8001, ToPort: 8001, Group: "lb"})
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.v.UpdateSecurityGroups(ctx, gs); err == nil {
		t.Fatal("update with a cancelled context succeeded")
	}
	w.v.failAt = "sgupdate i-app2" // i-app1 is changed first, then restored
	if _, err := w.v.UpdateSecurityGroups(context.Background(), gs); err == nil {
		t.Fatal("update failing on i-app2 succeeded")
	}
	w.v.failAt = ""
	addNode(t, w, NodeSpec{Name: "i-app3", Kind: secgroup.KindInstance, Owner: "web", Subnet: "private-b", Groups: []string{"app"}})
	apps := []string{"i-app1", "i-app2", "i-app3"}
	for _, n := range apps {
		serve(t, w.path(n), "0.0.0.0:8001")
		w.check(t, "lb-web-0", n, 8001, false)
	}

	// The same update, applied in full, then reaches every node.
	changed, err := w.v.UpdateSecurityGroups(context.Background(), gs)
	if err != nil || !slices.Equal(changed, apps) {
		t.Fatalf("update: changed %v, %v; want %v", changed, err, apps)
	}
	np := *w.p
	np.SecurityGroups = gs
	w.p = &np
	for _, n := range apps {
		w.check(t, "lb-web-0", n, 8001, true)
	}
}

// TestAddNodeSetsFailure: when AddNode fails while adding the node's
// address to other nodes' group sets, no set keeps the address: a node
// that later gets it must not inherit the failed node's groups.
func TestAddNodeSetsFailure(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, nftables")
	w := up(t, "setsfail", "single")
	addNode(t, w, NodeSpec{Name: "i-app1", Kind: secgroup.KindInstance, Owner: "web", Subnet: "private-a", Groups: []string{"app"}})
	addNode(t, w, NodeSpec{Name: "i-app2", Kind: secgroup.KindInstance, Owner: "web", Subnet: "private-b", Groups: []string{"app"}})
	serve(t, w.path("i-app1"), "0.0.0.0:8000")
	serve(t, w.path("i-app2"), "0.0.0.0:8000")
	ip, err := w.v.AllocateAddr("public-a")
	if err != nil {
		t.Fatal(err)
	}
	for _, fail := range []string{"i-app1", "i-app2"} { // whichever the set update reaches first
		w.v.failAt = "sets " + fail
		if _, err := w.v.AddNode(context.Background(), NodeSpec{Name: "lb-x", Kind: secgroup.KindLoadBalancer, Owner: "web",
			Subnet: "public-a", Addr: ip, Groups: []string{"lb"}}); err == nil {
			t.Fatal("AddNode with a failing set update succeeded")
		}
	}
	w.v.failAt = ""
	addNode(t, w, NodeSpec{Name: "i-reuse", Kind: secgroup.KindInstance, Owner: "other", Subnet: "public-a", Addr: ip, Groups: []string{"other"}})
	w.check(t, "i-reuse", "i-app1", 8000, false)
	w.check(t, "i-reuse", "i-app2", 8000, false)
}

// TestAddNodeCancelled: AddNode with a cancelled context fails cleanly
// (no panic, nothing left, the address free again).
func TestAddNodeCancelled(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, nftables")
	w := up(t, "addcancel", "single")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ip := netip.MustParseAddr("10.42.0.20")
	if _, err := w.v.AddNode(ctx, NodeSpec{Name: "i-cancel", Kind: secgroup.KindInstance, Subnet: "public-a", Addr: ip, Groups: []string{"app"}}); err == nil {
		t.Fatal("AddNode with a cancelled context succeeded")
	}
	if _, ok := w.v.Node("i-cancel"); ok {
		t.Fatal("node left after a failed AddNode")
	}
	addNode(t, w, NodeSpec{Name: "i-cancel", Kind: secgroup.KindInstance, Subnet: "public-a", Addr: ip, Groups: []string{"app"}})
}

// TestRemoveNodeSetsFailure: when RemoveNode cannot take the node's
// address out of another node's group set, the address is not handed
// out again (the next node would inherit the removed one's groups).
func TestRemoveNodeSetsFailure(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, nftables")
	w := up(t, "rmsetsfail", "single")
	addNode(t, w, NodeSpec{Name: "i-app1", Kind: secgroup.KindInstance, Owner: "web", Subnet: "private-a", Groups: []string{"app"}})
	lb := addNode(t, w, NodeSpec{Name: "lb-x", Kind: secgroup.KindLoadBalancer, Owner: "web", Subnet: "public-a", Groups: []string{"lb"}})
	serve(t, w.path("i-app1"), "0.0.0.0:8000")
	w.v.failAt = "sets i-app1"
	if err := w.v.RemoveNode(context.Background(), "lb-x"); err == nil {
		t.Fatal("RemoveNode with a failing set update succeeded")
	}
	w.v.failAt = ""
	n := addNode(t, w, NodeSpec{Name: "i-next", Kind: secgroup.KindInstance, Owner: "other", Subnet: "public-a", Groups: []string{"other"}})
	if n.Addr == lb.Addr {
		t.Errorf("i-next got %s, the address still in i-app1's set of lb", n.Addr)
	}
	w.check(t, "i-next", "i-app1", 8000, false)
}
