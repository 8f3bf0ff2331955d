package autoscale

import (
	"fmt"
	"math"
	"time"
)

// metricValue computes a group metric over the in-service, healthy
// instances past warm-up (warming instances are excluded, as in AWS).
// ok is false when there is no datapoint (no such instance or no samples).
func (c *Controller) metricValue(metric Metric, m *Metrics, now time.Time) (v float64, n int, ok bool) {
	w := c.g.warmup()
	var sum float64
	samples := 0
	for _, in := range c.instances {
		if !in.active() || !c.warm(in, now, w) {
			continue
		}
		n++
		src := m.CPU
		if metric == MetricRequests {
			src = m.Requests
		}
		if x, found := src[in.ID]; found {
			sum += x
			samples++
		}
	}
	if n == 0 {
		return 0, 0, false
	}
	switch metric {
	case MetricCPU:
		if samples == 0 {
			return 0, n, false
		}
		return sum / float64(samples), n, true
	default: // requests per target per minute
		return sum / float64(n) * float64(time.Minute) / float64(c.g.period()), n, true
	}
}

// warming reports whether an active instance is pending or warming up.
func (c *Controller) warming(now time.Time) bool {
	w := c.g.warmup()
	for _, in := range c.instances {
		if in.active() && !c.warm(in, now, w) {
			return true
		}
	}
	return false
}

// scalePolicies evaluates every policy on one datapoint and changes the
// desired capacity: out if any policy wants to (the largest), in only if
// every target tracking policy that may scale in wants to (the largest of
// their proposals), and never while instances warm up or within the
// cooldown after the last scaling activity.
func (c *Controller) scalePolicies(now time.Time, m *Metrics) {
	cur := c.g.Desired
	out, outCause := cur, ""
	inProposals, inVotes, inVoters := 0, 0, 0
	inCause := ""
	for i, p := range c.g.TargetTracking {
		v, n, ok := c.metricValue(p.Metric, m, now)
		if !ok {
			c.above[i], c.below[i] = 0, 0
			if !p.DisableScaleIn {
				inVoters++
			}
			continue
		}
		switch {
		case v > p.TargetValue:
			c.above[i]++
			c.below[i] = 0
		case v < p.TargetValue:
			c.below[i]++
			c.above[i] = 0
		default:
			c.above[i], c.below[i] = 0, 0
		}
		want := int(math.Ceil(float64(n) * v / p.TargetValue))
		alarm := fmt.Sprintf("TargetTracking-%s-AlarmHigh-%s", c.g.Name, p.Name)
		if c.above[i] >= ScaleOutDatapoints && want > out {
			out = want
			outCause = fmt.Sprintf("At %s a monitor alarm %s in state ALARM triggered policy %s", ts(now), alarm, p.Name)
		}
		if p.DisableScaleIn {
			continue
		}
		inVoters++
		if c.below[i] >= ScaleInDatapoints && want < cur {
			inVotes++
			if want > inProposals || inCause == "" {
				inProposals = max(inProposals, want)
				inCause = fmt.Sprintf("At %s a monitor alarm TargetTracking-%s-AlarmLow-%s in state ALARM triggered policy %s", ts(now), c.g.Name, p.Name, p.Name)
			}
		}
	}
	stepIn, stepInCause := -1, ""
	for i, p := range c.g.StepScaling {
		v, _, ok := c.metricValue(p.Alarm.Metric, m, now)
		if !ok || !breaches(p.Alarm, v) {
			c.breach[i] = 0
			continue
		}
		c.breach[i]++
		if c.breach[i] < max(1, p.Alarm.EvaluationPeriods) {
			continue
		}
		adj, found := stepAdjustment(p.Steps, v-p.Alarm.Threshold)
		if !found {
			continue
		}
		want := applyAdjustment(p.AdjustmentType, cur, adj)
		cause := fmt.Sprintf("At %s a monitor alarm %s-alarm in state ALARM triggered policy %s", ts(now), p.Name, p.Name)
		switch {
		case want > out && !c.warming(now):
			out, outCause = want, cause
		case want < cur && (stepIn < 0 || want > stepIn):
			stepIn, stepInCause = want, cause
		}
	}
	clamp := func(n int) int { return min(c.g.Max, max(c.g.Min, n)) }
	if out = clamp(out); out > cur {
		c.setDesired(out, now, fmt.Sprintf("%s changing the desired capacity from %d to %d.", outCause, cur, out))
		return
	}
	if c.warming(now) || now.Sub(c.lastScaling) < c.g.cooldown() {
		return
	}
	if inVoters > 0 && inVotes == inVoters {
		if n := clamp(inProposals); n < cur {
			c.setDesired(n, now, fmt.Sprintf("%s changing the desired capacity from %d to %d.", inCause, cur, n))
			return
		}
	}
	if stepIn >= 0 {
		if n := clamp(stepIn); n < cur {
			c.setDesired(n, now, fmt.Sprintf("%s changing the desired capacity from %d to %d.", stepInCause, cur, n))
		}
	}
}

func breaches(a Alarm, v float64) bool {
	switch a.Comparison {
	case GreaterThanOrEqual:
		return v >= a.Threshold
	case GreaterThan:
		return v > a.Threshold
	case LessThan:
		return v < a.Threshold
	case LessThanOrEqual:
		return v <= a.Threshold
	}
	return false
}

// stepAdjustment finds the step whose [Lower, Upper) holds diff.
func stepAdjustment(steps []Step, diff float64) (int, bool) {
	for _, s := range steps {
		if s.Lower != nil && diff < *s.Lower {
			continue
		}
		if s.Upper != nil && diff >= *s.Upper {
			continue
		}
		return s.Adjustment, true
	}
	return 0, false
}

// applyAdjustment computes the new desired capacity. A percentage is
// rounded as AWS does: magnitudes below 1 become 1, larger ones are
// truncated toward zero.
func applyAdjustment(t AdjustmentType, cur, adj int) int {
	switch t {
	case ExactCapacity:
		return adj
	case PercentChangeInCapacity:
		x := float64(cur) * float64(adj) / 100
		switch {
		case x > 0 && x < 1:
			return cur + 1
		case x < 0 && x > -1:
			return cur - 1
		}
		return cur + int(x)
	}
	return cur + adj
}
