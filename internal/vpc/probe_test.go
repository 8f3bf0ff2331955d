package vpc

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestProbeOutcome: a reset is an answer from the destination (reached);
// a timeout, an unreachable or the source's own drop is not.
func TestProbeOutcome(t *testing.T) {
	dialErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
	}
	cases := []struct {
		err     error
		reached bool
		says    string
	}{
		{nil, true, "connected"},
		{dialErr(syscall.ECONNREFUSED), true, "refused (reached; nothing listens on the port)"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, false, "timed out after 1s (dropped on the way there or back)"},
		{context.DeadlineExceeded, false, "timed out after 1s (dropped on the way there or back)"},
		{dialErr(syscall.EPERM), false, "not sent: the source's own rules drop it (operation not permitted)"},
		{dialErr(syscall.EHOSTUNREACH), false, "unreachable: no route to host"},
		{dialErr(syscall.ECONNRESET), false, "failed: connection reset by peer"},
		{errors.New("odd"), false, "failed: odd"},
	}
	for _, c := range cases {
		got := probeOutcome(c.err, time.Second)
		if got.Reached != c.reached || got.Outcome != c.says {
			t.Errorf("probeOutcome(%v) = %+v, want reached=%v %q", c.err, got, c.reached, c.says)
		}
	}
}

func TestProbeRefusesTheHostNamespace(t *testing.T) {
	if _, err := Probe(context.Background(), "", netip.MustParseAddrPort("10.0.0.1:22"), time.Second); err == nil {
		t.Fatal("a probe from the host namespace must be refused")
	}
}
