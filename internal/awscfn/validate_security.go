package awscfn

// Security group rules: what EC2 takes in rule descriptions, and whether
// the instances admit the load balancers that forward to them.

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/moat-dev/moat/internal/awsrules"
	"github.com/moat-dev/moat/internal/ec2facts"
)

// ruleDescriptions checks every security group rule's description, inline
// or a separate resource, against the characters EC2 takes (the group's
// own description is checked by its schema's pattern).
func (v *validator) ruleDescriptions() {
	check := func(path string, d any) {
		if s, ok := d.(string); ok {
			if err := ec2facts.CheckDescription(s); err != nil {
				v.addf(path, "%v", err)
			}
		}
	}
	for _, sg := range v.ofType("AWS::EC2::SecurityGroup") {
		for _, dir := range []string{"SecurityGroupIngress", "SecurityGroupEgress"} {
			for i, r := range list(sg.Properties[dir]) {
				if m, ok := r.(map[string]any); ok {
					check(fmt.Sprintf("%s.Properties.%s[%d].Description", sg.ID, dir, i), m["Description"])
				}
			}
		}
	}
	for _, typ := range []string{"AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress"} {
		for _, r := range v.ofType(typ) {
			check(r.ID+".Properties.Description", r.Properties["Description"])
		}
	}
}

// groupIngress collects each group's group-referencing ingress rules,
// inline and separate, by the group's logical id.
func (v *validator) groupIngress() map[string][]awsrules.Ingress {
	out := map[string][]awsrules.Ingress{}
	rule := func(group string, m map[string]any) {
		src := refTarget(m["SourceSecurityGroupId"])
		if src == "" {
			return
		}
		from, _ := strconv.Atoi(fmt.Sprint(m["FromPort"]))
		to, _ := strconv.Atoi(fmt.Sprint(m["ToPort"]))
		out[group] = append(out[group], awsrules.Ingress{Protocol: fmt.Sprint(m["IpProtocol"]), FromPort: from, ToPort: to, SourceGroup: src})
	}
	for _, sg := range v.ofType("AWS::EC2::SecurityGroup") {
		for _, in := range list(sg.Properties["SecurityGroupIngress"]) {
			if m, ok := in.(map[string]any); ok {
				rule(sg.ID, m)
			}
		}
	}
	for _, in := range v.ofType("AWS::EC2::SecurityGroupIngress") {
		rule(refTarget(in.Properties["GroupId"]), in.Properties)
	}
	return out
}

// targetPorts checks that the instances of every auto scaling group behind
// a load balancer admit the load balancer's group on the target group's
// port (and on the health check port, when it differs).
func (v *validator) targetPorts() {
	rules := v.groupIngress()
	// Target group -> load balancers forwarding to it.
	lbsOf := map[string][]string{}
	addTG := func(lb string, action any) {
		m, _ := action.(map[string]any)
		if tg := refTarget(m["TargetGroupArn"]); tg != "" {
			lbsOf[tg] = append(lbsOf[tg], lb)
		}
		if fc, ok := m["ForwardConfig"].(map[string]any); ok {
			for _, w := range list(fc["TargetGroups"]) {
				if wm, ok := w.(map[string]any); ok {
					if tg := refTarget(wm["TargetGroupArn"]); tg != "" {
						lbsOf[tg] = append(lbsOf[tg], lb)
					}
				}
			}
		}
	}
	listenerLB := map[string]string{}
	for _, l := range v.ofType("AWS::ElasticLoadBalancingV2::Listener") {
		lb := refTarget(l.Properties["LoadBalancerArn"])
		listenerLB[l.ID] = lb
		for _, a := range list(l.Properties["DefaultActions"]) {
			addTG(lb, a)
		}
	}
	for _, lr := range v.ofType("AWS::ElasticLoadBalancingV2::ListenerRule") {
		lb := listenerLB[refTarget(lr.Properties["ListenerArn"])]
		for _, a := range list(lr.Properties["Actions"]) {
			addTG(lb, a)
		}
	}
	for _, asg := range v.ofType("AWS::AutoScaling::AutoScalingGroup") {
		ltRef, _ := asg.Properties["LaunchTemplate"].(map[string]any)
		lt, ok := v.res[refTarget(ltRef["LaunchTemplateId"])]
		if !ok {
			continue
		}
		data, _ := lt.Properties["LaunchTemplateData"].(map[string]any)
		var instGroups []string
		var instIngress []awsrules.Ingress
		for _, g := range list(data["SecurityGroupIds"]) {
			instGroups = append(instGroups, refTarget(g))
			instIngress = append(instIngress, rules[refTarget(g)]...)
		}
		for i, tgv := range list(asg.Properties["TargetGroupARNs"]) {
			tgID := refTarget(tgv)
			tg, ok := v.res[tgID]
			if !ok {
				continue
			}
			port, err := strconv.Atoi(fmt.Sprint(tg.Properties["Port"]))
			if err != nil {
				continue
			}
			ports := []int{port}
			if hp, err := strconv.Atoi(fmt.Sprint(tg.Properties["HealthCheckPort"])); err == nil && hp != port {
				ports = append(ports, hp)
			}
			seen := map[string]bool{}
			for _, lbID := range lbsOf[tgID] {
				if seen[lbID] {
					continue
				}
				seen[lbID] = true
				lb, ok := v.res[lbID]
				if !ok {
					continue
				}
				for _, lbg := range list(lb.Properties["SecurityGroups"]) {
					lbGroup := refTarget(lbg)
					for _, port := range ports {
						if !awsrules.Admits(instIngress, awsrules.Source{Groups: []string{lbGroup}}, port) {
							v.addf(fmt.Sprintf("%s.Properties.TargetGroupARNs[%d]", asg.ID, i),
								"the instances' security groups (%s) do not admit load balancer %s's group %s on tcp/%d (target group %s)",
								strings.Join(instGroups, ", "), lbID, lbGroup, port, tgID)
						}
					}
				}
			}
		}
	}
}
