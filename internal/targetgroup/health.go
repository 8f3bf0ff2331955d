// Package targetgroup implements ALB target group semantics: health check
// configuration with ALB's defaults, the per-target health state machine
// with ALB's states and reason codes, fail-open, deregistration draining,
// slow start, the routing algorithms and stickiness. Decisions are pure
// functions of state and an injected clock; the active health checker
// (Checker) probes through an injected dial function.
package targetgroup

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// HealthCheck is a target group's health check configuration.
type HealthCheck struct {
	Protocol           string        // "HTTP" (default) or "TCP"
	Path               string        // HTTP path probed; default "/"
	Port               string        // "traffic-port" (default) or a port number
	Interval           time.Duration // default 30s, 5s..300s
	Timeout            time.Duration // default 5s, 2s..120s, less than Interval
	HealthyThreshold   int           // default 5, 2..10
	UnhealthyThreshold int           // default 2, 2..10
	Matcher            string        // HTTP codes: "200", "200,202", "200-299"; default "200"
}

// DefaultHealthCheck returns ALB's default health check.
func DefaultHealthCheck() HealthCheck { return HealthCheck{}.WithDefaults() }

// WithDefaults returns hc with ALB's defaults filled in for zero fields.
func (hc HealthCheck) WithDefaults() HealthCheck {
	if hc.Protocol == "" {
		hc.Protocol = "HTTP"
	}
	if hc.Path == "" {
		hc.Path = "/"
	}
	if hc.Port == "" {
		hc.Port = "traffic-port"
	}
	if hc.Interval <= 0 {
		hc.Interval = 30 * time.Second
	}
	if hc.Timeout <= 0 {
		hc.Timeout = 5 * time.Second
	}
	if hc.HealthyThreshold <= 0 {
		hc.HealthyThreshold = 5
	}
	if hc.UnhealthyThreshold <= 0 {
		hc.UnhealthyThreshold = 2
	}
	if hc.Matcher == "" {
		hc.Matcher = "200"
	}
	return hc
}

// Validate checks hc (after defaults) against the ranges AWS documents.
func (hc HealthCheck) Validate() error {
	if hc.Protocol != "HTTP" && hc.Protocol != "HTTPS" && hc.Protocol != "TCP" {
		return fmt.Errorf("invalid health check protocol %q: want HTTP, HTTPS or TCP", hc.Protocol)
	}
	if !strings.HasPrefix(hc.Path, "/") || len(hc.Path) > 1024 {
		return fmt.Errorf("invalid health check path %q: must start with / and be at most 1024 characters", hc.Path)
	}
	if hc.Port != "traffic-port" {
		p, err := strconv.Atoi(hc.Port)
		if err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("invalid health check port %q: want traffic-port or 1-65535", hc.Port)
		}
	}
	if hc.Interval < 5*time.Second || hc.Interval > 300*time.Second {
		return fmt.Errorf("invalid health check interval %s: must be 5s-300s", hc.Interval)
	}
	if hc.Timeout < 2*time.Second || hc.Timeout > 120*time.Second {
		return fmt.Errorf("invalid health check timeout %s: must be 2s-120s", hc.Timeout)
	}
	if hc.Timeout >= hc.Interval {
		return fmt.Errorf("invalid health check timeout %s: must be less than the interval %s", hc.Timeout, hc.Interval)
	}
	if hc.HealthyThreshold < 2 || hc.HealthyThreshold > 10 {
		return fmt.Errorf("invalid healthy threshold %d: must be 2-10", hc.HealthyThreshold)
	}
	if hc.UnhealthyThreshold < 2 || hc.UnhealthyThreshold > 10 {
		return fmt.Errorf("invalid unhealthy threshold %d: must be 2-10", hc.UnhealthyThreshold)
	}
	return ValidateMatcher(hc.Matcher)
}

// Matches reports whether HTTP status code is accepted by matcher m
// ("200", "200,202", "200-299").
func Matches(m string, code int) bool {
	if m == "" {
		m = "200"
	}
	for part := range strings.SplitSeq(m, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil {
				continue
			}
		}
		if code >= a && code <= b {
			return true
		}
	}
	return false
}

// ValidateMatcher checks the syntax of an HTTP code matcher.
func ValidateMatcher(m string) error {
	for part := range strings.SplitSeq(m, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 200 || a > 499 {
			return fmt.Errorf("invalid matcher %q: codes must be 200-499", m)
		}
		if isRange {
			b, err := strconv.Atoi(hi)
			if err != nil || b < a || b > 499 {
				return fmt.Errorf("invalid matcher %q: bad range %q", m, part)
			}
		}
	}
	return nil
}
