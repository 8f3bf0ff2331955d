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
	"runtime"

	"github.com/vishvananda/netns"
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

// inNS runs fn on a locked OS thread switched into the namespace. The
// goroutine is started before the switch; fn must start none. If the
// thread cannot be switched back it stays locked, so the runtime discards
// it when the goroutine ends.
func inNS(target netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("return to the original network namespace: %w", err)
			return // thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// newNamed creates a named network namespace without moving the caller.
func newNamed(name string) (netns.NsHandle, error) {
	var h netns.NsHandle
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		h, err = netns.NewNamed(name)
		if serr := netns.Set(orig); serr != nil {
			errc <- fmt.Errorf("return to the original network namespace: %w", serr)
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		return 0, fmt.Errorf("create network namespace %s: %w", name, err)
	}
	return h, nil
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
	return inNS(h, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
}

// inNSPath is inNS for the namespace mounted at nsPath.
func inNSPath(nsPath string, fn func() error) error {
	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", nsPath, err)
	}
	defer h.Close()
	return inNS(h, fn)
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
		var c net.Conn
		err := inNSPath(nsPath, func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
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
	var l net.Listener
	err := inNSPath(nsPath, func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, filepath.Base(nsPath), err)
	}
	return l, nil
}

// ListenPacketIn is ListenIn for datagram sockets.
func ListenPacketIn(nsPath, network, addr string) (net.PacketConn, error) {
	var l net.PacketConn
	err := inNSPath(nsPath, func() (err error) {
		l, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, filepath.Base(nsPath), err)
	}
	return l, nil
}
