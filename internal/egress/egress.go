// Package egress carries a VPC's outbound traffic to the host's real
// network when the stack file opts in (local.egress), the way
// slirp4netns and pasta give rootless containers theirs: in user space,
// leaving the host's routing, forwarding and firewall untouched.
//
// The VPC's internet namespace redirects every TCP connection and DNS
// query that arrives from the VPC through the internet gateway (nftables,
// package vpc) to a Proxy listening there. The proxy reads each
// connection's original destination (SO_ORIGINAL_DST), decides where it
// may go (Destination, pure) and dials it from the host namespace;
// queries are answered from the host's resolver (Answer).
//
// HostAddr, the internet gateway's far side, stands for the host itself:
// a connection to HostAddr:port reaches 127.0.0.1:port on the host (as
// slirp's 10.0.2.2 does), and the name host.moat.internal resolves to it.
// Private (RFC 1918), loopback, link-local and the VPC's own addresses are
// refused: moat never sends VPC-like addresses to the host's network.
package egress

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"

	"github.com/moat-dev/moat/internal/acceptloop"
	"github.com/moat-dev/moat/internal/netguard"
	"github.com/moat-dev/moat/internal/secgroup"
)

// HostAddr is the address that means "the host" from inside the VPC.
var HostAddr = secgroup.InternetAddr

// HostName resolves to HostAddr through the egress resolver.
const HostName = "host.moat.internal"

// Bounds on what the VPC can make the proxy hold: open connections and
// DNS queries in flight (beyond them, connections are reset and queries
// dropped, and the client retries), and A records in one answer (so a
// reply stays within DNS's 512-byte UDP limit).
const (
	maxConns      = 4096
	maxQueries    = 64
	maxARecords   = 8
	dnsBufferSize = 512
)

// ErrRefused is wrapped by Destination's refusals.
var ErrRefused = errors.New("egress refused")

// reserved are blocks that never leave through egress (besides the RFC
// 1918 ones netguard refuses): this host, link-local (the metadata
// address), moat's uplink range, multicast and the like.
var reserved = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("224.0.0.0/3"),
}

// Destination decides where a connection from the VPC to dst goes from the
// host namespace: HostAddr is the host's loopback; addresses of the VPC,
// private, reserved or non-IPv4 ones are refused (pure).
func Destination(dst netip.AddrPort, vpc netip.Prefix) (netip.AddrPort, error) {
	a := dst.Addr().Unmap()
	switch {
	case a == HostAddr:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), dst.Port()), nil
	case !a.Is4():
		return netip.AddrPort{}, fmt.Errorf("%w: %s is not an IPv4 address", ErrRefused, dst)
	case vpc.IsValid() && vpc.Contains(a):
		return netip.AddrPort{}, fmt.Errorf("%w: %s is inside the VPC %s", ErrRefused, dst, vpc)
	case netguard.CheckAddr(a) != nil:
		return netip.AddrPort{}, fmt.Errorf("%w: %s is a private (RFC 1918) address; moat keeps VPC-like addresses off the host's network", ErrRefused, dst)
	}
	for _, p := range reserved {
		if p.Contains(a) {
			return netip.AddrPort{}, fmt.Errorf("%w: %s is in reserved block %s (use %s for the host)", ErrRefused, dst, p, HostAddr)
		}
	}
	return netip.AddrPortFrom(a, dst.Port()), nil
}

// Proxy carries redirected connections and queries to the host namespace.
// Set the fields, then Start; Close ends it.
type Proxy struct {
	// VPC is the stack's VPC block (never a destination).
	VPC netip.Prefix
	// Log receives a line per connection; nil discards.
	Log *slog.Logger
	// Dial connects from the host namespace; nil: netguard.Dial.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Lookup resolves a name's IPv4 addresses; nil: the host's resolver.
	Lookup func(ctx context.Context, name string) ([]netip.Addr, error)

	// Forwarded and Refused count TCP connections; Queries counts DNS
	// queries answered.
	Forwarded, Refused, Queries atomic.Int64

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closed  bool
	tcp     net.Listener
	dns     net.PacketConn
	queries chan struct{} // one token per DNS query in flight
}

