package daemon

// Fault injection (package fault): the faults a chaos experiment injects
// into the running stack, each undone when its duration passes, on
// DELETE, when the daemon stops, and, after a crash, by the next moat up
// or moat down from the undo record it keeps in the state directory.

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/fault"
	"github.com/moat-dev/moat/internal/instance"
	"github.com/moat-dev/moat/internal/vpc"
)

// faultDir is where the undo records of active faults are kept.
func (d Dir) faultDir() string { return d.Path("faults") }

// faultRun is one injected fault.
type faultRun struct {
	spec fault.Spec
	f    api.Fault
	undo []fault.Step
	// stops end what runs in the daemon for the fault (a latency's
	// queue), after the undo steps.
	stops []func() error
	timer *time.Timer
}

// faultRuntime holds the stack's faults.
type faultRuntime struct {
	s *stack

	mu     sync.Mutex
	faults map[string]*faultRun
	order  []string // ids, oldest first
	closed bool
	// injecting serialises injections, so that conflicts are checked
	// against every fault, including one being injected.
	injecting sync.Mutex
}

// maxEndedFaults bounds how many ended faults GetFaults lists.
const maxEndedFaults = 100

func newFaultRuntime(s *stack) *faultRuntime {
	return &faultRuntime{s: s, faults: map[string]*faultRun{}}
}

// faultErr is an error with the HTTP status it answers.
type faultErr struct {
	code int
	err  error
}

func (e *faultErr) Error() string { return e.err.Error() }
func (e *faultErr) Unwrap() error { return e.err }

func faultError(code int, err error) error { return &faultErr{code: code, err: err} }

// faultStatus is the HTTP status of an error of start or stop.
func faultStatus(err error) int {
	var fe *faultErr
	if errors.As(err, &fe) {
		return fe.code
	}
	return http.StatusInternalServerError
}

// list is every fault, oldest first.
func (r *faultRuntime) list() []api.Fault {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]api.Fault, 0, len(r.order))
	for _, id := range r.order {
		out = append(out, copyFault(r.faults[id].f))
	}
	return out
}

func copyFault(f api.Fault) api.Fault {
	f.Targets = slices.Clone(f.Targets)
	if f.Params != nil {
		p := make(map[string]string, len(f.Params))
		for k, v := range f.Params {
			p[k] = v
		}
		f.Params = p
	}
	if f.Ended != nil {
		t := *f.Ended
		f.Ended = &t
	}
	return f
}

// active is the specs of the active faults, by id. Called with r.mu held.
func (r *faultRuntime) activeLocked() map[string]fault.Spec {
	out := map[string]fault.Spec{}
	for id, fr := range r.faults {
		if fr.f.State == api.FaultActive {
			out[id] = fr.spec
		}
	}
	return out
}

