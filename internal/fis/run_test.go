package fis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeControl records what the executor asks, with the (bubble's) time.
type fakeControl struct {
	mu      sync.Mutex
	t0      time.Time
	calls   []string
	active  map[string]bool
	n       int
	failOn  string // kind whose start fails
	stopErr error
}

var _ Control = (*fakeControl)(nil)

func (f *fakeControl) log(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf("%s ", time.Since(f.t0).Round(time.Second))+fmt.Sprintf(format, args...))
}

func (f *fakeControl) StartFault(_ context.Context, r FaultRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Kind == f.failOn {
		return "", errors.New("boom")
	}
	f.n++
	id := fmt.Sprintf("f%d", f.n)
	f.active[id] = true
	f.log("start %s %s %s %v", id, r.Kind, strings.Join(r.Targets, ","), r.Duration)
	return id, nil
}

func (f *fakeControl) StopFault(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.active, id)
	f.log("stop %s", id)
	return f.stopErr
}

func (f *fakeControl) Terminate(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("terminate %s", id)
	return nil
}

// gauge is an Observer whose value follows a script by second.
type gauge func(sec int) float64

func (g gauge) Observe(_ context.Context, a Alarm) (Observation, error) {
	return Observation{Time: time.Now(), Value: g(int(time.Now().Unix() % 100000))}, nil
}

func steps(t *testing.T, scale float64) []Step {
	f := mustParse(t, good)
	res, err := Resolve(f, testInventory(), rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Schedule(f, res, scale)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRunCompletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeControl{t0: time.Now(), active: map[string]bool{}}
		res := Run(t.Context(), "EXP1", steps(t, 60), RunOptions{Control: fc})
		if res.State != StateCompleted {
			t.Fatalf("state %s: %s", res.State, res.Reason)
		}
		want := []string{
			"0s start f1 stop-instances i-a1,i-a3 30s",
			"0s start f2 insufficient-capacity web 30s",
			"0s start f3 disrupt-connectivity private-a,public-a 2s",
			"3s start f4 network-latency i-b1 1s", // wait ran 2s-3s
			"4s terminate i-b1",
			"30s stop f4", "30s stop f3", "30s stop f2", "30s stop f1",
		}
		if strings.Join(fc.calls, "\n") != strings.Join(want, "\n") {
			t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(fc.calls, "\n"), strings.Join(want, "\n"))
		}
		if len(fc.active) != 0 || len(res.RolledBack) != 4 {
			t.Errorf("left active %v, rolled back %v", fc.active, res.RolledBack)
		}
		for _, a := range res.Actions {
			if a.State != ActionCompleted {
				t.Errorf("action %s: %s", a.Name, a.State)
			}
		}
	})
}

func TestRunStopCondition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		fc := &fakeControl{t0: t0, active: map[string]bool{}}
		a, _ := ParseAlarm("healthy-hosts(web) < 2 for 2s")
		// Healthy hosts drop to 1 at second 5; the alarm holds 2 s.
		obs := gauge(func(int) float64 {
			if time.Since(t0) >= 5*time.Second {
				return 1
			}
			return 2
		})
		res := Run(t.Context(), "EXP1", steps(t, 60), RunOptions{Control: fc, Alarms: []Alarm{a}, Observer: obs})
		if res.State != StateStopped || !strings.Contains(res.Reason, "healthy-hosts(web) < 2") {
			t.Fatalf("state %s: %s", res.State, res.Reason)
		}
		if got := res.End.Sub(res.Start); got != 7*time.Second {
			t.Errorf("stopped after %v, want 7s", got)
		}
		if len(fc.active) != 0 {
			t.Errorf("faults left active: %v", fc.active)
		}
		states := map[string]string{}
		for _, a := range res.Actions {
			states[a.Name] = a.State
		}
		if states["Stop-Instances"] != ActionCancelled || states["Kill"] != ActionCompleted {
			t.Errorf("action states %v", states)
		}
	})
}

func TestRunInterruptAndFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeControl{t0: time.Now(), active: map[string]bool{}}
		ctx, cancel := context.WithTimeout(t.Context(), 3500*time.Millisecond)
		defer cancel()
		res := Run(ctx, "EXP1", steps(t, 60), RunOptions{Control: fc})
		if res.State != StateCancelled || len(fc.active) != 0 || len(res.RolledBack) != 4 {
			t.Errorf("interrupted: state %s, active %v, rolled back %v", res.State, fc.active, res.RolledBack)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeControl{t0: time.Now(), active: map[string]bool{}, failOn: KindNetworkLatency}
		res := Run(t.Context(), "EXP1", steps(t, 60), RunOptions{Control: fc})
		if res.State != StateFailed || !strings.Contains(res.Reason, "action Latency failed: boom") || len(fc.active) != 0 {
			t.Errorf("failed: state %s (%s), active %v", res.State, res.Reason, fc.active)
		}
		if d := res.End.Sub(res.Start); d != 3*time.Second {
			t.Errorf("failed after %v, want 3s", d)
		}
	})
}
