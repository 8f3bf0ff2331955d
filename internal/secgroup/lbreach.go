package secgroup

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
)

// LBTarget is one registered target of a target group: where it is and,
// on a running stack, its health as the load balancer sees it.
type LBTarget struct {
	TargetGroup string     `json:"targetGroup"`
	ID          string     `json:"id"` // the node: an instance id
	Addr        netip.Addr `json:"addr"`
	Port        int        `json:"port"`
	// State is ALB's target state (healthy, unhealthy, initial, draining,
	// unused); "" when unknown (the stack is not running).
	State       string `json:"state,omitempty"`
	Reason      string `json:"reason,omitempty"` // ALB's reason code: Target.Timeout, ...
	Description string `json:"description,omitempty"`
}

// Health renders the target's health for humans.
func (t LBTarget) Health() string {
	switch {
	case t.State == "":
		return "unknown (stack not running)"
	case t.Reason == "":
		return t.State
	case t.Description == "":
		return fmt.Sprintf("%s (%s)", t.State, t.Reason)
	}
	return fmt.Sprintf("%s (%s: %s)", t.State, t.Reason, t.Description)
}

// OfflineTargets are the targets assumed without a running stack: for
// each target group, the hypothetical instance of each auto scaling group
// that registers in it, on the target group's port, health unknown.
func OfflineTargets(p *plan.Plan, m Membership) []LBTarget {
	var out []LBTarget
	for _, tg := range p.TargetGroups {
		for _, n := range m.Members {
			if n.Kind == KindInstance && slices.Contains(tg.AutoScalingGroups, n.Owner) {
				out = append(out, LBTarget{TargetGroup: tg.Name, ID: n.Name, Addr: n.Addr, Port: tg.Port})
			}
		}
	}
	return out
}

// LBVerdict is ReachLB's answer: the way from a source through one of a
// load balancer's listeners to each target it forwards to.
type LBVerdict struct {
	Allowed      bool   `json:"allowed"`
	From         string `json:"from"`
	LoadBalancer string `json:"loadBalancer"`
	Port         int    `json:"port"`
	// Listener is "HTTP:80", or "" when the load balancer has none on Port.
	Listener string `json:"listener,omitempty"`
	// Routes are the listener's rules by priority, then its default
	// action.
	Routes []LBRoute `json:"routes,omitempty"`
	// Front is the source to each node of the load balancer on the
	// listener's port (a client may land on any of them).
	Front []Verdict `json:"front"`
	// Targets are the targets of the target groups the routes forward to,
	// each with the hops from every node of the load balancer.
	Targets []LBPath `json:"targets,omitempty"`
	// Reason is the first blocker's words, or "allowed".
	Reason string `json:"reason"`
	Fix    string `json:"fix,omitempty"`
	// Blockers: everything that stops some request, each prefixed with
	// its hop; empty when allowed.
	Blockers []Blocker `json:"blockers,omitempty"`
}

// LBRoute is one listener rule (or the default action) and where it sends
// requests.
type LBRoute struct {
	Rule         string   `json:"rule"`   // "priority 10: path-pattern /api/*", or "default"
	Action       string   `json:"action"` // "forward to target group web", "fixed response 200", ...
	TargetGroups []string `json:"targetGroups,omitempty"`
}

// LBPath is one target and the load balancer's way to it.
type LBPath struct {
	LBTarget
	// Health as the load balancer sees it, in words.
	Health string `json:"health"`
	// Hops are each load balancer node to the target on the target
	// group's port, then on the health check port when that differs.
	Hops    []Verdict `json:"hops"`
	Allowed bool      `json:"allowed"`
}

