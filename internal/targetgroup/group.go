package targetgroup

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// State is a target's health state, as ALB names it.
type State string

// Target states.
const (
	StateInitial   State = "initial"
	StateHealthy   State = "healthy"
	StateUnhealthy State = "unhealthy"
	StateDraining  State = "draining"
	StateUnused    State = "unused"
)

// Reason codes, as ALB names them.
const (
	ReasonRegistrationInProgress   = "Elb.RegistrationInProgress"
	ReasonInitialHealthChecking    = "Elb.InitialHealthChecking"
	ReasonResponseCodeMismatch     = "Target.ResponseCodeMismatch"
	ReasonTimeout                  = "Target.Timeout"
	ReasonFailedHealthChecks       = "Target.FailedHealthChecks"
	ReasonDeregistrationInProgress = "Target.DeregistrationInProgress"
	ReasonNotRegistered            = "Target.NotRegistered"
	ReasonNotInUse                 = "Target.NotInUse"
	ReasonInvalidState             = "Target.InvalidState"
)

// Algorithm is a target group's load balancing algorithm.
type Algorithm string

// Algorithms.
const (
	RoundRobin       Algorithm = "round_robin"
	LeastOutstanding Algorithm = "least_outstanding_requests"
	WeightedRandom   Algorithm = "weighted_random"
)

// Config is a target group's configuration.
type Config struct {
	Name                string
	HealthCheck         HealthCheck
	DeregistrationDelay time.Duration // default 300s; negative means 0
	Algorithm           Algorithm     // default round_robin
	SlowStart           time.Duration // 0 disables; ramps a new healthy target's share linearly
	Stickiness          Stickiness
}

// Stickiness types.
const (
	StickyLBCookie  = "lb_cookie"
	StickyAppCookie = "app_cookie"
)

// Stickiness is a target group's session affinity. With lb_cookie the
// load balancer sets cookie AWSALB; with app_cookie it sets AWSALBAPP-0
// whenever the application sets AppCookieName. Either cookie names the
// target (moat encodes its address; ALB encrypts it).
type Stickiness struct {
	Type          string        // "", lb_cookie or app_cookie
	Duration      time.Duration // default 1 day
	AppCookieName string
}

// WithDefaults returns c with ALB's defaults filled in.
func (c Config) WithDefaults() Config {
	c.HealthCheck = c.HealthCheck.WithDefaults()
	if c.DeregistrationDelay == 0 {
		c.DeregistrationDelay = 300 * time.Second
	} else if c.DeregistrationDelay < 0 {
		c.DeregistrationDelay = 0
	}
	if c.Algorithm == "" {
		c.Algorithm = RoundRobin
	}
	if c.Stickiness.Type != "" && c.Stickiness.Duration <= 0 {
		c.Stickiness.Duration = 24 * time.Hour
	}
	return c
}

// Result is the outcome of one health check.
type Result struct {
	OK      bool
	Reason  string        // failure reason code: ReasonResponseCodeMismatch, ReasonTimeout, ReasonFailedHealthChecks
	Detail  string        // human description of the failure
	Latency time.Duration // how long the check took
}

// Check is one health check of a target as the group observed it.
type Check struct {
	Time    time.Time
	OK      bool
	Reason  string
	Detail  string
	Latency time.Duration
}

// KeptChecks is how many of its last health checks a target keeps.
const KeptChecks = 5

// Target is one registered target. Its routing counters are safe for
// concurrent use; its health fields are guarded by the group.
type Target struct {
	ID   string
	Addr string

	outstanding atomic.Int64
	requests    atomic.Uint64

	state        State
	reason       string
	description  string
	passes       int
	fails        int
	ejected      bool
	healthySince time.Time
	drainUntil   time.Time
	checks       []Check // the last KeptChecks, oldest first
}

// Begin counts a request (or tunnel) starting on t.
func (t *Target) Begin() { t.outstanding.Add(1); t.requests.Add(1) }

// End counts a request (or tunnel) finishing on t.
func (t *Target) End() { t.outstanding.Add(-1) }

// Outstanding is the number of requests in flight to t.
func (t *Target) Outstanding() int64 { return t.outstanding.Load() }

// Requests is the number of requests sent to t since registration.
func (t *Target) Requests() uint64 { return t.requests.Load() }

// Status is a snapshot of a target's health.
type Status struct {
	ID          string
	Addr        string
	State       State
	Reason      string
	Description string
	// Checks are the last health checks, newest first (Targets only).
	Checks []Check
}

