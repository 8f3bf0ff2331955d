package daemon

import (
	"strconv"

	"github.com/moat-dev/moat/internal/lb"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
	"github.com/moat-dev/moat/internal/targetgroup"
)

// lbConfig translates a planned load balancer into the engine's
// configuration: its listeners on their published loopback addresses and
// every target group they forward to. Pure.
func lbConfig(p *plan.Plan, l plan.LoadBalancer) lb.Config {
	cfg := lb.Config{IdleTimeout: l.IdleTimeout}
	seen := map[string]bool{}
	for _, ln := range l.Listeners {
		out := lb.Listener{Name: listenerName(ln), Address: ln.Publish.String(), Protocol: ln.Protocol,
			DefaultAction: lbAction(ln.DefaultAction)}
		if c := ln.Certificate; c != nil {
			out.CertFile, out.KeyFile = c.CertFile, c.KeyFile
		}
		for _, r := range ln.Rules {
			out.Rules = append(out.Rules, lb.Rule{Priority: r.Priority, Conditions: lbConditions(r.Conditions), Action: lbAction(r.Action)})
		}
		localRedirects(&out, l)
		cfg.Listeners = append(cfg.Listeners, out)
		for _, name := range ln.TargetGroups() {
			if seen[name] {
				continue
			}
			seen[name] = true
			if tg, ok := p.TargetGroup(name); ok {
				cfg.TargetGroups = append(cfg.TargetGroups, tgConfig(tg))
			}
		}
	}
	return cfg
}

// localRedirects rewrites redirects to another listener of the same load
// balancer (say HTTP:80 -> HTTPS:443) to that listener's published
// loopback port: locally port 443 is published on, e.g., 127.0.0.1:8443.
func localRedirects(out *lb.Listener, l plan.LoadBalancer) {
	published := map[string]string{}
	for _, ln := range l.Listeners {
		published[strconv.Itoa(ln.Port)] = strconv.Itoa(int(ln.Publish.Port()))
	}
	fix := func(a *lb.Action) {
		if a.Type != lb.ActionRedirect {
			return
		}
		if p, ok := published[a.Redirect.Port]; ok {
			a.Redirect.Port = p
		}
	}
	fix(&out.DefaultAction)
	for i := range out.Rules {
		fix(&out.Rules[i].Action)
	}
}

// listenerName names a listener by its port, as ALB's console does.
func listenerName(l plan.Listener) string { return l.Protocol + ":" + strconv.Itoa(l.Port) }

func tgConfig(tg plan.TargetGroup) targetgroup.Config {
	hc := targetgroup.HealthCheck{Protocol: tg.HealthCheck.Protocol, Path: tg.HealthCheck.Path, Port: "traffic-port",
		Interval: tg.HealthCheck.Interval, Timeout: tg.HealthCheck.Timeout,
		HealthyThreshold: tg.HealthCheck.HealthyThreshold, UnhealthyThreshold: tg.HealthCheck.UnhealthyThreshold,
		Matcher: tg.HealthCheck.Matcher}
	if tg.HealthCheck.Port != 0 {
		hc.Port = strconv.Itoa(tg.HealthCheck.Port)
	}
	c := targetgroup.Config{Name: tg.Name, HealthCheck: hc, DeregistrationDelay: tg.DeregistrationDelay,
		Algorithm: targetgroup.Algorithm(tg.Algorithm), SlowStart: tg.SlowStart}
	if c.DeregistrationDelay == 0 {
		c.DeregistrationDelay = -1 // the engine reads 0 as "default"; the plan's 0 is 0 s
	}
	if st := tg.Stickiness; st != nil {
		c.Stickiness = targetgroup.Stickiness{Type: st.Type, Duration: st.Duration, AppCookieName: st.CookieName}
	}
	return c
}

func lbAction(a spec.Action) lb.Action {
	switch {
	case a.Forward != nil:
		out := lb.Action{Type: lb.ActionForward}
		if a.Forward.TargetGroup != "" {
			out.Forward = append(out.Forward, lb.WeightedGroup{TargetGroup: a.Forward.TargetGroup, Weight: 1})
		}
		for _, w := range a.Forward.TargetGroups {
			out.Forward = append(out.Forward, lb.WeightedGroup{TargetGroup: w.Name, Weight: w.Weight})
		}
		return out
	case a.Redirect != nil:
		r := a.Redirect
		code := 302
		if r.StatusCode == "HTTP_301" {
			code = 301
		}
		return lb.Action{Type: lb.ActionRedirect, Redirect: lb.Redirect{Protocol: r.Protocol, Host: r.Host, Port: r.Port,
			Path: r.Path, Query: r.Query, StatusCode: code}}
	case a.FixedResponse != nil:
		f := a.FixedResponse
		return lb.Action{Type: lb.ActionFixed, Fixed: lb.FixedResponse{StatusCode: f.StatusCode, ContentType: f.ContentType, Body: f.MessageBody}}
	}
	return lb.Action{Type: lb.ActionFixed, Fixed: lb.FixedResponse{StatusCode: 503, ContentType: "text/plain", Body: "no action\n"}}
}

func lbConditions(c spec.Conditions) []lb.Condition {
	var out []lb.Condition
	if len(c.HostHeader) > 0 {
		out = append(out, lb.Condition{Field: lb.FieldHostHeader, Values: c.HostHeader})
	}
	if len(c.PathPattern) > 0 {
		out = append(out, lb.Condition{Field: lb.FieldPathPattern, Values: c.PathPattern})
	}
	if h := c.HTTPHeader; h != nil {
		out = append(out, lb.Condition{Field: lb.FieldHTTPHeader, HeaderName: h.Name, Values: h.Values})
	}
	if len(c.HTTPRequestMethod) > 0 {
		// Case-sensitive, as on ALB.
		out = append(out, lb.Condition{Field: lb.FieldMethod, Values: c.HTTPRequestMethod})
	}
	if len(c.QueryString) > 0 {
		var kv []lb.KeyValue
		for _, q := range c.QueryString {
			kv = append(kv, lb.KeyValue{Key: q.Key, Value: q.Value})
		}
		out = append(out, lb.Condition{Field: lb.FieldQueryString, Query: kv})
	}
	if len(c.SourceIP) > 0 {
		out = append(out, lb.Condition{Field: lb.FieldSourceIP, Values: c.SourceIP})
	}
	return out
}

// LBConfig is the engine configuration of the plan's load balancer name,
// for running it on its own, as the stack would (the ALB conformance
// suite runs it in front of loopback targets); false if there is none.
func LBConfig(p *plan.Plan, name string) (lb.Config, bool) {
	for _, l := range p.LoadBalancers {
		if l.Name == name {
			return lbConfig(p, l), true
		}
	}
	return lb.Config{}, false
}
