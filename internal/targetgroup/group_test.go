package targetgroup

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestHealthStateMachine(t *testing.T) {
	pass := Result{OK: true}
	fail := Result{Reason: ReasonResponseCodeMismatch}
	tout := Result{Reason: ReasonTimeout}
	tests := []struct {
		name    string
		results []Result
		eject   bool
		want    State
		reason  string
	}{
		{"new target", nil, false, StateInitial, ReasonRegistrationInProgress},
		{"one pass makes a new target healthy", []Result{pass}, false, StateHealthy, ""},
		{"one failure keeps it initial", []Result{fail}, false, StateInitial, ReasonInitialHealthChecking},
		{"two failures make it unhealthy", []Result{fail, fail}, false, StateUnhealthy, ReasonResponseCodeMismatch},
		{"healthy survives one failure", []Result{pass, fail}, false, StateHealthy, ""},
		{"healthy to unhealthy after threshold", []Result{pass, fail, tout}, false, StateUnhealthy, ReasonTimeout},
		{"unhealthy needs five passes (4)", []Result{fail, fail, pass, pass, pass, pass}, false, StateUnhealthy, ReasonResponseCodeMismatch},
		{"unhealthy needs five passes (5)", []Result{fail, fail, pass, pass, pass, pass, pass}, false, StateHealthy, ""},
		{"a failure resets the pass run", []Result{fail, fail, pass, pass, pass, pass, fail, pass}, false, StateUnhealthy, ReasonResponseCodeMismatch},
		{"ejected needs one pass", []Result{pass}, true, StateHealthy, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Unix(1000, 0)}
			g := New(Config{}, c.now)
			g.Register("i-1", "127.0.0.2:9001")
			if tt.eject {
				g.Observe("i-1", pass)
				g.Eject("i-1")
				if s, r := g.Health("i-1"); s != StateUnhealthy || r != ReasonFailedHealthChecks {
					t.Fatalf("after eject: %s %s", s, r)
				}
			}
			for _, r := range tt.results {
				c.t = c.t.Add(30 * time.Second)
				g.Observe("i-1", r)
			}
			s, r := g.Health("i-1")
			if s != tt.want || r != tt.reason {
				t.Errorf("got %s/%q, want %s/%q", s, r, tt.want, tt.reason)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	hc := DefaultHealthCheck()
	want := HealthCheck{Protocol: "HTTP", Path: "/", Port: "traffic-port", Interval: 30 * time.Second,
		Timeout: 5 * time.Second, HealthyThreshold: 5, UnhealthyThreshold: 2, Matcher: "200"}
	if hc != want {
		t.Fatalf("got %+v", hc)
	}
}

func TestMatcherAtRunTime(t *testing.T) {
	for _, tt := range []struct {
		m    string
		code int
		want bool
	}{{"200", 200, true}, {"200", 204, false}, {"200,202", 202, true}, {"200-299", 250, true}, {"200-299", 300, false},
		{"299-200", 250, false}, {"ok", 200, false}} {
		if got := (HealthCheck{Matcher: tt.m}).accepts(tt.code); got != tt.want {
			t.Errorf("matcher %q accepts %d: %v, want %v", tt.m, tt.code, got, tt.want)
		}
	}
}

func TestDrainingAndFailOpen(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	g := New(Config{DeregistrationDelay: 10 * time.Second}, c.now)
	a := g.Register("a", "127.0.0.2:1")
	b := g.Register("b", "127.0.0.3:1")
	// nobody healthy yet: fail open to both
	seen := map[*Target]bool{}
	for range 10 {
		seen[g.Pick(nil)] = true
	}
	if !seen[a] || !seen[b] {
		t.Fatalf("fail-open should route to all: %v", seen)
	}
	g.Observe("a", Result{OK: true})
	for range 10 {
		if g.Pick(nil) != a {
			t.Fatal("only healthy target a should be picked")
		}
	}
	// retry excludes the tried target and falls back to the rest
	if got := g.Pick([]*Target{a}); got != b {
		t.Fatalf("retry pick = %v", got)
	}
	g.Deregister("a")
	if s, r := g.Health("a"); s != StateDraining || r != ReasonDeregistrationInProgress {
		t.Fatalf("%s %s", s, r)
	}
	for range 10 {
		if g.Pick(nil) == a {
			t.Fatal("draining target picked")
		}
	}
	a.Begin()
	if gone := g.Expire(); len(gone) != 0 {
		t.Fatal("expired before delay with a request in flight")
	}
	c.t = c.t.Add(10 * time.Second)
	if gone := g.Expire(); len(gone) != 1 || gone[0] != a {
		t.Fatalf("expire = %v", gone)
	}
}

func TestAlgorithms(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	for _, algo := range []Algorithm{RoundRobin, LeastOutstanding, WeightedRandom} {
		g := New(Config{Algorithm: algo}, c.now)
		a := g.Register("a", "x:1")
		b := g.Register("b", "y:1")
		g.Observe("a", Result{OK: true})
		g.Observe("b", Result{OK: true})
		n := map[*Target]int{}
		for range 1000 {
			t := g.Pick(nil)
			n[t]++
		}
		if n[a] < 300 || n[b] < 300 {
			t.Errorf("%s: unbalanced %d/%d", algo, n[a], n[b])
		}
		if algo == LeastOutstanding {
			a.Begin()
			if g.Pick(nil) != b {
				t.Errorf("least outstanding picked the busy target")
			}
			a.End()
		}
	}
}

func TestSlowStartWeight(t *testing.T) {
	s := time.Unix(0, 0)
	for _, tt := range []struct {
		el   time.Duration
		want float64
	}{{0, 0.1}, {50 * time.Second, 0.55}, {100 * time.Second, 1}, {200 * time.Second, 1}} {
		if got := SlowStartWeight(s.Add(tt.el), s, 100*time.Second); got < tt.want-1e-9 || got > tt.want+1e-9 {
			t.Errorf("%s: %v want %v", tt.el, got, tt.want)
		}
	}
}

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	var d net.Dialer
	ctx := context.Background()
	if r := Probe(ctx, d.DialContext, addr, HealthCheck{}); !r.OK {
		t.Fatalf("probe: %+v", r)
	}
	if r := Probe(ctx, d.DialContext, addr, HealthCheck{Path: "/bad"}); r.OK || r.Reason != ReasonResponseCodeMismatch {
		t.Fatalf("probe bad: %+v", r)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	if r := Probe(ctx, d.DialContext, dead, HealthCheck{}); r.OK || r.Reason != ReasonFailedHealthChecks {
		t.Fatalf("probe dead: %+v", r)
	}
}

func TestPickSticky(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	g := New(Config{Stickiness: Stickiness{Type: StickyLBCookie}}, c.now)
	a := g.Register("a", "x:1")
	b := g.Register("b", "y:1")
	g.Observe("a", Result{OK: true})
	g.Observe("b", Result{OK: true})
	for range 5 {
		if g.PickSticky("b", nil) != b {
			t.Fatal("sticky target not picked")
		}
	}
	g.Deregister("b")
	if g.PickSticky("b", nil) != a {
		t.Fatal("draining sticky target picked")
	}
	if g.Config().Stickiness.Duration != 24*time.Hour {
		t.Fatal("stickiness duration default")
	}
}

func TestTransitions(t *testing.T) {
	pass := Result{OK: true}
	fail := Result{Reason: ReasonTimeout, Detail: "Request timed out"}
	c := &clock{t: time.Unix(1000, 0)}
	g := New(Config{DeregistrationDelay: 10 * time.Second}, c.now)
	type step struct{ from, to State }
	var got []step
	var reasons []string
	g.SetOnTransition(func(tr Transition) {
		g.Targets() // told outside the lock: the group may be called
		got = append(got, step{tr.From, tr.Target.State})
		reasons = append(reasons, tr.Target.Reason)
		if tr.Target.ID != "i-1" || tr.Target.Addr != "127.0.0.2:9001" {
			t.Errorf("transition of %+v", tr.Target)
		}
	})
	g.Register("i-1", "127.0.0.2:9001")
	g.Observe("i-1", pass)
	g.Observe("i-1", pass) // no change, nothing told
	g.Observe("i-1", fail) // one failure: still healthy
	g.Observe("i-1", fail)
	for range 5 {
		g.Observe("i-1", pass)
	}
	g.Eject("i-1")
	g.Eject("i-1") // unhealthy already: nothing
	g.Observe("i-1", pass)
	g.Deregister("i-1")
	c.t = c.t.Add(11 * time.Second)
	g.Expire()
	want := []step{
		{StateUnused, StateInitial}, {StateInitial, StateHealthy}, {StateHealthy, StateUnhealthy},
		{StateUnhealthy, StateHealthy}, {StateHealthy, StateUnhealthy}, {StateUnhealthy, StateHealthy},
		{StateHealthy, StateDraining}, {StateDraining, StateUnused},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("transitions %v, want %v", got, want)
	}
	wantReasons := []string{ReasonRegistrationInProgress, "", ReasonTimeout, "", ReasonFailedHealthChecks, "",
		ReasonDeregistrationInProgress, ReasonNotRegistered}
	if !slices.Equal(reasons, wantReasons) {
		t.Fatalf("reasons %q, want %q", reasons, wantReasons)
	}
}

func TestLastChecks(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	g := New(Config{Name: "web"}, c.now)
	g.Register("i-1", "10.0.128.5:8000")
	steps := []Result{
		{OK: true, Latency: 3 * time.Millisecond},
		{Reason: ReasonTimeout, Detail: "Request timed out", Latency: 5 * time.Second},
		{Reason: ReasonTimeout, Detail: "Request timed out", Latency: 5 * time.Second},
		{Reason: ReasonResponseCodeMismatch, Detail: "Health checks failed with these codes: [503]", Latency: time.Millisecond},
		{OK: true, Latency: 2 * time.Millisecond},
		{OK: true, Latency: 2 * time.Millisecond},
	}
	for _, r := range steps {
		c.t = c.t.Add(5 * time.Second)
		g.Observe("i-1", r)
	}
	st := g.Targets()[0]
	if len(st.Checks) != KeptChecks {
		t.Fatalf("%d checks kept, want %d", len(st.Checks), KeptChecks)
	}
	// Newest first, each with its time, verdict, reason and latency.
	newest, oldest := st.Checks[0], st.Checks[KeptChecks-1]
	if !newest.OK || newest.Latency != 2*time.Millisecond || !newest.Time.Equal(time.Unix(1030, 0)) {
		t.Errorf("newest check %+v", newest)
	}
	if oldest.OK || oldest.Reason != ReasonTimeout || oldest.Latency != 5*time.Second || !oldest.Time.Equal(time.Unix(1010, 0)) {
		t.Errorf("oldest kept check %+v", oldest)
	}
}

// TestStoppedTargetIsUnused: a stopped instance's target is unused with
// Target.InvalidState, never picked (not even failing open), its health
// checks do not count, and started again it is checked from initial.
func TestStoppedTargetIsUnused(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	g := New(Config{}, c.now)
	a := g.Register("a", "127.0.0.2:1")
	b := g.Register("b", "127.0.0.3:1")
	g.Observe("a", Result{OK: true})
	g.Observe("b", Result{OK: true})
	if !g.SetStopped("a", true) {
		t.Fatal("SetStopped of a registered target reported false")
	}
	if s, r := g.Health("a"); s != StateUnused || r != ReasonInvalidState {
		t.Fatalf("stopped target: %s %s, want unused %s", s, r, ReasonInvalidState)
	}
	g.Observe("a", Result{OK: true})
	if s, _ := g.Health("a"); s != StateUnused {
		t.Fatalf("a health check changed a stopped target to %s", s)
	}
	for range 10 {
		if g.Pick(nil) != b {
			t.Fatal("the stopped target was picked")
		}
	}
	g.Observe("b", Result{OK: false, Reason: ReasonTimeout})
	g.Observe("b", Result{OK: false, Reason: ReasonTimeout})
	if s, _ := g.Health("b"); s != StateUnhealthy {
		t.Fatalf("b is %s after two failed checks, want unhealthy", s)
	}
	for range 10 {
		if got := g.Pick(nil); got == a {
			t.Fatal("failing open picked the stopped target")
		}
	}
	g.SetStopped("a", false)
	if s, r := g.Health("a"); s != StateInitial || r != ReasonRegistrationInProgress {
		t.Fatalf("started again: %s %s, want initial", s, r)
	}
	g.Observe("a", Result{OK: true})
	if s, _ := g.Health("a"); s != StateHealthy || g.Pick(nil) != a {
		t.Fatalf("started target after a passing check: %s", s)
	}
	if g.SetStopped("nobody", true) {
		t.Error("SetStopped of an unknown target reported true")
	}
}
