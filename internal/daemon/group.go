package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/autoscale"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/instance"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/targetgroup"
	"github.com/moat-dev/moat/internal/vpc"
)

// Instance lifecycle states, as EC2 names them.
const (
	statePending      = "pending"
	stateRunning      = "running"
	stateShuttingDown = "shutting-down"
	stateTerminated   = "terminated"
	// stateStopped: frozen by a stop-instances fault.
	stateStopped = "stopped"
)

// instanceRec is the daemon's record of one instance: what it made for it
// (node, processes, SSH and metadata endpoints) and its last usage sample.
type instanceRec struct {
	id       string
	subnet   string
	zone     string
	addr     netip.Addr
	version  string
	launched time.Time
	state    string
	reason   string

	node *vpc.Node
	proc *instance.Instance
	// stopEndpoints closes the instance's SSH and metadata endpoints.
	stopEndpoints func()
	exitNoted     bool
	// terminateAfterLaunch: the controller terminated it while pending.
	terminateAfterLaunch bool
	// rebooting: a reboot-instances fault is restarting its processes
	// (the old ones' exit is no EC2 health failure).
	rebooting bool

	cpu       float64 // percent of the instance type's vCPUs, last sample
	mem       int64   // the memory cgroup's working set, or resident memory without one
	memLimit  int64   // the memory cgroup's limit; 0 without one
	lastCPU   float64
	lastCPUAt time.Time
	// periodCPU accumulates CPU seconds at the start of the metric period.
	periodCPU   float64
	periodStart time.Time
}

// groupRuntime runs one auto scaling group: the autoscale controller
// decides (pure), and the runtime reports facts to it and applies its
// actions: launching and terminating instances and (de)registering them
// with the load balancer.
type groupRuntime struct {
	s      *stack
	name   string // the group's name (immutable)
	period time.Duration
	log    *slog.Logger
	wake   chan struct{}

	mu sync.Mutex
	// cfg, lt and tgs change when moat up is re-run (apply).
	cfg  plan.AutoScalingGroup
	lt   plan.LaunchTemplate
	tgs  []plan.TargetGroup
	ctrl *autoscale.Controller
	recs map[string]*instanceRec
	// gone are the last terminated instances (newest last), shown by
	// moat ps -a as EC2 keeps terminated instances visible for a while.
	gone        []api.Instance
	refreshes   int
	lastMetrics time.Time
	lastReq     map[string]uint64 // target group -> request counter at lastMetrics
	ops         sync.WaitGroup
	// launchFailures counts failed launches, lastFailure says the last
	// one's instance and why (start-up gives up on them; see startGroups).
	launchFailures int
	lastFailure    string
	// launchEnded, if set, is signalled (without blocking) when a launch
	// has ended, in service or failed.
	launchEnded chan<- struct{}
}

func newGroupRuntime(s *stack, g plan.AutoScalingGroup) (*groupRuntime, error) {
	lt, ok := s.plan.LaunchTemplate(g.LaunchTemplate)
	if !ok {
		return nil, fmt.Errorf("group %s: launch template %s is not in the plan", g.Name, g.LaunchTemplate)
	}
	period := s.plan.Local.MetricPeriod
	cfg, err := autoscale.FromPlan(g, period, lt.Version)
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", g.Name, err)
	}
	ctrl, err := autoscale.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", g.Name, err)
	}
	if period <= 0 {
		period = autoscale.DefaultMetricPeriod
	}
	rt := &groupRuntime{s: s, name: g.Name, cfg: g, lt: lt, period: period, ctrl: ctrl,
		log: s.log.With("component", "autoscale", "group", g.Name), wake: make(chan struct{}, 1),
		recs: map[string]*instanceRec{}, lastReq: map[string]uint64{}, lastMetrics: time.Now()}
	for _, name := range g.TargetGroups {
		if tg, ok := s.plan.TargetGroup(name); ok {
			rt.tgs = append(rt.tgs, tg)
		}
	}
	return rt, nil
}

// signalLaunchEnded tells start-up, if it waits, that a launch ended.
func (g *groupRuntime) signalLaunchEnded() {
	if g.launchEnded == nil {
		return
	}
	select {
	case g.launchEnded <- struct{}{}:
	default: // a signal is pending already; the waiter reads the state
	}
}

