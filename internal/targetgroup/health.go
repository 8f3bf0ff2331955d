// Package targetgroup implements ALB target group semantics: health check
// configuration with ALB's defaults, the per-target health state machine
// with ALB's states and reason codes, fail-open, deregistration draining,
// slow start, the routing algorithms and stickiness. Decisions are pure
// functions of state and an injected clock; the active health checker
// (Checker) probes through an injected dial function.
package targetgroup

import (
	"time"

	"github.com/moat-dev/moat/internal/awsrules"
)

// HealthCheck is a target group's health check configuration.
type HealthCheck struct {
	Protocol           string        // "HTTP" (default) or "TCP"
	Path               string        // HTTP path probed; default "/"
	Port               string        // "traffic-port" (default) or a port number
	Interval           time.Duration // default 30s
	Timeout            time.Duration // default 5s
	HealthyThreshold   int           // default 5
	UnhealthyThreshold int           // default 2
	Matcher            string        // HTTP codes: "200", "200,202", "200-299"; default "200"
}

// DefaultHealthCheck returns ALB's default health check.
func DefaultHealthCheck() HealthCheck { return HealthCheck{}.WithDefaults() }

// WithDefaults returns hc with ALB's defaults (awsrules') filled in for
// zero fields; the protocol defaults to HTTP.
func (hc HealthCheck) WithDefaults() HealthCheck {
	if hc.Protocol == "" {
		hc.Protocol = "HTTP"
	}
	if hc.Path == "" {
		hc.Path = awsrules.DefaultHealthCheckPath
	}
	if hc.Port == "" {
		hc.Port = awsrules.DefaultHealthCheckPort
	}
	if hc.Interval <= 0 {
		hc.Interval = awsrules.DefaultHealthCheckInterval * time.Second
	}
	if hc.Timeout <= 0 {
		hc.Timeout = awsrules.DefaultHealthCheckTimeout * time.Second
	}
	if hc.HealthyThreshold <= 0 {
		hc.HealthyThreshold = awsrules.DefaultHealthyThreshold
	}
	if hc.UnhealthyThreshold <= 0 {
		hc.UnhealthyThreshold = awsrules.DefaultUnhealthyThreshold
	}
	if hc.Matcher == "" {
		hc.Matcher = awsrules.DefaultMatcher
	}
	return hc
}

// accepts reports whether the health check's matcher accepts HTTP status
// code (awsrules.ParseMatcher); a matcher that does not parse accepts
// none, as on ALB.
func (hc HealthCheck) accepts(code int) bool {
	m, err := awsrules.ParseMatcher(hc.Matcher)
	return err == nil && m.Matches(code)
}
