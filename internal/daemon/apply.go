package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/autoscale"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/plan"
)

// planDiff is what differs between the running plan and a new one.
type planDiff struct {
	// live are changes applied without a restart: security group rules,
	// network ACLs, load balancer listeners' rules and actions, target
	// group settings, launch templates (an instance refresh) and auto
	// scaling group settings.
	live []string
	// restart are changes that need moat down and up: the network, key
	// pairs, the bastion, published addresses, which security groups a
	// node is in, and which groups, load balancers or target groups exist.
	restart []string
	// securityGroups are the security groups whose rules changed (applied
	// live to every node, as AWS does), added or removed.
	securityGroups []string
	// networkACLs says whether network ACLs or their subnets changed
	// (applied live in the router, as AWS does).
	networkACLs bool
}

// diffPlans compares the running plan with a new one. Pure.
func diffPlans(old, new *plan.Plan) planDiff {
	var d planDiff
	same := func(what string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			d.restart = append(d.restart, what)
		}
	}
	same("the stack name", old.Stack, new.Stack)
	same("the VPC", old.VPC, new.VPC)
	same("the zones", old.Zones, new.Zones)
	same("the subnets", withoutACL(old.Subnets), withoutACL(new.Subnets))
	same("the route tables", old.RouteTables, new.RouteTables)
	same("the NAT gateways", old.NATGateways, new.NATGateways)
	same("the key pairs", old.KeyPairs, new.KeyPairs)
	same("the bastion", old.Bastion, new.Bastion)
	same("the published endpoints", old.Endpoints, new.Endpoints)
	same("the local section", old.Local, new.Local)
	same("the set of target groups", names(old.TargetGroups, tgName), names(new.TargetGroups, tgName))
	same("the set of auto scaling groups", names(old.AutoScalingGroups, asgName), names(new.AutoScalingGroups, asgName))
	same("the set of launch templates", names(old.LaunchTemplates, ltName), names(new.LaunchTemplates, ltName))
	same("the set of load balancers", names(old.LoadBalancers, lbName), names(new.LoadBalancers, lbName))
	if len(d.restart) > 0 {
		return d
	}
	diffByName(old.SecurityGroups, new.SecurityGroups, func(g plan.SecurityGroup) string { return g.Name },
		func(o, g plan.SecurityGroup) string {
			if !reflect.DeepEqual(o, g) {
				return "rules"
			}
			return ""
		},
		func(name, what string) {
			d.live = append(d.live, "security group "+name+": "+what)
			d.securityGroups = append(d.securityGroups, name)
		})
	diffByName(old.NetworkACLs, new.NetworkACLs, func(a plan.NetworkACL) string { return a.Name },
		func(o, a plan.NetworkACL) string {
			switch {
			case !reflect.DeepEqual(o.Subnets, a.Subnets):
				return "subnets"
			case !reflect.DeepEqual(o, a):
				return "entries"
			}
			return ""
		},
		func(name, what string) {
			d.live = append(d.live, "network ACL "+name+": "+what)
			d.networkACLs = true
		})
	for i, l := range new.LoadBalancers {
		o := old.LoadBalancers[i]
		if !reflect.DeepEqual(o.Nodes, l.Nodes) || !reflect.DeepEqual(o.SecurityGroups, l.SecurityGroups) {
			d.restart = append(d.restart, "load balancer "+l.Name+"'s subnets or security groups")
			continue
		}
		if !reflect.DeepEqual(o.Listeners, l.Listeners) || o.IdleTimeout != l.IdleTimeout {
			d.live = append(d.live, "load balancer "+l.Name+": listeners, rules or idle timeout")
		}
	}
	for i, tg := range new.TargetGroups {
		o := old.TargetGroups[i]
		if o.Port != tg.Port || o.Protocol != tg.Protocol {
			d.restart = append(d.restart, "target group "+tg.Name+"'s protocol or port")
			continue
		}
		if !reflect.DeepEqual(o, tg) {
			d.live = append(d.live, "target group "+tg.Name+": settings")
		}
	}
	for i, lt := range new.LaunchTemplates {
		if o := old.LaunchTemplates[i]; o.Version != lt.Version {
			if !reflect.DeepEqual(o.SecurityGroups, lt.SecurityGroups) {
				d.restart = append(d.restart, "launch template "+lt.Name+"'s security groups")
				continue
			}
			d.live = append(d.live, fmt.Sprintf("launch template %s: version %s -> %s (instance refresh)", lt.Name, o.Version, lt.Version))
		}
	}
	for i, g := range new.AutoScalingGroups {
		o := old.AutoScalingGroups[i]
		if !reflect.DeepEqual(o.TargetGroups, g.TargetGroups) || o.LaunchTemplate != g.LaunchTemplate {
			d.restart = append(d.restart, "auto scaling group "+g.Name+"'s target groups or launch template")
			continue
		}
		if !reflect.DeepEqual(o, g) {
			d.live = append(d.live, "auto scaling group "+g.Name+": settings")
		}
	}
	return d
}

// withoutACL is the subnets without their network ACL association, which
// changes live.
func withoutACL(subnets []plan.Subnet) []plan.Subnet {
	out := slices.Clone(subnets)
	for i := range out {
		out[i].NetworkACL = ""
	}
	return out
}

func names[T any](list []T, name func(T) string) []string {
	out := []string{}
	for _, x := range list {
		out = append(out, name(x))
	}
	return out
}

func tgName(t plan.TargetGroup) string       { return t.Name }
func asgName(g plan.AutoScalingGroup) string { return g.Name }
func ltName(l plan.LaunchTemplate) string    { return l.Name }
func lbName(l plan.LoadBalancer) string      { return l.Name }

