// Package autoscale is the auto scaling controller: EC2 Auto Scaling's
// decisions (capacity, zone balance, health replacement, termination order,
// target tracking and step scaling, warm-up, cooldown, instance refresh,
// scale-in protection) as pure code.
//
// A Controller holds one group's state. It starts no goroutines and never
// reads the clock: every call takes the current time. The integrator
//
//   - reports facts: InstanceRunning, InstanceExited, TargetHealth,
//     InstanceTerminated, LaunchFailed;
//   - calls Step(now, metrics) periodically (metrics non-nil once per metric
//     period, nil otherwise) and applies the returned Actions in order
//     (launch: start the instance, then InstanceRunning; terminate:
//     deregister from the target groups, wait for draining, stop the
//     process, then InstanceTerminated);
//   - forwards user requests: SetDesired, TerminateInstance, SetProtection,
//     StartRefresh.
//
// Metric period: AWS evaluates one-minute datapoints. moat's period is
// Group.MetricPeriod (default 60 s; a shorter one makes local demos react
// faster). Target tracking scales out after 3 consecutive datapoints above
// the target and in after 15 below it, as the alarms AWS creates for a
// target tracking policy do; requests per target are normalised to
// requests per minute whatever the period.
//
// Where moat differs from AWS, on purpose:
//   - Scale-in by any policy waits for the group's DefaultCooldown after
//     the last scaling activity and for every instance to finish warming
//     up (AWS's target tracking relies on warm-up alone); scale-out is never
//     held by the cooldown, but warming instances count toward capacity.
//   - Instance refresh launches each batch of replacements before it
//     terminates the instances they replace (as AWS does with a maximum
//     healthy percentage above 100), so the group may briefly exceed Max;
//     a replacement counts as ready once it is InService, healthy (and
//     healthy in its target groups, if the integrator reports that) and
//     past the refresh warm-up. Protected instances are skipped (AWS's
//     default, Ignore).
//   - Unhealthy instances (either health check type) are replaced only
//     after the health check grace period from launch; the replacement is
//     launched in the same step, before the old instance is terminated.
//   - AZRebalance: when zones differ by more than one instance and every
//     instance is warm, one instance is launched in the smallest zone and,
//     once it is warm, the oldest unprotected one in the largest is
//     terminated (one at a time).
//   - After a failed launch, launches back off (10 s, doubling, at most 5 min).
package autoscale

import (
	"fmt"
	"time"
)

// HealthCheckType says which health checks mark an instance unhealthy.
type HealthCheckType string

// Health check types.
const (
	HealthEC2 HealthCheckType = "EC2" // the instance's process is gone
	HealthELB HealthCheckType = "ELB" // EC2, or a target group says unhealthy
)

// Metric is a predefined target tracking metric.
type Metric string

// Metrics.
const (
	MetricCPU      Metric = "ASGAverageCPUUtilization"
	MetricRequests Metric = "ALBRequestCountPerTarget"
)

// AdjustmentType is how a step adjustment changes the desired capacity.
type AdjustmentType string

// Adjustment types.
const (
	ChangeInCapacity        AdjustmentType = "ChangeInCapacity"
	PercentChangeInCapacity AdjustmentType = "PercentChangeInCapacity"
	ExactCapacity           AdjustmentType = "ExactCapacity"
)

// Comparison is a CloudWatch alarm comparison operator.
type Comparison string

// Comparisons.
const (
	GreaterThanOrEqual Comparison = "GreaterThanOrEqualToThreshold"
	GreaterThan        Comparison = "GreaterThanThreshold"
	LessThan           Comparison = "LessThanThreshold"
	LessThanOrEqual    Comparison = "LessThanOrEqualToThreshold"
)

// AWS defaults.
const (
	DefaultCooldown             = 300 * time.Second
	DefaultGracePeriod          = 300 * time.Second
	DefaultMinHealthyPercentage = 90
	DefaultMetricPeriod         = 60 * time.Second
	// ScaleOutDatapoints and ScaleInDatapoints are the consecutive
	// datapoints the target tracking alarms need (AWS: 3 of 3, 15 of 15).
	ScaleOutDatapoints = 3
	ScaleInDatapoints  = 15
)

// Subnet is one of the group's subnets.
type Subnet struct {
	ID   string
	Zone string
}

// TargetTracking is a target tracking scaling policy.
type TargetTracking struct {
	Name           string
	Metric         Metric
	TargetValue    float64
	DisableScaleIn bool
	// Warmup is the policy's estimated instance warm-up (0: the group's).
	Warmup time.Duration
}

// Alarm is the CloudWatch alarm of a step scaling policy.
type Alarm struct {
	Metric     Metric
	Comparison Comparison
	Threshold  float64
	// EvaluationPeriods consecutive breaching datapoints (default 1).
	EvaluationPeriods int
}

