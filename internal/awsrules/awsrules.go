// Package awsrules holds AWS semantics that moat's validation (spec), its
// runtime (targetgroup) and its CloudFormation renderer (awscfn) share, so
// the three cannot disagree: an ALB target group health check's defaults,
// its allowed ranges and its matcher, and whether a security group's
// ingress rules admit a source. Pure functions, no I/O; it imports none of
// moat's packages.
package awsrules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ALB target group health check defaults (AWS's documented ones).
const (
	DefaultHealthCheckPath         = "/"
	DefaultHealthCheckPort         = "traffic-port"
	DefaultHealthCheckInterval     = 30 // seconds
	DefaultHealthCheckTimeout      = 5  // seconds
	DefaultHealthyThreshold        = 5
	DefaultUnhealthyThreshold      = 2
	DefaultMatcher                 = "200"
	TrafficPort                    = "traffic-port"
	maxHealthCheckPath             = 1024
	minMatcherCode, maxMatcherCode = 200, 499
)

// Range is an inclusive range of allowed values.
type Range struct{ Min, Max int }

// Contains reports whether n is in the range.
func (r Range) Contains(n int) bool { return r.Min <= n && n <= r.Max }

// The ranges AWS allows for a target group's health check.
var (
	HealthCheckInterval = Range{5, 300} // seconds
	HealthCheckTimeout  = Range{2, 120} // seconds, and less than the interval
	HealthyThreshold    = Range{2, 10}
	UnhealthyThreshold  = Range{2, 10}
)

// HealthCheck is a target group's health check in AWS's units (seconds).
type HealthCheck struct {
	Protocol           string // the caller's to default and check
	Path               string // starts with /, at most 1024 characters
	Port               string // "traffic-port" or 1-65535
	IntervalSeconds    int
	TimeoutSeconds     int
	HealthyThreshold   int
	UnhealthyThreshold int
	Matcher            string // see ParseMatcher
}

// WithDefaults returns hc with AWS's defaults for its zero fields.
func (hc HealthCheck) WithDefaults() HealthCheck {
	if hc.Path == "" {
		hc.Path = DefaultHealthCheckPath
	}
	if hc.Port == "" {
		hc.Port = DefaultHealthCheckPort
	}
	if hc.IntervalSeconds == 0 {
		hc.IntervalSeconds = DefaultHealthCheckInterval
	}
	if hc.TimeoutSeconds == 0 {
		hc.TimeoutSeconds = DefaultHealthCheckTimeout
	}
	if hc.HealthyThreshold == 0 {
		hc.HealthyThreshold = DefaultHealthyThreshold
	}
	if hc.UnhealthyThreshold == 0 {
		hc.UnhealthyThreshold = DefaultUnhealthyThreshold
	}
	if hc.Matcher == "" {
		hc.Matcher = DefaultMatcher
	}
	return hc
}

// Problem is one way a value breaks AWS's rules: the field (as the stack
// file names it, e.g. "intervalSeconds"), what is wrong and how to fix it.
type Problem struct {
	Field, Problem, Fix string
}

// Problems lists how hc (after defaults) breaks AWS's rules for a target
// group health check; none when it keeps them. The protocol is the
// caller's to check: which protocols it supports is its own choice.
func (hc HealthCheck) Problems() []Problem {
	var ps []Problem
	add := func(field, fix, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Problem: fmt.Sprintf(format, args...), Fix: fix})
	}
	between := func(field string, n int, r Range, what string) {
		if !r.Contains(n) {
			add(field, fmt.Sprintf("AWS allows %d to %d", r.Min, r.Max), "%s %d is out of range", what, n)
		}
	}
	if !strings.HasPrefix(hc.Path, "/") || len(hc.Path) > maxHealthCheckPath {
		add("path", "start the path with /, e.g. /health", "health check path %q is not valid", hc.Path)
	}
	if hc.Port != TrafficPort {
		if n, err := strconv.Atoi(hc.Port); err != nil || n < 1 || n > 65535 {
			add("port", "use traffic-port or a port 1-65535", "health check port %q is not valid", hc.Port)
		}
	}
	between("intervalSeconds", hc.IntervalSeconds, HealthCheckInterval, "health check interval")
	between("timeoutSeconds", hc.TimeoutSeconds, HealthCheckTimeout, "health check timeout")
	if hc.TimeoutSeconds >= hc.IntervalSeconds {
		add("timeoutSeconds", fmt.Sprintf("make the timeout shorter than the interval (%ds)", hc.IntervalSeconds),
			"health check timeout %ds is not less than the interval %ds", hc.TimeoutSeconds, hc.IntervalSeconds)
	}
	between("healthyThreshold", hc.HealthyThreshold, HealthyThreshold, "healthy threshold")
	between("unhealthyThreshold", hc.UnhealthyThreshold, UnhealthyThreshold, "unhealthy threshold")
	if _, err := ParseMatcher(hc.Matcher); err != nil {
		var me *MatcherError
		errors.As(err, &me)
		add("matcher", me.Fix, "%s", me.Problem)
	}
	return ps
}

// CodeRange is an inclusive range of HTTP status codes.
type CodeRange struct{ Lo, Hi int }

// Matcher is a parsed ALB success-code matcher: the codes a healthy
// target may answer with.
type Matcher []CodeRange

// MatcherError says why a matcher is not valid, and how to fix it.
type MatcherError struct {
	Problem string // e.g. matcher code 599 is out of range
	Fix     string
}

func (e *MatcherError) Error() string { return e.Problem + ": " + e.Fix }

// ParseMatcher parses an ALB HTTP success-code matcher: codes and
// ranges separated by commas, "200", "200,202", "200-299". ALB accepts
// codes from 200 to 499; a range runs from its lower code to its higher
// one ("299-200" matches nothing on ALB and is refused here).
func ParseMatcher(s string) (Matcher, error) {
	bad := func(fix, format string, args ...any) (Matcher, error) {
		return nil, &MatcherError{Problem: fmt.Sprintf(format, args...), Fix: fix}
	}
	syntax := `write codes like "200", "200,202" or "200-299"`
	var m Matcher
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		a, aok := code(lo)
		b, bok := code(hi)
		if !aok || !bok {
			return bad(syntax, "matcher %q is not valid", s)
		}
		for _, c := range []int{a, b} {
			if c < minMatcherCode || c > maxMatcherCode {
				return bad(fmt.Sprintf("ALB accepts codes from %d to %d", minMatcherCode, maxMatcherCode), "matcher code %d is out of range", c)
			}
		}
		if b < a {
			return bad(fmt.Sprintf("write the range low to high: \"%d-%d\"", b, a), "matcher range %q runs from high to low and matches no code", part)
		}
		m = append(m, CodeRange{a, b})
	}
	return m, nil
}

// code parses a three-digit HTTP status code.
func code(s string) (int, bool) {
	if len(s) != 3 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// Matches reports whether the matcher accepts HTTP status code c.
func (m Matcher) Matches(c int) bool {
	for _, r := range m {
		if r.Lo <= c && c <= r.Hi {
			return true
		}
	}
	return false
}
