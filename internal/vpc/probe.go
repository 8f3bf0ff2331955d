package vpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// ProbeResult is what the kernel did with one real TCP connection.
type ProbeResult struct {
	// Reached: the destination's kernel answered, with a connection or
	// with a reset because nothing listens on the port. Either way the
	// SYN and the answer crossed every filter on the way, both ways.
	Reached bool
	// Outcome in words: "connected", "refused (reached; nothing listens
	// on the port)", "timed out after 1s (dropped on the way or on the
	// way back)", ...
	Outcome string
}

// Probe opens a TCP connection from the network namespace at nsPath (a
// node's or the internet's; never the host's: a VPC address is only ever
// dialled from inside a namespace moat made) to to, waits at most
// timeout, closes it and says what happened (moat reach --probe).
func Probe(ctx context.Context, nsPath string, to netip.AddrPort, timeout time.Duration) (ProbeResult, error) {
	if nsPath == "" {
		return ProbeResult{}, fmt.Errorf("probe %s: refused from the host namespace; probes leave from a namespace of the VPC", to)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := DialFunc(nsPath)(ctx, "tcp", to.String())
	if err == nil {
		c.Close()
	}
	if ctx.Err() != nil && err != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ProbeResult{}, ctx.Err() // the caller gave up
	}
	return probeOutcome(err, timeout), nil
}

// probeOutcome classifies a dial's error (pure): a reset is an answer from
// the destination, a timeout or an unreachable is not.
func probeOutcome(err error, timeout time.Duration) ProbeResult {
	var errno syscall.Errno
	switch {
	case err == nil:
		return ProbeResult{Reached: true, Outcome: "connected"}
	case errors.Is(err, syscall.ECONNREFUSED):
		return ProbeResult{Reached: true, Outcome: "refused (reached; nothing listens on the port)"}
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return ProbeResult{Outcome: fmt.Sprintf("timed out after %v (dropped on the way there or back)", timeout)}
	case errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES):
		return ProbeResult{Outcome: "not sent: the source's own rules drop it (operation not permitted)"}
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		return ProbeResult{Outcome: "unreachable: " + errnoText(err)}
	case errors.As(err, &errno):
		return ProbeResult{Outcome: "failed: " + errno.Error()}
	}
	return ProbeResult{Outcome: "failed: " + err.Error()}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}
