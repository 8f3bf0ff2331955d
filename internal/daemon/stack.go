package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/bastion"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/keypair"
	"github.com/moat-dev/moat/internal/metadata"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/telemetry"
	"github.com/moat-dev/moat/internal/vpc"
)

// stack is the running stack's runtime: it wires the VPC, instances, auto
// scaling groups, load balancers and bastion together. stop is safe after
// a partial start and undoes, in reverse, whatever start made.
type stack struct {
	plan   *plan.Plan
	dir    Dir
	events *events.Log
	log    *slog.Logger
	keys   *keypair.Store

	metadata *metadata.Handler
	// faults are the injected faults (package fault).
	faults *faultRuntime

	// partsMu guards the parts that the control API reads while start
	// builds them. start publishes each one complete, under partsMu, and
	// nothing changes them afterwards; read them with network, group,
	// groupMap and engineFor.
	partsMu   sync.RWMutex
	net       *vpc.VPC
	balancers map[string]*lbRuntime // by load balancer name
	tgLB      map[string]string     // target group -> load balancer name
	groups    map[string]*groupRuntime
	sampler   *telemetry.Sampler
	// targetNames are the instance ids of the registered targets, by
	// "group addr" (an address used again is registered again under the
	// new instance's id); see targetName.
	namesMu     sync.Mutex
	targetNames map[string]string
	bastionSrv  *bastion.Server
	// sshLog receives the instances' SSH audit records (JSON lines).
	sshLog *slog.Logger
	audit  io.Writer

	// applyMu serialises applies; livePlan is the last plan applied.
	applyMu  sync.Mutex
	planMu   sync.Mutex
	livePlan *plan.Plan

	mu sync.Mutex
	// hostKeys are known_hosts lines of the instances' SSH endpoints.
	hostKeys map[string]string
	// bastionHostKey is the bastion's known_hosts line.
	bastionHostKey string
	// undo holds the clean-up steps of what start made, in order made.
	undo []func(context.Context) error
	// loops are the background control loops; stop waits for them.
	cancelLoops context.CancelFunc
	loopCtx     context.Context
	loops       sync.WaitGroup
}

func newStack(p *plan.Plan, dir Dir, ev *events.Log, log *slog.Logger) *stack {
	s := &stack{plan: p, dir: dir, events: ev, log: log,
		hostKeys: map[string]string{}, sshLog: slog.New(slog.DiscardHandler)}
	s.faults = newFaultRuntime(s)
	return s
}

// network is the VPC, or nil before start has built it.
func (s *stack) network() *vpc.VPC {
	s.partsMu.RLock()
	defer s.partsMu.RUnlock()
	return s.net
}

// groupMap is the auto scaling groups' runtimes by name (empty before
// start has made them). The map is never changed: do not write to it.
func (s *stack) groupMap() map[string]*groupRuntime {
	s.partsMu.RLock()
	defer s.partsMu.RUnlock()
	return s.groups
}

// group is the runtime of the auto scaling group name, or nil.
func (s *stack) group(name string) *groupRuntime { return s.groupMap()[name] }

// onStop registers a clean-up step.
func (s *stack) onStop(f func(context.Context) error) {
	s.mu.Lock()
	s.undo = append(s.undo, f)
	s.mu.Unlock()
}

func (s *stack) event(component, typ, format string, args ...any) {
	s.events.Add(events.Event{Component: component, Type: typ, Message: fmt.Sprintf(format, args...)})
}

// start builds the stack: key pairs, the VPC, load balancers, the
// bastion, then the auto scaling groups' instances.
func (s *stack) start(ctx context.Context) error {
	loopCtx, cancel := context.WithCancel(context.Background())
	s.cancelLoops, s.loopCtx = cancel, loopCtx
	s.startTelemetry()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"isolation", s.checkIsolation},
		{"key pairs", s.startKeyPairs},
		{"network", s.startNetwork},
		{"audit log", s.startAudit},
		{"load balancers", s.startBalancers},
		{"bastion", s.startBastion},
		{"auto scaling groups", func(ctx context.Context) error { return s.startGroups(ctx, loopCtx) }},
	}
	for _, st := range steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted before %s: %w", st.name, err)
		}
		t0 := time.Now()
		if err := st.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		s.log.Info("started", "part", st.name, "took", time.Since(t0).Round(time.Millisecond))
	}
	// Last, so that teardown undoes injected faults before anything else
	// (faults can only be injected once the stack runs).
	s.onStop(s.faults.stopAll)
	return nil
}

func (s *stack) stop(ctx context.Context) error {
	if s.cancelLoops != nil {
		s.cancelLoops()
	}
	s.loops.Wait()
	s.mu.Lock()
	undo := s.undo
	s.undo = nil
	s.mu.Unlock()
	var errs []error
	for i := len(undo) - 1; i >= 0; i-- {
		if err := undo[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// startKeyPairs makes sure every key pair of the plan exists in the key
// store: imported from its public key file, or generated (the private key
// is written once, mode 0600, next to the store; moat ssh uses it).
func (s *stack) startKeyPairs(ctx context.Context) error {
	store, err := keypair.Open(keypair.DefaultDir())
	if err != nil {
		return err
	}
	s.keys = store
	for _, kp := range s.plan.KeyPairs {
		if _, err := store.Get(kp.Name); err == nil {
			continue
		}
		if kp.PublicKeyFile != "" {
			b, err := os.ReadFile(kp.PublicKeyFile)
			if err != nil {
				return fmt.Errorf("key pair %s: %w", kp.Name, err)
			}
			if _, err := store.Import(kp.Name, b); err != nil {
				return fmt.Errorf("key pair %s: %w", kp.Name, err)
			}
			s.event("keypair", "keypair.import", "Imported key pair %s from %s", kp.Name, kp.PublicKeyFile)
			continue
		}
		t, err := keypair.ParseType(kp.Type)
		if err != nil {
			return err
		}
		priv := keypair.DefaultPrivateKeyPath(kp.Name)
		if _, err := store.Create(kp.Name, t, priv); err != nil {
			return fmt.Errorf("key pair %s: %w", kp.Name, err)
		}
		s.event("keypair", "keypair.create", "Created key pair %s (%s); private key %s", kp.Name, kp.Type, priv)
	}
	return nil
}

// hostKey loads (or creates once) a persistent SSH host key.
func (s *stack) hostKeyPath(name string) string {
	return filepath.Join(string(s.dir), "hostkeys", name)
}

func (s *stack) groupStatus() []api.GroupStatus {
	var out []api.GroupStatus
	for _, g := range s.plan.AutoScalingGroups {
		if rt := s.group(g.Name); rt != nil {
			out = append(out, rt.status())
			continue
		}
		out = append(out, api.GroupStatus{Name: g.Name, Min: g.MinSize, Max: g.MaxSize, Desired: g.DesiredCapacity})
	}
	return out
}

// startAudit opens the SSH audit log (JSON lines) that the bastion and
// every instance's SSH endpoint write to.
func (s *stack) startAudit(ctx context.Context) error {
	f, err := os.OpenFile(s.dir.Path("ssh-audit.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.audit = &lockedWriter{w: f}
	s.sshLog = slog.New(slog.NewJSONHandler(s.audit, nil))
	s.onStop(func(context.Context) error { return f.Close() })
	return nil
}

// lockedWriter serialises writes from several servers to one file.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
