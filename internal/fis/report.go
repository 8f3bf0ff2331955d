package fis

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/events"
)

// Report is what an experiment did and what the stack went through.
type Report struct {
	Experiment Result `json:"experiment"`
	// Timeline is the stack's event log during the experiment and its
	// recovery: the faults (component fis) and their effects.
	Timeline []TimelineEntry `json:"timeline"`
	// LoadBalancers are the requests each load balancer served and failed
	// from the experiment's start to the end of the recovery watch.
	LoadBalancers []LBReport `json:"loadBalancers"`
	// MetricsError says why LoadBalancers is empty, if it is.
	MetricsError string `json:"metricsError,omitempty"`
	// CapacityLost says whether a group fell below its desired capacity
	// of healthy targets; Recovery is then the time from the experiment's
	// start until every group was back (nil: not within the watch).
	CapacityLost bool           `json:"capacityLost"`
	Recovery     *time.Duration `json:"recoveryNanos,omitempty"`
	RecoveryText string         `json:"recovery"`
	Hypotheses   []Verdict      `json:"hypotheses,omitempty"`
	// Pass is true when the experiment ran and every hypothesis held.
	Pass bool `json:"pass"`
}

// TimelineEntry is one event, with its offset from the experiment's start.
type TimelineEntry struct {
	Offset    time.Duration `json:"offsetNanos"`
	At        string        `json:"at"`
	Component string        `json:"component"`
	Type      string        `json:"type"`
	Message   string        `json:"message"`
}

// LBReport is one load balancer's traffic.
type LBReport struct {
	Name     string `json:"name"`
	Requests uint64 `json:"requests"`
	// Served are the answers that were not 5xx; Failed the 5xx, the load
	// balancer's (502, 503, 504) and the targets'.
	Served uint64 `json:"served"`
	Failed uint64 `json:"failed"`
}

// CapacitySample is every group's healthy count against its desired
// capacity at one time.
type CapacitySample struct {
	Time   time.Time
	Groups map[string][2]int // name -> healthy, desired
}

// short says whether a group is below its desired healthy capacity.
func (c CapacitySample) short() bool {
	for _, hd := range c.Groups {
		if hd[0] < hd[1] {
			return true
		}
	}
	return false
}

// Recovery reads capacity samples (in time order, from the experiment's
// start): whether capacity was lost, and when it was all back, measured
// from start (ok false: lost and not back by the last sample).
func Recovery(start time.Time, samples []CapacitySample) (lost bool, took time.Duration, ok bool) {
	for _, s := range samples {
		if s.short() {
			lost, ok = true, false
		} else if lost && !ok {
			took, ok = s.Time.Sub(start), true
		}
	}
	if !lost {
		return false, 0, true
	}
	return lost, took, ok
}

// Verdict is one hypothesis and whether it held.
type Verdict struct {
	Expr  string `json:"expr"`
	Value string `json:"value"`
	Holds bool   `json:"holds"`
}

var hypothesisExpr = regexp.MustCompile(`^\s*([a-z-]+)\s*(==|!=|<=|>=|<|>)\s*(\S+)\s*$`)

// Hypotheses moat checks, by name.
var hypothesisNames = []string{"failed-requests", "served-requests", "requests", "recovery", "state"}

// CheckHypothesis parses a hypothesis such as failed-requests==0,
// recovery<60s or state==completed (the syntax of --expect).
func CheckHypothesis(expr string) error {
	m := hypothesisExpr.FindStringSubmatch(expr)
	if m == nil {
		return fmt.Errorf("hypothesis %q is not NAME OP VALUE (e.g. failed-requests==0, recovery<60s)", expr)
	}
	switch m[1] {
	case "failed-requests", "served-requests", "requests":
		if _, err := strconv.ParseUint(m[3], 10, 64); err != nil {
			return fmt.Errorf("hypothesis %q: %s is compared with a whole number", expr, m[1])
		}
	case "recovery":
		if _, err := time.ParseDuration(m[3]); err != nil {
			return fmt.Errorf("hypothesis %q: recovery is compared with a duration such as 60s", expr)
		}
	case "state":
		if m[2] != "==" && m[2] != "!=" {
			return fmt.Errorf("hypothesis %q: state is compared with == or !=", expr)
		}
	default:
		return fmt.Errorf("hypothesis %q: unknown measure %q (%s)", expr, m[1], strings.Join(hypothesisNames, ", "))
	}
	return nil
}

func cmp[T int64 | uint64 | float64](a T, op string, b T) bool {
	switch op {
	case "==":
		return a == b
	case "!=":
		return a != b
	case "<":
		return a < b
	case "<=":
		return a <= b
	case ">":
		return a > b
	}
	return a >= b
}

