package bastion

import (
	"net/netip"
	"testing"
	"time"
)

func TestFailureLimiter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := netip.MustParseAddr("127.0.0.2")
	b := netip.MustParseAddr("127.0.0.3")
	type step struct {
		at      time.Duration
		op      string // "fail" or "allow"
		addr    netip.Addr
		want    bool // fail: became blocked; allow: allowed
		comment string
	}
	steps := []step{
		{0, "fail", a, false, "1st failure"},
		{time.Second, "fail", a, false, "2nd"},
		{2 * time.Second, "allow", a, true, "under the limit"},
		{3 * time.Second, "fail", a, true, "3rd failure blocks"},
		{4 * time.Second, "allow", a, false, "blocked"},
		{4 * time.Second, "allow", b, true, "other source unaffected"},
		{4 * time.Second, "allow", netip.MustParseAddr("::ffff:127.0.0.2"), false, "v4-mapped is the same source"},
		{63 * time.Second, "allow", a, true, "block expired"},
		{70 * time.Second, "fail", a, false, "counting starts again"},
		{200 * time.Second, "fail", a, false, "window expired: count restarts"},
		{201 * time.Second, "fail", a, false, ""},
		{202 * time.Second, "fail", a, true, "3 in the window"},
	}
	l := newFailureLimiter(LimiterConfig{MaxFailures: 3, Window: 60 * time.Second, Block: 60 * time.Second})
	for i, s := range steps {
		now := t0.Add(s.at)
		var got bool
		if s.op == "fail" {
			got = l.Fail(s.addr, now)
		} else {
			got, _ = l.Allow(s.addr, now)
		}
		if got != s.want {
			t.Errorf("step %d (%s %s at %v, %s) = %v, want %v", i, s.op, s.addr, s.at, s.comment, got, s.want)
		}
	}
}

func TestFailureLimiterIPv6Per64AndBoundedMemory(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newFailureLimiter(LimiterConfig{MaxFailures: 2, MaxSources: 8})
	l.Fail(netip.MustParseAddr("2001:db8::1"), t0)
	if !l.Fail(netip.MustParseAddr("2001:db8::2"), t0) {
		t.Error("two failures from one /64 did not block it")
	}
	if ok, _ := l.Allow(netip.MustParseAddr("2001:db8:0:1::1"), t0); !ok {
		t.Error("another /64 was blocked")
	}
	for i := range 100 {
		l.Fail(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if n := l.Len(); n > 8 {
		t.Errorf("tracking %d sources, limit 8", n)
	}
}
