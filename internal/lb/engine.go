package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moat-dev/moat/internal/acceptloop"
	"github.com/moat-dev/moat/internal/targetgroup"
)

// DialFunc opens upstream connections. In the full stack it dials from the
// load balancer's network namespace; standalone it is a net.Dialer.
type DialFunc = targetgroup.DialFunc

// Options are the engine's effects.
type Options struct {
	Dial      DialFunc         // default: net.Dialer
	Now       func() time.Time // default: time.Now
	Log       *slog.Logger     // component log; default discard
	AccessLog io.Writer        // JSON lines; nil disables
	// DrainTick is how often draining targets are expired; default 1s.
	DrainTick time.Duration
	// OnTargetHealth, if set, hears every target's change of health
	// state (targetgroup.Transition), outside the engine's locks.
	OnTargetHealth func(targetGroup string, tr targetgroup.Transition)
}

// Engine is a running load balancer. Create it with New, feed it
// listeners with Serve (or ListenAndServe), change it with Apply,
// Register and Deregister, stop it with Close.
type Engine struct {
	opts    Options
	log     *slog.Logger
	access  *slog.Logger
	metrics *Metrics
	other   *cell // responses to requests that reached no target group
	// malformed counts the requests refused before routing (in other too)
	malformed atomic.Uint64

	cfg    atomic.Pointer[Config]
	mu     sync.Mutex
	groups map[string]*group
	snap   atomic.Pointer[map[string]*group] // read-only copy of groups for the hot path
	lns    map[string]*listenerState
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type listenerState struct {
	cfg atomic.Pointer[Listener]
	ln  net.Listener
}

// group is a target group with its upstream pools and checker.
type group struct {
	name    string
	tg      *targetgroup.Group
	checker *targetgroup.Checker
	m       *groupMetrics
	sticky  atomic.Pointer[targetgroup.Stickiness]

	none *cell // requests that found no target

	mu      sync.Mutex
	pools   map[*targetgroup.Target]*pool
	tunnels map[*targetgroup.Target]map[net.Conn]struct{}
	gone    totals // counts of the targets whose pools were removed
}

// New builds an engine from cfg; it starts health checks for every target
// group and the drain loop. Listeners start with Serve.
func New(cfg Config, opts Options) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid load balancer config: %w", err)
	}
	if opts.Dial == nil {
		d := &net.Dialer{} // bounded by Config.ConnectTimeout through the context
		opts.Dial = d.DialContext
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.DrainTick <= 0 {
		opts.DrainTick = time.Second
	}
	e := &Engine{opts: opts, log: opts.Log, groups: map[string]*group{}, lns: map[string]*listenerState{}, other: newCell()}
	if opts.AccessLog != nil {
		e.access = slog.New(slog.NewJSONHandler(opts.AccessLog, nil))
	}
	e.metrics = newMetrics(e)
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.Apply(cfg)
	e.wg.Add(1)
	go e.drainLoop()
	return e, nil
}

func withDefaults(cfg Config) Config {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 60 * time.Second
	}
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = 10 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	for i := range cfg.Listeners {
		if cfg.Listeners[i].Name == "" {
			cfg.Listeners[i].Name = cfg.Listeners[i].Address
		}
		if cfg.Listeners[i].Protocol == "" {
			cfg.Listeners[i].Protocol = "HTTP"
		}
	}
	return cfg
}

// Apply swaps in a new configuration live: listener rules and target
// group settings change for new requests; open connections stay. Target
// groups that are gone stop being health-checked; their targets drain.
func (e *Engine) Apply(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid load balancer config: %w", err)
	}
	cfg = withDefaults(cfg)
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, tc := range cfg.TargetGroups {
		st := tc.WithDefaults().Stickiness // the cookie lasts a day unless told
		if g, ok := e.groups[tc.Name]; ok {
			g.tg.SetConfig(tc)
			g.sticky.Store(&st)
			continue
		}
		g := &group{name: tc.Name, tg: targetgroup.New(tc, e.opts.Now), pools: map[*targetgroup.Target]*pool{},
			tunnels: map[*targetgroup.Target]map[net.Conn]struct{}{}, m: e.metrics.group(tc.Name), none: newCell()}
		if f := e.opts.OnTargetHealth; f != nil {
			name := tc.Name
			g.tg.SetOnTransition(func(tr targetgroup.Transition) { f(name, tr) })
		}
		g.checker = targetgroup.NewChecker(g.tg, e.opts.Dial, e.log, nil)
		g.sticky.Store(&st)
		e.groups[tc.Name] = g
	}
	for _, l := range cfg.Listeners {
		if ls, ok := e.lns[l.Name]; ok {
			lc := l
			ls.cfg.Store(&lc)
		}
	}
	snap := make(map[string]*group, len(e.groups))
	for k, v := range e.groups {
		snap[k] = v
	}
	e.snap.Store(&snap)
	e.cfg.Store(&cfg)
	return nil
}