// start injects a fault: every target or none (what was done is undone
// when a target fails).
func (r *faultRuntime) start(ctx context.Context, req api.FaultRequest) (api.Fault, error) {
	// An injection (a reboot) runs to its end even if the client goes.
	ctx = context.WithoutCancel(ctx)
	spec, err := fault.Parse(req)
	if err != nil {
		return api.Fault{}, faultError(http.StatusBadRequest, err)
	}
	r.injecting.Lock()
	defer r.injecting.Unlock()
	r.mu.Lock()
	closed := r.closed
	conflict := fault.Conflict(r.activeLocked(), spec)
	r.mu.Unlock()
	if closed {
		return api.Fault{}, faultError(http.StatusServiceUnavailable, errors.New("the stack is stopping: no new faults"))
	}
	if conflict != nil {
		return api.Fault{}, faultError(http.StatusConflict, conflict)
	}
	if err := r.checkTargets(spec); err != nil {
		return api.Fault{}, err
	}
	var b [8]byte
	_, _ = crand.Read(b[:])
	now := time.Now().UTC()
	fr := &faultRun{spec: spec, f: api.Fault{ID: fault.ID(b), Kind: string(spec.Kind), Targets: slices.Clone(spec.Targets),
		Params: req.Params, Experiment: req.Experiment, Started: now, Ends: spec.Ends(now), State: api.FaultActive}}
	if err := os.MkdirAll(r.s.dir.faultDir(), 0o700); err != nil {
		return api.Fault{}, fmt.Errorf("fault records: %w", err)
	}
	if err := r.persist(fr); err != nil {
		return api.Fault{}, err
	}
	if err := r.inject(ctx, fr); err != nil {
		uerr := errors.Join(r.runUndo(fr.undo), runStops(fr.stops))
		r.forget(fr)
		end := time.Now().UTC()
		fr.f.State, fr.f.Ended, fr.undo = api.FaultFailed, &end, nil
		fr.f.Error = err.Error()
		if uerr != nil {
			fr.f.Error += "; undo: " + uerr.Error()
		}
		r.add(fr)
		code := faultStatus(err)
		if code == http.StatusInternalServerError {
			code = http.StatusConflict // the stack's state refused it (an instance that stopped running, ...)
		}
		return copyFault(fr.f), faultError(code, err)
	}
	info := spec.Info()
	r.event("fault.start", fr.f, fmt.Sprintf("Fault %s started: %s on %s%s", fr.f.ID, spec.Kind, strings.Join(spec.Targets, ", "), until(fr.f.Ends)))
	if info.OneShot {
		end := time.Now().UTC()
		fr.f.State, fr.f.Ended = api.FaultEnded, &end
		r.forget(fr)
		out := copyFault(fr.f)
		r.add(fr)
		r.event("fault.end", out, fmt.Sprintf("Fault %s ended: %s done", out.ID, spec.Kind))
		return out, nil
	}
	// What the caller gets is the fault as started: once listed, its
	// timer or a DELETE may end it at any time.
	out := copyFault(fr.f)
	r.add(fr)
	if !out.Ends.IsZero() {
		r.mu.Lock()
		fr.timer = time.AfterFunc(time.Until(out.Ends), func() { _, _ = r.stop(out.ID, "its duration passed") })
		r.mu.Unlock()
	}
	return out, nil
}

func until(t time.Time) string {
	if t.IsZero() {
		return ", until stopped"
	}
	return ", until " + t.Format(time.RFC3339)
}

// add lists a fault, dropping the oldest ended ones beyond the bound.
func (r *faultRuntime) add(fr *faultRun) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults[fr.f.ID] = fr
	r.order = append(r.order, fr.f.ID)
	ended := 0
	for _, id := range r.order {
		if r.faults[id].f.State != api.FaultActive {
			ended++
		}
	}
	for i := 0; ended > maxEndedFaults && i < len(r.order); {
		id := r.order[i]
		if r.faults[id].f.State != api.FaultActive {
			delete(r.faults, id)
			r.order = append(r.order[:i], r.order[i+1:]...)
			ended--
			continue
		}
		i++
	}
}

// stop undoes an active fault now; a fault ended already is returned as
// it is. why goes to the event log.
func (r *faultRuntime) stop(id, why string) (api.Fault, error) {
	r.mu.Lock()
	fr, ok := r.faults[id]
	if !ok {
		r.mu.Unlock()
		return api.Fault{}, faultError(http.StatusNotFound, fmt.Errorf("fault %s does not exist: give a fault id from GET /v1/faults", id))
	}
	if fr.f.State != api.FaultActive {
		f := copyFault(fr.f)
		r.mu.Unlock()
		return f, nil
	}
	fr.f.State = "stopping"
	if fr.timer != nil {
		fr.timer.Stop()
	}
	undo, stops := fr.undo, fr.stops
	fr.undo, fr.stops = nil, nil
	r.mu.Unlock()

	err := errors.Join(r.runUndo(undo), runStops(stops))
	r.forget(fr)
	end := time.Now().UTC()
	r.mu.Lock()
	fr.f.State, fr.f.Ended = api.FaultEnded, &end
	if err != nil {
		fr.f.Error = "undo: " + err.Error()
	}
	f := copyFault(fr.f)
	r.mu.Unlock()
	msg := fmt.Sprintf("Fault %s ended (%s): %s on %s undone", id, why, fr.spec.Kind, strings.Join(fr.spec.Targets, ", "))
	if err != nil {
		msg += "; undo failed: " + err.Error()
	}
	r.event("fault.end", f, msg)
	return f, nil
}