// startFailed says why the group cannot come up, once as many launches
// have failed as its desired capacity (at least one); nil until then.
func (g *groupRuntime) startFailed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.launchFailures == 0 || g.launchFailures < max(1, g.cfg.DesiredCapacity) {
		return nil
	}
	return errors.New(g.lastFailure)
}

// kick wakes the control loop early.
func (g *groupRuntime) kick() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// run is the group's control loop: every tick it reports what happened to
// the controller, asks it what to do, and applies that.
func (g *groupRuntime) run(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		g.step(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-g.wake:
		}
	}
}

func (g *groupRuntime) step(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			g.log.Error("control loop panic", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	now := time.Now()
	g.mu.Lock()
	g.sampleUsage(now)
	g.reportHealth(now)
	var m *autoscale.Metrics
	if now.Sub(g.lastMetrics) >= g.period {
		m = g.metrics(now)
	}
	actions := g.ctrl.Step(now, m)
	for _, a := range actions {
		g.record(a.Activity)
		switch a.Kind {
		case autoscale.Launch:
			rec := &instanceRec{id: a.InstanceID, subnet: a.Subnet, zone: a.Zone, version: a.LaunchTemplateVersion,
				launched: now, state: statePending}
			g.recs[a.InstanceID] = rec
			g.ops.Add(1)
			go func() {
				defer g.ops.Done()
				g.launch(ctx, rec)
			}()
		case autoscale.Terminate:
			rec := g.recs[a.InstanceID]
			if rec == nil || rec.state == stateShuttingDown || rec.terminateAfterLaunch {
				continue
			}
			if rec.state == statePending || rec.rebooting {
				// Its launch (or reboot) is still running: terminate once
				// it is done, never concurrently with it.
				rec.terminateAfterLaunch, rec.reason = true, a.Activity.Cause
				continue
			}
			rec.state, rec.reason = stateShuttingDown, a.Activity.Cause
			g.ops.Add(1)
			go func() {
				defer g.ops.Done()
				g.terminate(rec)
			}()
		}
	}
	g.mu.Unlock()
}

// record puts a scaling activity in the event log.
func (g *groupRuntime) record(a autoscale.Activity) {
	fields := map[string]string{"group": g.name}
	if a.InstanceID != "" {
		fields["instance"] = a.InstanceID
	}
	msg := a.Description
	if a.Cause != "" {
		msg += ". " + a.Cause
	}
	if r := g.recs[a.InstanceID]; r != nil && r.reason != "" && strings.HasPrefix(a.Description, "Terminating") {
		msg += " Status reason: " + r.reason + "."
	}
	g.s.events.Add(events.Event{Component: "autoscale", Type: "activity", Message: msg, Fields: fields})
}

// sampleUsage updates every running instance's CPU percent and memory.
// Called with g.mu held.
func (g *groupRuntime) sampleUsage(now time.Time) {
	vcpus := 1.0
	if l, ok := instance.LimitsFor(g.lt.InstanceType); ok && l.CPUs > 0 {
		vcpus = l.CPUs
	}
	for _, r := range g.recs {
		if r.proc == nil || r.state != stateRunning {
			continue
		}
		if r.rebooting {
			continue
		}
		cpu, mem := r.proc.Usage()
		if used, limit, ok := r.proc.CgroupMemory(); ok {
			mem, r.memLimit = used, limit
		}
		if !r.lastCPUAt.IsZero() {
			r.cpu = instance.CPUUtilization(r.lastCPU, cpu, now.Sub(r.lastCPUAt).Seconds(), vcpus)
		} else {
			r.periodCPU, r.periodStart = cpu, now
		}
		r.lastCPU, r.lastCPUAt, r.mem = cpu, now, mem
	}
}

// reportHealth tells the controller about exited processes (EC2 health)
// and the target groups' verdicts (ELB health). Called with g.mu held.
func (g *groupRuntime) reportHealth(now time.Time) {
	for _, r := range g.recs {
		if r.proc == nil || r.state != stateRunning || r.rebooting {
			continue
		}
		select {
		case <-r.proc.Exited():
			if !r.exitNoted {
				r.exitNoted = true
				_, why := r.proc.State()
				if why == "" {
					why = fmt.Sprintf("the instance's command exited with code %d", r.proc.ExitCode())
				}
				r.reason = why
				g.ctrl.InstanceExited(r.id, why, now)
			}
		default:
		}
		if healthy, known := g.targetVerdict(r); known {
			g.ctrl.TargetHealth(r.id, healthy, now)
		}
	}
}

// targetVerdict is the target groups' verdict on an instance: unhealthy
// if any says unhealthy, healthy if all say healthy, unknown otherwise
// (initial, or no target groups).
func (g *groupRuntime) targetVerdict(r *instanceRec) (healthy, known bool) {
	if len(g.tgs) == 0 {
		return false, false
	}
	all := true
	for _, tg := range g.tgs {
		st, _ := g.s.targetState(tg.Name, g.targetAddr(r, tg))
		switch st {
		case targetgroup.StateUnhealthy:
			return false, true
		case targetgroup.StateHealthy:
		default:
			all = false
		}
	}
	return all, all
}

func (g *groupRuntime) targetAddr(r *instanceRec, tg plan.TargetGroup) string {
	return netip.AddrPortFrom(r.addr, uint16(tg.Port)).String()
}

// metrics is the datapoint for the metric period that just ended: each
// instance's average CPU over it, and each healthy target's share of its
// target groups' requests (ALBRequestCountPerTarget). Called with g.mu held.
func (g *groupRuntime) metrics(now time.Time) *autoscale.Metrics {
	m := &autoscale.Metrics{CPU: map[string]float64{}, Requests: map[string]float64{}}
	vcpus := 1.0
	if l, ok := instance.LimitsFor(g.lt.InstanceType); ok && l.CPUs > 0 {
		vcpus = l.CPUs
	}
	for _, r := range g.recs {
		if r.proc == nil || r.state != stateRunning || r.periodStart.IsZero() {
			continue
		}
		m.CPU[r.id] = instance.CPUUtilization(r.periodCPU, r.lastCPU, r.lastCPUAt.Sub(r.periodStart).Seconds(), vcpus)
		r.periodCPU, r.periodStart = r.lastCPU, r.lastCPUAt
	}
	// The controller reads a datapoint as covering exactly one period;
	// steps run on a 1 s tick, so scale the count to the period.
	scale := 1.0
	if el := now.Sub(g.lastMetrics); el > 0 {
		scale = g.period.Seconds() / el.Seconds()
	}
	for _, tg := range g.tgs {
		total := g.s.requestCount(tg.Name)
		delta := float64(total-g.lastReq[tg.Name]) * scale
		g.lastReq[tg.Name] = total
		var healthy []string
		for _, r := range g.recs {
			if st, _ := g.s.targetState(tg.Name, g.targetAddr(r, tg)); st == targetgroup.StateHealthy {
				healthy = append(healthy, r.id)
			}
		}
		for _, id := range healthy {
			m.Requests[id] += delta / float64(len(healthy))
		}
	}
	g.lastMetrics = now
	return m
}

// launch makes an instance: an address and a namespace in its subnet, its
// endpoints (metadata, SSH), its processes; then registers it with the
// target groups and tells the controller.
func (g *groupRuntime) launch(ctx context.Context, rec *instanceRec) {
	g.mu.Lock()
	lt, tgs := g.lt, g.tgs
	g.mu.Unlock()
	t0 := time.Now()
	err := g.s.launchInstance(ctx, g, lt, rec)
	now := time.Now()
	defer g.signalLaunchEnded()
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		rec.state, rec.reason = stateTerminated, err.Error()
		g.forget(rec, "Launch failed: "+err.Error(), now)
		g.ctrl.LaunchFailed(rec.id, err, now)
		msg := fmt.Sprintf("Launching a new EC2 instance: %s. Status Reason: %v", rec.id, err)
		g.launchFailures++
		g.lastFailure = msg
		g.s.events.Add(events.Event{Component: "autoscale", Type: "instance.launch-failed",
			Message: msg, Fields: map[string]string{"group": g.name, "instance": rec.id}})
		g.log.Warn("launch failed", "instance", rec.id, "err", err)
		return
	}
	rec.state = stateRunning
	g.ctrl.InstanceRunning(rec.id, now)
	if rec.terminateAfterLaunch {
		rec.state = stateShuttingDown
		g.ops.Add(1)
		go func() {
			defer g.ops.Done()
			g.terminate(rec)
		}()
		return
	}
	for _, tg := range tgs {
		if err := g.s.register(tg.Name, g.targetAddr(rec, tg), rec.id); err != nil {
			g.log.Warn("register target", "instance", rec.id, "err", err)
		}
	}
	g.s.events.Add(events.Event{Component: "autoscale", Type: "instance.running",
		Message: fmt.Sprintf("Instance %s is running at %s in %s (launched in %v: namespace, endpoints, user data, command)",
			rec.id, rec.addr, rec.subnet, now.Sub(t0).Round(10*time.Microsecond)),
		Fields: map[string]string{"group": g.name, "instance": rec.id, "ip": rec.addr.String(), "launchMs": fmt.Sprintf("%.2f", float64(now.Sub(t0).Microseconds())/1000)}})
}

