package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/client"
	"github.com/moat-dev/moat/internal/console"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/plan"
)

// Options configure a daemon.
type Options struct {
	// File is the stack file the plan came from (for status).
	File string
	// Dir is the state directory; default StackDir(plan.Stack).
	Dir Dir
	// Logger for the daemon's own log; default slog.Default().
	Logger *slog.Logger
	// Ready, if set, is called once the stack is up (or failed to come up).
	Ready func(error)
	// Echo, if set, receives every event as a line (foreground moat up).
	Echo io.Writer
	// ConsoleToken is the per-start token the console's changes must
	// carry; empty: a fresh one (console.NewToken).
	ConsoleToken string
}

// Daemon runs one stack.
type Daemon struct {
	plan    *plan.Plan
	opts    Options
	dir     Dir
	log     *slog.Logger
	events  *events.Log
	started time.Time

	consoleToken string

	mu     sync.Mutex
	phase  string
	err    error
	stack  *stack
	stopCh chan struct{}
	once   sync.Once
}

// Run brings the stack up, serves the control API until ctx is done or a
// client asks it to stop, then tears everything down. A failed start tears
// down what it made and returns the error.
func Run(ctx context.Context, p *plan.Plan, opts Options) (err error) {
	d := &Daemon{plan: p, opts: opts, dir: opts.Dir, log: opts.Logger, phase: api.PhaseStarting,
		started: time.Now().UTC(), stopCh: make(chan struct{}), consoleToken: opts.ConsoleToken}
	if d.consoleToken == "" {
		d.consoleToken = console.NewToken()
	}
	if d.dir == "" {
		d.dir = StackDir(p.Stack)
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	d.log = d.log.With("component", "daemon", "stack", p.Stack)
	ready := func(err error) {
		if opts.Ready != nil {
			opts.Ready(err)
			opts.Ready = nil
		}
	}
	defer func() { ready(err) }()

	lock, err := d.dir.Acquire()
	if err != nil {
		return err
	}
	defer lock.Release()
	mlock, err := AcquireMachine(p.Stack, d.dir)
	if err != nil {
		return err
	}
	defer mlock.Release()
	d.events, err = events.Open(d.dir.Events())
	if err != nil {
		return err
	}
	defer d.events.Close()
	if opts.Echo != nil {
		ch, stop := d.events.Subscribe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for e := range ch {
				fmt.Fprintln(opts.Echo, e.String())
			}
		}()
		defer func() { stop(); <-done }()
	}
	if b, err := json.MarshalIndent(p, "", "  "); err == nil {
		_ = os.WriteFile(d.dir.Path("plan.json"), b, 0o600)
	}

	// The API comes up first, so `moat status` works while the stack starts.
	_ = os.Remove(d.dir.Socket())
	ln, err := net.Listen("unix", d.dir.Socket())
	if err != nil {
		return fmt.Errorf("listen on control socket: %w", err)
	}
	_ = os.Chmod(d.dir.Socket(), 0o600)
	srv := &http.Server{Handler: d.routes(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("control API stopped", "err", err)
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = os.Remove(d.dir.Socket())
		_ = os.Remove(d.dir.PIDFile())
	}()

	stopConsole, err := d.startConsole()
	if err != nil {
		return err
	}
	defer stopConsole()

	d.events.Addf("daemon", "stack.starting", nil, "Starting stack %s (pid %d)", p.Stack, os.Getpid())
	st := newStack(p, d.dir, d.events, d.log)
	d.mu.Lock()
	d.stack = st
	d.mu.Unlock()
	// Teardown runs whatever happened, with a fresh context: ctx may be
	// cancelled already (Ctrl-C).
	defer func() {
		d.setPhase(api.PhaseStopping, nil)
		d.events.Addf("daemon", "stack.stopping", nil, "Tearing down stack %s", p.Stack)
		tctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if terr := st.stop(tctx); terr != nil {
			d.log.Error("teardown incomplete", "err", terr)
			err = errors.Join(err, fmt.Errorf("teardown: %w", terr))
		}
		d.events.Addf("daemon", "stack.stopped", nil, "Stack %s is down", p.Stack)
	}()
	if err := st.start(ctx); err != nil {
		d.setPhase(api.PhaseFailed, err)
		d.events.Addf("daemon", "stack.failed", nil, "Stack %s failed to start: %v", p.Stack, err)
		return fmt.Errorf("start stack %s: %w", p.Stack, err)
	}
	d.setPhase(api.PhaseRunning, nil)
	d.events.Addf("daemon", "stack.running", nil, "Stack %s is running", p.Stack)
	ready(nil)

	select {
	case <-ctx.Done():
	case <-d.stopCh:
	}
	return nil
}

func (d *Daemon) setPhase(phase string, err error) {
	d.mu.Lock()
	d.phase = phase
	if err != nil || phase != api.PhaseStopping {
		d.err = err // a teardown keeps the failure that caused it
	}
	d.mu.Unlock()
}

func (d *Daemon) status() api.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := api.Status{Stack: d.plan.Stack, PID: os.Getpid(), Phase: d.phase, Started: d.started,
		StateDir: string(d.dir), File: d.opts.File, Endpoints: console.WithToken(d.plan.Endpoints, d.consoleToken), Egress: d.plan.Local.Egress}
	if d.err != nil {
		s.Error = d.err.Error()
	}
	if d.stack != nil {
		s.Groups = d.stack.groupStatus()
	}
	return s
}