// Group is a target group: its targets, their health, and routing. It is
// safe for concurrent use; time comes from the injected clock.
type Group struct {
	now func() time.Time

	mu      sync.Mutex
	cfg     Config
	targets []*Target // registration order
	// routing snapshots, rebuilt under mu on every change
	route atomic.Pointer[routeSet]

	rr       atomic.Uint64
	requests atomic.Uint64

	// onTransition, if set, hears every state change, after mu is
	// released; pending are the changes made under mu not yet told.
	onTransition func(Transition)
	pending      []Transition
}

// Transition is a target's change of health state: a registration
// (from unused to initial), a health check's verdict, a passive
// ejection, a deregistration (to draining) or the end of draining (to
// unused).
type Transition struct {
	Target Status
	From   State
}

// SetOnTransition makes f hear every state change of the group's
// targets, in order, outside the group's lock (f may call the group).
func (g *Group) SetOnTransition(f func(Transition)) {
	g.mu.Lock()
	g.onTransition = f
	g.mu.Unlock()
}

// note records t's change from state from, when it changed. Called with
// mu held.
func (g *Group) note(t *Target, from State) {
	if g.onTransition != nil && t.state != from {
		g.pending = append(g.pending, Transition{From: from,
			Target: Status{ID: t.ID, Addr: t.Addr, State: t.state, Reason: t.reason, Description: t.description}})
	}
}

// unlock releases mu, then tells onTransition what changed. Every method
// that changes a state ends with it.
func (g *Group) unlock() {
	pending, f := g.pending, g.onTransition
	g.pending = nil
	g.mu.Unlock()
	for _, tr := range pending {
		f(tr)
	}
}

type routeSet struct {
	algo    Algorithm
	slow    time.Duration
	healthy []*Target
	open    []*Target // fail-open set: every non-draining target
}

// New returns an empty group. now is the clock (time.Now in production).
func New(cfg Config, now func() time.Time) *Group {
	if now == nil {
		now = time.Now
	}
	g := &Group{now: now, cfg: cfg.WithDefaults()}
	g.rebuild()
	return g
}

// Config returns the group's configuration with defaults applied.
func (g *Group) Config() Config {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cfg
}

// SetConfig replaces the configuration, keeping targets and their health.
func (g *Group) SetConfig(cfg Config) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cfg = cfg.WithDefaults()
	g.rebuild()
}

// Register adds a target in state initial, or re-registers a draining one.
// Registering an existing address under the same id only updates the address.
func (g *Group) Register(id, addr string) *Target {
	g.mu.Lock()
	defer g.unlock()
	if t := g.find(id); t != nil {
		t.Addr = addr
		if t.state == StateDraining {
			t.state, t.reason, t.description = StateInitial, ReasonRegistrationInProgress, ""
			t.passes, t.fails = 0, 0
			g.note(t, StateDraining)
		}
		g.rebuild()
		return t
	}
	t := &Target{ID: id, Addr: addr, state: StateInitial, reason: ReasonRegistrationInProgress,
		description: "Target registration is in progress"}
	g.targets = append(g.targets, t)
	g.note(t, StateUnused)
	g.rebuild()
	return t
}

// Deregister starts draining a target for the deregistration delay. It
// reports whether the target was registered.
func (g *Group) Deregister(id string) bool {
	g.mu.Lock()
	defer g.unlock()
	t := g.find(id)
	if t == nil || t.state == StateDraining {
		return t != nil
	}
	from := t.state
	t.state, t.reason, t.description = StateDraining, ReasonDeregistrationInProgress, "Target deregistration is in progress"
	g.note(t, from)
	t.drainUntil = g.now().Add(g.cfg.DeregistrationDelay)
	g.rebuild()
	return true
}

// SetStopped marks target id unused while its instance is stopped, as
// ALB does (Target.InvalidState, "Target is in the stopped state"): no
// request is routed to it and its health checks do not count. Started
// again, it is checked afresh from initial, as a new registration is. It
// reports whether the target is registered (and not draining).
func (g *Group) SetStopped(id string, stopped bool) bool {
	g.mu.Lock()
	defer g.unlock()
	t := g.find(id)
	if t == nil || t.state == StateDraining {
		return false
	}
	from := t.state
	switch {
	case stopped && t.state != StateUnused:
		t.state, t.reason, t.description = StateUnused, ReasonInvalidState, "Target is in the stopped state"
	case !stopped && t.state == StateUnused:
		t.state, t.reason, t.description = StateInitial, ReasonRegistrationInProgress, "Target registration is in progress"
	default:
		return true
	}
	t.passes, t.fails, t.ejected = 0, 0, false
	g.note(t, from)
	g.rebuild()
	return true
}