// stopAll undoes every active fault and takes no new ones (teardown).
func (r *faultRuntime) stopAll(context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	// An injection in flight ends first, and its fault is listed only when
	// it ends: the active faults are read after it (before, such a fault
	// stayed active, its record on disk, its timer firing on a stack gone).
	r.injecting.Lock()
	r.injecting.Unlock()
	r.mu.Lock()
	var ids []string
	for _, id := range r.order {
		if r.faults[id].f.State == api.FaultActive {
			ids = append(ids, id)
		}
	}
	r.mu.Unlock()
	var errs []error
	for _, id := range ids {
		f, err := r.stop(id, "the stack is stopping")
		if err == nil && f.Error != "" {
			err = errors.New(f.Error)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("fault %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// instanceGone undoes, now, what active faults did to an instance that is
// being terminated (its burners, its freeze), so that nothing of theirs
// holds its namespace or cgroups; the faults stay active on their other
// targets.
func (r *faultRuntime) instanceGone(id string) {
	r.mu.Lock()
	var steps []fault.Step
	for _, fr := range r.faults {
		if fr.f.State != api.FaultActive {
			continue
		}
		keep := fr.undo[:0:0]
		for _, st := range fr.undo {
			if st.Instance == id {
				steps = append(steps, st)
			} else {
				keep = append(keep, st)
			}
		}
		if len(keep) != len(fr.undo) {
			fr.undo = keep
			_ = r.persistLocked(fr)
		}
	}
	r.mu.Unlock()
	if err := r.runUndo(steps); err != nil {
		r.s.log.Warn("undo faults of a terminated instance", "instance", id, "err", err)
	}
}

func (r *faultRuntime) event(typ string, f api.Fault, msg string) {
	fields := map[string]string{"fault": f.ID, "kind": f.Kind, "targets": strings.Join(f.Targets, ",")}
	if f.Experiment != "" {
		fields["experiment"] = f.Experiment
	}
	r.s.events.Add(events.Event{Component: "fis", Type: typ, Message: msg, Fields: fields})
}

// persist writes the fault's undo record (atomically).
func (r *faultRuntime) persist(fr *faultRun) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.persistLocked(fr)
}

func (r *faultRuntime) persistLocked(fr *faultRun) error {
	b, err := fault.Record{Fault: fr.f, Undo: fr.undo}.Encode()
	if err != nil {
		return err
	}
	path := filepath.Join(r.s.dir.faultDir(), fr.f.ID+".json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write fault record: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write fault record: %w", err)
	}
	return nil
}

// did records an undo step of a fault being injected, on disk first.
func (r *faultRuntime) did(fr *faultRun, st fault.Step) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	fr.undo = append(fr.undo, st)
	return r.persistLocked(fr)
}

// forget removes the fault's record.
func (r *faultRuntime) forget(fr *faultRun) {
	_ = os.Remove(filepath.Join(r.s.dir.faultDir(), fr.f.ID+".json"))
}

// runUndo undoes steps in reverse order of doing, each whatever the
// others did, then tells the stack what changed.
func (r *faultRuntime) runUndo(steps []fault.Step) error {
	var errs []error
	for _, st := range fault.UndoOrder(steps) {
		if err := undoStep(st); err != nil {
			errs = append(errs, err)
		}
		if st.Op == fault.OpContinue && st.Instance != "" {
			r.s.instanceResumed(st.Instance)
		}
	}
	return errors.Join(errs...)
}

func runStops(stops []func() error) error {
	var errs []error
	for _, f := range stops {
		errs = append(errs, f())
	}
	return errors.Join(errs...)
}

// undoStep undoes one step. It is the one undo for a live daemon and for
// a crashed one's records (reclaim), so it works from the record alone.
func undoStep(st fault.Step) error {
	switch st.Op {
	case fault.OpContinue:
		signalIn(st.NetNS, st.PIDs, syscall.SIGCONT)
	case fault.OpDeleteTable:
		return vpc.RemoveTable(st.NetNS, st.Table)
	case fault.OpKill:
		deadline := time.Now().Add(5 * time.Second)
		for signalIn(st.NetNS, st.PIDs, syscall.SIGKILL) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		return instance.RemoveCgroups(st.Cgroups)
	}
	return nil
}

// signalIn sends sig to those of pids that still live in the network
// namespace at nsPath (a pid reused by another process is left alone);
// it returns how many it signalled.
func signalIn(nsPath string, pids []int, sig syscall.Signal) int {
	var ns syscall.Stat_t
	if nsPath == "" || syscall.Stat(nsPath, &ns) != nil {
		return 0
	}
	n := 0
	for _, pid := range pids {
		var st syscall.Stat_t
		if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) != nil || st.Ino != ns.Ino || st.Dev != ns.Dev {
			continue
		}
		if zombie(pid) {
			continue
		}
		if syscall.Kill(pid, sig) == nil {
			n++
		}
	}
	return n
}

