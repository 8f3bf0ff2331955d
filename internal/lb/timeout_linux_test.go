package lb

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/moat-dev/moat/internal/targetgroup"
	"github.com/moat-dev/moat/internal/testutil"
	"github.com/moat-dev/moat/internal/vpc"
)

func TestConnectTimeoutDefaultIsALBs(t *testing.T) {
	e, err := New(Config{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := e.cfg.Load().ConnectTimeout; got != 10*time.Second {
		t.Fatalf("default connect timeout %s, want ALB's 10s", got)
	}
}

// synDropTarget makes a throwaway network namespace holding a target that
// listens on 192.0.2.1 while an nftables rule drops every TCP SYN to its
// port, as a security group without the load balancer does. It returns
// the namespace path, the target address and its count of accepted
// connections.
func synDropTarget(t *testing.T) (nsPath, addr string, accepted *atomic.Int32) {
	t.Helper()
	testutil.RequireRoot(t, "a network namespace, an nftables rule")
	name := fmt.Sprintf("moat-lbtest-%d", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	ip("netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	ip("-n", name, "link", "set", "lo", "up")
	ip("-n", name, "addr", "add", "192.0.2.1/32", "dev", "lo")
	nsPath = vpc.NetnsDir + "/" + name

	ln, err := vpc.ListenIn(nsPath, "tcp", "192.0.2.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = &atomic.Int32{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				accepted.Add(1)
			}
		}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	tb := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "lbtest"})
	accept := nftables.ChainPolicyAccept
	in := c.AddChain(&nftables.Chain{Name: "input", Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	c.AddRule(&nftables.Rule{Table: tb, Chain: in, Exprs: []expr.Any{ // tcp dport <port> tcp flags & syn != 0 drop
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, uint16(port))},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x02}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0}},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("add the SYN-dropping rule: %v", err)
	}
	return nsPath, ln.Addr().String(), accepted
}

// TestSYNDroppedTargetIs504 sends one request on an HTTP and one on an
// HTTPS listener to a target whose SYNs are dropped: the load balancer
// dials from inside the target's namespace (as it dials from its nodes'
// namespaces in a stack) and answers 504 once ALB's 10 s target
// connection timeout has passed, instead of hanging for minutes.
func TestSYNDroppedTargetIs504(t *testing.T) {
	nsPath, target, accepted := synDropTarget(t)
	cfg := Config{TargetGroups: []targetgroup.Config{{Name: "tg", HealthCheck: targetgroup.HealthCheck{Interval: time.Hour, Timeout: time.Second}}},
		Listeners: []Listener{{Name: "http", DefaultAction: forwardTo("tg")}, {Name: "https", Protocol: "HTTPS", DefaultAction: forwardTo("tg")}}}
	e, err := New(cfg, Options{Dial: vpc.DialFunc(nsPath)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	urls := map[string]string{}
	for _, l := range []struct{ name, scheme string }{{"http", "http"}, {"https", "https"}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go e.Serve(ln, l.name)
		t.Cleanup(func() { ln.Close() })
		urls[l.name] = l.scheme + "://" + ln.Addr().String() + "/"
	}
	if err := e.Register("tg", target); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for name, url := range urls {
		k := everyListener[0]
		if name == "https" {
			k = everyListener[1]
		}
		wg.Go(func() {
			start := time.Now()
			resp, err := k.client(t).Get(url)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			resp.Body.Close()
			took := time.Since(start)
			if resp.StatusCode != 504 || took < 10*time.Second || took > 15*time.Second {
				t.Errorf("%s: status %d after %s, want 504 after ALB's 10s connect timeout", name, resp.StatusCode, took.Round(time.Millisecond))
			}
		})
	}
	wg.Wait()
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the target accepted %d connections: the SYNs were not dropped", n)
	}
}