// terminate deregisters the instance and waits for the deregistration
// delay's draining, then stops its processes and removes its node.
func (g *groupRuntime) terminate(rec *instanceRec) {
	g.mu.Lock()
	tgs := g.tgs
	g.mu.Unlock()
	for _, tg := range tgs {
		addr := g.targetAddr(rec, tg)
		if err := g.s.deregister(tg.Name, addr); err == nil {
			g.s.waitDrained(tg.Name, addr, tg.DeregistrationDelay+5*time.Second)
		}
	}
	err := g.s.destroyInstance(rec)
	now := time.Now()
	g.mu.Lock()
	rec.state = stateTerminated
	g.forget(rec, "", now)
	g.ctrl.InstanceTerminated(rec.id, now)
	g.mu.Unlock()
	if err != nil {
		g.log.Warn("terminate", "instance", rec.id, "err", err)
	}
	g.s.events.Add(events.Event{Component: "autoscale", Type: "instance.terminated",
		Message: fmt.Sprintf("Instance %s terminated", rec.id), Fields: map[string]string{"group": g.name, "instance": rec.id}})
	g.kick()
}

// maxGone bounds how many terminated instances are remembered.
const maxGone = 50

// forget removes an instance from the live set and remembers it as
// terminated. Called with g.mu held.
func (g *groupRuntime) forget(rec *instanceRec, reason string, now time.Time) {
	delete(g.recs, rec.id)
	in := g.describe(rec, autoscale.Instance{})
	in.State, in.Lifecycle, in.Health, in.CPUPercent, in.MemoryBytes = stateTerminated, "", "", 0, 0
	if reason != "" {
		in.StateReason = reason
	}
	in.Terminated = now
	g.gone = append(g.gone, in)
	if len(g.gone) > maxGone {
		g.gone = g.gone[len(g.gone)-maxGone:]
	}
}

