package vpc

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/moat-dev/moat/internal/nsenter"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
	"github.com/moat-dev/moat/internal/spec"
	"github.com/moat-dev/moat/internal/testutil"
)

// testPlan builds testdata/stack.yaml under another stack name and NAT
// mode, with more files appended (e.g. the network ACLs of
// ../secgroup/testdata/nacl.yaml).
func testPlan(t testing.TB, stack, nat string, more ...string) *plan.Plan {
	t.Helper()
	data, err := os.ReadFile("testdata/stack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(data), "name: vpctest", "name: "+stack, 1)
	s = strings.Replace(s, "nat: single", "nat: "+nat, 1)
	for _, m := range more {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		s += "\n" + string(b)
	}
	f, err := spec.Parse("testdata/stack.yaml", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	p, problems := plan.Build(f)
	if p == nil {
		t.Fatalf("build plan: %v", problems)
	}
	return p
}

// counts of a stack's kernel objects visible from the host: namespaces
// (everything else lives inside them), links and moat nftables tables in
// the host namespace (always zero by design).
func countLeftovers(t testing.TB, stack string) (namespaces, links, tables int) {
	t.Helper()
	entries, _ := os.ReadDir(NetnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), NamespaceName(stack, "")) {
			namespaces++
		}
	}
	ls, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if strings.HasPrefix(l.Attrs().Name, "mt") || strings.HasPrefix(l.Attrs().Name, "moat") {
			links++
		}
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range ts {
		if strings.HasPrefix(tb.Name, "moat") {
			tables++
		}
	}
	return
}

func assertClean(t testing.TB, stack string) {
	t.Helper()
	if n, l, tb := countLeftovers(t, stack); n+l+tb != 0 {
		t.Fatalf("stack %s left %d namespace(s), %d host link(s), %d host nftables table(s)", stack, n, l, tb)
	}
}

// serve accepts connections in a namespace and answers each with the
// peer's address, so the test sees the source address (NAT or not).
func serve(t testing.TB, nsPath, addr string) {
	t.Helper()
	serveWith(t, nsPath, addr, func(c net.Conn) {
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		fmt.Fprintln(c, host)
	})
}

// serveWith listens on addr in the namespace at nsPath ("" = the host)
// and runs handle for each connection, then closes it; the listener and
// handlers end with the test.
func serveWith(t testing.TB, nsPath, addr string, handle func(net.Conn)) net.Addr {
	t.Helper()
	var l net.Listener
	var err error
	if nsPath == "" {
		l, err = net.Listen("tcp", addr)
	} else {
		l, err = ListenIn(nsPath, "tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return l.Addr()
}

const denyTimeout = 300 * time.Millisecond

// probe dials from a namespace; it returns the source address the server
// saw, or "" when the connection was not made.
func probe(nsPath string, to netip.Addr, port int) string {
	ctx, cancel := context.WithTimeout(context.Background(), denyTimeout)
	defer cancel()
	c, err := DialFunc(nsPath)(ctx, "tcp", netip.AddrPortFrom(to, uint16(port)).String())
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return ""
	}
	return strings.TrimSpace(line)
}

type world struct {
	p *plan.Plan
	v *VPC
}

func (w world) path(name string) string {
	if name == "internet" {
		return w.v.InternetPath()
	}
	n, ok := w.v.Node(name)
	if !ok {
		panic("no node " + name)
	}
	return n.NSPath
}

func (w world) addr(name string) netip.Addr {
	if name == "internet" {
		return secgroup.InternetAddr
	}
	n, _ := w.v.Node(name)
	return n.Addr
}

// check dials for real and compares the kernel's answer with want and with
// secgroup.Reach's prediction over the live membership.
func (w world) check(t *testing.T, from, to string, port int, want bool) string {
	t.Helper()
	seen, v := w.tryAndPredict(t, from, to, port)
	kernel := seen != ""
	if kernel != want || v.Allowed != kernel {
		t.Errorf("%s -> %s tcp/%d: kernel connected=%v, want %v, Reach predicted %v (%s; route: %s; fix: %s)",
			from, to, port, kernel, want, v.Allowed, v.Reason, v.Route, v.Fix)
	}
	return seen
}

// tryAndPredict dials from one node to another for real (seen: the
// source address the server saw, "" when refused) and asks
// secgroup.Reach over the live membership.
func (w world) tryAndPredict(t *testing.T, from, to string, port int) (seen string, v secgroup.Verdict) {
	t.Helper()
	seen = probe(w.path(from), w.addr(to), port)
	m := w.v.Membership()
	fe, err := secgroup.ResolveEndpoint(w.p, m, from)
	if err != nil {
		t.Fatal(err)
	}
	te, err := secgroup.ResolveEndpoint(w.p, m, to)
	if err != nil {
		t.Fatal(err)
	}
	return seen, secgroup.Reach(w.p, m, fe, te, "tcp", port)
}

// up builds testdata/stack.yaml's VPC under the stack name, with edits to
// its plan (e.g. local.egress); it goes down, checked clean, with the test.
func up(t testing.TB, stack, nat string, edits ...func(*plan.Plan)) world {
	t.Helper()
	p := testPlan(t, stack, nat)
	for _, edit := range edits {
		edit(p)
	}
	if _, err := Reclaim(context.Background(), stack, ""); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	v, err := Up(context.Background(), p, Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Down(context.Background()); err != nil {
			t.Error(err)
		}
		assertClean(t, stack)
		if _, err := os.Stat(filepath.Join(dir, stateFile)); !os.IsNotExist(err) {
			t.Errorf("state file left after Down: %v", err)
		}
	})
	return world{p: p, v: v}
}