// handleApply applies a changed plan to the running stack: live where
// AWS would update in place, refused (with what changed) where the
// network itself would have to be rebuilt.
func (s *stack) handleApply(w http.ResponseWriter, r *http.Request) {
	var np plan.Plan
	if err := json.NewDecoder(r.Body).Decode(&np); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode plan: %w", err))
		return
	}
	res, err := s.apply(r.Context(), &np)
	if err != nil {
		writeError(w, http.StatusConflict, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *stack) apply(ctx context.Context, np *plan.Plan) (api.ApplyResult, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	old := s.current()
	d := diffPlans(old, np)
	if len(d.restart) > 0 {
		return api.ApplyResult{}, fmt.Errorf("these changes need the stack rebuilt (moat down, then moat up): %v", d.restart)
	}
	res := api.ApplyResult{Changes: d.live}
	if len(d.live) == 0 {
		return res, nil
	}
	// Validate everything before changing anything.
	type groupUpdate struct {
		rt  *groupRuntime
		cfg autoscale.Group
		g   plan.AutoScalingGroup
		lt  plan.LaunchTemplate
		tgs []plan.TargetGroup
	}
	var updates []groupUpdate
	for _, g := range np.AutoScalingGroups {
		lt, _ := np.LaunchTemplate(g.LaunchTemplate)
		cfg, err := autoscale.FromPlan(g, np.Local.MetricPeriod, lt.Version)
		if err != nil {
			return api.ApplyResult{}, fmt.Errorf("group %s: %w", g.Name, err)
		}
		if err := cfg.Validate(); err != nil {
			return api.ApplyResult{}, fmt.Errorf("group %s: %w", g.Name, err)
		}
		var tgs []plan.TargetGroup
		for _, name := range g.TargetGroups {
			if tg, ok := np.TargetGroup(name); ok {
				tgs = append(tgs, tg)
			}
		}
		updates = append(updates, groupUpdate{rt: s.group(g.Name), cfg: cfg, g: g, lt: lt, tgs: tgs})
	}
	for _, l := range np.LoadBalancers {
		if err := lbConfig(np, l).Validate(); err != nil {
			return api.ApplyResult{}, fmt.Errorf("load balancer %s: %w", l.Name, err)
		}
	}
	if len(d.securityGroups) > 0 {
		nodes, err := s.network().UpdateSecurityGroups(ctx, np.SecurityGroups)
		if err != nil {
			return api.ApplyResult{}, err
		}
		groups := strings.Join(d.securityGroups, ", ")
		s.events.Add(events.Event{Component: "vpc", Type: "vpc.securitygroups",
			Message: fmt.Sprintf("Security group rules replaced on %d node(s): %s changed", len(nodes), groups),
			Fields:  map[string]string{"groups": groups, "nodes": strings.Join(nodes, ", ")}})
	}
	if d.networkACLs {
		if _, err := s.network().UpdateNetworkACLs(ctx, np.NetworkACLs); err != nil {
			return api.ApplyResult{}, err
		}
		s.event("vpc", "vpc.networkacls", "Network ACLs replaced in the VPC router (%d custom)", len(np.NetworkACLs))
	}
	for _, l := range np.LoadBalancers {
		if b := s.balancer(l.Name); b != nil {
			if err := b.engine.Apply(lbConfig(np, l)); err != nil {
				return api.ApplyResult{}, fmt.Errorf("load balancer %s: %w", l.Name, err)
			}
		}
	}
	now := time.Now()
	for _, u := range updates {
		if u.rt == nil {
			continue
		}
		u.rt.mu.Lock()
		if u.rt.lt.Version == u.lt.Version {
			// Unchanged template: keep the version instances run (a manual
			// refresh gives it a new generation), so nothing is replaced.
			u.cfg.LaunchTemplateVersion = u.rt.ctrl.Group().LaunchTemplateVersion
		}
		err := u.rt.ctrl.Update(u.cfg, now)
		if err == nil {
			u.rt.cfg, u.rt.lt, u.rt.tgs = u.g, u.lt, u.tgs
		}
		u.rt.mu.Unlock()
		if err != nil {
			return api.ApplyResult{}, fmt.Errorf("group %s: %w", u.g.Name, err)
		}
		u.rt.kick()
	}
	s.planMu.Lock()
	s.livePlan = np
	s.planMu.Unlock()
	if b, err := json.MarshalIndent(np, "", "  "); err == nil {
		_ = os.WriteFile(s.dir.Path("plan.json"), b, 0o600)
	}
	for _, c := range d.live {
		s.event("daemon", "stack.apply", "Applied: %s", c)
	}
	return res, nil
}

// current is the plan the stack runs now (the last one applied).
func (s *stack) current() *plan.Plan {
	s.planMu.Lock()
	defer s.planMu.Unlock()
	if s.livePlan != nil {
		return s.livePlan
	}
	return s.plan
}

// diffByName compares two named lists and reports each name that was
// added, removed (in name order, after the others), or changed (what
// changed says how, "" for unchanged).
func diffByName[T any](old, new []T, name func(T) string, changed func(o, n T) string, report func(name, what string)) {
	olds := make(map[string]T, len(old))
	for _, o := range old {
		olds[name(o)] = o
	}
	for _, n := range new {
		if o, ok := olds[name(n)]; !ok {
			report(name(n), "added")
		} else if what := changed(o, n); what != "" {
			report(name(n), what)
		}
		delete(olds, name(n))
	}
	for _, k := range slices.Sorted(maps.Keys(olds)) {
		report(k, "removed")
	}
}
