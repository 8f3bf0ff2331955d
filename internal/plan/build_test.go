package plan

import (
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/spec"
)

// base is a small stack that leaves most settings to their defaults.
const base = `name: t
vpc:
  cidr: 10.0.0.0/16
  zones: [a, b]
  nat: single
securityGroups:
  - name: lb
    ingress:
      - {port: 80, cidr: 0.0.0.0/0}
  - name: app
    ingress:
      - {port: 8000, group: lb}
      - {protocol: tcp, port: 9000-9010, cidr: 10.0.0.5/16}
      - {protocol: icmp, cidr: 10.0.0.0/16}
      - {protocol: "-1", group: app}
      - {protocol: udp, cidr: 10.0.0.0/16}
      - {cidr: 192.168.0.0/24}
    egress:
      - {port: 443, cidr: 0.0.0.0/0}
launchTemplates:
  - {name: app, command: "true", port: 8000, securityGroups: [app]}
targetGroups:
  - name: web
autoScalingGroups:
  - name: web
    launchTemplate: app
    subnets: [private-a, private-b]
    minSize: 1
    maxSize: 3
    targetGroups: [web]
    scalingPolicies:
      - {name: cpu, metric: ASGAverageCPUUtilization, targetValue: 50}
      - {name: req, metric: ALBRequestCountPerTarget, targetValue: 100, estimatedInstanceWarmup: 45}
loadBalancers:
  - name: web
    subnets: [public-a, public-b]
    securityGroups: [lb]
    listeners:
      - port: 80
        defaultAction: {forward: {targetGroup: web}}
`

func build(t *testing.T, src string, edits ...string) *Plan {
	t.Helper()
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(src, edits[i]) {
			t.Fatalf("edit: %q not found", edits[i])
		}
		src = strings.Replace(src, edits[i], edits[i+1], 1)
	}
	f, err := spec.Parse("moat.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p, ps := Build(f)
	if p == nil {
		t.Fatalf("Build: %v", ps)
	}
	return p
}

