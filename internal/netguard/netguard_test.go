package netguard

import (
	"context"
	"errors"
	"net"
	"testing"
)

func TestCheck(t *testing.T) {
	cases := []struct {
		addr    string
		refused bool
	}{
		{"10.0.0.5:80", true},
		{"10.255.255.255", true},
		{"172.16.0.1:22", true},
		{"172.31.255.1:22", true},
		{"172.32.0.1:22", false},
		{"172.15.0.1:22", false},
		{"192.168.1.1:443", true},
		{"[::ffff:10.0.0.1]:80", true},
		{"127.0.0.1:8080", false},
		{"[::1]:8080", false},
		{"169.254.169.254:80", false},
		{"localhost:80", false},
		{"11.0.0.1:80", false},
	}
	for _, c := range cases {
		err := Check(c.addr)
		if got := err != nil; got != c.refused {
			t.Errorf("Check(%q) = %v, want refused=%v", c.addr, err, c.refused)
		}
		if err != nil && !errors.Is(err, ErrPrivate) {
			t.Errorf("Check(%q) error does not wrap ErrPrivate: %v", c.addr, err)
		}
	}
}

func TestDialRefusesPrivateWithoutSending(t *testing.T) {
	// The guard fails before any socket is made: no traffic leaves.
	_, err := Dial(context.Background(), "tcp", "10.0.0.1:80")
	if !errors.Is(err, ErrPrivate) {
		t.Fatalf("Dial 10.0.0.1:80 = %v, want ErrPrivate", err)
	}
}

func TestDialLoopbackAllowed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := Dial(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial loopback: %v", err)
	}
	c.Close()
}
