package acceptloop

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	for _, tc := range []struct{ prev, want time.Duration }{
		{0, 5 * time.Millisecond},
		{5 * time.Millisecond, 10 * time.Millisecond},
		{320 * time.Millisecond, 640 * time.Millisecond},
		{640 * time.Millisecond, time.Second},
		{time.Second, time.Second},
	} {
		if got := Delay(tc.prev); got != tc.want {
			t.Errorf("Delay(%v) = %v, want %v", tc.prev, got, tc.want)
		}
	}
}

// failing is a real loopback listener whose first n accepts fail with
// EMFILE, as accept(2) does when the process is out of descriptors.
type failing struct {
	net.Listener
	n     atomic.Int32
	fails atomic.Int32
}

func (f *failing) Accept() (net.Conn, error) {
	if f.n.Add(-1) >= 0 {
		f.fails.Add(1)
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return f.Listener.Accept()
}

func listen(t *testing.T, fails int32) *failing {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &failing{Listener: ln}
	f.n.Store(fails)
	return f
}

// roundTrip dials ln and reads what the handler wrote.
func roundTrip(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServeOutlivesAcceptErrorsAndPanics(t *testing.T) {
	ln := listen(t, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, nil, func(c net.Conn) {
			defer c.Close()
			if ln.fails.Load() == 4 && c.RemoteAddr() != nil && c.LocalAddr() != nil {
				c.Write([]byte("served"))
			}
		})
	}()
	// four EMFILEs back to back (5+10+20+40 ms of back-off), then serving
	if got := roundTrip(t, ln.Addr().String()); got != "served" {
		t.Fatalf("after accept errors: got %q", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("listener still open after cancel")
	}
}

func TestServeRecoversHandlerPanic(t *testing.T) {
	ln := listen(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int32
	go Serve(ctx, ln, nil, func(c net.Conn) {
		if n.Add(1) == 1 {
			panic("first connection")
		}
		c.Write([]byte("second"))
		c.Close()
	})
	if got := roundTrip(t, ln.Addr().String()); got != "" {
		t.Fatalf("panicking handler: got %q, want the connection closed", got)
	}
	if got := roundTrip(t, ln.Addr().String()); got != "second" {
		t.Fatalf("after a panic: got %q", got)
	}
}

func TestServeReturnsWhenListenerClosed(t *testing.T) {
	ln := listen(t, 0)
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), ln, nil, func(c net.Conn) { c.Close() }) }()
	ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve after close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the listener closed")
	}
}

// TestServeCountedWaitsForHandlers: every handler ServeCounted started is
// in the WaitGroup by the time it returns, so waiting on it waits for the
// last connection's handler too.
func TestServeCountedWaitsForHandlers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	started, release := make(chan struct{}), make(chan struct{})
	served := make(chan error, 1)
	go func() {
		served <- ServeCounted(ctx, ln, nil, &wg, func(c net.Conn) {
			defer c.Close()
			close(started)
			<-release
		})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-started
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("ServeCounted after cancel: %v", err)
	}
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("the WaitGroup did not wait for a running handler")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("the WaitGroup did not end after the handler returned")
	}
}