// zombie reports whether pid has exited but is not reaped yet.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

// checkTargets makes sure every target exists: instances in some group,
// subnets and groups in the plan, zones of the group.
func (r *faultRuntime) checkTargets(spec fault.Spec) error {
	s := r.s
	switch spec.Info().Target {
	case fault.TargetInstance:
		for _, id := range spec.Targets {
			if g, _ := s.instanceGroup(id); g == nil {
				return faultError(http.StatusNotFound, fmt.Errorf("fault %s: instance %s is not running in any auto scaling group: give instance ids from moat ps", spec.Kind, id))
			}
		}
	case fault.TargetSubnet:
		var names []string
		for _, sn := range s.plan.Subnets {
			names = append(names, sn.Name)
		}
		for _, t := range spec.Targets {
			if !slices.Contains(names, t) {
				return faultError(http.StatusNotFound, fmt.Errorf("fault %s: subnet %q does not exist: the stack's subnets are %s", spec.Kind, t, strings.Join(names, ", ")))
			}
		}
	case fault.TargetGroup:
		for _, t := range spec.Targets {
			if s.group(t) == nil {
				return faultError(http.StatusNotFound, fmt.Errorf("fault %s: %w", spec.Kind, s.noGroup(t)))
			}
		}
		var zones []string
		for _, z := range s.plan.Zones {
			zones = append(zones, z.Name)
			if z.AWSName != "" && z.AWSName != z.Name {
				zones = append(zones, z.AWSName)
			}
		}
		for _, z := range spec.Zones {
			if !slices.Contains(zones, z) {
				return faultError(http.StatusBadRequest, fmt.Errorf("fault %s: params.zones: zone %q is not one of the stack's: give %s", spec.Kind, z, strings.Join(zones, ", ")))
			}
		}
	}
	return nil
}

