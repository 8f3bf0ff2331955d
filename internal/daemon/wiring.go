package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/moat-dev/moat/internal/egress"
	"github.com/moat-dev/moat/internal/instance"
	"github.com/moat-dev/moat/internal/lb"
	"github.com/moat-dev/moat/internal/metadata"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
	"github.com/moat-dev/moat/internal/targetgroup"
	"github.com/moat-dev/moat/internal/vpc"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// startNetwork reclaims a crashed run's leftovers, then builds the VPC.
func (s *stack) startNetwork(ctx context.Context) error {
	if n, err := reclaim(ctx, s.plan.Stack, s.dir); err != nil {
		return fmt.Errorf("reclaim a previous run's leftovers: %w", err)
	} else if n > 0 {
		s.event("vpc", "vpc.reclaim", "Reclaimed %d leftover namespace(s) of a previous run", n)
	}
	v, err := vpc.Up(ctx, s.plan, vpc.Options{StateDir: string(s.dir), Log: s.log.With("component", "vpc")})
	if err != nil {
		return err
	}
	s.onStop(func(ctx context.Context) error { return v.Down(ctx) })
	s.partsMu.Lock()
	s.net = v
	s.partsMu.Unlock()
	s.metadata = metadata.New(s.metadataInfo, nil)
	s.event("vpc", "vpc.up", "VPC %s up: %d subnets in %d zones", s.plan.VPC.CIDR, len(s.plan.Subnets), len(s.plan.Zones))
	if s.plan.Local.Egress {
		return s.startEgress(v)
	}
	return nil
}

// startEgress serves the VPC's opt-in egress (local.egress): TCP and DNS
// leaving through the internet gateway are carried on from the host
// namespace by an egress.Proxy listening in the internet namespace.
func (s *stack) startEgress(v *vpc.VPC) error {
	l, err := vpc.ListenIn(v.InternetPath(), "tcp4", fmt.Sprintf(":%d", vpc.EgressPort))
	if err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	pc, err := vpc.ListenPacketIn(v.InternetPath(), "udp4", fmt.Sprintf(":%d", vpc.EgressDNSPort))
	if err != nil {
		l.Close()
		return fmt.Errorf("egress: %w", err)
	}
	p := &egress.Proxy{VPC: s.plan.VPC.CIDR, Log: s.log.With("component", "egress")}
	p.Start(l, pc)
	s.onStop(func(context.Context) error { return p.Close() })
	s.event("vpc", "vpc.egress", "Egress on: TCP and DNS from the VPC reach the host's network from the host namespace; %s is the host's loopback", egress.HostAddr)
	return nil
}

// lbRuntime is one running load balancer.
type lbRuntime struct {
	plan   plan.LoadBalancer
	engine *lb.Engine
}