// stopAll ends every instance at teardown, without draining.
func (g *groupRuntime) stopAll(ctx context.Context) error {
	g.ops.Wait()
	g.mu.Lock()
	recs := make([]*instanceRec, 0, len(g.recs))
	for _, r := range g.recs {
		r.state = stateShuttingDown
		recs = append(recs, r)
	}
	g.mu.Unlock()
	var errs []error
	for _, r := range recs {
		errs = append(errs, g.s.destroyInstance(r))
		g.mu.Lock()
		delete(g.recs, r.id)
		g.mu.Unlock()
	}
	return errors.Join(errs...)
}

// setDesired is set-desired-capacity (moat scale).
func (g *groupRuntime) setDesired(n int) error {
	g.mu.Lock()
	err := g.ctrl.SetDesired(n, time.Now())
	g.mu.Unlock()
	if err == nil {
		g.kick()
	}
	return err
}

// terminateInstance is terminate-instance-in-auto-scaling-group.
func (g *groupRuntime) terminateInstance(id string, decrement bool) error {
	g.mu.Lock()
	err := g.ctrl.TerminateInstance(id, decrement, time.Now())
	g.mu.Unlock()
	if err == nil {
		g.kick()
	}
	return err
}

// setProtection is set-instance-protection: a protected instance is not
// chosen for scale-in. The event log tells it (AWS records no activity).
func (g *groupRuntime) setProtection(id string, protected bool) error {
	g.mu.Lock()
	err := g.ctrl.SetProtection(id, protected)
	g.mu.Unlock()
	if err != nil {
		return err
	}
	word := "off"
	if protected {
		word = "on"
	}
	g.s.events.Add(events.Event{Component: "autoscale", Type: "instance.protection",
		Message: fmt.Sprintf("A user request set scale-in protection of instance %s in group %s %s", id, g.name, word),
		Fields:  map[string]string{"group": g.name, "instance": id, "protectedFromScaleIn": strconv.FormatBool(protected)}})
	return nil
}