// inject does the fault on every target, recording an undo step for each
// thing done before going on.
func (r *faultRuntime) inject(ctx context.Context, fr *faultRun) error {
	s, spec := r.s, fr.spec
	switch spec.Kind {
	case fault.DisruptConnectivity:
		v := s.network()
		if v == nil {
			return faultError(http.StatusServiceUnavailable, errors.New("the VPC is not up"))
		}
		blocks, err := fault.Blocks(spec, v.Subnets())
		if err != nil {
			return faultError(http.StatusNotFound, err)
		}
		if len(blocks) == 0 {
			return nil // one zone: no other zone to cut off
		}
		// The record names the table before it exists: a crash between
		// the two leaves a record whose undo finds no table, never a
		// table without a record.
		if err := r.did(fr, fault.Step{Op: fault.OpDeleteTable, Target: strings.Join(spec.Targets, ","),
			NetNS: v.RouterPath(), Table: vpc.DisruptTable(fr.f.ID)}); err != nil {
			return err
		}
		_, err = v.Disrupt(fr.f.ID, blocks)
		return err
	case fault.InsufficientCapacity:
		for _, t := range spec.Targets {
			if err := r.did(fr, fault.Step{Op: fault.OpForget, Target: t}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, id := range spec.Targets {
		if err := r.injectInstance(ctx, fr, id); err != nil {
			return err
		}
	}
	return nil
}

// injectInstance does an instance fault on one instance.
func (r *faultRuntime) injectInstance(ctx context.Context, fr *faultRun, id string) error {
	s, spec := r.s, fr.spec
	g, rec := s.instanceGroup(id)
	if g == nil {
		return faultError(http.StatusNotFound, fmt.Errorf("instance %s is not running in any auto scaling group", id))
	}
	g.mu.Lock()
	state, proc, node := rec.state, rec.proc, rec.node
	rebooting := rec.rebooting
	g.mu.Unlock()
	if state != stateRunning || proc == nil || node == nil || rebooting {
		if rebooting {
			state = "rebooting"
		}
		return faultError(http.StatusConflict, fmt.Errorf("instance %s is %s: faults need a running instance", id, state))
	}
	switch spec.Kind {
	case fault.StopInstances:
		// The record names the processes after they are stopped: a crash
		// in between leaves them stopped with no record, but reclaim kills
		// every process of the stack's namespaces anyway.
		pids, err := proc.Freeze()
		if derr := r.did(fr, fault.Step{Op: fault.OpContinue, Target: id, Instance: id, NetNS: node.NSPath, PIDs: pids}); derr != nil {
			err = errors.Join(err, derr)
		}
		if err != nil {
			return err
		}
		g.instanceStopped(rec)
		return nil
	case fault.RebootInstances:
		return g.reboot(ctx, rec)
	case fault.NetworkLatency, fault.PacketLoss:
		if err := r.did(fr, fault.Step{Op: fault.OpDeleteTable, Target: id, Instance: id, NetNS: node.NSPath, Table: vpc.DisruptTable(fr.f.ID)}); err != nil {
			return err
		}
		_, stop, err := vpc.Degrade(node.NSPath, fr.f.ID, fault.NetemOf(spec))
		if err != nil {
			return err
		}
		r.mu.Lock()
		fr.stops = append(fr.stops, stop)
		r.mu.Unlock()
		return nil
	case fault.CPUStress, fault.MemoryStress:
		vcpus := proc.CPUs()
		if vcpus == 0 {
			if l, ok := instance.LimitsFor(g.launchTemplate().InstanceType); ok {
				vcpus = l.CPUs
			}
		}
		burn, err := fault.BurnOf(spec, vcpus, proc.MemoryLimit())
		if err != nil {
			return faultError(http.StatusConflict, err)
		}
		b, err := proc.StartBurners(instance.BurnSpec{Name: fr.f.ID, Workers: burn.Workers, CPUs: burn.CPUs, MemoryBytes: burn.MemoryBytes})
		if err != nil {
			return err
		}
		return r.did(fr, fault.Step{Op: fault.OpKill, Target: id, Instance: id, NetNS: node.NSPath, PIDs: b.PIDs, Cgroups: b.Cgroups})
	case fault.KillProcess:
		_, err := proc.Signal(spec.ProcessName, syscall.Signal(spec.Signal))
		if err != nil {
			return faultError(http.StatusConflict, err)
		}
		return nil
	}
	return fmt.Errorf("fault %s: not an instance fault", spec.Kind)
}

// capacityFailure is the EC2 error of a launch of group in zone refused
// by an insufficient-capacity fault, or "".
func (r *faultRuntime) capacityFailure(group, zone, instanceType string) string {
	r.mu.Lock()
	var hit bool
	for _, fr := range r.faults {
		if fr.f.State == api.FaultActive && fr.spec.Kind == fault.InsufficientCapacity && slices.Contains(fr.spec.Targets, group) &&
			fault.CapacityFails(fr.spec, zone, r.s.awsZone(zone), rand.Float64()) {
			hit = true
			break
		}
	}
	r.mu.Unlock()
	if !hit {
		return ""
	}
	var others []string
	if g := r.s.group(group); g != nil {
		g.mu.Lock()
		for _, z := range g.cfg.Zones {
			if z != zone && !slices.Contains(others, r.s.awsZone(z)) {
				others = append(others, r.s.awsZone(z))
			}
		}
		g.mu.Unlock()
	}
	sort.Strings(others)
	return fault.InsufficientCapacityMessage(instanceType, r.s.awsZone(zone), others) + " Launching EC2 instance failed."
}

// instanceGroup finds a live instance: its group and record.
func (s *stack) instanceGroup(id string) (*groupRuntime, *instanceRec) {
	for _, g := range s.groupMap() {
		g.mu.Lock()
		rec := g.recs[id]
		g.mu.Unlock()
		if rec != nil {
			return g, rec
		}
	}
	return nil, nil
}

// instanceStopped marks a frozen instance stopped (moat ps) and tells
// the controller (EC2 health).
func (g *groupRuntime) instanceStopped(rec *instanceRec) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if rec.state == stateRunning {
		rec.state = stateStopped
		g.ctrl.InstanceStopped(rec.id, true, time.Now())
		g.targetsStopped(rec, true)
	}
}

// targetsStopped takes a stopped instance's targets out of their target
// groups' routing (ALB: unused, Target.InvalidState) or, started again,
// back to health checking. Called with g.mu held.
func (g *groupRuntime) targetsStopped(rec *instanceRec, stopped bool) {
	for _, tg := range g.tgs {
		if e := g.s.engineFor(tg.Name); e != nil {
			_ = e.SetStopped(tg.Name, g.targetAddr(rec, tg), stopped) // not registered (yet): nothing routes to it
		}
	}
}

// instanceResumed marks a thawed instance running again.
func (s *stack) instanceResumed(id string) {
	g, rec := s.instanceGroup(id)
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if rec.state == stateStopped {
		rec.state = stateRunning
		rec.lastCPUAt = time.Time{}
		g.ctrl.InstanceStopped(rec.id, false, time.Now())
		g.targetsStopped(rec, false)
	}
}

// rebootGrace is how long a reboot waits for the processes to end on
// SIGTERM.
const rebootGrace = 5 * time.Second

// reboot restarts an instance's processes (reboot-instances). Its target
// stays registered: the load balancer's health checks see the reboot, as
// on EC2. A termination asked for meanwhile waits until it is done.
func (g *groupRuntime) reboot(ctx context.Context, rec *instanceRec) error {
	g.mu.Lock()
	if rec.state != stateRunning || rec.rebooting || rec.proc == nil {
		st := rec.state
		g.mu.Unlock()
		return faultError(http.StatusConflict, fmt.Errorf("instance %s is %s: reboot needs a running instance", rec.id, st))
	}
	rec.rebooting = true
	proc := rec.proc
	g.ops.Add(1)
	g.mu.Unlock()
	defer g.ops.Done()
	g.s.events.Add(events.Event{Component: "fis", Type: "instance.reboot", Message: fmt.Sprintf("Rebooting instance %s", rec.id),
		Fields: map[string]string{"group": g.name, "instance": rec.id}})
	next, err := proc.Reboot(ctx, rebootGrace)
	g.mu.Lock()
	defer g.mu.Unlock()
	rec.rebooting = false
	if err == nil {
		rec.proc = next
		rec.lastCPUAt = time.Time{}
	}
	if rec.terminateAfterLaunch {
		rec.state = stateShuttingDown
		g.ops.Add(1)
		go func() {
			defer g.ops.Done()
			g.terminate(rec)
		}()
	}
	return err
}
