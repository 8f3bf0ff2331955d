package autoscale

import (
	"fmt"
	"time"

	"github.com/moat-dev/moat/internal/plan"
)

// FromPlan builds a Group from a resolved plan group. metricPeriod is the
// stack's metric period (0: AWS's 60 s); version is the launch template
// version new instances get (for example a hash of the template).
func FromPlan(a plan.AutoScalingGroup, metricPeriod time.Duration, version string) (Group, error) {
	if len(a.Zones) != len(a.Subnets) {
		return Group{}, fmt.Errorf("group %s: %d subnets but %d zones", a.Name, len(a.Subnets), len(a.Zones))
	}
	g := Group{
		Name: a.Name, Min: a.MinSize, Max: a.MaxSize, Desired: a.DesiredCapacity,
		HealthCheckType:                  HealthCheckType(a.HealthCheckType),
		GracePeriod:                      a.HealthCheckGracePeriod,
		DefaultCooldown:                  a.DefaultCooldown,
		DefaultInstanceWarmup:            a.DefaultInstanceWarmup,
		MetricPeriod:                     metricPeriod,
		LaunchTemplateVersion:            version,
		NewInstancesProtectedFromScaleIn: a.NewInstancesProtectedFromScaleIn,
		Refresh:                          Refresh{MinHealthyPercentage: a.MinHealthyPercentage, Warmup: a.RefreshWarmup},
	}
	if g.DefaultCooldown == 0 {
		g.DefaultCooldown = NoCooldown // the plan has resolved defaults: 0 means none
	}
	for i, s := range a.Subnets {
		g.Subnets = append(g.Subnets, Subnet{ID: s, Zone: a.Zones[i]})
	}
	for _, p := range a.ScalingPolicies {
		switch p.Type {
		case "", "TargetTrackingScaling":
			g.TargetTracking = append(g.TargetTracking, TargetTracking{Name: p.Name, Metric: Metric(p.Metric),
				TargetValue: p.TargetValue, DisableScaleIn: p.DisableScaleIn, Warmup: p.Warmup})
		case "StepScaling":
			if p.Alarm == nil {
				return Group{}, fmt.Errorf("group %s: step scaling policy %s: no alarm", a.Name, p.Name)
			}
			sp := StepScaling{Name: p.Name, AdjustmentType: AdjustmentType(p.AdjustmentType), Warmup: p.Warmup,
				Alarm: Alarm{Metric: Metric(p.Metric), Comparison: Comparison(p.Alarm.Comparison),
					Threshold: p.Alarm.Threshold, EvaluationPeriods: p.Alarm.EvaluationPeriods}}
			for _, s := range p.Steps {
				sp.Steps = append(sp.Steps, Step{Lower: s.LowerBound, Upper: s.UpperBound, Adjustment: s.Adjustment})
			}
			g.StepScaling = append(g.StepScaling, sp)
		default:
			return Group{}, fmt.Errorf("group %s: policy %s: type %q: use TargetTrackingScaling or StepScaling", a.Name, p.Name, p.Type)
		}
	}
	return g, g.Validate()
}
