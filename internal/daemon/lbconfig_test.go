package daemon

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/lb"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
	"github.com/moat-dev/moat/internal/targetgroup"
)

func TestLBConfigFromExample(t *testing.T) {
	p := examplePlan(t)
	cfg := lbConfig(p, p.LoadBalancers[0])
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the example's load balancer config is invalid: %v", err)
	}
	if len(cfg.Listeners) != 1 || cfg.Listeners[0].Address != "127.0.0.1:8080" || cfg.Listeners[0].Name != "HTTP:80" {
		t.Fatalf("listeners %+v", cfg.Listeners)
	}
	want := targetgroup.Config{Name: "web", DeregistrationDelay: 10 * time.Second, Algorithm: targetgroup.RoundRobin,
		HealthCheck: targetgroup.HealthCheck{Protocol: "HTTP", Path: "/health", Port: "traffic-port", Interval: 5 * time.Second,
			Timeout: 2 * time.Second, HealthyThreshold: 2, UnhealthyThreshold: 2, Matcher: "200"}}
	if len(cfg.TargetGroups) != 1 || !reflect.DeepEqual(cfg.TargetGroups[0], want) {
		t.Fatalf("target groups %+v\nwant %+v", cfg.TargetGroups, want)
	}
}

func TestLBActionsAndConditions(t *testing.T) {
	tests := []struct {
		name string
		in   spec.Action
		want lb.Action
	}{
		{"forward one", spec.Action{Forward: &spec.Forward{TargetGroup: "web"}},
			lb.Action{Type: lb.ActionForward, Forward: []lb.WeightedGroup{{TargetGroup: "web", Weight: 1}}}},
		{"forward weighted", spec.Action{Forward: &spec.Forward{TargetGroups: []spec.WeightedTarget{{Name: "blue", Weight: 90}, {Name: "green", Weight: 10}}}},
			lb.Action{Type: lb.ActionForward, Forward: []lb.WeightedGroup{{TargetGroup: "blue", Weight: 90}, {TargetGroup: "green", Weight: 10}}}},
		{"redirect 301", spec.Action{Redirect: &spec.Redirect{Protocol: "HTTPS", Port: "443", StatusCode: "HTTP_301"}},
			lb.Action{Type: lb.ActionRedirect, Redirect: lb.Redirect{Protocol: "HTTPS", Port: "443", StatusCode: 301}}},
		{"redirect 302", spec.Action{Redirect: &spec.Redirect{Path: "/new", StatusCode: "HTTP_302"}},
			lb.Action{Type: lb.ActionRedirect, Redirect: lb.Redirect{Path: "/new", StatusCode: 302}}},
		{"fixed", spec.Action{FixedResponse: &spec.FixedResponse{StatusCode: 403, ContentType: "text/plain", MessageBody: "no"}},
			lb.Action{Type: lb.ActionFixed, Fixed: lb.FixedResponse{StatusCode: 403, ContentType: "text/plain", Body: "no"}}},
	}
	for _, tc := range tests {
		if got := lbAction(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}

	conds := lbConditions(spec.Conditions{
		HostHeader: []string{"*.example.com"}, PathPattern: []string{"/api/*"},
		HTTPHeader:        &spec.HeaderCondition{Name: "X-Env", Values: []string{"beta"}},
		HTTPRequestMethod: []string{"GET", "HEAD"}, QueryString: []spec.KeyValue{{Key: "v", Value: "2"}},
		SourceIP: []string{"127.0.0.0/8"},
	})
	wantConds := []lb.Condition{
		{Field: lb.FieldHostHeader, Values: []string{"*.example.com"}},
		{Field: lb.FieldPathPattern, Values: []string{"/api/*"}},
		{Field: lb.FieldHTTPHeader, HeaderName: "X-Env", Values: []string{"beta"}},
		{Field: lb.FieldMethod, Values: []string{"GET", "HEAD"}},
		{Field: lb.FieldQueryString, Query: []lb.KeyValue{{Key: "v", Value: "2"}}},
		{Field: lb.FieldSourceIP, Values: []string{"127.0.0.0/8"}},
	}
	if !reflect.DeepEqual(conds, wantConds) {
		t.Errorf("conditions %+v\nwant %+v", conds, wantConds)
	}
}

func TestTGConfigZeroDelayAndStickiness(t *testing.T) {
	c := tgConfig(plan.TargetGroup{Name: "t", Port: 80, Algorithm: "least_outstanding_requests",
		HealthCheck: plan.HealthCheck{Port: 8081},
		Stickiness:  &plan.Stickiness{Type: "app_cookie", Duration: time.Hour, CookieName: "SID"}})
	if c.DeregistrationDelay >= 0 {
		t.Errorf("a deregistration delay of 0 s must reach the engine as 'none' (negative), got %v", c.DeregistrationDelay)
	}
	if c.HealthCheck.Port != "8081" || c.Algorithm != targetgroup.LeastOutstanding {
		t.Errorf("health check port %q, algorithm %q", c.HealthCheck.Port, c.Algorithm)
	}
	if c.Stickiness != (targetgroup.Stickiness{Type: "app_cookie", Duration: time.Hour, AppCookieName: "SID"}) {
		t.Errorf("stickiness %+v", c.Stickiness)
	}
}

// TestLocalRedirects: a redirect to another listener of the same load
// balancer goes to that listener's published port.
func TestLocalRedirects(t *testing.T) {
	p := examplePlan(t)
	l := p.LoadBalancers[0]
	https := l.Listeners[0]
	https.Port, https.Protocol, https.Publish = 443, "HTTPS", netip.MustParseAddrPort("127.0.0.1:8443")
	l.Listeners[0].DefaultAction = spec.Action{Redirect: &spec.Redirect{Protocol: "HTTPS", Port: "443", StatusCode: "HTTP_301"}}
	l.Listeners[0].Rules = []spec.ListenerRule{{Priority: 1, Action: spec.Action{Redirect: &spec.Redirect{Port: "9999"}}}}
	l.Listeners = append(l.Listeners, https)
	cfg := lbConfig(p, l)
	if got := cfg.Listeners[0].DefaultAction.Redirect.Port; got != "8443" {
		t.Errorf("redirect to listener 443 goes to port %q, want its published 8443", got)
	}
	if got := cfg.Listeners[0].Rules[0].Action.Redirect.Port; got != "9999" {
		t.Errorf("redirect to a port no listener has was rewritten to %q", got)
	}
}
