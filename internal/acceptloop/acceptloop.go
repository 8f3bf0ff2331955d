// Package acceptloop is the one accept loop of moat's servers (load
// balancer listeners, bastion, egress, metadata, instance SSH): it hands
// every accepted connection to a handler in its own goroutine, and when
// accepting fails for a reason other than a closed listener (EMFILE,
// ENFILE, ECONNABORTED, ...) it backs off and tries again instead of
// ending the listener, as net/http's Server does.
package acceptloop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// First and Max bound the back-off between failed accepts: it starts at
// First and doubles up to Max (net/http's Server uses the same 5 ms and 1 s).
const (
	First = 5 * time.Millisecond
	Max   = time.Second
)

// Delay is the wait after a failed accept when the previous wait was prev
// (zero after a successful accept).
func Delay(prev time.Duration) time.Duration {
	return min(max(2*prev, First), Max)
}

// Serve accepts connections on ln and runs handle(c) for each in a new
// goroutine until ctx ends or ln is closed. A handler that panics is
// logged and its connection closed; the loop goes on. Accept errors other
// than a closed listener are logged and retried after Delay.
//
// Serve returns nil once ctx is done (it closes ln then); when ln is
// closed by someone else it returns an error wrapping net.ErrClosed.
// It does not wait for running handlers: a caller that must, counts them
// in handle.
func Serve(ctx context.Context, ln net.Listener, log *slog.Logger, handle func(net.Conn)) error {
	return ServeCounted(ctx, ln, log, nil, handle)
}

// ServeCounted is Serve that adds every handler it starts to wg (when not
// nil) before starting it, so that a caller that waits on wg after Serve
// returns waits for all of them, the last ones accepted too.
func ServeCounted(ctx context.Context, ln net.Listener, log *slog.Logger, wg *sync.WaitGroup, handle func(net.Conn)) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
			}
			delay = Delay(delay)
			log.Warn("accept failed; retrying", "addr", ln.Addr().String(), "err", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
			continue
		}
		delay = 0
		if wg != nil {
			wg.Add(1)
		}
		go func() {
			if wg != nil {
				defer wg.Done()
			}
			defer func() {
				if r := recover(); r != nil {
					log.Error("connection handler panicked", "addr", ln.Addr().String(), "panic", r)
					c.Close()
				}
			}()
			handle(c)
		}()
	}
}
