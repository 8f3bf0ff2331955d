package console

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/client"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
)

// fakeStack is a working stand-in of the control API for the console's
// own tests: instances in the example's private subnets, a group that
// replaces a terminated instance with a pending one that turns healthy,
// desired capacity within min and max, and an event log. The real stack
// is the end-to-end test's (cmd/moat).
type fakeStack struct {
	p *plan.Plan

	mu        sync.Mutex
	next      int
	insts     []api.Instance
	health    map[string]string
	desired   int
	log       []events.Event
	subs      []chan events.Event
	calls     []string
	healAfter time.Duration
	traffic   bool
}

var _ Source = (*fakeStack)(nil)

func newFakeStack(p *plan.Plan, n int) *fakeStack {
	f := &fakeStack{p: p, health: map[string]string{}, desired: n, healAfter: 300 * time.Millisecond}
	for range n {
		f.launchLocked("healthy")
	}
	return f
}

func (f *fakeStack) launchLocked(health string) string {
	f.next++
	zone := []string{"a", "b"}[f.next%2]
	id := fmt.Sprintf("i-%017x", f.next)
	ip := fmt.Sprintf("10.0.%d.%d", 128+f.next%2, 10+f.next)
	f.insts = append(f.insts, api.Instance{ID: id, Group: "web", Zone: zone, Subnet: "private-" + zone, IP: ip, State: "running",
		Lifecycle: "InService", Health: "Healthy", LaunchTemplate: "app", Version: "1", Launched: time.Now()})
	f.health[id] = health
	return id
}

func (f *fakeStack) addLocked(typ, msg string) {
	e := events.Event{Seq: uint64(len(f.log) + 1), Time: time.Now().UTC(), Component: "autoscale", Type: typ, Message: msg}
	f.log = append(f.log, e)
	for _, ch := range f.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

func (f *fakeStack) Status(context.Context) (api.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	healthy := 0
	for _, in := range f.insts {
		if f.health[in.ID] == "healthy" {
			healthy++
		}
	}
	return api.Status{Stack: f.p.Stack, Phase: api.PhaseRunning, Endpoints: f.p.Endpoints,
		Groups: []api.GroupStatus{{Name: "web", Desired: f.desired, Min: 2, Max: 60, InService: len(f.insts), Healthy: healthy}}}, nil
}

func (f *fakeStack) Instances(context.Context, bool) ([]api.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.insts), nil
}

func (f *fakeStack) Targets(context.Context) ([]api.Target, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Target
	for _, in := range f.insts {
		t := api.Target{TargetGroup: "web", ID: in.ID, Address: in.IP + ":8000", State: f.health[in.ID]}
		if t.State == "initial" {
			t.Reason, t.Description = "Elb.InitialHealthChecking", "Initial health checks in progress"
			t.Checks = []api.HealthCheck{{Time: time.Now(), Reason: "Target.Timeout", Detail: "Request timed out", LatencyMS: 2000}}
		} else {
			t.Checks = []api.HealthCheck{{Time: time.Now(), OK: true, LatencyMS: 1.5}, {Time: time.Now().Add(-5 * time.Second), OK: true, LatencyMS: 2.25}}
		}
		out = append(out, t)
	}
	return out, nil
}

func (f *fakeStack) Activities(_ context.Context, group string) ([]api.Activity, error) {
	if group != "web" {
		return nil, &client.Error{Status: 404, Message: "no such group"}
	}
	return []api.Activity{{Time: time.Now(), Group: "web", Description: "Launching a new EC2 instance", Status: "Successful",
		Cause: "At 2026-01-01T00:00:00Z an instance was started in response to a difference between desired and actual capacity"}}, nil
}

func (f *fakeStack) Membership(context.Context) (secgroup.Membership, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := secgroup.OfflineMembership(f.p)
	m.Members = slices.DeleteFunc(m.Members, func(n secgroup.Member) bool { return n.Hypothetical })
	for _, in := range f.insts {
		m.Members = append(m.Members, secgroup.Member{Name: in.ID, Kind: secgroup.KindInstance, Owner: "web", Subnet: in.Subnet,
			Addr: netip.MustParseAddr(in.IP), Groups: []string{"app"}})
	}
	return m, nil
}

