package daemon_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/client"
	"github.com/moat-dev/moat/internal/daemon"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/plan"
)

func TestLockIsExclusiveAndReleasedOnExit(t *testing.T) {
	dir := daemon.Dir(t.TempDir())
	l, err := dir.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	if !dir.Held() {
		t.Fatal("Held() = false while locked")
	}
	if _, err := dir.Acquire(); !errors.Is(err, daemon.ErrLocked) {
		t.Fatalf("second Acquire: got %v, want ErrLocked", err)
	}
	l.Release()
	if dir.Held() {
		t.Fatal("Held() = true after Release")
	}
}

func TestControlAPI(t *testing.T) {
	dir := daemon.Dir(t.TempDir())
	p := &plan.Plan{Stack: "apitest"}
	ready := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(context.Background(), p, daemon.Options{Dir: dir, Ready: func(err error) { ready <- err }})
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cl := client.New(dir.Socket())
	st, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Stack != "apitest" || st.Phase != api.PhaseRunning {
		t.Fatalf("status = %+v", st)
	}
	// A second daemon for the same stack is refused.
	if err := daemon.Run(ctx, p, daemon.Options{Dir: dir}); !errors.Is(err, daemon.ErrLocked) {
		t.Fatalf("second daemon: got %v, want ErrLocked", err)
	}
	var got []events.Event
	if err := cl.Events(ctx, false, func(e events.Event) { got = append(got, e) }); err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || got[len(got)-1].Type != "stack.running" {
		t.Fatalf("events = %+v", got)
	}
	// Unknown names get a 404 that says what to give instead.
	for _, c := range []struct {
		err  error
		want string
	}{
		{cl.Scale(ctx, "nope", 1), `auto scaling group "nope" does not exist: the stack has no auto scaling groups`},
		{cl.Refresh(ctx, "nope"), "the stack has no auto scaling groups"},
		{func() error { _, err := cl.Activities(ctx, "nope"); return err }(), "the stack has no auto scaling groups"},
		{cl.Terminate(ctx, "i-nope", false), "give an instance id or index from moat ps"},
		{cl.Logs(ctx, "i-nope", false, func([]byte) {}), "no logs for instance i-nope: give an instance id or index from moat ps"},
	} {
		if !client.NotFound(c.err) || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("got %v; want a not-found error with %q", c.err, c.want)
		}
	}
	shutdown(t, cl, done, 10*time.Second)
	if _, err := cl.Status(ctx); !errors.Is(err, client.ErrNotRunning) {
		t.Fatalf("status after shutdown: %v, want ErrNotRunning", err)
	}
	if dir.Held() {
		t.Fatal("lock still held after shutdown")
	}
}

// shutdown asks the daemon to tear its stack down and waits, at most
// limit, for Run to return without an error.
func shutdown(t *testing.T, cl *client.Client, done <-chan error, limit time.Duration) {
	t.Helper()
	if err := cl.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(limit):
		t.Fatal("daemon did not stop")
	}
}