// startBalancers places each load balancer's nodes in its public subnets
// and serves its listeners on their published loopback addresses;
// connections to targets leave from the nodes' own addresses, in turn.
func (s *stack) startBalancers(ctx context.Context) error {
	var regs prometheus.Gatherers
	balancers, tgLB := map[string]*lbRuntime{}, map[string]string{}
	for _, l := range s.plan.LoadBalancers {
		var dials []lb.DialFunc
		for i, ln := range l.Nodes {
			name := fmt.Sprintf("lb-%s-%d", l.Name, i)
			n, err := s.network().AddNode(ctx, vpc.NodeSpec{Name: name, Kind: secgroup.KindLoadBalancer, Owner: l.Name,
				Subnet: ln.Subnet, Addr: ln.Address, Groups: l.SecurityGroups})
			if err != nil {
				return err
			}
			s.onStop(func(ctx context.Context) error { return s.network().RemoveNode(ctx, name) })
			dials = append(dials, n.Dial())
		}
		var next atomic.Uint64
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dials[next.Add(1)%uint64(len(dials))](ctx, network, addr)
		}
		access, err := os.OpenFile(s.dir.Path("lb-"+l.Name+"-access.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		s.onStop(func(context.Context) error { return access.Close() })
		e, err := lb.New(lbConfig(s.plan, l), lb.Options{Dial: dial, Log: s.log.With("component", "lb", "lb", l.Name), AccessLog: access})
		if err != nil {
			return fmt.Errorf("load balancer %s: %w", l.Name, err)
		}
		s.onStop(func(context.Context) error { return e.Close() })
		balancers[l.Name] = &lbRuntime{plan: l, engine: e}
		regs = append(regs, e.Registry())
		for _, ln := range l.Listeners {
			lis, err := listenLoopback(ln.Publish.String())
			if err != nil {
				return fmt.Errorf("publish load balancer %s listener %d: %w", l.Name, ln.Port, err)
			}
			s.serve(func() error { return e.Serve(lis, listenerName(ln)) }, lis)
			for _, tg := range forwardTargets(ln) {
				tgLB[tg] = l.Name
			}
			scheme := "http"
			if ln.Protocol == "HTTPS" {
				scheme = "https"
			}
			s.event("lb", "lb.listener", "Load balancer %s: %s listener on port %d published on %s://%s/", l.Name, ln.Protocol, ln.Port, scheme, ln.Publish)
		}
	}
	s.partsMu.Lock()
	s.balancers, s.tgLB = balancers, tgLB
	s.partsMu.Unlock()
	if len(regs) > 0 && s.plan.Local.Metrics.IsValid() {
		lis, err := listenLoopback(s.plan.Local.Metrics.String())
		if err != nil {
			return fmt.Errorf("publish metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(regs, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		s.serve(func() error { return srv.Serve(lis) }, lis)
		s.event("lb", "metrics", "Prometheus metrics on http://%s/metrics", s.plan.Local.Metrics)
	}
	return nil
}

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

// balancer is the running load balancer name, or nil.
func (s *stack) balancer(name string) *lbRuntime {
	s.partsMu.RLock()
	defer s.partsMu.RUnlock()
	return s.balancers[name]
}

// lbOf is the name of the load balancer that serves target group tg.
func (s *stack) lbOf(tg string) string {
	s.partsMu.RLock()
	defer s.partsMu.RUnlock()
	return s.tgLB[tg]
}

// engineFor is the engine serving a target group, or nil.
func (s *stack) engineFor(tg string) *lb.Engine {
	if b := s.balancer(s.lbOf(tg)); b != nil {
		return b.engine
	}
	return nil
}

func (s *stack) register(tg, addr string) error {
	if e := s.engineFor(tg); e != nil {
		return e.Register(tg, addr)
	}
	return nil
}

func (s *stack) deregister(tg, addr string) error {
	if e := s.engineFor(tg); e != nil {
		return e.Deregister(tg, addr)
	}
	return errors.New("no load balancer serves target group " + tg)
}

// targetState is a target's health state in its target group.
func (s *stack) targetState(tg, addr string) (targetgroup.State, string) {
	if e := s.engineFor(tg); e != nil {
		for _, t := range e.Targets(tg) {
			if t.Addr == addr {
				return t.State, t.Reason
			}
		}
	}
	return "", ""
}

func (s *stack) requestCount(tg string) uint64 {
	if e := s.engineFor(tg); e != nil {
		return e.RequestCount(tg)
	}
	return 0
}

// waitDrained waits until a deregistered target is gone from its target
// group (the deregistration delay's end, or sooner once its connections
// are done), at most max.
func (s *stack) waitDrained(tg, addr string, max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		if st, _ := s.targetState(tg, addr); st == "" || st == targetgroup.StateUnused {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startGroups starts each auto scaling group's control loop; it returns
// once every group has its desired capacity in service (or ctx ends, or
// launches of a group fail as many times as its desired capacity). The
// groups count their failed launches and signal each launch's end on a
// channel; start-up does not read the event log, which may drop events.
func (s *stack) startGroups(ctx, loopCtx context.Context) error {
	if err := instance.LimitsApplicable(); err != nil && len(s.plan.AutoScalingGroups) > 0 {
		s.event("instance", "instance.limits", "CPU and memory limits per instance type are not applied: %v", err)
	}
	if os.Geteuid() == 0 {
		// The instances' working directories under /run/moat go after the
		// instances (as root; otherwise they hold the console logs, state).
		s.onStop(func(context.Context) error { return os.RemoveAll(filepath.Dir(s.instanceRoot())) })
	}
	groups := map[string]*groupRuntime{}
	// Launches signal their end here, so that start-up looks at the groups
	// again at once; what failed, the groups count themselves.
	launchEnded := make(chan struct{}, 1)
	for _, g := range s.plan.AutoScalingGroups {
		rt, err := newGroupRuntime(s, g)
		if err != nil {
			return err
		}
		rt.launchEnded = launchEnded
		groups[g.Name] = rt
	}
	s.partsMu.Lock()
	s.groups = groups
	s.partsMu.Unlock()
	for _, g := range s.plan.AutoScalingGroups {
		rt := groups[g.Name]
		s.onStop(func(ctx context.Context) error { return rt.stopAll(ctx) })
		s.loops.Add(1)
		go func() {
			defer s.loops.Done()
			rt.run(loopCtx, time.Second)
		}()
	}
	for {
		ready := true
		for _, st := range s.groupStatus() {
			if st.InService < st.Desired {
				ready = false
			}
		}
		if ready {
			s.waitTargetsHealthy(ctx)
			return nil
		}
		for _, g := range s.plan.AutoScalingGroups {
			if err := groups[g.Name].startFailed(); err != nil {
				return fmt.Errorf("group %s: %w (see moat logs for the instance's console output)", g.Name, err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-launchEnded:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitTargetsHealthy waits, at most the longest health check grace period,
// until every registered target is healthy, so that the stack serves when
// moat up reports it running. Targets that do not get healthy are the
// health checks' business (and moat targets shows why).
func (s *stack) waitTargetsHealthy(ctx context.Context) {
	var grace time.Duration
	for _, g := range s.plan.AutoScalingGroups {
		if len(g.TargetGroups) > 0 {
			grace = max(grace, g.HealthCheckGracePeriod)
		}
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		all := true
		for _, t := range s.targets() {
			if t.State != string(targetgroup.StateHealthy) {
				all = false
			}
		}
		if all {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.event("lb", "lb.unhealthy", "Some targets are not healthy %s after launch; see moat targets", grace)
}
