package nsenter

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/moat-dev/moat/internal/testutil"
)

func TestDoInOwnNamespace(t *testing.T) {
	// Without root: no switch, fn's error comes back.
	want := errors.New("fn failed")
	ran := false
	if err := DoPath("", func() error { ran = true; return want }); !errors.Is(err, want) || !ran {
		t.Errorf("DoPath(\"\") = %v (ran %v), want fn's error", err, ran)
	}
	if err := DoPath("/nonexistent/ns", func() error { t.Error("fn ran"); return nil }); err == nil {
		t.Error("DoPath of a missing namespace: no error")
	}
}

func TestDoEntersAndReturns(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces")
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	before, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()

	// Inside: the thread is in h, and a listener made there stays there.
	var l net.Listener
	err = Do(h, func() (err error) {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		if !cur.Equal(h) {
			return errors.New("fn does not run in the target namespace")
		}
		l, err = net.Listen("tcp4", "127.0.0.1:0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if c, err := net.Dial("tcp4", l.Addr().String()); err == nil {
		c.Close()
		t.Errorf("a listener made inside the namespace answers outside it on %s", l.Addr())
	}

	// Outside again, on every thread: many calls, none leaks a switch.
	for range 50 {
		if err := Do(h, func() error { return nil }); err != nil {
			t.Fatal(err)
		}
		cur, err := netns.Get()
		if err != nil {
			t.Fatal(err)
		}
		same := cur.Equal(before)
		cur.Close()
		if !same {
			t.Fatal("a thread was left in the target namespace")
		}
	}
}

func TestNewNamed(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces")
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "moat-nsenter-" + hex.EncodeToString(b[:])
	h, err := NewNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	defer netns.DeleteNamed(name)
	if _, err := os.Stat("/run/netns/" + name); err != nil {
		t.Errorf("the namespace is not mounted: %v", err)
	}
	err = DoPath("/run/netns/"+name, func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		if !cur.Equal(h) {
			return errors.New("DoPath does not enter the named namespace")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if _, err := NewNamed(name); err == nil {
		t.Error("creating a namespace that exists: no error")
	}
}

func TestOpen(t *testing.T) {
	l, err := Open("", func() (net.Listener, error) { return net.Listen("tcp4", "127.0.0.1:0") })
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := Open("/nonexistent/ns", func() (net.Listener, error) {
		t.Error("open ran")
		return nil, nil
	}); err == nil {
		t.Error("Open in a missing namespace: no error")
	}
	want := errors.New("refused")
	if got, err := Open("", func() (net.Conn, error) { return nil, want }); !errors.Is(err, want) || got != nil {
		t.Errorf("Open = %v, %v; want nil and open's error", got, err)
	}
}
