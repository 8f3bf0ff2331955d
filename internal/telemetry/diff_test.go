package telemetry

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/targetgroup"
)

// counts builds cumulative counts: target classes, load balancer classes
// and target response times.
func counts(target, elb Classes, rt ...time.Duration) Counts {
	var h Histogram
	for _, d := range rt {
		h.Observe(d)
	}
	return Counts{Target: target, ELB: elb, TargetResponseTime: h.Snapshot()}
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func lbReading(active int64, malformed uint64, other Counts, groups ...GroupStats) LBReading {
	return LBReading{Name: "web", Stats: LBStats{ActiveConnections: active, Malformed: malformed, Other: other, Groups: groups},
		InstanceIDs: map[string]string{"10.0.1.5:8000": "i-a", "10.0.2.5:8000": "i-b"}}
}

func TestDiffLoadBalancer(t *testing.T) {
	a, b := "10.0.1.5:8000", "10.0.2.5:8000"
	t0 := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		prev, cur LBReading
		want      api.LBMetrics
	}{
		{
			name: "first second: everything counted is the second's",
			prev: LBReading{Name: "web"},
			cur: lbReading(3, 0, Counts{}, GroupStats{Name: "tg", Targets: []TargetStats{
				{ID: a, Addr: a, State: "healthy", Epoch: 1, Counts: counts(Classes{2: 4}, Classes{}, ms(1), ms(1), ms(1), ms(100))},
				{ID: b, Addr: b, State: "initial"}}}),
			want: api.LBMetrics{Name: "web", RequestCount: 4, HTTPCode_Target_2XX_Count: 4,
				TargetResponseTimeP50: 0.001008, TargetResponseTimeP99: 0.100352, ActiveConnectionCount: 3,
				TargetGroups: []api.TargetGroupMetrics{{Name: "tg", HealthyHostCount: 1}},
				Targets: []api.TargetMetrics{
					{TargetGroup: "tg", ID: "i-a", Addr: a, State: "healthy", RequestCount: 4, P50: 0.001008, P99: 0.100352},
					{TargetGroup: "tg", ID: "i-b", Addr: b, State: "initial"}}},
		},
		{
			name: "a second later: only the new counts, by source",
			prev: lbReading(3, 1, counts(Classes{}, Classes{4: 1}), GroupStats{Name: "tg", Targets: []TargetStats{
				{ID: a, Addr: a, State: "healthy", Epoch: 1, Counts: counts(Classes{2: 4}, Classes{}, repeat(4, ms(1))...)},
				{ID: b, Addr: b, State: "healthy", Epoch: 2, Counts: counts(Classes{2: 1}, Classes{}, ms(2))}}}),
			cur: lbReading(1, 2, counts(Classes{}, Classes{3: 2, 4: 3}), GroupStats{Name: "tg",
				NoTarget: counts(Classes{}, Classes{5: 1}),
				Targets: []TargetStats{
					{ID: a, Addr: a, State: "healthy", Epoch: 1, Counts: counts(Classes{2: 6, 5: 1}, Classes{}, repeat(7, ms(1))...)},
					{ID: b, Addr: b, State: "unhealthy", Epoch: 2, Counts: counts(Classes{2: 1}, Classes{5: 2}, ms(2))}}}),
			// 2 + 1 from a; 2 load balancer's 502 for b; 1 503 with no target; 2 redirects, 1 fixed 4xx and a malformed request (not counted)
			want: api.LBMetrics{Name: "web", RequestCount: 9, HTTPCode_Target_2XX_Count: 2, HTTPCode_Target_5XX_Count: 1,
				HTTPCode_ELB_3XX_Count: 2, HTTPCode_ELB_4XX_Count: 2, HTTPCode_ELB_5XX_Count: 3,
				TargetResponseTimeP50: 0.001008, TargetResponseTimeP99: 0.001008, ActiveConnectionCount: 1,
				TargetGroups: []api.TargetGroupMetrics{{Name: "tg", HealthyHostCount: 1, UnHealthyHostCount: 1}},
				Targets: []api.TargetMetrics{
					{TargetGroup: "tg", ID: "i-a", Addr: a, State: "healthy", RequestCount: 3, HTTPCode_Target_5XX_Count: 1, Errors5XX: 1, P50: 0.001008, P99: 0.001008},
					{TargetGroup: "tg", ID: "i-b", Addr: b, State: "unhealthy", RequestCount: 2, HTTPCode_ELB_5XX_Count: 2, Errors5XX: 2}}},
		},
		{
			name: "a target registered again counts from zero; a gone one moved to Gone",
			prev: lbReading(0, 0, Counts{}, GroupStats{Name: "tg", Targets: []TargetStats{
				{ID: a, Addr: a, State: "draining", Epoch: 1, Counts: counts(Classes{2: 10}, Classes{}, repeat(10, ms(1))...)},
				{ID: b, Addr: b, State: "healthy", Epoch: 2, Counts: counts(Classes{2: 50}, Classes{}, repeat(50, ms(1))...)}}}),
			cur: lbReading(0, 0, Counts{}, GroupStats{Name: "tg",
				// a's 10 and one more before it went, and b's 50 before it was registered again
				Gone: counts(Classes{2: 61}, Classes{}, repeat(61, ms(1))...),
				Targets: []TargetStats{
					{ID: b, Addr: b, State: "initial", Epoch: 3, Counts: counts(Classes{2: 2}, Classes{}, ms(4), ms(4))}}}),
			want: api.LBMetrics{Name: "web", RequestCount: 3, HTTPCode_Target_2XX_Count: 3,
				TargetResponseTimeP50: 0.004032, TargetResponseTimeP99: 0.004032, // 4 ms is in [3968, 4096) µs
				TargetGroups: []api.TargetGroupMetrics{{Name: "tg"}},
				Targets: []api.TargetMetrics{
					{TargetGroup: "tg", ID: "i-b", Addr: b, State: "initial", RequestCount: 2, P50: 0.004032, P99: 0.004032}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := Reading{Time: t0, LoadBalancers: []LBReading{tt.prev}}
			cur := Reading{Time: t0.Add(time.Second), LoadBalancers: []LBReading{tt.cur}}
			s := Diff(&prev, &cur)
			if len(s.LoadBalancers) != 1 {
				t.Fatalf("%d load balancers", len(s.LoadBalancers))
			}
			if got := s.LoadBalancers[0]; !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDiffGaugesAndNAT(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	inst := []api.InstanceMetrics{{ID: "i-a", Group: "web", CPUUtilization: 42, MemoryUsedBytes: 1 << 20, MemoryLimitBytes: 512 << 20}}
	prev := Reading{Time: t0, NAT: []NATReading{{Name: "nat-a", Bytes: 1000, Packets: 10}}, Bastion: api.BastionMetrics{ActiveSessions: 5}}
	cur := Reading{Time: t0.Add(time.Second), Instances: inst, Bastion: api.BastionMetrics{ActiveSessions: 2},
		NAT: []NATReading{{Name: "nat-a", Bytes: 1500, Packets: 14}, {Name: "nat-b", Bytes: 80, Packets: 1}}}
	s := Diff(&prev, &cur)
	want := api.MetricsSample{Time: cur.Time, LoadBalancers: []api.LBMetrics{}, Instances: inst, Bastion: api.BastionMetrics{ActiveSessions: 2},
		NAT: []api.NATMetrics{{Name: "nat-a", BytesOutToDestination: 500, PacketsOutToDestination: 4}, {Name: "nat-b", BytesOutToDestination: 80, PacketsOutToDestination: 1}}}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got  %+v\nwant %+v", s, want)
	}
	// a counter that went down (the NAT's rules made again) counts as zero
	again := Reading{Time: t0.Add(2 * time.Second), NAT: []NATReading{{Name: "nat-a", Bytes: 100, Packets: 1}}}
	if s := Diff(&cur, &again); s.NAT[0].BytesOutToDestination != 0 || s.NAT[0].PacketsOutToDestination != 0 {
		t.Fatalf("after a reset: %+v", s.NAT)
	}
}

func TestRing(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	r := NewRing(3)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	times := func(ss []api.MetricsSample) []int {
		out := []int{}
		for _, s := range ss {
			out = append(out, int(s.Time.Sub(t0)/time.Second))
		}
		return out
	}
	if got := times(r.Since(time.Time{})); len(got) != 0 {
		t.Fatalf("empty ring: %v", got)
	}
	for i := 1; i <= 5; i++ {
		r.Add(api.MetricsSample{Time: at(i)})
	}
	for _, tt := range []struct {
		since time.Time
		want  []int
	}{
		{time.Time{}, []int{3, 4, 5}},
		{at(3), []int{4, 5}},
		{at(4).Add(-time.Millisecond), []int{4, 5}},
		{at(5), []int{}},
	} {
		if got := times(r.Since(tt.since)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Since(%v) = %v, want %v", tt.since.Sub(t0), got, tt.want)
		}
	}
}

func TestErrors5XXEvents(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 9, 0, 1, 0, time.UTC)
	s := api.MetricsSample{Time: t0, LoadBalancers: []api.LBMetrics{
		{Name: "quiet", RequestCount: 10, HTTPCode_Target_2XX_Count: 10},
		{Name: "web", RequestCount: 20, HTTPCode_Target_5XX_Count: 3, HTTPCode_ELB_5XX_Count: 5, Targets: []api.TargetMetrics{
			{ID: "i-a", Errors5XX: 1}, {ID: "i-b", Errors5XX: 6}, {ID: "i-c"}}},
	}}
	evs := Errors5XXEvents(s)
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1 (the quiet load balancer has none): %v", len(evs), evs)
	}
	e := evs[0]
	if e.Type != "lb.5xx" || e.Component != "lb" || !e.Time.Equal(t0) {
		t.Fatalf("event %+v", e)
	}
	wantFields := map[string]string{"lb": "web", "count": "8", "target5xx": "3", "elb5xx": "5", "target.i-b": "6", "target.i-a": "1"}
	if !reflect.DeepEqual(e.Fields, wantFields) {
		t.Errorf("fields %v, want %v", e.Fields, wantFields)
	}
	if want := "i-b 6, i-a 1, no target 1"; !strings.HasSuffix(e.Message, want) {
		t.Errorf("message %q does not end with %q", e.Message, want)
	}
	if evs := Errors5XXEvents(api.MetricsSample{Time: t0, LoadBalancers: []api.LBMetrics{{Name: "web", RequestCount: 1}}}); len(evs) != 0 {
		t.Errorf("a second without 5XX made events: %v", evs)
	}
}

func TestSamplerStep(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	n := uint64(0)
	s := NewSampler(func(time.Time) Reading {
		n += 10
		return Reading{NAT: []NATReading{{Name: "nat", Bytes: n}}}
	})
	var got []api.MetricsSample
	s.OnSample = func(m api.MetricsSample) { got = append(got, m) }
	for i := range 3 {
		s.Step(t0.Add(time.Duration(i) * time.Second))
	}
	if len(got) != 2 || got[0].NAT[0].BytesOutToDestination != 10 || !got[1].Time.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("samples %+v", got)
	}
	if all := s.Since(t0); len(all) != 2 {
		t.Fatalf("ring holds %d samples, want 2", len(all))
	}
}

func TestTargetHealthEvent(t *testing.T) {
	for _, tc := range []struct {
		name, id string
		tr       targetgroup.Transition
		message  string
	}{
		{"unhealthy with reason", "i-0abc", targetgroup.Transition{From: targetgroup.StateHealthy,
			Target: targetgroup.Status{ID: "10.0.128.4:8000", Addr: "10.0.128.4:8000", State: targetgroup.StateUnhealthy, Reason: targetgroup.ReasonTimeout, Description: "Request timed out"}},
			"Target i-0abc (10.0.128.4:8000) of target group web: healthy -> unhealthy (Target.Timeout: Request timed out)"},
		{"healthy, no reason", "i-0abc", targetgroup.Transition{From: targetgroup.StateInitial,
			Target: targetgroup.Status{ID: "10.0.128.4:8000", Addr: "10.0.128.4:8000", State: targetgroup.StateHealthy}},
			"Target i-0abc (10.0.128.4:8000) of target group web: initial -> healthy"},
		{"not an instance: named by its id", "", targetgroup.Transition{From: targetgroup.StateDraining,
			Target: targetgroup.Status{ID: "10.0.9.9:80", Addr: "10.0.9.9:80", State: targetgroup.StateUnused, Reason: targetgroup.ReasonNotRegistered}},
			"Target 10.0.9.9:80 (10.0.9.9:80) of target group web: draining -> unused (Target.NotRegistered)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := TargetHealthEvent("alb", "web", tc.id, tc.tr)
			if e.Message != tc.message || e.Type != "target.health" || e.Component != "lb" {
				t.Fatalf("event %+v\nwant message %q", e, tc.message)
			}
			if e.Fields["to"] != string(tc.tr.Target.State) || e.Fields["from"] != string(tc.tr.From) || e.Fields["lb"] != "alb" || e.Fields["targetGroup"] != "web" {
				t.Fatalf("fields %v", e.Fields)
			}
		})
	}
}
