package autoscale

import (
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

func TestApplyAdjustment(t *testing.T) {
	for _, tc := range []struct {
		typ      AdjustmentType
		cur, adj int
		want     int
	}{
		{ChangeInCapacity, 2, 1, 3},
		{ChangeInCapacity, 2, -1, 1},
		{"", 2, 2, 4},
		{ExactCapacity, 2, 5, 5},
		{PercentChangeInCapacity, 2, 10, 3},   // 0.2 rounds to 1
		{PercentChangeInCapacity, 10, 25, 12}, // 2.5 truncates to 2
		{PercentChangeInCapacity, 4, -10, 3},  // -0.4 rounds to -1
		{PercentChangeInCapacity, 10, -50, 5},
	} {
		if got := applyAdjustment(tc.typ, tc.cur, tc.adj); got != tc.want {
			t.Errorf("%s %d %+d: got %d, want %d", tc.typ, tc.cur, tc.adj, got, tc.want)
		}
	}
}

func TestStepAdjustment(t *testing.T) {
	steps := []Step{{Lower: ptr(0.0), Upper: ptr(10.0), Adjustment: 1}, {Lower: ptr(10.0), Adjustment: 3}}
	for _, tc := range []struct {
		diff  float64
		want  int
		found bool
	}{{-1, 0, false}, {0, 1, true}, {9.9, 1, true}, {10, 3, true}, {500, 3, true}} {
		got, ok := stepAdjustment(steps, tc.diff)
		if got != tc.want || ok != tc.found {
			t.Errorf("diff %v: got %d %v", tc.diff, got, ok)
		}
	}
}

// run drives a group with a metric per period and returns the desired
// capacity after each datapoint; launches come up at once.
func run(t *testing.T, c *Controller, start time.Time, values []float64, metric Metric) []int {
	t.Helper()
	p := c.g.period()
	var out []int
	now := start
	for _, v := range values {
		now = now.Add(p)
		m := &Metrics{CPU: map[string]float64{}, Requests: map[string]float64{}}
		for _, in := range c.instances {
			m.CPU[in.ID] = v
			m.Requests[in.ID] = v * float64(p) / float64(time.Minute) // v per minute
		}
		apply(c, c.Step(now, m), now)
		out = append(out, c.Desired())
	}
	return out
}

func steady(t *testing.T, g Group) (*Controller, time.Time) {
	c := newCtl(t, g)
	apply(c, c.Step(t0, nil), t0)
	return c, t0.Add(time.Hour) // everyone warmed up, cooldown over
}

func TestTargetTracking(t *testing.T) {
	base := Group{Min: 1, Max: 10, Desired: 2, MetricPeriod: 10 * time.Second, DefaultInstanceWarmup: 30 * time.Second, DefaultCooldown: 60 * time.Second}
	cpu := TargetTracking{Name: "cpu", Metric: MetricCPU, TargetValue: 50}
	req := TargetTracking{Name: "req", Metric: MetricRequests, TargetValue: 100}
	for _, tc := range []struct {
		name     string
		policies []TargetTracking
		metric   Metric
		values   []float64
		want     []int
	}{
		{"out after 3 datapoints", []TargetTracking{cpu}, MetricCPU, []float64{90, 90, 90}, []int{2, 2, 4}},
		{"blip does not scale", []TargetTracking{cpu}, MetricCPU, []float64{90, 90, 10, 90}, []int{2, 2, 2, 2}},
		{"requests per target", []TargetTracking{req}, MetricRequests, []float64{250, 250, 250}, []int{2, 2, 5}},
		{"capped at max", []TargetTracking{req}, MetricRequests, []float64{5000, 5000, 5000}, []int{2, 2, 10}},
		{"in after 15 datapoints", []TargetTracking{cpu}, MetricCPU, rep(10, 15), append(rep2(2, 14), 1)},
		{"out if any wants", []TargetTracking{cpu, {Name: "req", Metric: MetricRequests, TargetValue: 1000}}, MetricCPU, []float64{90, 90, 90}, []int{2, 2, 4}},
		{"at target holds", []TargetTracking{cpu}, MetricCPU, rep(50, 20), rep2(2, 20)},
		{"disable scale-in", []TargetTracking{{Name: "cpu", Metric: MetricCPU, TargetValue: 50, DisableScaleIn: true}}, MetricCPU, rep(10, 15), rep2(2, 15)},
		{"in only if all: cpu low but requests high", []TargetTracking{cpu, {Name: "req", Metric: MetricRequests, TargetValue: 10}}, MetricCPU, rep(10, 15), rep2(2, 15)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := base
			g.TargetTracking = tc.policies
			c, start := steady(t, g)
			got := run(t, c, start, tc.values, tc.metric)
			if !equal(got, tc.want) {
				t.Fatalf("desired %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTargetTrackingWarmupAndCooldown(t *testing.T) {
	g := Group{Min: 1, Max: 10, Desired: 2, MetricPeriod: 10 * time.Second, DefaultInstanceWarmup: 30 * time.Second, DefaultCooldown: 200 * time.Second,
		TargetTracking: []TargetTracking{{Name: "cpu", Metric: MetricCPU, TargetValue: 50}}}
	c, start := steady(t, g)
	got := run(t, c, start, []float64{100, 100, 100}, MetricCPU)
	if got[2] != 4 {
		t.Fatalf("scale out: %v", got)
	}
	acts := c.History()
	last := acts[len(acts)-1]
	if !strings.Contains(last.Cause, "a monitor alarm TargetTracking--AlarmHigh-cpu in state ALARM triggered policy cpu changing the desired capacity from 2 to 4.") {
		t.Fatalf("cause %q", last.Cause)
	}
	// New instances are warming: their CPU is not counted, and the two
	// warm ones at 100% still ask for 4, not more.
	now := start.Add(30 * time.Second)
	m := &Metrics{CPU: map[string]float64{}}
	for _, in := range c.instances {
		m.CPU[in.ID] = 100
		if in.LaunchTime.After(start) {
			m.CPU[in.ID] = 0
		}
	}
	v, n, _ := c.metricValue(MetricCPU, m, now.Add(time.Second))
	if n != 2 || v != 100 {
		t.Fatalf("metric over warming instances: %v over %d", v, n)
	}
	// Low load right after: no scale-in within the cooldown.
	got = run(t, c, now, rep(5, 15), MetricCPU)
	if got[14] != 4 {
		t.Fatalf("scaled in during cooldown: %v", got)
	}
	got = run(t, c, now.Add(200*time.Second), rep(5, 2), MetricCPU)
	if got[1] != 1 {
		t.Fatalf("no scale-in after cooldown: %v", got)
	}
}

func TestStepScaling(t *testing.T) {
	pol := StepScaling{Name: "cpu-high", Alarm: Alarm{Metric: MetricCPU, Comparison: GreaterThanOrEqual, Threshold: 60, EvaluationPeriods: 2},
		Steps: []Step{{Lower: ptr(0.0), Upper: ptr(20.0), Adjustment: 1}, {Lower: ptr(20.0), Adjustment: 3}}}
	low := StepScaling{Name: "cpu-low", Alarm: Alarm{Metric: MetricCPU, Comparison: LessThan, Threshold: 20},
		AdjustmentType: PercentChangeInCapacity, Steps: []Step{{Upper: ptr(0.0), Adjustment: -50}}}
	for _, tc := range []struct {
		name   string
		values []float64
		want   []int
	}{
		{"small step", []float64{65, 65}, []int{4, 5}},
		{"big step", []float64{90, 90}, []int{4, 7}},
		{"not enough periods", []float64{90, 30, 90}, []int{4, 4, 4}},
		{"scale in by percent", []float64{10}, []int{2}},
		{"no alarm", []float64{40, 40}, []int{4, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, start := steady(t, Group{Min: 1, Max: 10, Desired: 4, MetricPeriod: 10 * time.Second, DefaultInstanceWarmup: 30 * time.Second,
				StepScaling: []StepScaling{pol, low}})
			if got := run(t, c, start, tc.values, MetricCPU); !equal(got, tc.want) {
				t.Fatalf("desired %v, want %v", got, tc.want)
			}
		})
	}
}

func TestInstanceRefresh(t *testing.T) {
	g := Group{Min: 2, Max: 4, Desired: 4, Refresh: Refresh{MinHealthyPercentage: 50, Warmup: 20 * time.Second}}
	c, now := steady(t, g)
	if err := c.StartRefresh("2", now); err != nil {
		t.Fatal(err)
	}
	if err := c.StartRefresh("3", now); err == nil {
		t.Fatal("second refresh accepted")
	}
	healthyInService := func() int {
		n := 0
		for _, in := range c.instances {
			if in.Lifecycle == InService && in.Health == Healthy {
				n++
			}
		}
		return n
	}
	// Batch = desired - min healthy = 2: launch 2; once they are warm,
	// terminate the 2 they replace while launching the next batch.
	var trace []string
	for i := 0; i < 20 && c.Refreshing(); i++ {
		acts := c.Step(now, nil)
		trace = append(trace, kinds(acts))
		for _, a := range acts {
			if a.Kind == Launch && a.LaunchTemplateVersion != "2" {
				t.Fatalf("launched version %s", a.LaunchTemplateVersion)
			}
		}
		apply(c, acts, now)
		if healthyInService() < 4 {
			t.Fatalf("healthy capacity dropped to %d", healthyInService())
		}
		now = now.Add(10 * time.Second)
	}
	if c.Refreshing() {
		t.Fatalf("refresh did not finish: %v", trace)
	}
	for _, in := range c.Instances() {
		if in.LaunchTemplateVersion != "2" {
			t.Fatalf("old instance left: %+v", in)
		}
	}
	if len(c.Instances()) != 4 {
		t.Fatalf("%d instances", len(c.Instances()))
	}
	if got := strings.Join(trace, " "); got != "LaLb  LaLbTT  TT" {
		t.Fatalf("trace %q", got)
	}
	h := c.History()
	if !strings.Contains(h[len(h)-1].Description, "completed") {
		t.Fatalf("last activity %+v", h[len(h)-1])
	}
}

func TestRefreshSkipsProtected(t *testing.T) {
	c, now := steady(t, Group{Min: 1, Max: 3, Desired: 2, GracePeriod: time.Second})
	_ = c.SetProtection(c.instances[0].ID, true)
	_ = c.StartRefresh("2", now)
	for i := 0; i < 10 && c.Refreshing(); i++ {
		apply(c, c.Step(now, nil), now)
		now = now.Add(10 * time.Second)
	}
	if c.Refreshing() || c.instances[0].LaunchTemplateVersion != "1" {
		t.Fatalf("refreshing %v, instances %+v", c.Refreshing(), c.Instances())
	}
}

func rep(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func rep2(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
