// Package netguard keeps moat's host-namespace dialers away from private
// address space: VPC addresses live only inside network namespaces, so a
// host-side dial to 10/8, 172.16/12 or 192.168/16 is always a bug (and
// could reach a real network). Every host-namespace dialer in moat calls
// Check (or uses Dial) before connecting.
package netguard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// Private are the RFC 1918 blocks a host-namespace dialer refuses.
var Private = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
}

// ErrPrivate is wrapped by the error Check returns for a refused address.
var ErrPrivate = fmt.Errorf("private (RFC 1918) destination refused in the host namespace")

// CheckAddr refuses a private address.
func CheckAddr(a netip.Addr) error {
	a = a.Unmap()
	for _, p := range Private {
		if p.Contains(a) {
			return fmt.Errorf("dial %s: %w; VPC addresses are reachable only from inside the VPC's namespaces (use vpc.DialFunc)", a, ErrPrivate)
		}
	}
	return nil
}

// Check refuses a "host:port" (or bare host) destination whose host is a
// private IP literal. Host names are not resolved here; Dial checks the
// resolved address.
func Check(address string) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return nil // a name; Dial checks the resolved address
	}
	return CheckAddr(a)
}

// Dial connects from the host namespace like net.Dialer.DialContext, but
// refuses private destinations, including names that resolve to one.
func Dial(ctx context.Context, network, address string) (net.Conn, error) {
	if err := Check(address); err != nil {
		return nil, err
	}
	d := net.Dialer{ControlContext: func(_ context.Context, _, resolved string, _ syscall.RawConn) error {
		return Check(resolved)
	}}
	return d.DialContext(ctx, network, address)
}
