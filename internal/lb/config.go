// Package lb is moat's application load balancer: listeners, ALB listener
// rules, and a reverse proxy for HTTP/1.1 (a hand-written hot path with a
// keep-alive upstream pool), HTTP/1.1 and HTTP/2 over TLS (the same request
// path, forward.go), WebSocket and streaming responses, in front of targetgroup target groups. Rule matching is pure;
// upstream connections are opened through an injected dial function so
// the integrator can make them leave from the load balancer's namespace.
package lb

import (
	"fmt"
	"time"

	"github.com/moat-dev/moat/internal/targetgroup"
)

// Config is the whole load balancer: listeners and target groups.
type Config struct {
	Listeners    []Listener
	TargetGroups []targetgroup.Config // by Name
	IdleTimeout  time.Duration        // default 60s (ALB's idle timeout), applies to WebSockets
	// HeaderTimeout bounds reading one request head once its first byte
	// arrived (slowloris); default 10s.
	HeaderTimeout time.Duration
	// ConnectTimeout bounds opening a connection to a target; default
	// 10s, ALB's target connection timeout. A target that does not accept
	// in time is a 504 (after the retries on other targets).
	ConnectTimeout time.Duration
}

// DefaultConnectTimeout is ALB's target connection timeout.
const DefaultConnectTimeout = 10 * time.Second

// Listener is one ALB listener.
type Listener struct {
	Name          string // unique; default Address
	Address       string // host:port to listen on
	Protocol      string // HTTP (default) or HTTPS
	CertFile      string // HTTPS; empty: a generated self-signed certificate
	KeyFile       string
	DefaultAction Action
	Rules         []Rule
}

// Rule is an ALB listener rule: all conditions must match; the lowest
// priority number wins.
type Rule struct {
	Priority   int
	Conditions []Condition
	Action     Action
}

// Condition fields, as ALB names them.
const (
	FieldHostHeader  = "host-header"
	FieldPathPattern = "path-pattern"
	FieldHTTPHeader  = "http-header"
	FieldMethod      = "http-request-method"
	FieldQueryString = "query-string"
	FieldSourceIP    = "source-ip"
)

// Condition is one rule condition. Values match with ALB's wildcards (*
// any run, ? one character); host-header, header values and query strings
// match case-insensitively, paths case-sensitively, methods exactly.
type Condition struct {
	Field      string
	Values     []string   // any of them matches
	HeaderName string     // http-header
	Query      []KeyValue // query-string: any pair matches; empty Key matches any key
}

// KeyValue is a query-string condition pair.
type KeyValue struct{ Key, Value string }

// Action types.
const (
	ActionForward  = "forward"
	ActionRedirect = "redirect"
	ActionFixed    = "fixed-response"
)

// Action is what a rule does.
type Action struct {
	Type     string
	Forward  []WeightedGroup // forward: one or several weighted target groups
	Redirect Redirect
	Fixed    FixedResponse
}

// WeightedGroup is a forward target with its weight (default 1).
type WeightedGroup struct {
	TargetGroup string
	Weight      int
}

// Redirect is a redirect action; fields may use #{protocol}, #{host},
// #{port}, #{path} and #{query}; empty fields keep the request's value.
type Redirect struct {
	Protocol, Host, Port, Path, Query string
	StatusCode                        int // 301 (HTTP_301) or 302 (HTTP_302); default 302
}

// FixedResponse is a fixed-response action.
type FixedResponse struct {
	StatusCode  int
	ContentType string
	Body        string
}

// Validate checks references and values.
func (c Config) Validate() error {
	tgs := map[string]bool{}
	for _, tg := range c.TargetGroups {
		if tg.Name == "" {
			return fmt.Errorf("invalid target group: empty name")
		}
		tgs[tg.Name] = true
	}
	check := func(where string, a Action) error {
		switch a.Type {
		case ActionForward:
			if len(a.Forward) == 0 {
				return fmt.Errorf("%s: forward action without target groups", where)
			}
			for _, f := range a.Forward {
				if !tgs[f.TargetGroup] {
					return fmt.Errorf("%s: unknown target group %q", where, f.TargetGroup)
				}
			}
		case ActionRedirect:
			if s := a.Redirect.StatusCode; s != 0 && s != 301 && s != 302 {
				return fmt.Errorf("%s: redirect status %d: want 301 or 302", where, s)
			}
		case ActionFixed:
			if s := a.Fixed.StatusCode; s < 200 || s > 599 {
				return fmt.Errorf("%s: fixed-response status %d: want 2XX, 4XX or 5XX", where, s)
			}
		default:
			return fmt.Errorf("%s: unknown action type %q", where, a.Type)
		}
		return nil
	}
	for _, l := range c.Listeners {
		if err := check("listener "+l.Address+" default action", l.DefaultAction); err != nil {
			return err
		}
		seen := map[int]bool{}
		for _, r := range l.Rules {
			if r.Priority < 1 || r.Priority > 50000 || seen[r.Priority] {
				return fmt.Errorf("listener %s: rule priority %d: must be unique and 1-50000", l.Address, r.Priority)
			}
			seen[r.Priority] = true
			if err := check(fmt.Sprintf("listener %s rule %d", l.Address, r.Priority), r.Action); err != nil {
				return err
			}
		}
	}
	return nil
}