// startRefresh replaces every instance (moat refresh), through the load
// balancer's draining. A manual refresh gives new instances a new
// generation of the launch template's version, so that every instance is
// replaced, as AWS does without SkipMatching.
func (g *groupRuntime) startRefresh() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refreshes++
	version := fmt.Sprintf("%s-r%d", g.lt.Version, g.refreshes)
	if err := g.ctrl.StartRefresh(version, time.Now()); err != nil {
		g.refreshes--
		return err
	}
	go g.kick()
	return nil
}

func (g *groupRuntime) has(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.recs[id]
	return ok
}

// status summarises the group for moat status.
func (g *groupRuntime) status() api.GroupStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	gs := api.GroupStatus{Name: g.cfg.Name, Min: g.cfg.MinSize, Max: g.cfg.MaxSize, Desired: g.ctrl.Desired()}
	for _, in := range g.ctrl.Instances() {
		if in.Lifecycle == autoscale.InService {
			gs.InService++
			if in.Health == autoscale.Healthy {
				gs.Healthy++
			}
		}
	}
	return gs
}

// instances lists the group's instances for moat ps; with all, also the
// recently terminated ones.
func (g *groupRuntime) instances(all bool) []api.Instance {
	g.mu.Lock()
	defer g.mu.Unlock()
	ctl := map[string]autoscale.Instance{}
	for _, in := range g.ctrl.Instances() {
		ctl[in.ID] = in
	}
	var out []api.Instance
	if all {
		out = append(out, g.gone...)
	}
	for _, r := range g.recs {
		out = append(out, g.describe(r, ctl[r.id]))
	}
	sortByLaunch(out)
	return out
}

// sortByLaunch orders instances as moat ps lists them and INDEX counts
// them: by launch time, then id, since instances launched in one tick
// share their launch time and the order must not change between calls.
func sortByLaunch(list []api.Instance) {
	sort.Slice(list, func(i, j int) bool {
		if !list[i].Launched.Equal(list[j].Launched) {
			return list[i].Launched.Before(list[j].Launched)
		}
		return list[i].ID < list[j].ID
	})
}

// describe is one instance as the API shows it. Called with g.mu held.
func (g *groupRuntime) describe(r *instanceRec, in autoscale.Instance) api.Instance {
	// An instance the controller no longer tracks (shutting down) has
	// no health to show; one it tracks is Healthy until told otherwise.
	health := string(in.Health)
	if health == "" && r.state != stateShuttingDown {
		health = string(autoscale.Healthy)
	}
	reason := r.reason
	if reason == "" {
		reason = in.HealthReason
	}
	ip := ""
	if r.addr.IsValid() {
		ip = r.addr.String()
	}
	return api.Instance{
		ID: r.id, Group: g.name, LaunchTemplate: g.cfg.LaunchTemplate, Version: r.version, Zone: r.zone,
		Subnet: r.subnet, IP: ip, State: r.state, Lifecycle: string(in.Lifecycle), Health: health, StateReason: reason,
		CPUPercent: r.cpu, MemoryBytes: r.mem, Launched: r.launched, Protected: in.Protected,
	}
}

// activities is the group's scaling history, newest first (as
// describe-scaling-activities).
func (g *groupRuntime) activities() []api.Activity {
	g.mu.Lock()
	h := g.ctrl.History()
	g.mu.Unlock()
	out := make([]api.Activity, 0, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		a := h[i]
		out = append(out, api.Activity{Time: a.Time, Group: g.name, Description: a.Description, Cause: a.Cause, StatusMessage: a.StatusMessage,
			Status: a.Status, InstanceID: a.InstanceID})
	}
	return out
}

// launchTemplate is the group's current launch template.
func (g *groupRuntime) launchTemplate() plan.LaunchTemplate {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lt
}