// routes serve exactly the control API's routes (package api): the
// daemon's own, and the stack's once it exists.
func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	h := d.handlers()
	for _, r := range api.Routes {
		f, ok := h[r]
		if !ok {
			panic("daemon: no handler for " + r.ServeMuxPattern())
		}
		mux.HandleFunc(r.ServeMuxPattern(), f)
	}
	return mux
}

// handlers answer every route of the API.
func (d *Daemon) handlers() map[api.Route]http.HandlerFunc {
	h := map[api.Route]http.HandlerFunc{
		api.GetStatus: func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, d.status())
		},
		api.PostShutdown: func(w http.ResponseWriter, r *http.Request) {
			d.once.Do(func() { close(d.stopCh) })
			writeJSON(w, http.StatusAccepted, api.Accepted{Status: "stopping"})
		},
		api.GetEvents: d.handleEvents,
	}
	for route, f := range stackHandlers {
		h[route] = d.onStack(route, f)
	}
	return h
}

// onStack answers a route of the stack: reads in every phase once the
// stack exists; changes only while it runs, when its parts are all built
// and not yet being torn down.
func (d *Daemon) onStack(route api.Route, f func(*stack, http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		st, phase := d.stack, d.phase
		d.mu.Unlock()
		if st == nil {
			writeError(w, http.StatusServiceUnavailable, errors.New("the stack is starting"))
			return
		}
		if route.Method != http.MethodGet && phase != api.PhaseRunning {
			writeError(w, http.StatusServiceUnavailable, fmt.Errorf("the stack is %s: changes wait until moat status says it is running", phase))
			return
		}
		f(st, w, r)
	}
}

// handleEvents streams the event log as JSON lines: the history (after
// ?after=SEQ, when given), then, with ?follow=1, new events as they
// happen, each once and in Seq order: an event both in the file and in
// the live feed is sent once, and events the live feed dropped (a slow
// reader) are read back from the file.
func (d *Daemon) handleEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	follow := q.Get("follow") == "1"
	var after uint64
	if v := q.Get(api.After); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("bad after %q: give the Seq of the last event seen (0 for all)", v))
			return
		}
		after = n
	}
	var ch <-chan events.Event
	if follow {
		var cancel func()
		ch, cancel = d.events.Subscribe()
		defer cancel()
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	last := after
	// sendFile sends the file's events after last and before upTo (0: all).
	sendFile := func(upTo uint64) bool {
		past, _ := events.ReadFileAfter(d.dir.Events(), last)
		for _, e := range past {
			if upTo != 0 && e.Seq >= upTo {
				break
			}
			if enc.Encode(e) != nil {
				return false
			}
			last = e.Seq
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	if !sendFile(0) || !follow {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-ch:
			if !ok {
				return
			}
			if e.Seq <= last {
				continue // sent from the file already
			}
			if e.Seq > last+1 && !sendFile(e.Seq) {
				return
			}
			if enc.Encode(e) != nil {
				return
			}
			last = e.Seq
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, api.Error{Error: err.Error()})
}

// startConsole publishes the live web console on local.console (when the
// plan has one): it reads and acts on the stack through this daemon's
// control API, as the CLI does. stop closes it and its streams.
func (d *Daemon) startConsole() (stop func(), err error) {
	addr := d.plan.Local.Console
	if !addr.IsValid() {
		return func() {}, nil
	}
	cs, err := console.New(console.Options{Plan: d.plan, Source: client.New(d.dir.Socket()), Addr: addr,
		Token: d.consoleToken, Logger: d.log.With("component", "console")})
	if err != nil {
		return nil, err
	}
	lis, err := listenLoopback(addr.String())
	if err != nil {
		return nil, fmt.Errorf("publish the console: %w; set local.console to a free loopback address", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &http.Server{Handler: cs.Handler(), ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		cs.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("console stopped", "err", err)
		}
	}()
	d.events.Addf("console", "console.start", nil, "Console on http://%s/ (moat console prints its URL)", addr)
	return func() {
		cancel()
		_ = srv.Close() // its streams never end by themselves
		wg.Wait()
	}, nil
}