func buildExample(t *testing.T) *Plan {
	t.Helper()
	f, err := spec.LoadFile("../../examples/realtime/moat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, ps := Build(f)
	if p == nil || len(ps) != 0 {
		t.Fatalf("Build: %v", ps)
	}
	return p
}

var (
	addr   = netip.MustParseAddr
	prefix = netip.MustParsePrefix
)

func TestSubnetAddresses(t *testing.T) {
	p := buildExample(t)
	cases := []struct {
		name                      string
		cidr                      string
		gateway, dns, first, last string
		public                    bool
		routeTable                string
		static                    []StaticAddress
	}{
		{"public-a", "10.0.0.0/24", "10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.254", true, "public",
			[]StaticAddress{{addr("10.0.0.4"), "nat/a"}, {addr("10.0.0.5"), "bastion"}, {addr("10.0.0.6"), "lb/web"}}},
		{"public-b", "10.0.1.0/24", "10.0.1.1", "10.0.1.2", "10.0.1.4", "10.0.1.254", true, "public",
			[]StaticAddress{{addr("10.0.1.6"), "lb/web"}}},
		{"private-a", "10.0.128.0/24", "10.0.128.1", "10.0.128.2", "10.0.128.4", "10.0.128.254", false, "private-a", nil},
		{"private-b", "10.0.129.0/24", "10.0.129.1", "10.0.129.2", "10.0.129.4", "10.0.129.254", false, "private-b", nil},
	}
	if len(p.Subnets) != len(cases) {
		t.Fatalf("%d subnets, want %d", len(p.Subnets), len(cases))
	}
	for i, c := range cases {
		s := p.Subnets[i]
		want := Subnet{Name: c.name, Zone: s.Zone, Public: c.public, CIDR: prefix(c.cidr), Gateway: addr(c.gateway),
			DNS: addr(c.dns), FirstHost: addr(c.first), LastHost: addr(c.last), RouteTable: c.routeTable, Static: c.static}
		if !reflect.DeepEqual(s, want) {
			t.Errorf("subnet %d:\n got %+v\nwant %+v", i, s, want)
		}
	}
	if b := p.Bastion; b == nil || b.Address != addr("10.0.0.5") || b.Zone != "a" || b.Publish.String() != "127.0.0.1:2222" {
		t.Errorf("bastion %+v", b)
	}
	if n := p.LoadBalancers[0].Nodes; len(n) != 2 || n[0].Address != addr("10.0.0.6") || n[1].Address != addr("10.0.1.6") || n[1].Zone != "b" {
		t.Errorf("lb nodes %+v", n)
	}
	if p.Zones[1].AWSName != "us-east-1b" {
		t.Errorf("zones %+v", p.Zones)
	}
}

func TestSmallSubnetAddresses(t *testing.T) {
	p := build(t, base, "  nat: single\n", `  nat: none
  subnets:
    - {name: public-a, zone: a, type: public, cidr: 10.0.0.0/27}
    - {name: public-b, zone: b, type: public, cidr: 10.0.0.32/27}
    - {name: private-a, zone: a, type: private, cidr: 10.0.1.0/28}
    - {name: private-b, zone: b, type: private, cidr: 10.0.1.16/28}
`)
	s, _ := p.Subnet("public-b")
	if s.Gateway != addr("10.0.0.33") || s.FirstHost != addr("10.0.0.36") || s.LastHost != addr("10.0.0.62") {
		t.Errorf("public-b %+v", s)
	}
	if s, _ := p.Subnet("private-b"); s.Gateway != addr("10.0.1.17") || s.FirstHost != addr("10.0.1.20") || s.LastHost != addr("10.0.1.30") {
		t.Errorf("private-b %+v", s)
	}
	// With no NAT and no bastion the load balancer node is the third static slot.
	if len(s.Static) != 1 || s.Static[0].Addr != addr("10.0.0.38") {
		t.Errorf("static %+v", s.Static)
	}
}

func TestRouteTables(t *testing.T) {
	local := Route{Destination: prefix("10.0.0.0/16"), Target: TargetLocal}
	igw := Route{Destination: prefix("0.0.0.0/0"), Target: TargetInternetGateway}
	nat := func(n string) Route { return Route{Destination: prefix("0.0.0.0/0"), Target: TargetNAT, NAT: n} }
	public := RouteTable{Name: "public", Subnets: []string{"public-a", "public-b"}, Routes: []Route{local, igw}}
	for _, c := range []struct {
		nat  string
		want []RouteTable
		gws  []NATGateway
	}{
		{"none", []RouteTable{public,
			{Name: "private-a", Subnets: []string{"private-a"}, Routes: []Route{local}},
			{Name: "private-b", Subnets: []string{"private-b"}, Routes: []Route{local}}}, nil},
		{"single", []RouteTable{public,
			{Name: "private-a", Subnets: []string{"private-a"}, Routes: []Route{local, nat("nat-a")}},
			{Name: "private-b", Subnets: []string{"private-b"}, Routes: []Route{local, nat("nat-a")}}},
			[]NATGateway{{Name: "nat-a", Zone: "a", Subnet: "public-a", Address: addr("10.0.0.4")}}},
		{"per-zone", []RouteTable{public,
			{Name: "private-a", Subnets: []string{"private-a"}, Routes: []Route{local, nat("nat-a")}},
			{Name: "private-b", Subnets: []string{"private-b"}, Routes: []Route{local, nat("nat-b")}}},
			[]NATGateway{{Name: "nat-a", Zone: "a", Subnet: "public-a", Address: addr("10.0.0.4")},
				{Name: "nat-b", Zone: "b", Subnet: "public-b", Address: addr("10.0.1.4")}}},
	} {
		t.Run(c.nat, func(t *testing.T) {
			p := build(t, base, "nat: single", "nat: "+c.nat)
			if !reflect.DeepEqual(p.RouteTables, c.want) {
				t.Errorf("route tables:\n got %+v\nwant %+v", p.RouteTables, c.want)
			}
			if !reflect.DeepEqual(p.NATGateways, c.gws) {
				t.Errorf("NAT gateways:\n got %+v\nwant %+v", p.NATGateways, c.gws)
			}
		})
	}
}

func TestCarvedSubnets(t *testing.T) {
	for _, c := range []struct {
		cidr, zones string
		want        []string // name=cidr
	}{
		{"10.0.0.0/16", "[a, b]", []string{"public-a=10.0.0.0/24", "public-b=10.0.1.0/24", "private-a=10.0.128.0/24", "private-b=10.0.129.0/24"}},
		{"10.0.0.0/16", "[a, b, c]", []string{"public-a=10.0.0.0/24", "public-b=10.0.1.0/24", "public-c=10.0.2.0/24",
			"private-a=10.0.128.0/24", "private-b=10.0.129.0/24", "private-c=10.0.130.0/24"}},
		{"10.1.0.0/20", "[a, b, c]", []string{"public-a=10.1.0.0/24", "public-b=10.1.1.0/24", "public-c=10.1.2.0/24",
			"private-a=10.1.8.0/24", "private-b=10.1.9.0/24", "private-c=10.1.10.0/24"}},
		{"10.2.0.0/24", "[a, b]", []string{"public-a=10.2.0.0/27", "public-b=10.2.0.32/27", "private-a=10.2.0.128/27", "private-b=10.2.0.160/27"}},
	} {
		t.Run(c.cidr+c.zones, func(t *testing.T) {
			p := build(t, base, "cidr: 10.0.0.0/16", "cidr: "+c.cidr, "zones: [a, b]", "zones: "+c.zones,
				"10.0.0.5/16", c.cidr, "icmp, cidr: 10.0.0.0/16", "icmp, cidr: "+c.cidr, "udp, cidr: 10.0.0.0/16", "udp, cidr: "+c.cidr)
			var got []string
			for _, s := range p.Subnets {
				got = append(got, s.Name+"="+s.CIDR.String())
				if s.Public != strings.HasPrefix(s.Name, "public-") || s.Zone != s.Name[len(s.Name)-1:] {
					t.Errorf("subnet %+v", s)
				}
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestRuleResolution(t *testing.T) {
	p := build(t, base)
	app, ok := p.SecurityGroup("app")
	if !ok {
		t.Fatal("no group app")
	}
	want := []Rule{
		{Protocol: ProtoTCP, FromPort: 8000, ToPort: 8000, Group: "lb"},
		{Protocol: ProtoTCP, FromPort: 9000, ToPort: 9010, CIDR: prefix("10.0.0.0/16")},
		{Protocol: ProtoICMP, FromPort: 0, ToPort: 0, CIDR: prefix("10.0.0.0/16")},
		{Protocol: ProtoAll, FromPort: 0, ToPort: 65535, Group: "app"},
		{Protocol: ProtoUDP, FromPort: 0, ToPort: 65535, CIDR: prefix("10.0.0.0/16")},
		{Protocol: ProtoTCP, FromPort: 0, ToPort: 65535, CIDR: prefix("192.168.0.0/24")},
	}
	if !reflect.DeepEqual(app.Ingress, want) {
		t.Errorf("ingress:\n got %+v\nwant %+v", app.Ingress, want)
	}
	if e := app.Egress; len(e) != 1 || e[0] != (Rule{Protocol: ProtoTCP, FromPort: 443, ToPort: 443, CIDR: prefix("0.0.0.0/0")}) {
		t.Errorf("explicit egress %+v", e)
	}
	lb, _ := p.SecurityGroup("lb")
	if e := lb.Egress; len(e) != 1 || e[0].Protocol != ProtoAll || e[0].CIDR != prefix("0.0.0.0/0") || e[0].ToPort != 65535 {
		t.Errorf("default egress %+v", e)
	}
	for _, c := range []struct {
		rule  Rule
		proto string
		port  int
		want  bool
	}{
		{want[0], ProtoTCP, 8000, true},
		{want[0], ProtoTCP, 8001, false},
		{want[0], ProtoUDP, 8000, false},
		{want[1], ProtoTCP, 9005, true},
		{want[1], ProtoTCP, 9011, false},
		{want[2], ProtoICMP, 0, true},
		{want[3], ProtoUDP, 53, true},
		{want[4], ProtoUDP, 53, true},
	} {
		if got := c.rule.Covers(c.proto, c.port); got != c.want {
			t.Errorf("%+v.Covers(%s, %d) = %v", c.rule, c.proto, c.port, got)
		}
	}
	if got := want[0].Peer() + " " + want[1].Peer(); got != "sg:lb 10.0.0.0/16" {
		t.Errorf("Peer: %s", got)
	}
}

func TestDefaults(t *testing.T) {
	p := build(t, base)
	tg, _ := p.TargetGroup("web")
	wantTG := TargetGroup{
		Name: "web", Protocol: "HTTP", Port: 8000,
		HealthCheck: HealthCheck{Protocol: "HTTP", Path: "/", Port: 0, Interval: 30 * time.Second, Timeout: 5 * time.Second,
			HealthyThreshold: 5, UnhealthyThreshold: 2, Matcher: "200"},
		DeregistrationDelay: 300 * time.Second, Algorithm: "round_robin", AutoScalingGroups: []string{"web"},
	}
	if !reflect.DeepEqual(tg, wantTG) {
		t.Errorf("target group:\n got %+v\nwant %+v", tg, wantTG)
	}
	g := p.AutoScalingGroups[0]
	if g.DesiredCapacity != 1 || g.HealthCheckType != "EC2" || g.HealthCheckGracePeriod != 300*time.Second ||
		g.DefaultCooldown != 300*time.Second || g.MinHealthyPercentage != 90 || !reflect.DeepEqual(g.Zones, []string{"a", "b"}) {
		t.Errorf("auto scaling group %+v", g)
	}
	// Without a default instance warm-up, AWS falls back to the cooldown.
	if g.DefaultInstanceWarmup != 300*time.Second || g.RefreshWarmup != 300*time.Second {
		t.Errorf("warm-up %v, refresh warm-up %v", g.DefaultInstanceWarmup, g.RefreshWarmup)
	}
	if sp := g.ScalingPolicies; sp[0].Warmup != 300*time.Second || sp[1].Warmup != 45*time.Second ||
		sp[0].Type != "TargetTrackingScaling" || sp[1].TargetGroup != "web" {
		t.Errorf("policies %+v", sp)
	}
	lb := p.LoadBalancers[0]
	if lb.IdleTimeout != 60*time.Second || lb.Listeners[0].Protocol != "HTTP" || lb.Listeners[0].Publish.String() != "127.0.0.1:8080" {
		t.Errorf("load balancer %+v", lb)
	}
	if p.Local.Metrics.String() != "127.0.0.1:9464" || p.Local.Console.String() != "127.0.0.1:9465" || p.Local.MetricPeriod != time.Minute || p.AWS.Region != "us-east-1" || p.AWS.AMI != spec.DefaultAMI {
		t.Errorf("local %+v aws %+v", p.Local, p.AWS)
	}
	lt, _ := p.LaunchTemplate("app")
	if lt.InstanceType != "t3.micro" || lt.AWSInstanceType != "t3.micro" || lt.User != "ec2-user" || lt.Version == "" {
		t.Errorf("launch template %+v", lt)
	}

	// Explicit warm-ups win over the fallback.
	p = build(t, base, "    minSize: 1", "    minSize: 1\n    defaultCooldown: 60\n    defaultInstanceWarmup: 20\n    instanceRefresh: {instanceWarmup: 90}")
	g = p.AutoScalingGroups[0]
	if g.DefaultCooldown != time.Minute || g.DefaultInstanceWarmup != 20*time.Second || g.RefreshWarmup != 90*time.Second ||
		g.ScalingPolicies[0].Warmup != 20*time.Second || g.ScalingPolicies[1].Warmup != 45*time.Second {
		t.Errorf("explicit warm-ups %+v", g)
	}
}

func TestEndpointsAndPublish(t *testing.T) {
	p := build(t, base, "      - port: 80\n", `      - port: 443
        protocol: HTTPS
        defaultAction: {fixedResponse: {statusCode: 404}}
      - port: 80
`)
	var got []string
	for _, e := range p.Endpoints {
		got = append(got, e.Kind+" "+e.Name+" "+e.Publish.String())
	}
	want := []string{"listener web:443 127.0.0.1:8080", "listener web:80 127.0.0.1:8081", "metrics metrics 127.0.0.1:9464", "console console 127.0.0.1:9465"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("endpoints %v, want %v", got, want)
	}
	if fr := p.LoadBalancers[0].Listeners[0].DefaultAction.FixedResponse; fr == nil || fr.ContentType != "text/plain" {
		t.Errorf("fixed response %+v", fr)
	}
}

func TestListenerRulesSortedAndFilesAbsolute(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(dir+"/site", 0o755); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(base, `command: "true",`, `command: "true", files: site,`, 1)
	src = strings.Replace(src, "        defaultAction: {forward: {targetGroup: web}}\n", `        defaultAction: {forward: {targetGroup: web}}
        rules:
          - {priority: 20, conditions: {pathPattern: [/b]}, action: {fixedResponse: {statusCode: 200}}}
          - {priority: 10, conditions: {pathPattern: [/a]}, action: {redirect: {statusCode: HTTP_301, path: /x}}}
`, 1)
	if err := os.WriteFile(dir+"/moat.yaml", []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := spec.LoadFile(dir + "/moat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, ps := Build(f)
	if p == nil {
		t.Fatal(ps)
	}
	rules := p.LoadBalancers[0].Listeners[0].Rules
	if len(rules) != 2 || rules[0].Priority != 10 || rules[0].Action.Redirect.Host != "#{host}" {
		t.Errorf("rules %+v", rules)
	}
	if lt, _ := p.LaunchTemplate("app"); lt.FilesDir != dir+"/site" {
		t.Errorf("files dir %q, want %q", lt.FilesDir, dir+"/site")
	}
}

func TestBuildInvalid(t *testing.T) {
	f, err := spec.Parse("moat.yaml", []byte(strings.Replace(base, "group: lb}", "group: lbb}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	p, ps := Build(f)
	if p != nil || len(ps.Errors()) != 1 {
		t.Errorf("plan %v, problems %v", p, ps)
	}
}

func TestVersionChanges(t *testing.T) {
	a, _ := build(t, base).LaunchTemplate("app")
	b, _ := build(t, base, `command: "true"`, `command: "false"`).LaunchTemplate("app")
	c, _ := build(t, base).LaunchTemplate("app")
	if a.Version == b.Version || a.Version != c.Version {
		t.Errorf("versions %s %s %s", a.Version, b.Version, c.Version)
	}
}

func TestTooManyLoadBalancersForSubnet(t *testing.T) {
	var lbs strings.Builder
	for i := range 26 {
		fmt.Fprintf(&lbs, "  - {name: lb%d, subnets: [public-a, public-b], securityGroups: [lb], listeners: [{port: %d, defaultAction: {fixedResponse: {statusCode: 200}}}]}\n", i, 8000+i)
	}
	src := strings.Replace(base, "  nat: single\n", `  nat: none
  subnets:
    - {name: public-a, zone: a, type: public, cidr: 10.0.0.0/27}
    - {name: public-b, zone: b, type: public, cidr: 10.0.0.32/27}
    - {name: private-a, zone: a, type: private, cidr: 10.0.1.0/28}
    - {name: private-b, zone: b, type: private, cidr: 10.0.1.16/28}
`, 1) + lbs.String()
	f, err := spec.Parse("moat.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p, ps := Build(f)
	// A /27 (the smallest subnet AWS puts a load balancer in) has 27
	// assignable addresses; load balancer k (web is 0) takes offset 2+k,
	// so lb0..lb23 fit and lb24, lb25 do not, in either subnet.
	if p != nil || len(ps.Errors()) != 4 || !strings.Contains(ps.Errors()[0].Message, "no address left for load balancer lb24") {
		t.Errorf("problems: %v", ps)
	}
}

// naclStack adds a custom network ACL on the private subnets to base, its
// entries written out of order.
var naclStack = []string{"launchTemplates:\n", `networkAcls:
  - name: private
    subnets: [private-a, private-b]
    inbound:
      - {ruleNumber: 200, protocol: all, cidr: 0.0.0.0/0, ruleAction: allow}
      - {ruleNumber: 100, protocol: tcp, portRange: 22, cidr: 0.0.0.0/0, ruleAction: deny}
      - {ruleNumber: 110, protocol: udp, portRange: 1024-65535, cidr: 10.0.0.0/16, ruleAction: allow}
      - {ruleNumber: 120, protocol: icmp, cidr: 10.0.0.0/24, ruleAction: deny}
      - {ruleNumber: 130, protocol: "-1", cidr: 192.168.0.0/16, ruleAction: DENY}
    outbound:
      - {ruleNumber: 100, portRange: 8000, cidr: 10.0.0.0/16, ruleAction: allow}
launchTemplates:
`}

func TestNetworkACLResolution(t *testing.T) {
	p := build(t, base, naclStack...)
	acl, ok := p.NetworkACL("private")
	if !ok {
		t.Fatal("no network ACL private")
	}
	var in []string
	for _, e := range acl.Inbound {
		in = append(in, e.String())
	}
	want := []string{"100 deny tcp 22 0.0.0.0/0", "110 allow udp 1024-65535 10.0.0.0/16", "120 deny icmp all 10.0.0.0/24",
		"130 deny all all 192.168.0.0/16", "200 allow all all 0.0.0.0/0"}
	if !reflect.DeepEqual(in, want) {
		t.Errorf("inbound, sorted by rule number:\n got %q\nwant %q", in, want)
	}
	if got := acl.Outbound[0].String(); got != "100 allow tcp 8000 10.0.0.0/16" {
		t.Errorf("outbound: %s (protocol defaults to tcp)", got)
	}
	for _, sn := range p.Subnets {
		want := map[bool]string{false: "private", true: ""}[sn.Public]
		if sn.NetworkACL != want {
			t.Errorf("subnet %s: network ACL %q, want %q", sn.Name, sn.NetworkACL, want)
		}
	}
}

// TestNetworkACLDecide: lowest rule number first, first match wins, the
// implicit rule * denies what nothing matches, ports are destination ports.
func TestNetworkACLDecide(t *testing.T) {
	acl, _ := build(t, base, naclStack...).NetworkACL("private")
	for _, c := range []struct {
		outbound bool
		proto    string
		peer     string
		port     int
		rule     int // 0: the implicit deny
		allow    bool
	}{
		{false, ProtoTCP, "203.0.113.9", 22, 100, false},  // deny 100 before allow 200
		{false, ProtoTCP, "10.0.0.7", 22, 100, false},     // whatever the source
		{false, ProtoTCP, "203.0.113.9", 23, 200, true},   // falls through to 200
		{false, ProtoUDP, "10.0.1.7", 5353, 110, true},    // in the range
		{false, ProtoUDP, "10.0.1.7", 1023, 200, true},    // below it: 200
		{false, ProtoICMP, "10.0.0.9", 0, 120, false},     // icmp from 10.0.0.0/24 denied
		{false, ProtoICMP, "10.0.1.9", 0, 200, true},      // from elsewhere allowed
		{false, ProtoTCP, "192.168.3.4", 80, 130, false},  // all protocols denied
		{true, ProtoTCP, "10.0.128.5", 8000, 100, true},   // outbound allow
		{true, ProtoTCP, "10.0.128.5", 8001, 0, false},    // implicit deny
		{true, ProtoTCP, "198.51.100.1", 8000, 0, false},  // outside the block
		{true, ProtoUDP, "10.0.128.5", 8000, 0, false},    // other protocol
		{true, ProtoICMP, "10.0.128.5", 0, 0, false},      // no icmp out
		{false, ProtoUDP, "10.0.200.1", 65535, 110, true}, // upper bound
		{false, ProtoTCP, "10.0.200.1", 65535, 200, true}, // tcp is not udp
		{false, ProtoAll, "192.168.0.1", 0, 130, false},   // any protocol
	} {
		d := acl.Decide(c.outbound, c.proto, addr(c.peer), c.port, c.port)
		if d.Entry.RuleNumber != c.rule || d.Allowed != c.allow || d.Implicit != (c.rule == 0) {
			t.Errorf("Decide(outbound=%v, %s, %s, %d) = %+v, want rule %d allow %v",
				c.outbound, c.proto, c.peer, c.port, d, c.rule, c.allow)
		}
	}
}