// Step is one step adjustment; bounds are relative to the alarm threshold
// (metric - threshold in [Lower, Upper)), nil meaning unbounded.
type Step struct {
	Lower, Upper *float64
	Adjustment   int
}

// StepScaling is a step scaling policy.
type StepScaling struct {
	Name           string
	Alarm          Alarm
	AdjustmentType AdjustmentType
	Steps          []Step
	Warmup         time.Duration
}

// Refresh are instance refresh preferences.
type Refresh struct {
	MinHealthyPercentage int           // default 90
	Warmup               time.Duration // default the group's warm-up
}

// Group is an auto scaling group's configuration.
type Group struct {
	Name                  string
	Min, Max, Desired     int
	Subnets               []Subnet
	HealthCheckType       HealthCheckType
	GracePeriod           time.Duration
	DefaultCooldown       time.Duration // 0: 300 s; use NoCooldown for none
	DefaultInstanceWarmup time.Duration // 0: policies' own, else the cooldown
	MetricPeriod          time.Duration // 0: 60 s
	// LaunchTemplateVersion is the version new instances get.
	LaunchTemplateVersion            string
	NewInstancesProtectedFromScaleIn bool
	TargetTracking                   []TargetTracking
	StepScaling                      []StepScaling
	Refresh                          Refresh
}

// NoCooldown as DefaultCooldown disables the cooldown.
const NoCooldown time.Duration = -1

func (g Group) cooldown() time.Duration {
	switch {
	case g.DefaultCooldown == NoCooldown:
		return 0
	case g.DefaultCooldown == 0:
		return DefaultCooldown
	}
	return g.DefaultCooldown
}

func (g Group) period() time.Duration {
	if g.MetricPeriod <= 0 {
		return DefaultMetricPeriod
	}
	return g.MetricPeriod
}

// warmup is the instance warm-up used for metrics and scaling: the group's
// default, else the longest policy warm-up, else the cooldown (AWS).
func (g Group) warmup() time.Duration {
	if g.DefaultInstanceWarmup > 0 {
		return g.DefaultInstanceWarmup
	}
	var w time.Duration
	for _, p := range g.TargetTracking {
		w = max(w, p.Warmup)
	}
	for _, p := range g.StepScaling {
		w = max(w, p.Warmup)
	}
	if w > 0 {
		return w
	}
	return g.cooldown()
}

func (g Group) refreshWarmup() time.Duration {
	if g.Refresh.Warmup > 0 {
		return g.Refresh.Warmup
	}
	if g.DefaultInstanceWarmup > 0 {
		return g.DefaultInstanceWarmup
	}
	return g.GracePeriod
}

func (g Group) minHealthyPercentage() int {
	if g.Refresh.MinHealthyPercentage <= 0 {
		return DefaultMinHealthyPercentage
	}
	return g.Refresh.MinHealthyPercentage
}

// Validate reports the first configuration error.
func (g Group) Validate() error {
	switch {
	case g.Min < 0 || g.Max < g.Min:
		return fmt.Errorf("group %s: min %d and max %d: need 0 <= min <= max", g.Name, g.Min, g.Max)
	case g.Desired < g.Min || g.Desired > g.Max:
		return fmt.Errorf("group %s: desired capacity %d: must be between min %d and max %d", g.Name, g.Desired, g.Min, g.Max)
	case len(g.Subnets) == 0:
		return fmt.Errorf("group %s: no subnets: give at least one", g.Name)
	case g.HealthCheckType != "" && g.HealthCheckType != HealthEC2 && g.HealthCheckType != HealthELB:
		return fmt.Errorf("group %s: health check type %q: use EC2 or ELB", g.Name, g.HealthCheckType)
	}
	for _, p := range g.TargetTracking {
		if p.TargetValue <= 0 {
			return fmt.Errorf("group %s: policy %s: target value %v: must be positive", g.Name, p.Name, p.TargetValue)
		}
		if p.Metric != MetricCPU && p.Metric != MetricRequests {
			return fmt.Errorf("group %s: policy %s: metric %q: use %s or %s", g.Name, p.Name, p.Metric, MetricCPU, MetricRequests)
		}
	}
	for _, p := range g.StepScaling {
		if len(p.Steps) == 0 {
			return fmt.Errorf("group %s: policy %s: no steps", g.Name, p.Name)
		}
		switch p.AdjustmentType {
		case "", ChangeInCapacity, PercentChangeInCapacity, ExactCapacity:
		default:
			return fmt.Errorf("group %s: policy %s: adjustment type %q: use ChangeInCapacity, PercentChangeInCapacity or ExactCapacity", g.Name, p.Name, p.AdjustmentType)
		}
	}
	return nil
}