// Expire removes draining targets whose delay has ended, or that have no
// request in flight, and returns them so that the caller can close what
// is still open on them.
func (g *Group) Expire() []*Target {
	g.mu.Lock()
	defer g.unlock()
	now := g.now()
	var gone []*Target
	g.targets = slices.DeleteFunc(g.targets, func(t *Target) bool {
		if t.state == StateDraining && (!now.Before(t.drainUntil) || t.Outstanding() <= 0) {
			gone = append(gone, t)
			if g.onTransition != nil {
				g.pending = append(g.pending, Transition{From: StateDraining,
					Target: Status{ID: t.ID, Addr: t.Addr, State: StateUnused, Reason: ReasonNotRegistered, Description: "Target is not registered to the target group"}})
			}
			return true
		}
		return false
	})
	if gone != nil {
		g.rebuild()
	}
	return gone
}

// DrainDeadline is when a draining target is removed at the latest.
func (g *Group) DrainDeadline(id string) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.find(id)
	if t == nil || t.state != StateDraining {
		return time.Time{}, false
	}
	return t.drainUntil, true
}

// Observe feeds one health check result for target id into its state
// machine: a new target becomes healthy after one passing check; later it
// needs HealthyThreshold consecutive passes (one after a passive ejection)
// and turns unhealthy after UnhealthyThreshold consecutive failures.
func (g *Group) Observe(id string, r Result) {
	g.mu.Lock()
	defer g.unlock()
	t := g.find(id)
	if t == nil {
		return
	}
	t.checks = append(t.checks, Check{Time: g.now(), OK: r.OK, Reason: r.Reason, Detail: r.Detail, Latency: r.Latency})
	if len(t.checks) > KeptChecks {
		t.checks = t.checks[len(t.checks)-KeptChecks:]
	}
	hc := g.cfg.HealthCheck
	before := t.state
	switch t.state {
	case StateDraining, StateUnused:
		return
	case StateInitial:
		if r.OK {
			g.setHealthy(t)
			break
		}
		t.fails++
		t.reason, t.description = ReasonInitialHealthChecking, "Initial health checks in progress"
		if t.fails >= hc.UnhealthyThreshold {
			g.setUnhealthy(t, r)
		}
	case StateHealthy:
		if r.OK {
			t.fails = 0
			break
		}
		t.fails++
		if t.fails >= hc.UnhealthyThreshold {
			g.setUnhealthy(t, r)
		}
	case StateUnhealthy:
		if !r.OK {
			t.passes = 0
			t.reason, t.description = failReason(r)
			break
		}
		t.passes++
		if t.ejected || t.passes >= hc.HealthyThreshold {
			g.setHealthy(t)
		}
	}
	if t.state != before {
		g.note(t, before)
		g.rebuild()
	}
}

// Eject marks a target unhealthy at once after a failed connection; the
// next passing health check restores it.
func (g *Group) Eject(id string) bool {
	g.mu.Lock()
	defer g.unlock()
	t := g.find(id)
	if t == nil || t.state == StateDraining || t.state == StateUnhealthy {
		return false
	}
	from := t.state
	t.state, t.reason, t.description = StateUnhealthy, ReasonFailedHealthChecks, "Ejected after a failed connection"
	g.note(t, from)
	t.ejected, t.passes, t.fails = true, 0, 0
	g.rebuild()
	return true
}

func failReason(r Result) (string, string) {
	reason := r.Reason
	if reason == "" {
		reason = ReasonFailedHealthChecks
	}
	desc := r.Detail
	if desc == "" {
		desc = "Health checks failed"
	}
	return reason, desc
}

func (g *Group) setHealthy(t *Target) {
	t.state, t.reason, t.description = StateHealthy, "", ""
	t.passes, t.fails, t.ejected = 0, 0, false
	t.healthySince = g.now()
}

func (g *Group) setUnhealthy(t *Target, r Result) {
	t.state = StateUnhealthy
	t.reason, t.description = failReason(r)
	t.passes, t.fails = 0, 0
}

func (g *Group) find(id string) *Target {
	for _, t := range g.targets {
		if t.ID == id {
			return t
		}
	}
	return nil
}

func (g *Group) rebuild() {
	rs := &routeSet{algo: g.cfg.Algorithm, slow: g.cfg.SlowStart}
	for _, t := range g.targets {
		if t.state == StateDraining || t.state == StateUnused {
			continue
		}
		rs.open = append(rs.open, t)
		if t.state == StateHealthy {
			rs.healthy = append(rs.healthy, t)
		}
	}
	g.route.Store(rs)
}

