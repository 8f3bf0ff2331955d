package metadata

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/moat-dev/moat/internal/nsenter"
)

// Address is where EC2 serves instance metadata.
var Address = netip.MustParseAddr("169.254.169.254")

// ListenInNamespace makes the metadata address answer inside the network
// namespace at nsPath: it brings lo up, gives it 169.254.169.254/32 (if
// missing) and returns a TCP listener on 169.254.169.254:80 that belongs
// to that namespace. Serve it with Handler.Pinned, since requests on it
// come from the namespace's own addresses.
//
// The socket is created on a locked OS thread switched into the namespace;
// a socket keeps the namespace it was created in, so the listener works
// from any goroutine afterwards.
func ListenInNamespace(nsPath string) (net.Listener, error) {
	target, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", nsPath, err)
	}
	defer target.Close()
	nh, err := netlink.NewHandleAt(target)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", nsPath, err)
	}
	defer nh.Close()
	lo, err := nh.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("find lo in %s: %w", nsPath, err)
	}
	if err := nh.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("bring lo up in %s: %w", nsPath, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: Address.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	if err := nh.AddrAdd(lo, addr); err != nil && !errors.Is(err, syscall.EEXIST) {
		return nil, fmt.Errorf("add %s to lo in %s: %w", Address, nsPath, err)
	}

	l, err := nsenter.Open(nsPath, func() (net.Listener, error) {
		return net.Listen("tcp4", net.JoinHostPort(Address.String(), "80"))
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s:80 in %s: %w", Address, nsPath, err)
	}
	return l, nil
}

// Pinned serves every request as coming from ip: for a listener inside one
// instance's namespace (ListenInNamespace), where the source address says
// nothing about which instance asks. Tokens are shared with h.
func (h *Handler) Pinned(ip netip.Addr) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		port := "0"
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			port = fmt.Sprint(ap.Port())
		}
		r2.RemoteAddr = net.JoinHostPort(ip.String(), port)
		h.ServeHTTP(w, r2)
	})
}