// Register adds target addr (host:port) to target group tg; its id is
// its address. Health checks start at once.
func (e *Engine) Register(tg, addr string) error {
	g := e.group(tg)
	if g == nil {
		return fmt.Errorf("register %s: unknown target group %q", addr, tg)
	}
	g.tg.Register(addr, addr)
	g.checker.Sync(e.ctx)
	return nil
}

// Deregister starts draining addr in tg: no new requests; in-flight ones
// and open WebSockets continue until the deregistration delay ends, then
// the remaining connections are closed.
func (e *Engine) Deregister(tg, addr string) error {
	g := e.group(tg)
	if g == nil {
		return fmt.Errorf("deregister %s: unknown target group %q", addr, tg)
	}
	if !g.tg.Deregister(addr) {
		return fmt.Errorf("deregister %s: not registered in %q", addr, tg)
	}
	return nil
}

// SetStopped takes addr in tg out of routing while its instance is
// stopped, and puts it back to be checked afresh when it starts (see
// targetgroup.Group.SetStopped).
func (e *Engine) SetStopped(tg, addr string, stopped bool) error {
	g := e.group(tg)
	if g == nil {
		return fmt.Errorf("stop %s: unknown target group %q", addr, tg)
	}
	if !g.tg.SetStopped(addr, stopped) {
		return fmt.Errorf("stop %s: not registered in %q", addr, tg)
	}
	return nil
}

// Targets returns the health of every target of tg.
func (e *Engine) Targets(tg string) []targetgroup.Status {
	if g := e.group(tg); g != nil {
		return g.tg.Targets()
	}
	return nil
}

// RequestCount is the number of requests routed to tg since it was
// created (monotonic); ALBRequestCountPerTarget is its rate divided by
// the healthy target count.
func (e *Engine) RequestCount(tg string) uint64 {
	if g := e.group(tg); g != nil {
		return g.tg.Requests()
	}
	return 0
}

// sortedGroups are the target groups, by name.
func (e *Engine) sortedGroups() []*group {
	m := e.snap.Load()
	if m == nil {
		return nil
	}
	gs := make([]*group, 0, len(*m))
	for _, g := range *m {
		gs = append(gs, g)
	}
	slices.SortFunc(gs, func(a, b *group) int { return strings.Compare(a.name, b.name) })
	return gs
}

func (e *Engine) group(name string) *group {
	if m := e.snap.Load(); m != nil {
		return (*m)[name]
	}
	return nil
}

func (e *Engine) drainLoop() {
	defer e.wg.Done()
	t := time.NewTicker(e.opts.DrainTick)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		e.mu.Lock()
		gs := make([]*group, 0, len(e.groups))
		for _, g := range e.groups {
			gs = append(gs, g)
		}
		e.mu.Unlock()
		for _, g := range gs {
			gone := g.tg.Expire()
			for _, t := range gone {
				g.mu.Lock()
				if p := g.pools[t]; p != nil {
					p.closeAll()
					p.cell.addTo(&g.gone)
					delete(g.pools, t)
				}
				for c := range g.tunnels[t] {
					c.Close()
				}
				delete(g.tunnels, t)
				g.mu.Unlock()
			}
			if len(gone) > 0 {
				g.checker.Sync(e.ctx)
			}
		}
	}
}

