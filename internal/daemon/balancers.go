package daemon

// The stack's load balancers: their nodes, listeners and metrics, and
// the target group calls the auto scaling groups make on them.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/moat-dev/moat/internal/lb"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
	"github.com/moat-dev/moat/internal/targetgroup"
	"github.com/moat-dev/moat/internal/telemetry"
	"github.com/moat-dev/moat/internal/vpc"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

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
		lbName := l.Name
		e, err := lb.New(lbConfig(s.plan, l), lb.Options{Dial: dial, Log: s.log.With("component", "lb", "lb", l.Name), AccessLog: access,
			OnTargetHealth: func(tg string, tr targetgroup.Transition) {
				s.events.Add(telemetry.TargetHealthEvent(lbName, tg, s.targetName(tg, tr.Target.Addr), tr))
			}})
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
			for _, tg := range ln.TargetGroups() {
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

// register registers instance id's address addr in target group tg.
func (s *stack) register(tg, addr, id string) error {
	s.namesMu.Lock()
	if s.targetNames == nil {
		s.targetNames = map[string]string{}
	}
	s.targetNames[tg+" "+addr] = id
	s.namesMu.Unlock()
	if e := s.engineFor(tg); e != nil {
		return e.Register(tg, addr)
	}
	return nil
}

// targetName is the instance id registered at addr in tg, or "". It takes
// no other lock: target health events are told while a group's lock may
// be held (a launch registers its instance under it).
func (s *stack) targetName(tg, addr string) string {
	s.namesMu.Lock()
	defer s.namesMu.Unlock()
	return s.targetNames[tg+" "+addr]
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
