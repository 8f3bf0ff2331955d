package daemon

import (
	"testing"

	"github.com/moat-dev/moat/internal/plan"
)

// TestStartFailedCountsLaunches: a group gives up starting once as many
// launches failed as its desired capacity (at least one), and a launch's
// end is signalled without ever blocking the group.
func TestStartFailedCountsLaunches(t *testing.T) {
	for _, c := range []struct {
		desired, failures int
		fail              bool
	}{{2, 0, false}, {2, 1, false}, {2, 2, true}, {2, 3, true}, {0, 0, false}, {0, 1, true}} {
		ended := make(chan struct{}, 1)
		g := &groupRuntime{cfg: plan.AutoScalingGroup{DesiredCapacity: c.desired}, launchEnded: ended}
		for i := range c.failures {
			g.launchFailures++
			g.lastFailure = "launch " + string(rune('1'+i)) + " failed"
			g.signalLaunchEnded()
		}
		err := g.startFailed()
		if (err != nil) != c.fail {
			t.Errorf("desired %d, %d failed launches: startFailed() = %v, want failure %v", c.desired, c.failures, err, c.fail)
		}
		if err != nil && err.Error() != g.lastFailure {
			t.Errorf("startFailed() = %q, want the last failure %q", err, g.lastFailure)
		}
		if got := len(ended); got != min(c.failures, 1) {
			t.Errorf("%d launches ended: %d signal(s) pending, want %d", c.failures, got, min(c.failures, 1))
		}
	}
}
