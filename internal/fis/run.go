package fis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// FaultRequest is a fault the executor asks the stack for (the daemon's
// POST /v1/faults, CONTRACTS.md part A).
type FaultRequest struct {
	Kind       string
	Targets    []string
	Params     map[string]string
	Duration   time.Duration
	Experiment string
}

// Control is what an experiment needs of the running stack. The faults it
// starts end on their own when their duration passes, so a killed
// executor leaves nothing behind for longer than the experiment.
type Control interface {
	// StartFault injects a fault and returns its id.
	StartFault(ctx context.Context, r FaultRequest) (string, error)
	// StopFault undoes a fault now; undoing an ended fault is no error.
	StopFault(ctx context.Context, id string) error
	// Terminate terminates an instance (its group replaces it).
	Terminate(ctx context.Context, id string) error
}

// Observer reads an alarm's metric now.
type Observer interface {
	Observe(ctx context.Context, a Alarm) (Observation, error)
}

// Experiment states, as FIS names them.
const (
	StateCompleted = "completed"
	StateStopped   = "stopped"
	StateFailed    = "failed"
	// StateCancelled: interrupted (Ctrl-C); FIS calls a user's stop "stopped" too.
	StateCancelled = "cancelled"
)

// Action states.
const (
	ActionCompleted = "completed"
	ActionSkipped   = "skipped"
	ActionFailed    = "failed"
	ActionCancelled = "cancelled"
	ActionPending   = "pending"
	ActionRunning   = "running"
)

// Result is what happened in an experiment.
type Result struct {
	ID      string         `json:"id"`
	State   string         `json:"state"`
	Reason  string         `json:"reason,omitempty"`
	Start   time.Time      `json:"start"`
	End     time.Time      `json:"end"`
	Actions []ActionResult `json:"actions"`
	// RolledBack are the faults undone at the end, by id.
	RolledBack []string `json:"rolledBack,omitempty"`
}

