package awscfn

// Scaling rules: request-count policies name a load balancer and target
// group that a listener connects, and wait for that listener.

import (
	"strings"
)

// resourceLabels checks every ALBRequestCountPerTarget policy: its resource
// label joins a load balancer and a target group that one of the load
// balancer's listeners forwards to, and the policy depends (directly or
// through its auto scaling group) on such a listener, so CloudFormation
// does not create it before the two are associated.
func (v *validator) resourceLabels() {
	deps := map[string][]string{}
	for _, rf := range v.allRefs() {
		if _, ok := v.res[rf.to]; ok && rf.from != "" {
			deps[rf.from] = append(deps[rf.from], rf.to)
		}
	}
	dependsOn := func(from string, targets map[string]bool) bool {
		seen := map[string]bool{}
		stack := []string{from}
		for len(stack) > 0 {
			id := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[id] {
				continue
			}
			seen[id] = true
			if targets[id] && id != from {
				return true
			}
			stack = append(stack, deps[id]...)
		}
		return false
	}
	listenerLB := map[string]string{}
	for _, l := range v.ofType("AWS::ElasticLoadBalancingV2::Listener") {
		listenerLB[l.ID] = refTarget(l.Properties["LoadBalancerArn"])
	}
	// forwarders[lb/tg] = listeners and rules of lb that forward to tg.
	forwarders := map[string]map[string]bool{}
	note := func(id, lb string, action any) {
		m, _ := action.(map[string]any)
		tgs := []string{refTarget(m["TargetGroupArn"])}
		if fc, ok := m["ForwardConfig"].(map[string]any); ok {
			for _, w := range list(fc["TargetGroups"]) {
				wm, _ := w.(map[string]any)
				tgs = append(tgs, refTarget(wm["TargetGroupArn"]))
			}
		}
		for _, tg := range tgs {
			if tg == "" {
				continue
			}
			k := lb + "/" + tg
			if forwarders[k] == nil {
				forwarders[k] = map[string]bool{}
			}
			forwarders[k][id] = true
		}
	}
	for _, l := range v.ofType("AWS::ElasticLoadBalancingV2::Listener") {
		for _, a := range list(l.Properties["DefaultActions"]) {
			note(l.ID, listenerLB[l.ID], a)
		}
	}
	for _, lr := range v.ofType("AWS::ElasticLoadBalancingV2::ListenerRule") {
		for _, a := range list(lr.Properties["Actions"]) {
			note(lr.ID, listenerLB[refTarget(lr.Properties["ListenerArn"])], a)
		}
	}
	for _, sp := range v.ofType("AWS::AutoScaling::ScalingPolicy") {
		tt, _ := sp.Properties["TargetTrackingConfiguration"].(map[string]any)
		pm, _ := tt["PredefinedMetricSpecification"].(map[string]any)
		if str(pm["PredefinedMetricType"]) != "ALBRequestCountPerTarget" {
			continue
		}
		path := sp.ID + ".Properties.TargetTrackingConfiguration.PredefinedMetricSpecification.ResourceLabel"
		rl, _ := pm["ResourceLabel"].(map[string]any)
		j := list(rl["Fn::Join"])
		var parts []any
		if len(j) == 2 && str(j[0]) == "/" {
			parts = list(j[1])
		}
		if len(parts) != 2 {
			v.addf(path, "ALBRequestCountPerTarget needs ResourceLabel: Fn::Join [\"/\", [!GetAtt LB.LoadBalancerFullName, !GetAtt TG.TargetGroupFullName]]")
			continue
		}
		lbm, _ := parts[0].(map[string]any)
		tgm, _ := parts[1].(map[string]any)
		lb, lbAttr := getAttArgs(lbm["Fn::GetAtt"])
		tg, tgAttr := getAttArgs(tgm["Fn::GetAtt"])
		if lbAttr != "LoadBalancerFullName" || tgAttr != "TargetGroupFullName" {
			v.addf(path, "the label must join LoadBalancerFullName and TargetGroupFullName, not %q and %q", lbAttr, tgAttr)
			continue
		}
		fw := forwarders[lb+"/"+tg]
		if len(fw) == 0 {
			v.addf(path, "no listener of %s forwards to %s, so the label names no load balancer/target group pair", lb, tg)
			continue
		}
		if !dependsOn(sp.ID, fw) {
			v.addf(sp.ID+".DependsOn", "depends on none of %s: CloudFormation may create the policy before %s and %s are associated",
				strings.Join(sortedKeys(fw), ", "), lb, tg)
		}
	}
}
