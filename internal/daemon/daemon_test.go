package daemon_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/client"
	"github.com/moat-dev/moat/internal/daemon"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/testutil"
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
	cl, ready, done := runDaemon(context.Background(), p, dir)
	waitReady(t, ready, time.Minute)
	ctx := context.Background()
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

// runDaemon runs a daemon of p on dir in the background until ctx ends
// or it is shut down: ready gets its Ready error once the stack is up (or
// failed to come up), done what Run returned.
func runDaemon(ctx context.Context, p *plan.Plan, dir daemon.Dir) (cl *client.Client, ready, done <-chan error) {
	r, d := make(chan error, 1), make(chan error, 1)
	go func() {
		d <- daemon.Run(ctx, p, daemon.Options{Dir: dir, Ready: func(err error) { r <- err }})
	}()
	return client.New(dir.Socket()), r, d
}

// waitReady fails the test when the stack does not come up within limit.
func waitReady(t *testing.T, ready <-chan error, limit time.Duration) {
	t.Helper()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(limit):
		t.Fatalf("the stack did not start within %v", limit)
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

// TestEventSeq: the event log's Seq goes 1, 2, 3 ... across two runs of
// the daemon on the same state directory, and a reader that resumes after
// a Seq (GET /v1/events?after=SEQ&follow=1) gets each later event once,
// in order: the history, then the live ones.
func TestEventSeq(t *testing.T) {
	dir := daemon.Dir(t.TempDir())
	p := &plan.Plan{Stack: "seqtest"}
	run := func() (*client.Client, <-chan error) {
		cl, ready, done := runDaemon(context.Background(), p, dir)
		waitReady(t, ready, time.Minute)
		return cl, done
	}
	ctx := context.Background()
	cl, done := run()
	shutdown(t, cl, done, 30*time.Second)
	cl, done = run()
	var all []events.Event
	if err := cl.Events(ctx, false, func(e events.Event) { all = append(all, e) }); err != nil {
		t.Fatal(err)
	}
	for i, e := range all {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d of two runs has seq %d: %+v", i+1, e.Seq, all)
		}
	}
	if n := len(all); n < 6 || all[n-1].Type != "stack.running" {
		t.Fatalf("events of two runs: %+v", all)
	}
	// Resume after the second to last: the last one, then the teardown's,
	// live, until the daemon exits.
	from := all[len(all)-2].Seq
	var (
		mu      sync.Mutex
		resumed []events.Event
	)
	streamed := make(chan error, 1)
	go func() {
		streamed <- cl.EventsAfter(ctx, from, true, func(e events.Event) {
			mu.Lock()
			resumed = append(resumed, e)
			mu.Unlock()
		})
	}()
	testutil.Eventually(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(resumed) == 0 {
			return errors.New("no event yet")
		}
		return nil
	})
	shutdown(t, cl, done, 30*time.Second)
	<-streamed
	if len(resumed) < 3 || resumed[0].Seq != from+1 || resumed[0].Type != "stack.running" {
		t.Fatalf("resumed after %d: %+v", from, resumed)
	}
	for i, e := range resumed {
		if e.Seq != from+1+uint64(i) {
			t.Fatalf("resumed stream repeats or skips: seq %d at %d: %+v", e.Seq, i, resumed)
		}
	}
	if last := resumed[len(resumed)-1]; last.Type != "stack.stopped" {
		t.Errorf("the stream ended before the last event: %+v", last)
	}
}

// TestConsoleAddressInUse: a stack whose console address is taken does
// not start, says how to fix it, and leaves its lock and socket free.
func TestConsoleAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := daemon.Dir(t.TempDir())
	p := &plan.Plan{Stack: "consoletest", Local: plan.Local{Console: netip.MustParseAddrPort(ln.Addr().String())}}
	err = daemon.Run(context.Background(), p, daemon.Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "publish the console") || !strings.Contains(err.Error(), "set local.console to a free loopback address") {
		t.Fatalf("Run = %v, want the console's address in use and the fix", err)
	}
	if dir.Held() {
		t.Error("lock still held")
	}
	if _, err := os.Stat(dir.Socket()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket left: %v", err)
	}
}

// TestConsoleServed: the daemon serves the console on local.console, and
// its status gives the console's URL with the token of this start.
func TestConsoleServed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	dir := daemon.Dir(t.TempDir())
	p := &plan.Plan{Stack: "consoletest", Local: plan.Local{Console: addr},
		Endpoints: []plan.Endpoint{{Kind: plan.EndpointConsole, Name: "console", Publish: addr, URL: "http://" + addr.String() + "/"}}}
	ready, done := make(chan error, 1), make(chan error, 1)
	go func() {
		done <- daemon.Run(context.Background(), p, daemon.Options{Dir: dir, ConsoleToken: "tok", Ready: func(err error) { ready <- err }})
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	cl := client.New(dir.Socket())
	st, err := cl.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Endpoints) != 1 || st.Endpoints[0].URL != "http://"+addr.String()+"/#token=tok" {
		t.Errorf("status endpoints %+v, want the console's URL with its token", st.Endpoints)
	}
	resp, err := http.Get("http://" + addr.String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET / on the console: %s", resp.Status)
	}
	shutdown(t, cl, done, 10*time.Second)
	if _, err := http.Get("http://" + addr.String() + "/"); err == nil {
		t.Error("the console still answers after the daemon stopped")
	}
}