func (r *Report) check(expr string) Verdict {
	v := Verdict{Expr: expr}
	if err := CheckHypothesis(expr); err != nil {
		v.Value = err.Error()
		return v
	}
	m := hypothesisExpr.FindStringSubmatch(expr)
	name, op, want := m[1], m[2], m[3]
	var failed, served, requests uint64
	for _, lb := range r.LoadBalancers {
		failed, served, requests = failed+lb.Failed, served+lb.Served, requests+lb.Requests
	}
	switch name {
	case "failed-requests", "served-requests", "requests":
		if r.MetricsError != "" {
			v.Value = "unknown: " + r.MetricsError
			return v
		}
		got := map[string]uint64{"failed-requests": failed, "served-requests": served, "requests": requests}[name]
		n, _ := strconv.ParseUint(want, 10, 64)
		v.Value, v.Holds = strconv.FormatUint(got, 10), cmp(got, op, n)
	case "recovery":
		d, _ := time.ParseDuration(want)
		if r.Recovery == nil {
			v.Value = "not recovered"
			return v
		}
		v.Value, v.Holds = r.Recovery.Round(100*time.Millisecond).String(), cmp(int64(*r.Recovery), op, int64(d))
	case "state":
		v.Value, v.Holds = r.Experiment.State, (r.Experiment.State == want) == (op == "==")
	}
	return v
}

// BuildReport puts an experiment's result, the event log, the load
// balancers' traffic and the capacity samples together and checks the
// hypotheses.
func BuildReport(res Result, log []events.Event, lbs []LBReport, metricsErr error, capacity []CapacitySample, hypotheses []string) Report {
	r := Report{Experiment: res, LoadBalancers: lbs}
	if metricsErr != nil {
		r.MetricsError = metricsErr.Error()
	}
	end := res.End
	if len(capacity) > 0 && capacity[len(capacity)-1].Time.After(end) {
		end = capacity[len(capacity)-1].Time
	}
	for _, e := range log {
		if e.Time.Before(res.Start.Add(-time.Second)) || e.Time.After(end.Add(time.Second)) {
			continue
		}
		off := e.Time.Sub(res.Start)
		r.Timeline = append(r.Timeline, TimelineEntry{Offset: off, At: offsetText(off), Component: e.Component, Type: e.Type, Message: e.Message})
	}
	slices.SortStableFunc(r.Timeline, func(a, b TimelineEntry) int { return int(a.Offset - b.Offset) })
	lost, took, ok := Recovery(res.Start, capacity)
	r.CapacityLost = lost
	switch {
	case !lost:
		d := time.Duration(0)
		r.Recovery, r.RecoveryText = &d, "no capacity lost"
	case ok:
		r.Recovery, r.RecoveryText = &took, took.Round(100*time.Millisecond).String()
	default:
		r.RecoveryText = "not recovered"
	}
	r.Pass = res.State == StateCompleted
	for _, h := range hypotheses {
		v := r.check(h)
		r.Hypotheses = append(r.Hypotheses, v)
		r.Pass = r.Pass && v.Holds
	}
	return r
}

func offsetText(d time.Duration) string {
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	return sign + d.Round(100*time.Millisecond).String()
}

// Text is the report for humans.
func (r Report) Text() string {
	var b strings.Builder
	res := r.Experiment
	fmt.Fprintf(&b, "experiment %s: %s", res.ID, res.State)
	if res.Reason != "" {
		fmt.Fprintf(&b, " (%s)", res.Reason)
	}
	fmt.Fprintf(&b, " after %s\n", res.End.Sub(res.Start).Round(100*time.Millisecond))
	b.WriteString("\nactions:\n")
	for _, a := range res.Actions {
		when := "-"
		if !a.Started.IsZero() {
			when = offsetText(a.Started.Sub(res.Start))
		}
		fmt.Fprintf(&b, "  %-8s %-26s %-10s %s on %s", when, a.Name, a.State, a.ActionID, targetsText(a.Targets))
		if a.Error != "" {
			fmt.Fprintf(&b, ": %s", a.Error)
		}
		b.WriteString("\n")
	}
	if len(res.RolledBack) > 0 {
		fmt.Fprintf(&b, "  undone at the end: %s\n", strings.Join(res.RolledBack, ", "))
	}
	b.WriteString("\ntimeline:\n")
	for _, e := range r.Timeline {
		fmt.Fprintf(&b, "  %-8s %-9s %s\n", e.At, e.Component, e.Message)
	}
	b.WriteString("\nload balancers:\n")
	if r.MetricsError != "" {
		fmt.Fprintf(&b, "  unknown: %s\n", r.MetricsError)
	}
	for _, lb := range r.LoadBalancers {
		fmt.Fprintf(&b, "  %s: %d requests, %d served, %d failed\n", lb.Name, lb.Requests, lb.Served, lb.Failed)
	}
	fmt.Fprintf(&b, "\nrecovery (every group back to its desired capacity of healthy targets, from the start): %s\n", r.RecoveryText)
	if len(r.Hypotheses) > 0 {
		b.WriteString("\nhypotheses:\n")
		for _, h := range r.Hypotheses {
			mark := "FAIL"
			if h.Holds {
				mark = "ok"
			}
			fmt.Fprintf(&b, "  %-4s %s (%s)\n", mark, h.Expr, h.Value)
		}
	}
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "\nverdict: %s\n", verdict)
	return b.String()
}
