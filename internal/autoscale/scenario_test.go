package autoscale

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestScenarioRequestsScaleOutAndIn drives a group the way the daemon
// does, on synctest's fake clock: a metric datapoint every period, load
// rises, the group scales out, load stops, it scales back in after the
// scale-in datapoints, warm-up and cooldown.
func TestScenarioRequestsScaleOutAndIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		period := 10 * time.Second
		c := newCtl(t, Group{Name: "web", Min: 2, Max: 6, Desired: 2, MetricPeriod: period,
			DefaultInstanceWarmup: 20 * time.Second, DefaultCooldown: 60 * time.Second, GracePeriod: 30 * time.Second,
			TargetTracking: []TargetTracking{{Name: "req", Metric: MetricRequests, TargetValue: 60}}})
		apply(c, c.Step(time.Now(), nil), time.Now())
		// total requests per period reaching the group
		load := func(total float64) *Metrics {
			m := &Metrics{Requests: map[string]float64{}}
			var ready []string
			for _, in := range c.Instances() {
				if in.Lifecycle == InService {
					ready = append(ready, in.ID)
				}
			}
			for _, id := range ready {
				m.Requests[id] = total / float64(len(ready))
			}
			return m
		}
		maxSeen := 0
		for i := 0; i < 12; i++ { // 2 minutes at 40 requests/s: 4 targets' worth
			time.Sleep(period)
			apply(c, c.Step(time.Now(), load(40*10)), time.Now())
			maxSeen = max(maxSeen, c.Desired())
		}
		if maxSeen < 4 {
			t.Fatalf("no scale out under load: desired %d", maxSeen)
		}
		for i := 0; i < 60 && c.Desired() > 2; i++ { // up to 10 minutes idle
			time.Sleep(period)
			apply(c, c.Step(time.Now(), load(0)), time.Now())
		}
		if c.Desired() != 2 || len(c.Instances()) != 2 {
			t.Fatalf("no scale in: desired %d, %d instances", c.Desired(), len(c.Instances()))
		}
		var out, in int
		for _, a := range c.History() {
			if strings.Contains(a.Cause, "AlarmHigh-req in state ALARM triggered policy req") {
				out++
			}
			if strings.Contains(a.Cause, "AlarmLow-req in state ALARM triggered policy req") {
				in++
			}
			if a.Status != "Successful" {
				t.Errorf("activity %q status %s", a.Description, a.Status)
			}
		}
		if out == 0 || in == 0 {
			t.Fatalf("history lacks policy causes: %+v", c.History())
		}
	})
}

func TestLaunchBackoff(t *testing.T) {
	// One zone: a failure there leaves no other zone to try at once.
	c := newCtl(t, Group{Min: 1, Max: 1, Desired: 1, Subnets: twoZones()[:1]})
	now := t0
	acts := c.Step(now, nil)
	c.LaunchFailed(acts[0].InstanceID, errors.New("no such file"), now)
	for _, tc := range []struct {
		after time.Duration
		want  int
	}{{5 * time.Second, 0}, {10 * time.Second, 1}} {
		got := c.Step(now.Add(tc.after), nil)
		if len(got) != tc.want {
			t.Fatalf("after %v: %d actions", tc.after, len(got))
		}
		if len(got) == 1 {
			c.LaunchFailed(got[0].InstanceID, errors.New("again"), now.Add(tc.after))
		}
	}
	if got := c.Step(now.Add(10*time.Second+19*time.Second), nil); len(got) != 0 {
		t.Fatal("second back-off not doubled")
	}
	got := c.Step(now.Add(30*time.Second), nil)
	if len(got) != 1 {
		t.Fatal("no launch after back-off")
	}
	c.InstanceRunning(got[0].InstanceID, now.Add(30*time.Second))
	h := c.History()
	if !strings.Contains(h[1].Description, "Status Reason: no such file") || h[1].StatusMessage != "no such file" || h[0].Status != "Failed" {
		t.Fatalf("history %+v", h)
	}
}

func BenchmarkStep(b *testing.B) {
	c, err := New(Group{Name: "web", Min: 1, Max: 50, Desired: 40, Subnets: twoZones(), MetricPeriod: 10 * time.Second,
		TargetTracking: []TargetTracking{{Name: "cpu", Metric: MetricCPU, TargetValue: 50}}})
	if err != nil {
		b.Fatal(err)
	}
	apply(c, c.Step(t0, nil), t0)
	m := &Metrics{CPU: map[string]float64{}}
	for _, in := range c.Instances() {
		m.CPU[in.ID] = 50
	}
	now := t0.Add(time.Hour)
	for b.Loop() {
		now = now.Add(10 * time.Second)
		c.Step(now, m)
	}
}
