package autoscale

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 6, 10, 0, 0, time.UTC)

func twoZones() []Subnet {
	return []Subnet{{ID: "subnet-a", Zone: "us-east-1a"}, {ID: "subnet-b", Zone: "us-east-1b"}}
}

// counterRand yields distinct ids deterministically.
type counterRand struct{ n byte }

func (r *counterRand) Read(p []byte) (int, error) {
	r.n++
	for i := range p {
		p[i] = r.n
	}
	return len(p), nil
}

func newCtl(t *testing.T, g Group) *Controller {
	t.Helper()
	if g.Subnets == nil {
		g.Subnets = twoZones()
	}
	if g.LaunchTemplateVersion == "" {
		g.LaunchTemplateVersion = "1"
	}
	c, err := New(g, WithRand(&counterRand{}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// apply plays the integrator: launches run at once, terminations finish.
func apply(c *Controller, acts []Action, now time.Time) {
	for _, a := range acts {
		switch a.Kind {
		case Launch:
			c.InstanceRunning(a.InstanceID, now)
		case Terminate:
			c.InstanceTerminated(a.InstanceID, now)
		}
	}
}

func kinds(acts []Action) string {
	var b strings.Builder
	for _, a := range acts {
		if a.Kind == Launch {
			b.WriteString("L" + a.Zone[len(a.Zone)-1:])
		} else {
			b.WriteString("T")
		}
	}
	return b.String()
}

func TestInstanceID(t *testing.T) {
	id, err := NewInstanceID(bytes.NewReader(bytes.Repeat([]byte{0xab}, 9)))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^i-[0-9a-f]{17}$`).MatchString(id) {
		t.Fatalf("id %q", id)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    Group
		want string
	}{
		{"max below min", Group{Min: 2, Max: 1, Desired: 2, Subnets: twoZones()}, "need 0 <= min <= max"},
		{"desired above max", Group{Min: 1, Max: 2, Desired: 3, Subnets: twoZones()}, "desired capacity 3"},
		{"no subnets", Group{Min: 1, Max: 2, Desired: 1}, "no subnets"},
		{"bad health type", Group{Max: 1, Subnets: twoZones(), HealthCheckType: "X"}, "health check type"},
		{"bad target", Group{Max: 1, Subnets: twoZones(), TargetTracking: []TargetTracking{{Name: "p", Metric: MetricCPU}}}, "target value"},
		{"bad metric", Group{Max: 1, Subnets: twoZones(), TargetTracking: []TargetTracking{{Name: "p", Metric: "X", TargetValue: 1}}}, "metric"},
		{"no steps", Group{Max: 1, Subnets: twoZones(), StepScaling: []StepScaling{{Name: "s"}}}, "no steps"},
		{"ok", Group{Min: 1, Max: 2, Desired: 1, Subnets: twoZones()}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.g.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLaunchBalancesZones(t *testing.T) {
	for _, tc := range []struct {
		desired int
		want    string
	}{
		{1, "La"}, {2, "LaLb"}, {3, "LaLbLa"}, {4, "LaLbLaLb"},
	} {
		c := newCtl(t, Group{Min: 0, Max: 5, Desired: tc.desired})
		acts := c.Step(t0, nil)
		if got := kinds(acts); got != tc.want {
			t.Errorf("desired %d: got %s, want %s", tc.desired, got, tc.want)
		}
		if len(acts) > 0 && !strings.Contains(acts[0].Activity.Cause, "At 2026-11-28T06:10:00Z an instance was started in response to a difference between desired and actual capacity, increasing the capacity from 0 to 1.") {
			t.Errorf("cause %q", acts[0].Activity.Cause)
		}
		if len(acts) > 0 && acts[0].Activity.Description != "Launching a new EC2 instance: "+acts[0].InstanceID {
			t.Errorf("description %q", acts[0].Activity.Description)
		}
		// Nothing more to do once launched.
		if again := c.Step(t0, nil); len(again) != 0 {
			t.Errorf("second step: %v", kinds(again))
		}
	}
}

func TestTerminationPolicy(t *testing.T) {
	type inst struct {
		id, zone, ver string
		age           time.Duration
		protected     bool
	}
	for _, tc := range []struct {
		name    string
		insts   []inst
		desired int
		want    []string // terminated, in order
	}{
		{"zone with most first", []inst{{"i-a1", "a", "1", 3, false}, {"i-b1", "b", "1", 5, false}, {"i-a2", "a", "1", 1, false}}, 2, []string{"i-a1"}},
		{"old template first", []inst{{"i-a1", "a", "1", 5, false}, {"i-a2", "a", "0", 1, false}}, 1, []string{"i-a2"}},
		{"oldest instance", []inst{{"i-a1", "a", "1", 1, false}, {"i-a2", "a", "1", 9, false}}, 1, []string{"i-a2"}},
		{"skip protected", []inst{{"i-a1", "a", "1", 1, false}, {"i-a2", "a", "1", 9, true}}, 1, []string{"i-a1"}},
		{"all protected", []inst{{"i-a1", "a", "1", 1, true}, {"i-b1", "b", "1", 9, true}}, 1, nil},
		{"two in", []inst{{"i-a1", "a", "1", 1, false}, {"i-a2", "a", "1", 2, false}, {"i-b1", "b", "1", 3, false}, {"i-b2", "b", "1", 4, false}}, 2, []string{"i-b2", "i-a2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCtl(t, Group{Min: 0, Max: 5, Desired: tc.desired,
				Subnets: []Subnet{{ID: "sa", Zone: "a"}, {ID: "sb", Zone: "b"}}})
			for _, in := range tc.insts {
				c.Adopt(Instance{ID: in.id, Zone: in.zone, Subnet: "s" + in.zone, LaunchTemplateVersion: in.ver,
					LaunchTime: t0.Add(-in.age * time.Hour), InServiceTime: t0.Add(-in.age * time.Hour), Lifecycle: InService, Protected: in.protected})
			}
			var got []string
			for _, a := range c.Step(t0, nil) {
				if a.Kind != Terminate {
					t.Fatalf("unexpected %v", a.Kind)
				}
				got = append(got, a.InstanceID)
				if !strings.Contains(a.Activity.Cause, "in response to a difference between desired and actual capacity, shrinking the capacity") {
					t.Errorf("cause %q", a.Activity.Cause)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("terminated %v, want %v", got, tc.want)
			}
		})
	}
}

func TestHealthReplacement(t *testing.T) {
	grace := 60 * time.Second
	for _, tc := range []struct {
		name    string
		typ     HealthCheckType
		event   func(c *Controller, id string)
		at      time.Duration
		want    string
		because string
	}{
		{"exit within grace waits", HealthEC2, func(c *Controller, id string) { c.InstanceExited(id, "killed", t0) }, 30 * time.Second, "", ""},
		{"exit after grace replaced", HealthEC2, func(c *Controller, id string) { c.InstanceExited(id, "killed", t0) }, 61 * time.Second, "LaT", "EC2 instance status checks failure"},
		{"elb ignored under EC2", HealthEC2, func(c *Controller, id string) { c.TargetHealth(id, false, t0) }, 61 * time.Second, "", ""},
		{"elb unhealthy under ELB", HealthELB, func(c *Controller, id string) { c.TargetHealth(id, false, t0) }, 61 * time.Second, "LaT", "ELB system health check failure"},
		{"elb within grace", HealthELB, func(c *Controller, id string) { c.TargetHealth(id, false, t0) }, 59 * time.Second, "", ""},
		{"elb recovered", HealthELB, func(c *Controller, id string) { c.TargetHealth(id, false, t0); c.TargetHealth(id, true, t0) }, 61 * time.Second, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCtl(t, Group{Min: 1, Max: 2, Desired: 1, HealthCheckType: tc.typ, GracePeriod: grace})
			acts := c.Step(t0, nil)
			apply(c, acts, t0)
			id := acts[0].InstanceID
			tc.event(c, id)
			got := c.Step(t0.Add(tc.at), nil)
			if kinds(got) != tc.want {
				t.Fatalf("got %s, want %s", kinds(got), tc.want)
			}
			if tc.want != "" {
				last := got[len(got)-1]
				if last.InstanceID != id || !strings.Contains(last.Activity.Cause, tc.because) {
					t.Fatalf("terminate %s: %q", last.InstanceID, last.Activity.Cause)
				}
			}
		})
	}
}

func TestTerminateInstance(t *testing.T) {
	for _, tc := range []struct {
		name      string
		min       int
		decrement bool
		want      string
		wantErr   bool
		desired   int
	}{
		{"replace", 1, false, "LaT", false, 2},
		{"decrement", 1, true, "T", false, 1},
		{"decrement below min", 2, true, "", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCtl(t, Group{Min: tc.min, Max: 3, Desired: 2})
			acts := c.Step(t0, nil)
			apply(c, acts, t0)
			err := c.TerminateInstance(acts[0].InstanceID, tc.decrement, t0)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			got := c.Step(t0.Add(time.Second), nil)
			if kinds(got) != tc.want || c.Desired() != tc.desired {
				t.Fatalf("got %s desired %d", kinds(got), c.Desired())
			}
			if !tc.wantErr && !strings.Contains(got[len(got)-1].Activity.Cause, "in response to a user request") {
				t.Fatalf("cause %q", got[len(got)-1].Activity.Cause)
			}
		})
	}
	c := newCtl(t, Group{Min: 0, Max: 1})
	if err := c.TerminateInstance("i-nope", false, t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err %v", err)
	}
}

func TestSetDesired(t *testing.T) {
	c := newCtl(t, Group{Min: 1, Max: 3, Desired: 1})
	apply(c, c.Step(t0, nil), t0)
	if err := c.SetDesired(4, t0); err == nil {
		t.Fatal("desired above max accepted")
	}
	if err := c.SetDesired(3, t0); err != nil {
		t.Fatal(err)
	}
	acts := c.Step(t0, nil)
	if kinds(acts) != "LbLa" {
		t.Fatalf("got %s", kinds(acts))
	}
	if !strings.Contains(acts[0].Activity.Cause, "a user request explicitly set group desired capacity changing the desired capacity from 1 to 3.") {
		t.Fatalf("cause %q", acts[0].Activity.Cause)
	}
	apply(c, acts, t0)
	if err := c.SetDesired(1, t0); err != nil {
		t.Fatal(err)
	}
	if got := kinds(c.Step(t0, nil)); got != "TT" {
		t.Fatalf("got %s", got)
	}
}

func TestNewInstancesProtected(t *testing.T) {
	c := newCtl(t, Group{Min: 0, Max: 3, Desired: 2, NewInstancesProtectedFromScaleIn: true})
	acts := c.Step(t0, nil)
	apply(c, acts, t0)
	if !acts[0].Protected {
		t.Fatal("launch not protected")
	}
	_ = c.SetDesired(1, t0)
	if got := c.Step(t0, nil); len(got) != 0 {
		t.Fatalf("protected instance terminated: %s", kinds(got))
	}
	if err := c.SetProtection(acts[1].InstanceID, false); err != nil {
		t.Fatal(err)
	}
	got := c.Step(t0, nil)
	if len(got) != 1 || got[0].InstanceID != acts[1].InstanceID {
		t.Fatalf("got %v", got)
	}
}

func TestUpdate(t *testing.T) {
	g := Group{Min: 1, Max: 3, Desired: 2}
	c, now := steady(t, g)
	g2 := c.Group()
	g2.Max, g2.Desired = 4, 3
	if err := c.Update(g2, now); err != nil {
		t.Fatal(err)
	}
	acts := c.Step(now, nil)
	if kinds(acts) != "La" || !strings.Contains(acts[0].Activity.Cause, "update of AutoScalingGroup constraints to min: 1, max: 4, desired: 3 changing the desired capacity from 2 to 3.") {
		t.Fatalf("got %s: %q", kinds(acts), acts[0].Activity.Cause)
	}
	apply(c, acts, now)
	g3 := c.Group()
	g3.LaunchTemplateVersion = "2"
	if err := c.Update(g3, now); err != nil {
		t.Fatal(err)
	}
	if !c.Refreshing() {
		t.Fatal("new template version did not start a refresh")
	}
	g4 := c.Group()
	g4.Min = 5
	if err := c.Update(g4, now); err == nil {
		t.Fatal("min above max accepted")
	}
}

func TestReplacementKeepsZonesBalanced(t *testing.T) {
	c, now := steady(t, Group{Min: 4, Max: 4, Desired: 4, GracePeriod: time.Second})
	var victim string
	for _, in := range c.Instances() {
		if in.Zone == "us-east-1b" {
			victim = in.ID
		}
	}
	c.InstanceExited(victim, "exit status 137", now)
	acts := c.Step(now, nil)
	if kinds(acts) != "LbT" || acts[1].InstanceID != victim {
		t.Fatalf("got %s", kinds(acts))
	}
}

func TestAZRebalance(t *testing.T) {
	c, now := steady(t, Group{Min: 1, Max: 5, Desired: 4, DefaultInstanceWarmup: 10 * time.Second})
	// Two user terminations with decrement in zone b, then back to 4.
	for _, in := range c.Instances() {
		if in.Zone == "us-east-1b" {
			if err := c.TerminateInstance(in.ID, true, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	apply(c, c.Step(now, nil), now)
	_ = c.SetDesired(4, now)
	acts := c.Step(now, nil) // zone balance puts both in b
	apply(c, acts, now)
	if kinds(acts) != "LbLb" {
		t.Fatalf("got %s", kinds(acts))
	}
	// Now unbalance by hand: adopt two extra in a and shrink desired.
	c2, now2 := steady(t, Group{Min: 1, Max: 5, Desired: 2, DefaultInstanceWarmup: 10 * time.Second})
	c2.Adopt(Instance{ID: "i-x1", Zone: "us-east-1a", Subnet: "subnet-a", LaunchTemplateVersion: "1", LaunchTime: t0, InServiceTime: t0, Lifecycle: InService})
	c2.Adopt(Instance{ID: "i-x2", Zone: "us-east-1a", Subnet: "subnet-a", LaunchTemplateVersion: "1", LaunchTime: t0, InServiceTime: t0, Lifecycle: InService})
	_ = c2.SetDesired(4, now2)
	// a: 3, b: 1 -> launch in b, later terminate the oldest in a.
	var trace []string
	for i := 0; i < 4; i++ {
		acts := c2.Step(now2, nil)
		trace = append(trace, kinds(acts))
		apply(c2, acts, now2)
		now2 = now2.Add(10 * time.Second)
	}
	if got := strings.Join(trace, " "); got != "Lb T  " {
		t.Fatalf("trace %q", got)
	}
	zones := map[string]int{}
	for _, in := range c2.Instances() {
		zones[in.Zone]++
	}
	if zones["us-east-1a"] != 2 || zones["us-east-1b"] != 2 {
		t.Fatalf("zones %v", zones)
	}
}

// TestLaunchFailureTriesOtherZone: a launch that fails in one zone (say,
// InsufficientInstanceCapacity) is retried at once in the group's other
// zone, which launches keep to for ZoneFailureHold; AZ rebalancing does
// not move instances back meanwhile, and does once the hold is over.
func TestLaunchFailureTriesOtherZone(t *testing.T) {
	c := newCtl(t, Group{Min: 2, Max: 4, Desired: 2, DefaultInstanceWarmup: time.Second})
	now := t0
	acts := c.Step(now, nil)
	if kinds(acts) != "LaLb" {
		t.Fatalf("first launches: %s", kinds(acts))
	}
	c.InstanceRunning(acts[1].InstanceID, now)
	c.LaunchFailed(acts[0].InstanceID, errors.New("InsufficientInstanceCapacity"), now)
	// At once, in zone b: no back-off while a zone is left.
	acts = c.Step(now, nil)
	if kinds(acts) != "Lb" {
		t.Fatalf("after the failure in zone a: %s, want a launch in zone b at once", kinds(acts))
	}
	apply(c, acts, now)
	// Both in zone b: no rebalancing into zone a while it is held.
	for s := 0; s < 50; s += 5 {
		if acts := c.Step(now.Add(time.Duration(s)*time.Second), nil); len(acts) != 0 {
			t.Fatalf("during the hold, %ds after: %s", s, kinds(acts))
		}
	}
	// After the hold, AZ rebalancing launches in zone a again.
	later := now.Add(ZoneFailureHold + time.Minute)
	if acts := c.Step(later, nil); kinds(acts) != "La" {
		t.Errorf("after the hold: %s, want a rebalancing launch in zone a", kinds(acts))
	}
	// When every zone fails, launches back off.
	c2 := newCtl(t, Group{Min: 1, Max: 2, Desired: 1})
	for i, zone := range []string{"a", "b"} {
		acts := c2.Step(t0, nil)
		if kinds(acts) != "L"+zone {
			t.Fatalf("launch %d: %s, want L%s", i, kinds(acts), zone)
		}
		c2.LaunchFailed(acts[0].InstanceID, errors.New("InsufficientInstanceCapacity"), t0)
	}
	if acts := c2.Step(t0.Add(5*time.Second), nil); len(acts) != 0 {
		t.Errorf("both zones failed: launched %s at once, want the back-off", kinds(acts))
	}
}
