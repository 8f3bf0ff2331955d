package vpc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netns"

	"github.com/moat-dev/moat/internal/nsenter"
)

// NetnsDir is where named network namespaces are mounted.
const NetnsDir = "/run/netns"

// NamespaceName is the name of a node's namespace: moat-<stack>-<node>.
func NamespaceName(stack, node string) string { return "moat-" + stack + "-" + node }

// NamespacePath is the bind mount of a node's namespace.
func NamespacePath(stack, node string) string {
	return filepath.Join(NetnsDir, NamespaceName(stack, node))
}

// linkName is a short kernel link name (≤15 bytes): "mt", 8 hex digits of a
// hash of the stack and object, and a suffix of at most 5 bytes.
func linkName(stack, object, suffix string) string {
	sum := sha256.Sum256([]byte(stack + "\x00" + object))
	if len(suffix) > 5 {
		suffix = suffix[:5]
	}
	return "mt" + hex.EncodeToString(sum[:4]) + suffix
}

// deleteNamed removes a named namespace's mount; the kernel frees it once
// no process or open handle holds it.
func deleteNamed(name string) error {
	if _, err := os.Stat(filepath.Join(NetnsDir, name)); os.IsNotExist(err) {
		return nil
	}
	if err := netns.DeleteNamed(name); err != nil {
		return fmt.Errorf("delete network namespace %s: %w", name, err)
	}
	return nil
}

// writeSysctl writes a /proc/sys value inside a namespace (net.* sysctls
// are per namespace, chosen by the opener's namespace).
func writeSysctl(h netns.NsHandle, key, value string) error {
	return nsenter.Do(h, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
}

// DialFunc returns a dialer whose sockets live in the network namespace at
// nsPath: each dial locks an OS thread, enters the namespace, dials and
// returns (a socket keeps the namespace it was created in). The address
// must be an IP literal and port; no name resolution happens inside.
func DialFunc(nsPath string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if _, err := netip.ParseAddrPort(addr); err != nil {
			return nil, fmt.Errorf("dial %s in %s: need an ip:port: %w", addr, nsPath, err)
		}
		c, err := nsenter.Open(nsPath, func() (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		})
		if err != nil {
			return nil, fmt.Errorf("dial %s from %s: %w", addr, filepath.Base(nsPath), err)
		}
		return c, nil
	}
}

// ListenIn opens a listener inside the network namespace at nsPath (for
// example the metadata server on 169.254.169.254:80 in the router
// namespace); Accept works from any goroutine.
func ListenIn(nsPath, network, addr string) (net.Listener, error) {
	l, err := nsenter.Open(nsPath, func() (net.Listener, error) { return net.Listen(network, addr) })
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, filepath.Base(nsPath), err)
	}
	return l, nil
}

// ListenPacketIn is ListenIn for datagram sockets.
func ListenPacketIn(nsPath, network, addr string) (net.PacketConn, error) {
	l, err := nsenter.Open(nsPath, func() (net.PacketConn, error) { return net.ListenPacket(network, addr) })
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, filepath.Base(nsPath), err)
	}
	return l, nil
}
