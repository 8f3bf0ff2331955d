package daemon

// Endpoints published on the host: loopback only.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
)

// serve runs a server loop until stop closes its listener.
func (s *stack) serve(run func() error, lis net.Listener) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := run(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("server stopped", "addr", lis.Addr().String(), "err", err)
		}
	}()
	s.onStop(func(context.Context) error {
		lis.Close()
		<-done
		return nil
	})
}

// listenLoopback opens a published endpoint on the host. Only loopback
// addresses are accepted (the spec validates this too).
func listenLoopback(addr string) (net.Listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	if !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("refusing to publish on %s: moat publishes only on loopback", addr)
	}
	return net.Listen("tcp", addr)
}
