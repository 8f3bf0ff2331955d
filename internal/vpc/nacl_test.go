package vpc

import (
	"context"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
	served := map[string]bool{}
	for _, s := range []string{"i-app1:8000", "i-app1:22", "i-app2:8000", "i-app2:22", "lb-web-0:80", "bastion:22", "internet:80"} {
		node, port, _ := strings.Cut(s, ":")
		serve(t, w.path(node), "0.0.0.0:"+port)
		served[s] = true
	}

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
	// The VPC's own services are not filtered, as on AWS: private-a's
	// network ACL lets nothing out to port 80, yet instance metadata
	// (on the router) answers.
	l, err := w.v.RouterListen("tcp", netip.AddrPortFrom(MetadataAddr, 80).String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("metadata\n"))
			c.Close()
		}
	}()
	if got := probe(w.path("i-app1"), MetadataAddr, 80); got == "" {
		t.Error("i-app1 cannot reach instance metadata: the network ACL filtered traffic to the router itself")
	}
	if _, v := w.tryAndPredict(t, "i-app1", "lb-web-0", 80); v.Allowed {
		t.Errorf("i-app1 -> lb-web-0 tcp/80 allowed; the network ACL should deny port 80 out of private-a (or the metadata check proves nothing)")
	}

	// Probe (moat reach --probe) counts a reset as reached: lb-web-1
	// serves nothing on 80, yet the SYN and the reset cross every filter.
	for _, c := range []struct {
		from, to string
		port     int
		reached  bool
		says     string
	}{
		{"internet", "lb-web-1", 80, true, "refused (reached; nothing listens on the port)"},
		{"internet", "lb-web-0", 80, true, "connected"},
		{"bastion", "i-app1", 22, false, "timed out"},
		{"lb-web-1", "i-app1", 8000, false, "timed out"},
	} {
		res, err := Probe(context.Background(), w.path(c.from), netip.AddrPortFrom(w.addr(c.to), uint16(c.port)), time.Second)
		_, v := w.tryAndPredict(t, c.from, c.to, c.port)
		if err != nil || res.Reached != c.reached || !strings.HasPrefix(res.Outcome, c.says) || v.Allowed != res.Reached {
			t.Errorf("Probe %s -> %s tcp/%d = %+v, %v; want reached=%v %q, as Reach predicts (%v)", c.from, c.to, c.port, res, err, c.reached, c.says, v.Allowed)
		}
	}

	// Every ordered pair of endpoints on 22, 80 and 8000 (each served
	// everywhere), tried for real: the kernel and Reach agree on each.
	names := []string{"lb-web-0", "lb-web-1", "bastion", "i-app1", "i-app2", "i-peer", "jump-b", "internet"}
	for _, n := range names {
		for _, port := range []string{"22", "80", "8000"} {
			if !served[n+":"+port] {
				serve(t, w.path(n), "0.0.0.0:"+port)
			}
		}
	}
	type result struct {
		from, to string
		port     int
		kernel   bool
		v        secgroup.Verdict
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
		limit   = make(chan struct{}, 16) // at most 16 probes at once, each bounded by denyTimeout
	)
	for _, from := range names {
		for _, to := range names {
			for _, port := range []int{22, 80, 8000} {
				if from == to || (from == "internet" && to == "internet") {
					continue
				}
				wg.Go(func() {
					limit <- struct{}{}
					defer func() { <-limit }()
					seen, v := w.tryAndPredict(t, from, to, port)
					mu.Lock()
					results = append(results, result{from, to, port, seen != "", v})
					mu.Unlock()
				})
			}
		}
	}
	wg.Wait()
	allowed, denied, agreed := 0, 0, 0
	for _, r := range results {
		if r.kernel != r.v.Allowed {
			t.Errorf("%s -> %s tcp/%d: kernel connected=%v, Reach predicted %v (%s)", r.from, r.to, r.port, r.kernel, r.v.Allowed, r.v.Reason)
		} else {
			agreed++
		}
		if r.kernel {
			allowed++
		} else {
			denied++
		}
	}
	t.Logf("matrix: %d (source, destination, port) triples, %d allowed and %d denied by the kernel, Reach agreed on %d", len(results), allowed, denied, agreed)
	if allowed < 10 || denied < 10 {
		t.Errorf("matrix: %d allowed, %d denied; want both kinds well represented", allowed, denied)
	}

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