// Start serves redirected TCP connections accepted on tcp and DNS queries
// read from dns (either may be nil). The listeners must live in the
// internet namespace, on vpc.EgressPort and vpc.EgressDNSPort.
func (p *Proxy) Start(tcp net.Listener, dns net.PacketConn) {
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	if p.Dial == nil {
		p.Dial = netguard.Dial
	}
	if p.Lookup == nil {
		p.Lookup = func(ctx context.Context, name string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip4", name)
		}
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.conns = map[net.Conn]struct{}{}
	p.queries = make(chan struct{}, maxQueries)
	p.tcp, p.dns = tcp, dns
	if tcp != nil {
		p.wg.Go(p.acceptLoop)
	}
	if dns != nil {
		p.wg.Go(p.dnsLoop)
	}
}

// Close stops accepting, ends open connections and waits for them.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	if p.cancel != nil {
		p.cancel()
	}
	if p.tcp != nil {
		p.tcp.Close()
	}
	if p.dns != nil {
		p.dns.Close()
	}
	p.wg.Wait()
	return nil
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.conns) >= maxConns {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// acceptLoop accepts redirected connections until Close (acceptloop backs
// off on accept errors); each is carried by serve, or refused when too
// many are open.
func (p *Proxy) acceptLoop() {
	_ = acceptloop.ServeCounted(p.ctx, p.tcp, p.Log, &p.wg, func(c net.Conn) {
		if !p.track(c) {
			c.Close()
			if p.isClosed() {
				return
			}
			p.Refused.Add(1)
			p.Log.Warn("egress refused", "src", c.RemoteAddr().String(), "err", "too many open connections")
			return
		}
		p.serve(c)
	})
}

// serve carries one redirected connection.
func (p *Proxy) serve(c net.Conn) {
	defer p.untrack(c)
	src := c.RemoteAddr().String()
	orig, err := originalDst(c)
	if err == nil {
		orig, err = Destination(orig, p.VPC)
	}
	var up net.Conn
	if err == nil {
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		up, err = p.Dial(ctx, "tcp", orig.String())
		cancel()
	}
	if err != nil {
		p.Refused.Add(1)
		p.Log.Warn("egress refused", "src", src, "err", err)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // reset: the client sees the refusal at once
		}
		return
	}
	p.Forwarded.Add(1)
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.untrack(up)
	start := time.Now()
	var sent, received int64
	var wg sync.WaitGroup
	wg.Go(func() { sent = pipe(up, c) })
	received = pipe(c, up)
	wg.Wait()
	p.Log.Info("egress", "src", src, "dst", orig.String(), "sent", sent, "received", received,
		"duration", time.Since(start).Round(time.Millisecond))
}

// pipe copies src to dst, then half-closes dst's write side; on a reset or
// a failed write it closes both, so the other direction ends too instead
// of holding both sockets until the far side speaks.
func pipe(dst, src net.Conn) int64 {
	n, err := io.Copy(dst, src)
	if err != nil {
		dst.Close()
		src.Close()
		return n
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
	return n
}

// originalDst is a redirected connection's destination before the
// redirect (netfilter's SO_ORIGINAL_DST).
func originalDst(c net.Conn) (netip.AddrPort, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("original destination: %T is not TCP", c)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var mreq *unix.IPv6Mreq
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		// sockaddr_in fits in ipv6_mreq's 20 bytes: the usual way to
		// read SO_ORIGINAL_DST without cgo.
		mreq, gerr = unix.GetsockoptIPv6Mreq(int(fd), unix.IPPROTO_IP, unix.SO_ORIGINAL_DST)
	}); err != nil {
		return netip.AddrPort{}, err
	}
	if gerr != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", gerr)
	}
	raw := mreq.Multiaddr
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[4:8])), binary.BigEndian.Uint16(raw[2:4])), nil
}

func (p *Proxy) dnsLoop() {
	buf := make([]byte, dnsBufferSize)
	for {
		n, from, err := p.dns.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.Log.Warn("egress dns read", "err", err)
			}
			return
		}
		select {
		case p.queries <- struct{}{}:
		default:
			continue // too many in flight: drop, the client retries
		}
		q := append([]byte(nil), buf[:n]...)
		p.wg.Go(func() {
			defer func() { <-p.queries }()
			ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
			defer cancel()
			if resp := Answer(ctx, q, p.Lookup); resp != nil {
				p.Queries.Add(1)
				p.dns.WriteTo(resp, from)
			}
		})
	}
}

// Answer answers a DNS query: A records of HostName are HostAddr, other
// names' come from lookup; AAAA and other types get an empty answer (the
// VPC has no IPv6). It returns nil for a message that is not a query.
func Answer(ctx context.Context, query []byte, lookup func(ctx context.Context, name string) ([]netip.Addr, error)) []byte {
	var parser dnsmessage.Parser
	h, err := parser.Start(query)
	if err != nil || h.Response {
		return nil
	}
	q, err := parser.Question()
	if err != nil {
		return nil
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired,
		RecursionAvailable: true, RCode: dnsmessage.RCodeSuccess}
	var addrs []netip.Addr
	name := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
	switch {
	case h.OpCode != 0 || q.Class != dnsmessage.ClassINET:
		rh.RCode = dnsmessage.RCodeNotImplemented
	case name == HostName:
		if q.Type == dnsmessage.TypeA {
			addrs = []netip.Addr{HostAddr}
		}
	case q.Type == dnsmessage.TypeA:
		addrs, err = lookup(ctx, name)
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			rh.RCode = dnsmessage.RCodeNameError
		case err != nil:
			rh.RCode = dnsmessage.RCodeServerFailure
		}
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil
	}
	n := 0
	for _, a := range addrs {
		if !a.Unmap().Is4() || n == maxARecords {
			continue
		}
		n++
		rr := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60}
		if b.AResource(rr, dnsmessage.AResource{A: a.Unmap().As4()}) != nil {
			return nil
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}
