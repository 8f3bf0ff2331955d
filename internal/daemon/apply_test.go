package daemon

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
)

func examplePlan(t *testing.T) *plan.Plan {
	t.Helper()
	f, err := spec.LoadFile("../../examples/realtime/moat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, problems := plan.Build(f)
	if len(problems.Errors()) > 0 {
		t.Fatal(problems)
	}
	return p
}

// clonePlan deep-copies a plan through JSON (what moat up sends).
func clonePlan(t *testing.T, p *plan.Plan) *plan.Plan {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var out plan.Plan
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func TestDiffPlans(t *testing.T) {
	base := examplePlan(t)
	tests := []struct {
		name          string
		edit          func(p *plan.Plan)
		live, restart string // substrings expected; "" means none
	}{
		{"unchanged", func(p *plan.Plan) {}, "", ""},
		{"listener rule", func(p *plan.Plan) {
			p.LoadBalancers[0].Listeners[0].Rules = append(p.LoadBalancers[0].Listeners[0].Rules,
				spec.ListenerRule{Priority: 10, Conditions: spec.Conditions{PathPattern: []string{"/admin/*"}},
					Action: spec.Action{FixedResponse: &spec.FixedResponse{StatusCode: 403}}})
		}, "load balancer web: listeners", ""},
		{"health check path", func(p *plan.Plan) { p.TargetGroups[0].HealthCheck.Path = "/healthz" }, "target group web: settings", ""},
		{"launch template command", func(p *plan.Plan) {
			p.LaunchTemplates[0].Command = "python3 app.py --v2"
			p.LaunchTemplates[0].Version = "v2"
		}, "instance refresh", ""},
		{"group max size", func(p *plan.Plan) { p.AutoScalingGroups[0].MaxSize = 8 }, "auto scaling group web: settings", ""},
		{"security group rule", func(p *plan.Plan) {
			p.SecurityGroups[0].Ingress = append(p.SecurityGroups[0].Ingress, plan.Rule{Protocol: "tcp", FromPort: 443, ToPort: 443,
				CIDR: netip.MustParsePrefix("0.0.0.0/0")})
		}, "security group lb: rules", ""},
		{"security group added", func(p *plan.Plan) {
			p.SecurityGroups = append(p.SecurityGroups, plan.SecurityGroup{Name: "extra"})
		}, "security group extra: added", ""},
		{"network ACL added", func(p *plan.Plan) {
			p.NetworkACLs = []plan.NetworkACL{{Name: "private", Subnets: []string{"private-a"}}}
			p.Subnets[2].NetworkACL = "private"
		}, "network ACL private: added", ""},
		{"VPC block", func(p *plan.Plan) { p.VPC.CIDR = netip.MustParsePrefix("10.9.0.0/16") }, "", "the VPC"},
		{"target group port", func(p *plan.Plan) { p.TargetGroups[0].Port = 9000 }, "", "protocol or port"},
		{"launch template groups", func(p *plan.Plan) {
			p.LaunchTemplates[0].SecurityGroups = []string{"lb"}
			p.LaunchTemplates[0].Version = "v3"
		}, "", "security groups"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			np := clonePlan(t, base)
			tc.edit(np)
			d := diffPlans(base, np)
			check := func(kind string, got []string, want string) {
				joined := strings.Join(got, "; ")
				if want == "" && len(got) > 0 {
					t.Errorf("%s changes %q, want none", kind, joined)
				}
				if want != "" && !strings.Contains(joined, want) {
					t.Errorf("%s changes %q, want one mentioning %q", kind, joined, want)
				}
			}
			check("live", d.live, tc.live)
			check("restart", d.restart, tc.restart)
			if want := strings.HasPrefix(tc.live, "security group"); (len(d.securityGroups) > 0) != want {
				t.Errorf("securityGroups = %v, want some: %v", d.securityGroups, want)
			}
			if name, _, ok := strings.Cut(strings.TrimPrefix(tc.live, "security group "), ":"); ok && strings.HasPrefix(tc.live, "security group") && !slices.Contains(d.securityGroups, name) {
				t.Errorf("securityGroups = %v, want %s among them", d.securityGroups, name)
			}
			if want := strings.HasPrefix(tc.live, "network ACL"); d.networkACLs != want {
				t.Errorf("networkACLs = %v, want %v", d.networkACLs, want)
			}
		})
	}
}