// ActionResult is one action's course.
type ActionResult struct {
	Step
	State    string    `json:"state"`
	Started  time.Time `json:"started,omitzero"`
	Ended    time.Time `json:"ended,omitzero"`
	FaultIDs []string  `json:"faultIds,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// RunOptions are the executor's settings.
type RunOptions struct {
	Control Control
	// Alarms are the stop conditions; Observer reads them (nil when none).
	Alarms   []Alarm
	Observer Observer
	// Tick is how often alarms are read and actions checked (default 1 s).
	Tick time.Duration
	// Log gets one line per thing done (for stderr); nil for none.
	Log func(format string, args ...any)
	Now func() time.Time
}

// NewID is an experiment id in FIS's form (EXP and 17 characters).
func NewID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return "EXP" + strings.ToUpper(hex.EncodeToString(b[:]))[:17]
}

// Run runs the steps: each starts when every action it starts after has
// completed, lasts its duration, and its fault is undone when the
// experiment ends, whatever ends it: completion, a stop condition, an
// action's failure or ctx (Ctrl-C). Faults it starts carry durations, so
// if the process dies the daemon undoes them when they run out.
func Run(ctx context.Context, id string, steps []Step, o RunOptions) Result {
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			o.Log(format, args...)
		}
	}
	res := Result{ID: id, Start: o.Now()}
	acts := make([]ActionResult, len(steps))
	index := map[string]int{}
	for i, s := range steps {
		acts[i] = ActionResult{Step: s, State: ActionPending}
		index[s.Name] = i
	}
	length := Length(steps)
	var started []string // fault ids, in start order
	ends := map[int]time.Time{}
	alarms := make([]*AlarmState, len(o.Alarms))
	for i, a := range o.Alarms {
		alarms[i] = &AlarmState{Alarm: a}
	}
	finish := func(state, reason string) Result {
		res.State, res.Reason = state, reason
		// Undo every fault started, newest first, with a context of
		// its own: ctx may be what ended the experiment.
		undo, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for i := len(started) - 1; i >= 0; i-- {
			if err := o.Control.StopFault(undo, started[i]); err != nil {
				logf("undo fault %s: %v", started[i], err)
				if res.Reason == "" {
					res.Reason = fmt.Sprintf("undo fault %s: %v", started[i], err)
				}
				continue
			}
			res.RolledBack = append(res.RolledBack, started[i])
		}
		now := o.Now()
		for i := range acts {
			switch acts[i].State {
			case ActionPending:
				acts[i].State = ActionCancelled
			case ActionRunning:
				acts[i].State, acts[i].Ended = ActionCancelled, now
				if state == StateCompleted {
					acts[i].State = ActionCompleted
				}
			}
		}
		res.End, res.Actions = now, acts
		return res
	}
	ready := func(i int) bool {
		for _, d := range acts[i].StartAfter {
			if j, ok := index[d]; ok && acts[j].State != ActionCompleted && acts[j].State != ActionSkipped {
				return false
			}
		}
		return true
	}
	tick := time.NewTicker(o.Tick)
	defer tick.Stop()
	for {
		now := o.Now()
		// Complete what has run its time, then start what is ready, until
		// nothing changes (a chain of instant actions runs in one pass).
		for changed := true; changed; {
			changed = false
			for i := range acts {
				a := &acts[i]
				if a.State == ActionRunning && !now.Before(ends[i]) {
					a.State, a.Ended, changed = ActionCompleted, now, true
					logf("action %s completed", a.Name)
				}
				if a.State != ActionPending || !ready(i) {
					continue
				}
				changed = true
				a.Started = now
				if a.Skip != "" {
					a.State, a.Ended = ActionSkipped, now
					logf("action %s skipped: %s", a.Name, a.Skip)
					continue
				}
				if err := start(ctx, id, a, o.Control, length-a.Start, &started); err != nil {
					a.State, a.Ended, a.Error = ActionFailed, now, err.Error()
					logf("action %s failed: %v", a.Name, err)
					return finish(StateFailed, fmt.Sprintf("action %s failed: %v", a.Name, err))
				}
				a.State, ends[i] = ActionRunning, now.Add(a.Duration)
				logf("action %s (%s) started on %s%s", a.Name, a.ActionID, targetsText(a.Targets), durationText(a.Duration))
			}
		}
		done := true
		for _, a := range acts {
			if a.State == ActionPending || a.State == ActionRunning {
				done = false
			}
		}
		if done {
			return finish(StateCompleted, "")
		}
		for _, s := range alarms {
			obs, err := o.Observer.Observe(ctx, s.Alarm)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				return finish(StateFailed, fmt.Sprintf("read stop condition %q: %v", s.Alarm.Expr, err))
			}
			if obs.Time.IsZero() {
				obs.Time = now
			}
			if breached, v := s.Observe(obs); breached {
				logf("stop condition %q is in alarm (value %g): stopping", s.Alarm.Expr, v)
				return finish(StateStopped, fmt.Sprintf("stop condition %q in alarm (value %g)", s.Alarm.Expr, v))
			}
		}
		select {
		case <-ctx.Done():
			return finish(StateCancelled, "interrupted: "+context.Cause(ctx).Error())
		case <-tick.C:
		}
	}
}

// start starts one action: a fault, a termination or a wait.
func start(ctx context.Context, id string, a *ActionResult, c Control, remaining time.Duration, started *[]string) error {
	switch a.Kind {
	case KindWait:
		return nil
	case KindTerminate:
		var errs []error
		for _, t := range a.Targets {
			if err := c.Terminate(ctx, t); err != nil {
				errs = append(errs, fmt.Errorf("terminate %s: %w", t, err))
			}
		}
		return errors.Join(errs...)
	}
	d := a.Duration
	if a.UntilEnd {
		// Until the experiment ends: moat undoes it then; the duration
		// only bounds it if moat chaos dies first.
		d = remaining + 10*time.Second
	}
	fid, err := c.StartFault(ctx, FaultRequest{Kind: a.Kind, Targets: a.Targets, Params: a.Params, Duration: d, Experiment: id})
	if err != nil {
		return err
	}
	a.FaultIDs = append(a.FaultIDs, fid)
	*started = append(*started, fid)
	return nil
}

func targetsText(ts []string) string {
	if len(ts) == 0 {
		return "nothing"
	}
	return strings.Join(ts, ", ")
}

func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return " for " + d.String()
}