// Targets returns a snapshot of every target, in registration order.
func (g *Group) Targets() []Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Status, 0, len(g.targets))
	for _, t := range g.targets {
		checks := make([]Check, len(t.checks))
		for i, c := range t.checks {
			checks[len(t.checks)-1-i] = c
		}
		out = append(out, Status{ID: t.ID, Addr: t.Addr, State: t.state, Reason: t.reason, Description: t.description, Checks: checks})
	}
	return out
}

// Health returns a target's state and reason; an unknown target is
// unused/Target.NotRegistered.
func (g *Group) Health(id string) (State, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t := g.find(id); t != nil {
		return t.state, t.reason
	}
	return StateUnused, ReasonNotRegistered
}

// Lookup returns the registered target with id, or nil.
func (g *Group) Lookup(id string) *Target {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.find(id)
}

// Requests is the number of requests routed by the group (monotonic).
func (g *Group) Requests() uint64 { return g.requests.Load() }

// PickSticky returns the target whose id is sticky when it may take new
// requests (healthy, or any non-draining target when the group fails
// open), and otherwise Pick's choice.
func (g *Group) PickSticky(sticky string, tried []*Target) *Target {
	if sticky != "" && len(tried) == 0 {
		rs := g.route.Load()
		set := rs.healthy
		if len(set) == 0 {
			set = rs.open
		}
		for _, t := range set {
			if t.ID == sticky {
				g.requests.Add(1)
				return t
			}
		}
	}
	return g.Pick(tried)
}

// Pick chooses a target for a new request with the group's algorithm,
// skipping targets in tried. When no target is healthy it fails open and
// picks among every registered, non-draining target. It returns nil when
// there is none.
func (g *Group) Pick(tried []*Target) *Target {
	rs := g.route.Load()
	set := rs.healthy
	if len(set) == 0 {
		set = rs.open
	}
	t := g.pickFrom(rs, set, tried)
	if t == nil && len(rs.healthy) != 0 {
		// every healthy target was tried: fall back to the others
		t = g.pickFrom(rs, rs.open, tried)
	}
	if t != nil {
		g.requests.Add(1)
	}
	return t
}

func (g *Group) pickFrom(rs *routeSet, set []*Target, tried []*Target) *Target {
	n := len(set)
	if n == 0 {
		return nil
	}
	algo, slow := rs.algo, rs.slow
	switch algo {
	case LeastOutstanding:
		var best *Target
		start := int(g.rr.Add(1) % uint64(n))
		for i := range n {
			t := set[(start+i)%n]
			if slices.Contains(tried, t) {
				continue
			}
			if best == nil || t.Outstanding() < best.Outstanding() {
				best = t
			}
		}
		return best
	case WeightedRandom:
		if slow > 0 {
			return g.pickSlowStart(set, tried, slow)
		}
		for range 2 * n {
			t := set[rand.IntN(n)]
			if !slices.Contains(tried, t) {
				return t
			}
		}
	default:
		if slow > 0 {
			return g.pickSlowStart(set, tried, slow)
		}
		start := g.rr.Add(1)
		for i := range uint64(n) {
			t := set[(start+i)%uint64(n)]
			if !slices.Contains(tried, t) {
				return t
			}
		}
		return nil
	}
	for _, t := range set {
		if !slices.Contains(tried, t) {
			return t
		}
	}
	return nil
}

// pickSlowStart picks at random with weights that ramp linearly from 10%
// to 100% over the slow start duration after a target turns healthy.
func (g *Group) pickSlowStart(set []*Target, tried []*Target, slow time.Duration) *Target {
	now := g.now()
	g.mu.Lock()
	weights := make([]float64, len(set))
	total := 0.0
	for i, t := range set {
		if slices.Contains(tried, t) {
			continue
		}
		weights[i] = SlowStartWeight(now, t.healthySince, slow)
		total += weights[i]
	}
	g.mu.Unlock()
	if total == 0 {
		return nil
	}
	x := rand.Float64() * total
	for i, w := range weights {
		if w == 0 {
			continue
		}
		if x < w {
			return set[i]
		}
		x -= w
	}
	for i := len(set) - 1; i >= 0; i-- {
		if weights[i] > 0 {
			return set[i]
		}
	}
	return nil
}

// SlowStartWeight is a target's relative weight at now, having turned
// healthy at since, for a slow start duration slow.
func SlowStartWeight(now, since time.Time, slow time.Duration) float64 {
	if slow <= 0 || since.IsZero() {
		return 1
	}
	el := now.Sub(since)
	if el >= slow {
		return 1
	}
	if el < 0 {
		el = 0
	}
	return 0.1 + 0.9*float64(el)/float64(slow)
}