// Serve accepts connections on ln for the listener named name until ln is
// closed or the engine stops (which closes ln). An HTTPS listener
// terminates TLS in front of the same request path (tlsFront). Accept
// errors are retried with a back-off (acceptloop) and never end it.
func (e *Engine) Serve(ln net.Listener, name string) error {
	cfg := e.cfg.Load()
	var lc *Listener
	for i := range cfg.Listeners {
		if cfg.Listeners[i].Name == name {
			l := cfg.Listeners[i]
			lc = &l
		}
	}
	if lc == nil {
		return fmt.Errorf("serve: unknown listener %q", name)
	}
	ls := &listenerState{ln: ln}
	ls.cfg.Store(lc)
	e.mu.Lock()
	e.lns[name] = ls
	e.mu.Unlock()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	handle := func(c net.Conn) { e.serveConn(c, ls, "http", port) }
	if lc.Protocol == "HTTPS" {
		tc, err := e.tlsFront(lc, ls, port)
		if err != nil {
			return err
		}
		handle = tc.serve
	}
	err := acceptloop.Serve(e.ctx, ln, e.log, handle)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// ListenAndServe opens every listener of the config and serves them until
// ctx ends; it returns the first error.
func (e *Engine) ListenAndServe(ctx context.Context) error {
	cfg := e.cfg.Load()
	errc := make(chan error, len(cfg.Listeners))
	var lns []net.Listener
	for _, l := range cfg.Listeners {
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			for _, o := range lns {
				o.Close()
			}
			return fmt.Errorf("listen on %s: %w", l.Address, err)
		}
		lns = append(lns, ln)
		go func(name string) { errc <- e.Serve(ln, name) }(l.Name)
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil {
			for _, o := range lns {
				o.Close()
			}
			return err
		}
	}
	for _, o := range lns {
		o.Close()
	}
	return nil
}

// Close stops health checks and the drain loop and closes pooled
// upstream connections. Listeners are closed by their owner.
func (e *Engine) Close() error {
	e.cancel()
	e.wg.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, g := range e.groups {
		g.checker.Stop()
		g.mu.Lock()
		for _, p := range g.pools {
			p.closeAll()
		}
		g.mu.Unlock()
	}
	return nil
}

// pickGroup chooses among weighted forward groups.
func (e *Engine) pickGroup(fw []WeightedGroup) *group {
	if len(fw) == 1 {
		return e.group(fw[0].TargetGroup)
	}
	total := 0
	for _, f := range fw {
		total += max(f.Weight, 0)
	}
	if total == 0 {
		return e.group(fw[0].TargetGroup)
	}
	x := rand.IntN(total)
	for _, f := range fw {
		if x < f.Weight {
			return e.group(f.TargetGroup)
		}
		x -= f.Weight
	}
	return e.group(fw[len(fw)-1].TargetGroup)
}

// pool is a target's idle keep-alive upstream connections and the
// counts of its responses.
type pool struct {
	cell *cell

	mu   sync.Mutex
	idle []*upConn
}

type upConn struct {
	c   net.Conn
	r   *bufio.Reader // reads through upConn.Read
	w   *bufio.Writer
	hd  head
	hot bool // reused from the pool (may be stale)

	idle      time.Duration // ALB's idle timeout: a target silent this long is a 504
	refreshed time.Time     // when the read deadline was last pushed back
}

func newUpConn(c net.Conn, idle time.Duration) *upConn {
	u := &upConn{c: c, idle: idle, w: bufio.NewWriterSize(c, 8<<10)}
	u.r = bufio.NewReaderSize(u, readBufSize)
	return u
}

// Read reads from the target with the idle timeout as deadline, pushed
// back at most once a second (a deadline change costs a timer update).
func (u *upConn) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(u.refreshed) > time.Second {
		u.c.SetReadDeadline(now.Add(u.idle))
		u.refreshed = now
	}
	return u.c.Read(p)
}

const maxIdlePerTarget = 256

func (g *group) pool(t *targetgroup.Target) *pool {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.pools[t]
	if p == nil {
		p = &pool{cell: newCell()}
		g.pools[t] = p
	}
	return p
}

func (p *pool) get() *upConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.idle); n > 0 {
		u := p.idle[n-1]
		p.idle = p.idle[:n-1]
		u.hot = true
		return u
	}
	return nil
}

func (p *pool) put(u *upConn) {
	p.mu.Lock()
	if len(p.idle) < maxIdlePerTarget {
		p.idle = append(p.idle, u)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	u.c.Close()
}

func (p *pool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.idle {
		u.c.Close()
	}
	p.idle = nil
}

func (g *group) addTunnel(t *targetgroup.Target, c net.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.tunnels[t]
	if m == nil {
		m = map[net.Conn]struct{}{}
		g.tunnels[t] = m
	}
	m[c] = struct{}{}
}

func (g *group) removeTunnel(t *targetgroup.Target, c net.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.tunnels[t], c)
}