func addNode(t testing.TB, w world, spec NodeSpec) *Node {
	t.Helper()
	n, err := w.v.AddNode(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// addFixed adds the plan's load balancer nodes and bastion.
func addFixed(t *testing.T, w world) {
	for _, lb := range w.p.LoadBalancers {
		for i, ln := range lb.Nodes {
			addNode(t, w, NodeSpec{Name: fmt.Sprintf("lb-%s-%d", lb.Name, i), Kind: secgroup.KindLoadBalancer, Owner: lb.Name,
				Subnet: ln.Subnet, Addr: ln.Address, Groups: lb.SecurityGroups})
		}
	}
	b := w.p.Bastion
	addNode(t, w, NodeSpec{Name: "bastion", Kind: secgroup.KindBastion, Subnet: b.Subnet, Addr: b.Address, Groups: b.SecurityGroups})
}

func TestVPC(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, nftables")
	a := up(t, "mtest-nat", "single")
	b := up(t, "mtest-nonat", "none") // side by side, no collision
	for _, w := range []world{a, b} {
		addFixed(t, w)
		addNode(t, w, NodeSpec{Name: "i-app1", Kind: secgroup.KindInstance, Owner: "web", Subnet: "private-a", Groups: []string{"app"}})
		addNode(t, w, NodeSpec{Name: "i-other", Kind: secgroup.KindInstance, Owner: "other", Subnet: "private-b", Groups: []string{"other"}})
		addNode(t, w, NodeSpec{Name: "i-locked", Kind: secgroup.KindInstance, Subnet: "private-b", Groups: []string{"locked"}})
		for _, n := range []string{"i-app1", "i-other"} {
			serve(t, w.path(n), "0.0.0.0:8000")
			serve(t, w.path(n), "0.0.0.0:22")
			serve(t, w.path(n), "0.0.0.0:9000")
		}
		serve(t, w.path("bastion"), "0.0.0.0:22")
		serve(t, w.path("lb-web-0"), "0.0.0.0:80")
		serve(t, w.path("internet"), "0.0.0.0:443")
		serve(t, w.path("internet"), "0.0.0.0:80")
	}

	t.Run("host untouched", func(t *testing.T) {
		// The host namespace has no address or route in the VPC ranges.
		routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			if r.Dst != nil && (a.p.VPC.CIDR.Contains(netip.AddrFrom4([4]byte(r.Dst.IP.To4()))) || r.Dst.Contains(net.IP(a.p.VPC.CIDR.Addr().AsSlice()))) && r.Dst.String() != "0.0.0.0/0" {
				t.Errorf("host route into the VPC: %v", r)
			}
		}
		addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		for _, ad := range addrs {
			if ip, ok := netip.AddrFromSlice(ad.IP.To4()); ok && (a.p.VPC.CIDR.Contains(ip) || ip == secgroup.InternetAddr) {
				t.Errorf("host address in the VPC: %v", ad)
			}
		}
	})

	t.Run("security groups", func(t *testing.T) {
		cases := []struct {
			from, to string
			port     int
			want     bool
		}{
			{"lb-web-0", "i-app1", 8000, true},
			{"lb-web-1", "i-app1", 8000, true}, // cross-zone
			{"bastion", "i-app1", 22, true},
			{"bastion", "i-app1", 8000, false},
			{"lb-web-0", "i-app1", 22, false},
			{"i-other", "i-app1", 8000, false},
			{"i-other", "i-app1", 22, false},
			{"internet", "i-app1", 8000, false},
			{"internet", "i-other", 9000, false},
			{"internet", "lb-web-0", 80, true},
			{"internet", "bastion", 22, true},
			{"lb-web-0", "i-other", 9000, false},
			{"i-app1", "i-other", 9000, false},
		}
		for _, c := range cases {
			a.check(t, c.from, c.to, c.port, c.want)
		}
	})

	t.Run("restricted egress", func(t *testing.T) {
		// Group locked allows out only tcp/443 anywhere and udp/53 to app.
		a.check(t, "i-locked", "internet", 443, true)
		a.check(t, "i-locked", "internet", 80, false)
		a.check(t, "i-locked", "i-app1", 8000, false)
		a.check(t, "i-app1", "internet", 80, true)
	})

	t.Run("nat", func(t *testing.T) {
		before, err := a.v.NATEgress()
		if err != nil {
			t.Fatal(err)
		}
		// With NAT the internet sees the router's uplink address.
		if seen := a.check(t, "i-app1", "internet", 443, true); seen != uplinkRouter.Addr().String() {
			t.Errorf("internet saw %q from a NATed private instance, want %s", seen, uplinkRouter.Addr())
		}
		a.check(t, "i-other", "internet", 443, true)
		// Public subnets use the internet gateway without NAT.
		if seen := a.check(t, "bastion", "internet", 443, true); seen != a.addr("bastion").String() {
			t.Errorf("internet saw %q from the bastion, want %s", seen, a.addr("bastion"))
		}
		// The NAT gateway counted what the two private instances sent
		// out (at least SYN, ACK and FIN each), and nothing of the
		// bastion's (a public subnet's).
		after, err := a.v.NATEgress()
		if err != nil {
			t.Fatal(err)
		}
		if len(before) != 1 || len(after) != 1 || after[0].Name != a.p.NATGateways[0].Name || len(after[0].Subnets) != 2 {
			t.Fatalf("NAT egress before %+v, after %+v: want one gateway, %s, for both private subnets", before, after, a.p.NATGateways[0].Name)
		}
		if p, by := after[0].Packets-before[0].Packets, after[0].Bytes-before[0].Bytes; p < 6 || by < 6*40 {
			t.Errorf("NAT gateway sent %d packets, %d bytes for two connections; want at least 6 packets of 40 bytes", p, by)
		}
		if none, err := b.v.NATEgress(); err != nil || len(none) != 0 {
			t.Errorf("a VPC without NAT gateways counts %+v (%v)", none, err)
		}
		// Without a NAT gateway a private subnet has no way out.
		b.check(t, "i-app1", "internet", 443, false)
		b.check(t, "i-other", "internet", 443, false)
		b.check(t, "bastion", "internet", 443, true)
		b.check(t, "lb-web-0", "i-app1", 8000, true)
	})

	t.Run("membership", func(t *testing.T) {
		// A new app instance is reachable from the load balancer within 1 s.
		n := addNode(t, a, NodeSpec{Name: "i-app2", Kind: secgroup.KindInstance, Owner: "web", Subnet: "private-b", Groups: []string{"app"}})
		joined := time.Now()
		serve(t, n.NSPath, "0.0.0.0:8000")
		waitReach(t, a, "lb-web-0", "i-app2", 8000, joined)
		a.check(t, "lb-web-0", "i-app2", 8000, true)
		addr := n.Addr
		if err := a.v.RemoveNode(context.Background(), "i-app2"); err != nil {
			t.Fatal(err)
		}
		if probe(a.path("lb-web-0"), addr, 8000) != "" {
			t.Error("a removed instance still answers")
		}

		// A new load balancer node (group lb, a source set) reaches the app
		// within 1 s; once it leaves, its address is out of sg_lb: a node
		// of another group reusing the address is denied.
		extra := addNode(t, a, NodeSpec{Name: "lb-web-9", Kind: secgroup.KindLoadBalancer, Owner: "web", Subnet: "public-b", Groups: []string{"lb"}})
		waitReach(t, a, "lb-web-9", "i-app1", 8000, time.Now())
		a.check(t, "lb-web-9", "i-app1", 8000, true)
		if err := a.v.RemoveNode(context.Background(), "lb-web-9"); err != nil {
			t.Fatal(err)
		}
		addNode(t, a, NodeSpec{Name: "i-reuse", Kind: secgroup.KindInstance, Subnet: "public-b", Addr: extra.Addr, Groups: []string{"other"}})
		a.check(t, "i-reuse", "i-app1", 8000, false)
		if err := a.v.RemoveNode(context.Background(), "i-reuse"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("metadata", func(t *testing.T) {
		serve(t, a.v.RouterPath(), netip.AddrPortFrom(MetadataAddr, 80).String())
		if seen := probe(a.path("i-app1"), MetadataAddr, 80); seen != a.addr("i-app1").String() {
			t.Errorf("metadata from i-app1: saw %q", seen)
		}
		if seen := probe(a.path("internet"), MetadataAddr, 80); seen != "" {
			t.Errorf("the internet reached the metadata address")
		}
	})
}

// waitReach polls until from reaches to, failing if that takes more than a
// second after since.
func waitReach(t *testing.T, w world, from, to string, port int, since time.Time) {
	t.Helper()
	testutil.Eventually(t, time.Until(since.Add(time.Second)), func() error {
		if probe(w.path(from), w.addr(to), port) == "" {
			return fmt.Errorf("%s -> %s:%d not reachable within 1 s of joining", from, to, port)
		}
		return nil
	})
}

func TestFailedUpLeavesNothing(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, nftables")
	const stack = "mtest-fail"
	p := testPlan(t, stack, "single")
	Reclaim(context.Background(), stack, "") // an earlier aborted run's
	t.Cleanup(func() { Reclaim(context.Background(), stack, "") })
	for _, step := range []string{"router", "bridges", "uplink", "nat"} {
		dir := t.TempDir()
		v, err := Up(context.Background(), p, Options{StateDir: dir, failAt: step})
		if err == nil || v != nil {
			t.Fatalf("failAt %s: Up succeeded", step)
		}
		if !strings.Contains(err.Error(), "injected failure at "+step) || strings.Contains(err.Error(), "clean up") {
			t.Errorf("failAt %s: %v", step, err)
		}
		assertClean(t, stack)
		if _, err := os.Stat(filepath.Join(dir, stateFile)); !os.IsNotExist(err) {
			t.Errorf("failAt %s: state file left: %v", step, err)
		}
	}
}

func TestReclaimAfterCrash(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, nftables")
	const stack = "mtest-crash"
	p := testPlan(t, stack, "single")
	Reclaim(context.Background(), stack, "") // an earlier aborted run's
	t.Cleanup(func() { Reclaim(context.Background(), stack, "") })
	dir := t.TempDir()
	v, err := Up(context.Background(), p, Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	w := world{p: p, v: v}
	addFixed(t, w)
	addNode(t, w, NodeSpec{Name: "i-1", Subnet: "private-a", Groups: []string{"app"}})
	// Crash: the process's handles go, nothing else is cleaned up.
	v.closeHandles()
	if n, _, _ := countLeftovers(t, stack); n != 6 {
		t.Fatalf("before reclaim: %d namespaces, want 6 (router, internet, 2 lb, bastion, i-1)", n)
	}
	n, err := Reclaim(context.Background(), stack, dir)
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Errorf("Reclaim deleted %d namespaces, want 6", n)
	}
	assertClean(t, stack)
	if _, err := os.Stat(filepath.Join(dir, stateFile)); !os.IsNotExist(err) {
		t.Errorf("state file left after Reclaim: %v", err)
	}
}

func TestLeftoversIgnoresLongerStackNames(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, nftables")
	// moat-mtest-x-... belongs to stack mtest-x, not mtest.
	for _, s := range []string{"mtest-x", "mtest"} {
		if _, err := Reclaim(context.Background(), s, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"moat-mtest-x-router", "moat-mtest-x-i-1", "moat-mtest-router"} {
		h, err := nsenter.NewNamed(name)
		if err != nil {
			t.Fatal(err)
		}
		h.Close()
		t.Cleanup(func() { deleteNamed(name) })
	}
	got, err := Leftovers("mtest", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "moat-mtest-router" {
		t.Fatalf("Leftovers(mtest) = %v, want [moat-mtest-router]", got)
	}
}

func BenchmarkAddNode(b *testing.B) {
	testutil.RequireRoot(b, "network namespaces, nftables")
	const stack = "mtest-bench"
	p := testPlan(b, stack, "single")
	Reclaim(context.Background(), stack, "")
	v, err := Up(context.Background(), p, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		v.Down(context.Background())
		assertClean(b, stack)
	}()
	w := world{p: p, v: v}
	for i, ln := range p.LoadBalancers[0].Nodes {
		if _, err := v.AddNode(context.Background(), NodeSpec{Name: fmt.Sprintf("lb-web-%d", i), Subnet: ln.Subnet, Addr: ln.Address, Groups: []string{"lb"}}); err != nil {
			b.Fatal(err)
		}
	}
	_ = w
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("i-%d", i)
		if _, err := v.AddNode(ctx, NodeSpec{Name: name, Subnet: "private-a", Groups: []string{"app"}}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := v.RemoveNode(ctx, name); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
