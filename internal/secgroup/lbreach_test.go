package secgroup

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
)

// TestReachLB: through the load balancer, the listener's rules lead to
// the target groups, and every hop is checked: the source to each load
// balancer node, each node to each target (and its health check port);
// every blocker is named with its hop; target health is shown.
func TestReachLB(t *testing.T) {
	cases := []struct {
		name     string
		plan     func(t testing.TB) *plan.Plan
		from     string
		port     int
		targets  func(p *plan.Plan, m Membership) []LBTarget
		allowed  bool
		routes   []string
		paths    map[string][]bool // target id -> hop verdicts
		health   map[string]string
		blockers []string // substrings, in order
		codes    []string
	}{
		{
			name: "no network ACLs: allowed, health unknown offline", plan: testPlan, from: "internet", port: 80,
			allowed: true, routes: []string{"default: forward to target group web"},
			paths:  map[string][]bool{"web-hypothetical": {true, true}, "i-app2": {true, true}},
			health: map[string]string{"web-hypothetical": "unknown (stack not running)", "i-app2": "unknown (stack not running)"},
		},
		{
			name: "the private network ACL drops the reply to public-b", plan: naclPlan, from: "internet", port: 80,
			routes:   []string{"default: forward to target group web"},
			paths:    map[string][]bool{"web-hypothetical": {true, false}, "i-app2": {true, true}},
			blockers: []string{"lb-web-1 (10.42.1.6) -> web-hypothetical (10.42.128.4) tcp 8000 (target group web): reply (tcp 32768-60999 to 10.42.1.6) leaving subnet private-a: denied by nacl private out rule *"},
			codes:    []string{CodeSubnetACL},
		},
		{
			name: "live health; a node the bastion's replies cannot come back from", plan: naclPlan, from: "bastion", port: 80,
			targets: func(p *plan.Plan, m Membership) []LBTarget {
				return []LBTarget{
					{TargetGroup: "web", ID: "i-app2", Addr: netip.MustParseAddr("10.42.129.10"), Port: 8000, State: "healthy"},
					{TargetGroup: "web", ID: "web-hypothetical", Addr: netip.MustParseAddr("10.42.128.4"), Port: 8000, State: "unhealthy", Reason: "Target.Timeout", Description: "Request timed out"},
				}
			},
			routes: []string{"default: forward to target group web"},
			paths:  map[string][]bool{"web-hypothetical": {true, false}, "i-app2": {true, true}},
			health: map[string]string{"web-hypothetical": "unhealthy (Target.Timeout: Request timed out)", "i-app2": "healthy"},
			blockers: []string{
				"bastion (10.42.0.5) -> lb-web-1 (10.42.1.6) tcp 80: reply (tcp 32768-60999 from 10.42.1.6) entering subnet public-a: denied by nacl public in rule *",
				"lb-web-1 (10.42.1.6) -> web-hypothetical (10.42.128.4) tcp 8000 (target group web): reply",
			},
			codes: []string{CodeSubnetACL, CodeSubnetACL},
		},
		{
			name: "a health check port the app's group does not admit, rules by priority", from: "internet", port: 80,
			plan: func(t testing.TB) *plan.Plan {
				p := testPlan(t)
				p.TargetGroups[0].HealthCheck.Port = 8080
				l := &p.LoadBalancers[0].Listeners[0]
				l.Rules = []spec.ListenerRule{
					{Priority: 5, Conditions: spec.Conditions{PathPattern: []string{"/hello"}}, Action: spec.Action{FixedResponse: &spec.FixedResponse{StatusCode: 200}}},
					{Priority: 10, Conditions: spec.Conditions{HostHeader: []string{"a.example"}, HTTPRequestMethod: []string{"GET"}},
						Action: spec.Action{Forward: &spec.Forward{TargetGroups: []spec.WeightedTarget{{Name: "web", Weight: 1}, {Name: "none", Weight: 0}}}}},
				}
				return p
			},
			routes: []string{
				"priority 5: path-pattern /hello: fixed response 200 (answered by the load balancer)",
				"priority 10: host-header a.example and http-request-method GET: forward to target groups web (weight 1), none (weight 0)",
				"default: forward to target group web",
			},
			paths: map[string][]bool{"web-hypothetical": {true, false, true, false}, "i-app2": {true, false, true, false}},
			blockers: []string{
				"lb-web-0 (10.42.0.6) -> web-hypothetical (10.42.128.4) tcp 8080 (target group web's health check): no ingress rule of security group(s) app allows tcp 8080",
			},
			codes: []string{CodeSecurityGroups, CodeSecurityGroups, CodeSecurityGroups, CodeSecurityGroups},
		},
		{
			name: "no listener on the port", plan: testPlan, from: "internet", port: 81,
			blockers: []string{"load balancer web has no listener on port 81 (it listens on 80)"}, codes: []string{""},
		},
		{
			name: "no targets", plan: testPlan, from: "internet", port: 80,
			targets:  func(*plan.Plan, Membership) []LBTarget { return nil },
			routes:   []string{"default: forward to target group web"},
			blockers: []string{"target group web has no registered targets"}, codes: []string{""},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.plan(t)
			m := liveMembership(p)
			from, err := ResolveEndpoint(p, m, c.from)
			if err != nil {
				t.Fatal(err)
			}
			targets := OfflineTargets(p, m)
			if c.targets != nil {
				targets = c.targets(p, m)
			}
			v := ReachLB(p, m, from, "web", c.port, targets)
			if v.Allowed != c.allowed {
				t.Errorf("allowed = %v, want %v (%s)", v.Allowed, c.allowed, v.Reason)
			}
			var routes []string
			for _, r := range v.Routes {
				routes = append(routes, r.Rule+": "+r.Action)
			}
			if !reflect.DeepEqual(routes, c.routes) {
				t.Errorf("routes %q, want %q", routes, c.routes)
			}
			if c.port == 80 && len(v.Front) != 2 {
				t.Errorf("%d front hops, want one per load balancer node (2)", len(v.Front))
			}
			paths, health := map[string][]bool{}, map[string]string{}
			for _, tp := range v.Targets {
				for _, h := range tp.Hops {
					paths[tp.ID] = append(paths[tp.ID], h.Allowed)
				}
				health[tp.ID] = tp.Health
			}
			if c.paths == nil {
				c.paths = map[string][]bool{}
			}
			if !reflect.DeepEqual(paths, c.paths) {
				t.Errorf("hops %v, want %v", paths, c.paths)
			}
			for id, want := range c.health {
				if health[id] != want {
					t.Errorf("health of %s = %q, want %q", id, health[id], want)
				}
			}
			var codes []string
			for i, b := range v.Blockers {
				codes = append(codes, b.Code)
				if i < len(c.blockers) && !strings.Contains(b.Message, c.blockers[i]) {
					t.Errorf("blocker %d: %q, want it to say %q", i, b.Message, c.blockers[i])
				}
				if b.Fix == "" {
					t.Errorf("blocker %q has no fix", b.Message)
				}
			}
			if !reflect.DeepEqual(codes, c.codes) {
				t.Errorf("blocker codes %q, want %q\n%+v", codes, c.codes, v.Blockers)
			}
			if !c.allowed && (len(v.Blockers) == 0 || v.Reason != v.Blockers[0].Message) {
				t.Errorf("reason %q is not the first blocker", v.Reason)
			}
		})
	}
}
