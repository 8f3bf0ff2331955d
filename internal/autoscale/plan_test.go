package autoscale

import (
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
)

func TestFromPlan(t *testing.T) {
	up := 10.0
	a := plan.AutoScalingGroup{Name: "web", Subnets: []string{"app-a", "app-b"}, Zones: []string{"us-east-1a", "us-east-1b"},
		MinSize: 1, MaxSize: 4, DesiredCapacity: 2, HealthCheckType: "ELB", HealthCheckGracePeriod: 30 * time.Second,
		DefaultCooldown: 0, MinHealthyPercentage: 90,
		ScalingPolicies: []plan.ScalingPolicy{
			{Name: "req", Type: "TargetTrackingScaling", Metric: "ALBRequestCountPerTarget", TargetValue: 600},
			{Name: "cpu", Type: "StepScaling", Metric: "ASGAverageCPUUtilization", AdjustmentType: "ChangeInCapacity",
				Alarm: &spec.Alarm{Comparison: "GreaterThanThreshold", Threshold: 70}, Steps: []spec.Step{{UpperBound: &up, Adjustment: 1}}},
		}}
	g, err := FromPlan(a, 10*time.Second, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if g.cooldown() != 0 || g.period() != 10*time.Second || len(g.Subnets) != 2 || g.Subnets[1].Zone != "us-east-1b" ||
		len(g.TargetTracking) != 1 || len(g.StepScaling) != 1 || g.StepScaling[0].Alarm.Metric != MetricCPU || g.HealthCheckType != HealthELB {
		t.Fatalf("group %+v", g)
	}
	a.ScalingPolicies[1].Alarm = nil
	if _, err := FromPlan(a, 0, "v1"); err == nil || !strings.Contains(err.Error(), "no alarm") {
		t.Fatalf("err %v", err)
	}
}
