package fis

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Alarm is a stop condition moat evaluates locally over the stack's own
// metrics. Its expression is its name (so the same template names the
// same alarm on AWS):
//
//	METRIC(NAME) OP NUMBER [for DURATION]
//
// METRIC is healthy-hosts or unhealthy-hosts (of target group NAME: the
// count now, breached once the comparison has held for DURATION), or
// 5xx-ratio or 5xx-count (of load balancer NAME: 5xx answers, the load
// balancer's and its targets', over all requests, or their number, in the
// last DURATION, default 10s). OP is <, <=, > or >=. DURATION is Go's
// (30s, 1m) or ISO 8601 (PT30S).
type Alarm struct {
	Expr      string        `json:"expr"`
	Metric    string        `json:"metric"`
	Subject   string        `json:"subject"`
	Op        string        `json:"op"`
	Threshold float64       `json:"threshold"`
	For       time.Duration `json:"for"`
}

// Alarm metrics.
const (
	MetricHealthyHosts   = "healthy-hosts"
	MetricUnhealthyHosts = "unhealthy-hosts"
	Metric5xxRatio       = "5xx-ratio"
	Metric5xxCount       = "5xx-count"
)

var alarmExpr = regexp.MustCompile(`^\s*([a-z0-9-]+)\(([^()]+)\)\s*(<=|>=|<|>)\s*([0-9.]+)\s*(?:for\s+(\S+))?\s*$`)

// ParseAlarm reads an alarm expression.
func ParseAlarm(expr string) (Alarm, error) {
	m := alarmExpr.FindStringSubmatch(expr)
	if m == nil {
		return Alarm{}, fmt.Errorf("%q is not METRIC(NAME) OP NUMBER [for DURATION]", expr)
	}
	a := Alarm{Expr: expr, Metric: m[1], Subject: strings.TrimSpace(m[2]), Op: m[3]}
	switch a.Metric {
	case MetricHealthyHosts, MetricUnhealthyHosts, Metric5xxRatio, Metric5xxCount:
	default:
		return Alarm{}, fmt.Errorf("unknown metric %q (healthy-hosts, unhealthy-hosts, 5xx-ratio, 5xx-count)", a.Metric)
	}
	t, err := strconv.ParseFloat(m[4], 64)
	if err != nil {
		return Alarm{}, fmt.Errorf("threshold %q is not a number", m[4])
	}
	a.Threshold = t
	if m[5] != "" {
		d, err := time.ParseDuration(m[5])
		if err != nil {
			if d, err = ParseDuration(m[5]); err != nil {
				return Alarm{}, fmt.Errorf("for %q: not a duration such as 30s or PT30S", m[5])
			}
		}
		a.For = d
	}
	if a.For == 0 && a.windowed() {
		a.For = 10 * time.Second
	}
	return a, nil
}

// windowed says whether the metric sums over a window (else it is a gauge).
func (a Alarm) windowed() bool { return a.Metric == Metric5xxRatio || a.Metric == Metric5xxCount }

// LoadBalancerMetric says whether the alarm watches a load balancer
// (else a target group).
func (a Alarm) LoadBalancerMetric() bool { return a.windowed() }

func (a Alarm) compare(v float64) bool {
	switch a.Op {
	case "<":
		return v < a.Threshold
	case "<=":
		return v <= a.Threshold
	case ">":
		return v > a.Threshold
	}
	return v >= a.Threshold
}

// Observation is one reading of an alarm's metric: a gauge's value
// (Value), or one second's counts (Errors 5xx of Requests).
type Observation struct {
	Time     time.Time
	Value    float64
	Errors   float64
	Requests float64
}

// AlarmState evaluates an alarm over observations fed in time order.
type AlarmState struct {
	Alarm Alarm
	obs   []Observation
	since time.Time // when a gauge's comparison started to hold
}

// Observe adds a reading and says whether the alarm is breached, with the
// value it compared.
func (s *AlarmState) Observe(o Observation) (breached bool, value float64) {
	a := s.Alarm
	if !a.windowed() {
		if !a.compare(o.Value) {
			s.since = time.Time{}
			return false, o.Value
		}
		if s.since.IsZero() {
			s.since = o.Time
		}
		return o.Time.Sub(s.since) >= a.For, o.Value
	}
	s.obs = append(s.obs, o)
	cut := 0
	for cut < len(s.obs) && o.Time.Sub(s.obs[cut].Time) >= a.For {
		cut++
	}
	s.obs = s.obs[cut:]
	var errs, reqs float64
	for _, x := range s.obs {
		errs += x.Errors
		reqs += x.Requests
	}
	if a.Metric == Metric5xxCount {
		return a.compare(errs), errs
	}
	if reqs == 0 {
		return false, 0
	}
	return a.compare(errs / reqs), errs / reqs
}