func (f *fakeStack) EventsAfter(ctx context.Context, after uint64, follow bool, fn func(events.Event)) error {
	ch := make(chan events.Event, 64)
	f.mu.Lock()
	past := slices.DeleteFunc(slices.Clone(f.log), func(e events.Event) bool { return e.Seq <= after })
	if follow {
		f.subs = append(f.subs, ch)
	}
	f.mu.Unlock()
	for _, e := range past {
		fn(e)
	}
	if !follow {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-ch:
			fn(e)
		}
	}
}

func (f *fakeStack) Scale(_ context.Context, group string, desired int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("scale %s %d", group, desired))
	if desired < 2 || desired > 60 {
		return &client.Error{Status: 400, Message: fmt.Sprintf("set desired capacity of %s to %d: must be between min 2 and max 60", group, desired)}
	}
	f.desired = desired
	f.addLocked("activity", fmt.Sprintf("a user request explicitly set group desired capacity to %d", desired))
	return nil
}

func (f *fakeStack) Terminate(_ context.Context, id string, decrement bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("terminate %s %v", id, decrement))
	i := slices.IndexFunc(f.insts, func(in api.Instance) bool { return in.ID == id })
	if i < 0 {
		return &client.Error{Status: 404, Message: "instance " + id + " is not in any auto scaling group"}
	}
	f.insts = slices.Delete(f.insts, i, i+1)
	f.addLocked("instance.terminated", "Terminating EC2 instance: "+id)
	if decrement {
		f.desired--
		return nil
	}
	nid := f.launchLocked("initial")
	f.addLocked("activity", "Launching a new EC2 instance: "+nid)
	time.AfterFunc(f.healAfter, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.health[nid]; ok {
			f.health[nid] = "healthy"
		}
	})
	return nil
}

func (f *fakeStack) Refresh(_ context.Context, group string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "refresh "+group)
	return nil
}

// Metrics: one sample a call when f.traffic is set, with requests to
// every instance (5XX from the first), its CPU and memory.
func (f *fakeStack) Metrics(_ context.Context, since time.Time) (api.Metrics, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.traffic {
		return api.Metrics{Samples: []api.MetricsSample{}}, nil
	}
	now := time.Now().UTC()
	lb := api.LBMetrics{Name: "web", ActiveConnectionCount: 3, TargetResponseTimeP50: 0.004, TargetResponseTimeP99: 0.02,
		TargetGroups: []api.TargetGroupMetrics{{Name: "web"}}}
	smp := api.MetricsSample{Time: now, Bastion: api.BastionMetrics{ActiveSessions: 1},
		NAT: []api.NATMetrics{{Name: "nat-a", BytesOutToDestination: 2048, PacketsOutToDestination: 4}}}
	for i, in := range f.insts {
		t := api.TargetMetrics{TargetGroup: "web", ID: in.ID, Addr: in.IP + ":8000", State: f.health[in.ID], RequestCount: 10, P50: 0.004, P99: 0.02}
		if i == 0 {
			t.HTTPCode_Target_5XX_Count, t.Errors5XX = 2, 2
		}
		lb.Targets = append(lb.Targets, t)
		lb.RequestCount += t.RequestCount
		lb.HTTPCode_Target_2XX_Count += t.RequestCount - t.Errors5XX
		lb.HTTPCode_Target_5XX_Count += t.HTTPCode_Target_5XX_Count
		if f.health[in.ID] == "healthy" {
			lb.TargetGroups[0].HealthyHostCount++
		} else {
			lb.TargetGroups[0].UnHealthyHostCount++
		}
		smp.Instances = append(smp.Instances, api.InstanceMetrics{ID: in.ID, Group: "web", CPUUtilization: float64(10 + i),
			MemoryUsedBytes: 50 << 20, MemoryLimitBytes: 1 << 30})
	}
	smp.LoadBalancers = []api.LBMetrics{lb}
	if !now.After(since) {
		return api.Metrics{Samples: []api.MetricsSample{}}, nil
	}
	return api.Metrics{Samples: []api.MetricsSample{smp}}, nil
}

func (f *fakeStack) SetProtection(_ context.Context, id string, protected bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("protect %s %v", id, protected))
	i := slices.IndexFunc(f.insts, func(in api.Instance) bool { return in.ID == id })
	if i < 0 {
		return &client.Error{Status: 404, Message: "instance " + id + " is not in any auto scaling group"}
	}
	f.insts[i].Protected = protected
	return nil
}

func (f *fakeStack) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}
