package daemon

// Starting the auto scaling groups: until each has its desired
// capacity in service and its targets are healthy.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/moat-dev/moat/internal/instance"
	"github.com/moat-dev/moat/internal/targetgroup"
)

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
