package metadata

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/moat-dev/moat/internal/nsenter"
	"github.com/moat-dev/moat/internal/testutil"
)

func TestListenInNamespace(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces")
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "moat-test-" + hex.EncodeToString(b[:])
	ns, err := nsenter.NewNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})

	l, err := ListenInNamespace("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	h := New(func(ip netip.Addr) (Info, bool) {
		return Info{InstanceID: "i-00000000000000abc", LocalIPv4: ip}, ip == instIP
	}, nil)
	srv := &http.Server{Handler: h.Pinned(instIP), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() {
		srv.Close()
		<-served
	}()

	// Dial inside the namespace; the socket stays there.
	var c net.Conn
	if err := nsenter.Do(ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", "169.254.169.254:80", 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial metadata inside the namespace: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := string(body)
	if got != "i-00000000000000abc" {
		t.Fatalf("instance-id inside the namespace = %q", got)
	}
	// Adding the address again is fine; the port is taken by the first.
	if _, err := ListenInNamespace("/run/netns/" + name); err == nil {
		t.Fatal("second listener on the same address succeeded")
	}
}