// ReachLB follows a connection from a source to load balancer lbName's
// listener on port, as ALB does: the source to each load balancer node
// (route, network ACLs both ways, the load balancer's security groups),
// the listener's rules to their target groups, and each load balancer
// node to each registered target (network ACLs both ways, the node's
// egress and the target's ingress), on the traffic port and on the health
// check port. targets are the registered targets with their health (live,
// or OfflineTargets). Allowed when every hop is; every blocker of every
// hop is listed.
func ReachLB(p *plan.Plan, m Membership, from Endpoint, lbName string, port int, targets []LBTarget) LBVerdict {
	v := LBVerdict{From: from.String(), LoadBalancer: lbName, Port: port}
	block := func(b Blocker) { v.Blockers = append(v.Blockers, b) }
	hop := func(h Verdict, what string) {
		for _, b := range h.Blockers {
			b.Message = fmt.Sprintf("%s -> %s %s: %s", h.From, h.To, what, b.Message)
			block(b)
		}
		if !h.Allowed && len(h.Blockers) == 0 {
			fix := h.Fix
			if fix == "" {
				fix = "see moat targets and moat ps: the load balancer sends to an address no node of the VPC holds"
			}
			block(Blocker{Message: fmt.Sprintf("%s -> %s %s: %s", h.From, h.To, what, h.Reason), Fix: fix})
		}
	}
	lb, ok := p.LoadBalancer(lbName)
	if !ok {
		block(Blocker{Message: "no load balancer named " + lbName})
		return v.finish()
	}
	var nodes []Member
	for _, n := range m.Members {
		if n.Kind == KindLoadBalancer && n.Owner == lbName {
			nodes = append(nodes, n)
		}
	}
	i := slices.IndexFunc(lb.Listeners, func(l plan.Listener) bool { return l.Port == port })
	if i < 0 && len(lb.Listeners) == 0 {
		block(Blocker{Message: fmt.Sprintf("load balancer %s has no listeners", lbName), Fix: "add a listener to load balancer " + lbName})
		return v.finish()
	}
	if i < 0 {
		var ports []string
		for _, l := range lb.Listeners {
			ports = append(ports, fmt.Sprint(l.Port))
		}
		block(Blocker{Message: fmt.Sprintf("load balancer %s has no listener on port %d (it listens on %s)", lbName, port, strings.Join(ports, ", ")),
			Fix: fmt.Sprintf("add a listener on port %d to load balancer %s, or ask for lb:%s:%s", port, lbName, lbName, ports[0])})
		return v.finish()
	}
	l := lb.Listeners[i]
	v.Listener = fmt.Sprintf("%s:%d", l.Protocol, l.Port)
	for _, n := range nodes {
		h := Reach(p, m, from, nodeEndpoint(n), plan.ProtoTCP, port)
		v.Front = append(v.Front, h)
		hop(h, fmt.Sprintf("tcp %d", port))
	}

	// Listener -> rules -> target groups.
	var groups []string
	for _, r := range l.Rules {
		v.Routes = append(v.Routes, route(fmt.Sprintf("priority %d: %s", r.Priority, conditions(r.Conditions)), r.Action))
	}
	v.Routes = append(v.Routes, route("default", l.DefaultAction))
	for _, r := range v.Routes {
		for _, g := range r.TargetGroups {
			if !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		}
	}

	// Each node to each target.
	for _, g := range groups {
		tg, _ := p.TargetGroup(g)
		n := 0
		for _, t := range targets {
			if t.TargetGroup != g {
				continue
			}
			n++
			path := LBPath{LBTarget: t, Health: t.Health(), Allowed: true}
			to := Endpoint{Kind: EndpointAddress, Addr: t.Addr}
			if tm, ok := m.ByAddr(t.Addr); ok {
				to = nodeEndpoint(tm)
			}
			ports := []int{t.Port}
			if hc := tg.HealthCheck.Port; hc != 0 && hc != t.Port {
				ports = append(ports, hc)
			}
			for _, ln := range nodes {
				for k, port := range ports {
					h := Reach(p, m, nodeEndpoint(ln), to, plan.ProtoTCP, port)
					path.Hops = append(path.Hops, h)
					path.Allowed = path.Allowed && h.Allowed
					what := fmt.Sprintf("tcp %d (target group %s)", port, g)
					if k > 0 {
						what = fmt.Sprintf("tcp %d (target group %s's health check)", port, g)
					}
					hop(h, what)
				}
			}
			v.Targets = append(v.Targets, path)
		}
		if n == 0 {
			block(Blocker{Message: fmt.Sprintf("target group %s has no registered targets", g),
				Fix: fmt.Sprintf("list target group %s in an auto scaling group's targetGroups, with a desiredCapacity above 0", g)})
		}
	}
	return v.finish()
}

func (v LBVerdict) finish() LBVerdict {
	if len(v.Blockers) > 0 {
		v.Reason, v.Fix = v.Blockers[0].Message, v.Blockers[0].Fix
		return v
	}
	v.Allowed, v.Reason = true, "allowed"
	return v
}

// route describes a listener action and the target groups it forwards to.
func route(rule string, a spec.Action) LBRoute {
	r := LBRoute{Rule: rule}
	switch {
	case a.Forward != nil && a.Forward.TargetGroup != "":
		r.TargetGroups = []string{a.Forward.TargetGroup}
		r.Action = "forward to target group " + a.Forward.TargetGroup
	case a.Forward != nil:
		var ws []string
		for _, w := range a.Forward.TargetGroups {
			if w.Weight > 0 {
				r.TargetGroups = append(r.TargetGroups, w.Name)
			}
			ws = append(ws, fmt.Sprintf("%s (weight %d)", w.Name, w.Weight))
		}
		r.Action = "forward to target groups " + strings.Join(ws, ", ")
	case a.Redirect != nil:
		r.Action = fmt.Sprintf("redirect %s (answered by the load balancer)", a.Redirect.StatusCode)
	case a.FixedResponse != nil:
		r.Action = fmt.Sprintf("fixed response %d (answered by the load balancer)", a.FixedResponse.StatusCode)
	}
	return r
}

// conditions renders a rule's conditions as ALB's console names them.
func conditions(c spec.Conditions) string {
	var out []string
	add := func(name string, vals []string) {
		if len(vals) > 0 {
			out = append(out, name+" "+strings.Join(vals, ","))
		}
	}
	add("host-header", c.HostHeader)
	add("path-pattern", c.PathPattern)
	if c.HTTPHeader != nil {
		add("http-header "+c.HTTPHeader.Name, c.HTTPHeader.Values)
	}
	add("http-request-method", c.HTTPRequestMethod)
	var qs []string
	for _, kv := range c.QueryString {
		qs = append(qs, kv.Key+"="+kv.Value)
	}
	add("query-string", qs)
	add("source-ip", c.SourceIP)
	if len(out) == 0 {
		return "(no conditions)"
	}
	return strings.Join(out, " and ")
}
