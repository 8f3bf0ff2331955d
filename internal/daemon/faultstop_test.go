package daemon

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/fault"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/testutil"
)

// TestStopAllWaitsForAnInjection: a fault whose injection is in flight
// when the stack stops is undone with the others, not left active with
// its record on disk.
func TestStopAllWaitsForAnInjection(t *testing.T) {
	ev, err := events.Open(filepath.Join(t.TempDir(), "events.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	s := newStack(&plan.Plan{Stack: "stopall"}, Dir(t.TempDir()), ev, slog.New(slog.DiscardHandler))
	r := s.faults
	r.injecting.Lock() // an injection in flight
	stopped := make(chan error, 1)
	go func() { stopped <- r.stopAll(context.Background()) }()
	testutil.Eventually(t, 5*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if !r.closed {
			return errors.New("stopAll has not closed the runtime")
		}
		return nil
	})
	// The injection ends: its fault is active.
	r.add(&faultRun{spec: fault.Spec{Kind: fault.InsufficientCapacity, Targets: []string{"web"}},
		f: api.Fault{ID: "f-inflight", Kind: string(fault.InsufficientCapacity), Targets: []string{"web"}, State: api.FaultActive}})
	r.injecting.Unlock()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stopAll did not return")
	}
	for _, f := range r.list() {
		if f.State != api.FaultEnded {
			t.Errorf("fault %s is %s after stopAll, want %s", f.ID, f.State, api.FaultEnded)
		}
	}
}
