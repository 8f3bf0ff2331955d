package vpc

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/egress"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
	"github.com/moat-dev/moat/internal/testutil"
)

// egressWorld brings up the test VPC with local.egress on or off and, when
// on, moat's egress proxy in its internet namespace (TCP and DNS). Names
// other than host.moat.internal go to a stand-in resolver: tests never
// query real DNS.
func egressWorld(t testing.TB, stack string, on bool) (world, *egress.Proxy) {
	t.Helper()
	w := up(t, stack, "single", func(p *plan.Plan) { p.Local.Egress = on })
	proxy := &egress.Proxy{VPC: w.p.VPC.CIDR, Lookup: func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("203.0.113.7")}, nil
	}}
	if !on {
		return w, proxy
	}
	l, err := ListenIn(w.v.InternetPath(), "tcp4", fmt.Sprintf(":%d", EgressPort))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := ListenPacketIn(w.v.InternetPath(), "udp4", fmt.Sprintf(":%d", EgressDNSPort))
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	proxy.Start(l, pc)
	t.Cleanup(func() { proxy.Close() }) // before the VPC goes down
	return w, proxy
}

// TestEgress: with local.egress, an instance in a private subnet reaches a
// service on the host's loopback through the internet gateway and moat's
// egress proxy (HostAddr), resolves host.moat.internal, and is refused
// private destinations; without it, the same connection fails. Every
// packet stays inside this test's namespaces or on host loopback: the
// refused destination is turned away by the proxy before any dial, and
// names other than host.moat.internal go to a stand-in resolver.
func TestEgress(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, nftables")
	host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from the host")
	}))
	defer host.Close()
	port := netip.MustParseAddrPort(host.Listener.Addr().String()).Port()
	hostURL := fmt.Sprintf("http://%s/", netip.AddrPortFrom(egress.HostAddr, port))

	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("egress=%v", on), func(t *testing.T) {
			w, proxy := egressWorld(t, "egresstest", on)
			n := addNode(t, w, NodeSpec{Name: "i-egress", Kind: secgroup.KindInstance, Owner: "web",
				Subnet: "private-a", Groups: []string{"app"}})
			client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: n.Dial()}}
			resp, err := client.Get(hostURL)
			if !on {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("without local.egress, GET %s from a private instance answered %s", hostURL, resp.Status)
				}
				return
			}
			if err != nil {
				t.Fatalf("GET %s from a private instance: %v", hostURL, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "hello from the host" {
				t.Fatalf("GET %s: %q", hostURL, body)
			}

			r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return n.Dial()(ctx, "udp", "198.51.100.53:53") // any server: port 53 is redirected
			}}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			for name, want := range map[string]string{egress.HostName: egress.HostAddr.String(), "example.test": "203.0.113.7"} {
				addrs, err := r.LookupNetIP(ctx, "ip4", name)
				if err != nil || len(addrs) != 1 || addrs[0].String() != want {
					t.Errorf("resolve %s in the instance: %v, %v; want %s", name, addrs, err, want)
				}
			}

			c, err := n.Dial()(ctx, "tcp", "192.168.77.1:80")
			if err == nil {
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, err = c.Read(make([]byte, 1))
				c.Close()
			}
			if err == nil || proxy.Refused.Load() != 1 {
				t.Errorf("connection to a private address: err %v, refused %d; want a reset and 1 refusal", err, proxy.Refused.Load())
			}
			if proxy.Forwarded.Load() < 1 || proxy.Queries.Load() != 2 {
				t.Errorf("forwarded %d, queries %d", proxy.Forwarded.Load(), proxy.Queries.Load())
			}
			client.CloseIdleConnections()
		})
	}
}

// BenchmarkEgressThroughput: bytes a private instance reads from a server
// on the host's loopback through NAT, the internet gateway and the egress
// proxy (b.SetBytes: MB/s per connection).
func BenchmarkEgressThroughput(b *testing.B) {
	testutil.RequireRoot(b, "network namespaces, nftables")
	const size = 64 << 20
	buf := make([]byte, 1<<20)
	addr := serveWith(b, "", "127.0.0.1:0", func(c net.Conn) {
		for sent := 0; sent < size; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	port := netip.MustParseAddrPort(addr.String()).Port()

	w, _ := egressWorld(b, "egressbench", true)
	n := addNode(b, w, NodeSpec{Name: "i-bench", Kind: secgroup.KindInstance, Owner: "web",
		Subnet: "private-a", Groups: []string{"app"}})
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := n.Dial()(ctx, "tcp", netip.AddrPortFrom(egress.HostAddr, port).String())
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		got, err := io.Copy(io.Discard, c)
		c.Close()
		if err != nil || got != size {
			b.Fatalf("read %d bytes, %v", got, err)
		}
	}
}
