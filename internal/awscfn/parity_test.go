package awscfn

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/autoscale"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
	"github.com/moat-dev/moat/internal/spec"
)

// topology is what must be equal between the local runtime and the AWS
// stack built from the same plan. Every list is sorted; names are the
// stack file's.
type topology struct {
	VPC         string
	Subnets     []string // "name zone public|private cidr"
	RouteTables []string // "name [subnets] default=igw|nat:<name>|none"
	NATs        []string // "name subnet"
	// NetworkACLs are the entries each subnet's custom network ACL
	// enforces: "subnet in|out rule allow|deny proto from-to cidr".
	NetworkACLs []string
	// Nodes are what has a network interface: each load balancer node,
	// the bastion, and an instance of each group in each of its subnets,
	// with the firewall the node gets.
	Nodes []node
	// Endpoints reachable from the internet.
	Endpoints    []string
	Listeners    []string // "lb:port protocol default-action [rules]"
	TargetGroups []string
	Groups       []string // auto scaling settings
	Policies     []string
}

type node struct {
	Name      string // "lb:web@public-a", "bastion@public-a", "asg:web@private-b"
	Groups    []string
	Ingress   []string // "tcp 8000-8000 from sg:lb"
	Egress    []string // nil with EgressAll
	EgressAll bool
}

func ruleString(proto string, from, to int, peer string) string {
	switch proto {
	case "tcp", "udp":
		return fmt.Sprintf("%s %d-%d %s", proto, from, to, peer)
	}
	return fmt.Sprintf("%s %s", proto, peer)
}

func aclString(subnet, dir string, n int, action, proto string, from, to int, cidr string) string {
	return fmt.Sprintf("%s %s %d %s %s", subnet, dir, n, action, ruleString(proto, from, to, cidr))
}

func dur(d time.Duration) string { return fmt.Sprintf("%ds", int(d/time.Second)) }

// localTopology is the topology the local runtime builds from the plan:
// firewalls come from secgroup.Compile (what the kernel enforces), scaling
// from autoscale.FromPlan (what the controller runs).
func localTopology(t *testing.T, p *plan.Plan) topology {
	t.Helper()
	var top topology
	top.VPC = p.VPC.CIDR.String()
	zone := map[string]string{}
	for _, z := range p.Zones {
		zone[z.Name] = z.AWSName
	}
	for _, s := range p.Subnets {
		top.Subnets = append(top.Subnets, fmt.Sprintf("%s %s %s %s", s.Name, zone[s.Zone], pubPriv(s.Public), s.CIDR))
	}
	for _, rt := range p.RouteTables {
		def := "none"
		for _, r := range rt.Routes {
			if r.Destination.Bits() == 0 {
				switch r.Target {
				case plan.TargetInternetGateway:
					def = "igw"
				case plan.TargetNAT:
					def = "nat:" + r.NAT
				}
			}
		}
		subs := slices.Sorted(slices.Values(rt.Subnets))
		top.RouteTables = append(top.RouteTables, fmt.Sprintf("%s %v default=%s", rt.Name, subs, def))
	}
	for _, n := range p.NATGateways {
		top.NATs = append(top.NATs, n.Name+" "+n.Subnet)
	}
	for _, sn := range p.Subnets {
		acl, ok := p.NetworkACL(sn.NetworkACL)
		if !ok {
			continue
		}
		for _, d := range []struct {
			dir     string
			entries []plan.ACLEntry
		}{{"in", acl.Inbound}, {"out", acl.Outbound}} {
			for _, e := range d.entries {
				top.NetworkACLs = append(top.NetworkACLs, aclString(sn.Name, d.dir, e.RuleNumber, e.Action(), e.Protocol, e.FromPort, e.ToPort, e.CIDR.String()))
			}
		}
	}
	m := secgroup.OfflineMembership(p)
	compile := func(name string, groups []string) {
		rs, err := secgroup.Compile(p, name, groups, m)
		if err != nil {
			t.Fatal(err)
		}
		nd := node{Name: name, Groups: slices.Sorted(slices.Values(groups)), EgressAll: !rs.EgressRestricted}
		conv := func(rules []secgroup.NftRule) []string {
			var out []string
			for _, r := range rules {
				peer := r.CIDR.String()
				if r.Set != "" {
					peer = "sg:" + strings.TrimPrefix(r.Set, "sg_")
				}
				out = append(out, ruleString(r.Protocol, r.FromPort, r.ToPort, peer))
			}
			sort.Strings(out)
			return slices.Compact(out)
		}
		nd.Ingress = conv(rs.Input)
		if rs.EgressRestricted {
			nd.Egress = conv(rs.Output)
		}
		top.Nodes = append(top.Nodes, nd)
	}
	for _, lb := range p.LoadBalancers {
		for _, n := range lb.Nodes {
			compile("lb:"+lb.Name+"@"+n.Subnet, lb.SecurityGroups)
		}
	}
	if b := p.Bastion; b != nil {
		compile("bastion@"+b.Subnet, b.SecurityGroups)
	}
	for _, g := range p.AutoScalingGroups {
		lt, _ := p.LaunchTemplate(g.LaunchTemplate)
		for _, s := range g.Subnets {
			compile("asg:"+g.Name+"@"+s, lt.SecurityGroups)
		}
	}
	for _, e := range p.Endpoints {
		switch e.Kind {
		case plan.EndpointListener:
			top.Endpoints = append(top.Endpoints, "listener "+e.Name)
		case plan.EndpointBastion:
			top.Endpoints = append(top.Endpoints, "bastion ssh:22")
		} // the metrics endpoint is local only (CloudWatch on AWS)
	}
	for _, lb := range p.LoadBalancers {
		for _, l := range lb.Listeners {
			var rules []string
			for _, r := range l.Rules {
				rules = append(rules, fmt.Sprintf("%d:%s", r.Priority, actionString(r.Action)))
			}
			top.Listeners = append(top.Listeners, fmt.Sprintf("%s:%d %s %s %v", lb.Name, l.Port, l.Protocol,
				actionString(l.DefaultAction), rules))
		}
	}
	for _, tg := range p.TargetGroups {
		hc := tg.HealthCheck
		hp := "traffic-port"
		if hc.Port != 0 {
			hp = fmt.Sprint(hc.Port)
		}
		st := "sticky=off"
		if s := tg.Stickiness; s != nil {
			st = fmt.Sprintf("sticky=%s/%s/%s", s.Type, dur(s.Duration), s.CookieName)
		}
		top.TargetGroups = append(top.TargetGroups, fmt.Sprintf("%s %s:%d hc=%s %s %s every %s timeout %s up %d down %d match %s drain %s slow %s %s %s",
			tg.Name, tg.Protocol, tg.Port, hc.Protocol, hp, hc.Path, dur(hc.Interval), dur(hc.Timeout), hc.HealthyThreshold, hc.UnhealthyThreshold,
			hc.Matcher, dur(tg.DeregistrationDelay), dur(tg.SlowStart), tg.Algorithm, st))
	}
	for _, pg := range p.AutoScalingGroups {
		g, err := autoscale.FromPlan(pg, p.Local.MetricPeriod, "v")
		if err != nil {
			t.Fatal(err)
		}
		var subs []string
		for _, s := range g.Subnets {
			subs = append(subs, s.ID+"/"+zone[s.Zone])
		}
		cooldown := g.DefaultCooldown
		if cooldown == autoscale.NoCooldown {
			cooldown = 0
		}
		minIn := int(math.Ceil(float64(g.Desired) * float64(g.Refresh.MinHealthyPercentage) / 100))
		minIn = max(min(minIn, g.Max-1), 0)
		// moat refresh replaces instances only as new ones pass their health
		// checks (gated), then waits the warm-up.
		top.Groups = append(top.Groups, fmt.Sprintf("%s %v min %d desired %d max %d health %s grace %s cooldown %s warmup %s tgs %v protect %v refresh keep %d gated %v pause %s",
			g.Name, subs, g.Min, g.Desired, g.Max, g.HealthCheckType, dur(g.GracePeriod), dur(cooldown), dur(g.DefaultInstanceWarmup),
			pg.TargetGroups, g.NewInstancesProtectedFromScaleIn, minIn, true, dur(g.Refresh.Warmup)))
		tgOf := map[string]string{}
		for _, sp := range pg.ScalingPolicies {
			tgOf[sp.Name] = sp.TargetGroup
		}
		for _, tt := range g.TargetTracking {
			label := ""
			if tt.Metric == "ALBRequestCountPerTarget" {
				label = lbOf(p, tgOf[tt.Name]) + "/" + tgOf[tt.Name]
			}
			top.Policies = append(top.Policies, fmt.Sprintf("%s/%s target %s %v label=%s scaleIn=%v warmup %s",
				g.Name, camel(tt.Name), tt.Metric, tt.TargetValue, label, !tt.DisableScaleIn, dur(tt.Warmup)))
		}
		for _, ss := range g.StepScaling {
			adj := string(ss.AdjustmentType)
			if adj == "" {
				adj = "ChangeInCapacity"
			}
			var steps []string
			for _, st := range ss.Steps {
				steps = append(steps, stepString(st.Lower, st.Upper, st.Adjustment))
			}
			top.Policies = append(top.Policies, fmt.Sprintf("%s/%s step %s %s %v x%d %s %v warmup %s",
				g.Name, camel(ss.Name), ss.Alarm.Metric, ss.Alarm.Comparison, ss.Alarm.Threshold, max(ss.Alarm.EvaluationPeriods, 1), adj, steps, dur(ss.Warmup)))
		}
	}
	top.sort()
	return top
}

func lbOf(p *plan.Plan, tg string) string {
	for _, lb := range p.LoadBalancers {
		for _, l := range lb.Listeners {
			if f := l.DefaultAction.Forward; f != nil && f.TargetGroup == tg {
				return lb.Name
			}
		}
	}
	return ""
}

func stepString(lo, hi *float64, adj int) string {
	f := func(v *float64) string {
		if v == nil {
			return "inf"
		}
		return fmt.Sprint(*v)
	}
	return fmt.Sprintf("[%s,%s)%+d", f(lo), f(hi), adj)
}

func actionString(a spec.Action) string {
	switch {
	case a.Forward != nil && a.Forward.TargetGroup != "":
		return "forward:" + a.Forward.TargetGroup
	case a.Forward != nil:
		var ws []string
		for _, w := range a.Forward.TargetGroups {
			ws = append(ws, fmt.Sprintf("%s*%d", w.Name, w.Weight))
		}
		return "forward:" + strings.Join(ws, ",")
	case a.Redirect != nil:
		return "redirect:" + a.Redirect.StatusCode
	case a.FixedResponse != nil:
		return fmt.Sprintf("fixed:%d", a.FixedResponse.StatusCode)
	}
	return "none"
}

func pubPriv(public bool) string {
	if public {
		return "public"
	}
	return "private"
}

func (top *topology) sort() {
	for _, l := range [][]string{top.Subnets, top.RouteTables, top.NATs, top.NetworkACLs, top.Endpoints, top.Listeners, top.TargetGroups, top.Groups, top.Policies} {
		sort.Strings(l)
	}
	sort.Slice(top.Nodes, func(i, j int) bool { return top.Nodes[i].Name < top.Nodes[j].Name })
}

// templateTopology reads the same topology back from a parsed template:
// names come from the Name tags (stack name stripped), peers from the
// groups' logical ids.
func templateTopology(t *testing.T, tpl *Template) topology {
	t.Helper()
	var top topology
	res := map[string]*Resource{}
	name := map[string]string{} // logical id -> stack file name
	for i := range tpl.Resources {
		r := &tpl.Resources[i]
		res[r.ID] = r
		for _, tag := range list(r.Properties["Tags"]) {
			m := tag.(map[string]any)
			if m["Key"] == "Name" {
				if s, ok := m["Value"].(map[string]any)["Fn::Sub"].(string); ok {
					name[r.ID] = strings.TrimPrefix(s, "${AWS::StackName}-")
				}
			}
			if m["Key"] == "moat:group" {
				name[r.ID] = m["Value"].(string)
			}
		}
	}
	byType := func(typ string) []*Resource {
		var out []*Resource
		for i := range tpl.Resources {
			if tpl.Resources[i].Type == typ {
				out = append(out, &tpl.Resources[i])
			}
		}
		return out
	}
	nameOf := func(v any) string { return name[refTarget(v)] }
	top.VPC = str(byType("AWS::EC2::VPC")[0].Properties["CidrBlock"])

	// Route tables: default route target and associations.
	def := map[string]string{}
	for _, r := range byType("AWS::EC2::Route") {
		if str(r.Properties["DestinationCidrBlock"]) != "0.0.0.0/0" {
			continue
		}
		rt := refTarget(r.Properties["RouteTableId"])
		switch {
		case r.Properties["GatewayId"] != nil:
			def[rt] = "igw"
		case r.Properties["NatGatewayId"] != nil:
			def[rt] = "nat:" + nameOf(r.Properties["NatGatewayId"])
		}
	}
	assoc := map[string][]string{}
	rtOfSubnet := map[string]string{}
	for _, a := range byType("AWS::EC2::SubnetRouteTableAssociation") {
		rt, sn := refTarget(a.Properties["RouteTableId"]), refTarget(a.Properties["SubnetId"])
		assoc[rt] = append(assoc[rt], name[sn])
		rtOfSubnet[sn] = rt
	}
	for _, rt := range byType("AWS::EC2::RouteTable") {
		d := def[rt.ID]
		if d == "" {
			d = "none"
		}
		top.RouteTables = append(top.RouteTables, fmt.Sprintf("%s %v default=%s", name[rt.ID], slices.Sorted(slices.Values(assoc[rt.ID])), d))
	}
	for _, s := range byType("AWS::EC2::Subnet") {
		top.Subnets = append(top.Subnets, fmt.Sprintf("%s %s %s %s", name[s.ID], str(s.Properties["AvailabilityZone"]),
			pubPriv(def[rtOfSubnet[s.ID]] == "igw"), str(s.Properties["CidrBlock"])))
	}
	for _, n := range byType("AWS::EC2::NatGateway") {
		top.NATs = append(top.NATs, name[n.ID]+" "+nameOf(n.Properties["SubnetId"]))
	}

	// Network ACLs: entries, as enforced on each associated subnet.
	protoName := map[int]string{6: "tcp", 17: "udp", 1: "icmp", -1: "all"}
	aclSubnets := map[string][]string{}
	for _, a := range byType("AWS::EC2::SubnetNetworkAclAssociation") {
		acl := refTarget(a.Properties["NetworkAclId"])
		aclSubnets[acl] = append(aclSubnets[acl], name[refTarget(a.Properties["SubnetId"])])
	}
	for _, e := range byType("AWS::EC2::NetworkAclEntry") {
		dir := "in"
		if e.Properties["Egress"] == true {
			dir = "out"
		}
		proto := protoName[atoi(e.Properties["Protocol"])]
		from, to := 0, 0
		if pr, ok := e.Properties["PortRange"].(map[string]any); ok {
			from, to = atoi(pr["From"]), atoi(pr["To"])
		}
		for _, sn := range aclSubnets[refTarget(e.Properties["NetworkAclId"])] {
			top.NetworkACLs = append(top.NetworkACLs, aclString(sn, dir, atoi(e.Properties["RuleNumber"]), str(e.Properties["RuleAction"]), proto, from, to, str(e.Properties["CidrBlock"])))
		}
	}

	// Security groups: inline CIDR rules plus separate rule resources.
	type rules struct {
		in, out []string
		outAll  bool
	}
	sgs := map[string]*rules{}
	peerOf := func(m map[string]any, key string) string {
		if g := refTarget(m[key]); g != "" {
			return "sg:" + name[g]
		}
		return str(m["CidrIp"])
	}
	rule := func(m map[string]any, peer string) string {
		proto := fmt.Sprint(m["IpProtocol"])
		if proto == "-1" {
			proto = "all"
		}
		from, to := 0, 0
		if proto == "tcp" || proto == "udp" {
			from, to = atoi(m["FromPort"]), atoi(m["ToPort"])
		}
		return ruleString(proto, from, to, peer)
	}
	for _, g := range byType("AWS::EC2::SecurityGroup") {
		r := &rules{}
		for _, x := range list(g.Properties["SecurityGroupIngress"]) {
			m := x.(map[string]any)
			r.in = append(r.in, rule(m, peerOf(m, "SourceSecurityGroupId")))
		}
		for _, x := range list(g.Properties["SecurityGroupEgress"]) {
			m := x.(map[string]any)
			if str(m["CidrIp"]) == "255.255.255.255/32" && str(m["Description"]) == "disallow all traffic" {
				continue // the placeholder that removes AWS's default egress
			}
			if fmt.Sprint(m["IpProtocol"]) == "-1" && str(m["CidrIp"]) == "0.0.0.0/0" {
				r.outAll = true
			}
			r.out = append(r.out, rule(m, peerOf(m, "DestinationSecurityGroupId")))
		}
		sgs[g.ID] = r
	}
	for _, x := range byType("AWS::EC2::SecurityGroupIngress") {
		g := sgs[refTarget(x.Properties["GroupId"])]
		g.in = append(g.in, rule(x.Properties, peerOf(x.Properties, "SourceSecurityGroupId")))
	}
	for _, x := range byType("AWS::EC2::SecurityGroupEgress") {
		g := sgs[refTarget(x.Properties["GroupId"])]
		g.out = append(g.out, rule(x.Properties, peerOf(x.Properties, "DestinationSecurityGroupId")))
	}
	addNode := func(nodeName string, groups []any) {
		nd := node{Name: nodeName}
		all := false
		var out []string
		for _, gv := range groups {
			id := refTarget(gv)
			nd.Groups = append(nd.Groups, name[id])
			nd.Ingress = append(nd.Ingress, sgs[id].in...)
			out = append(out, sgs[id].out...)
			all = all || sgs[id].outAll
		}
		sort.Strings(nd.Groups)
		sort.Strings(nd.Ingress)
		nd.Ingress = slices.Compact(nd.Ingress)
		nd.EgressAll = all || len(groups) == 0
		if !nd.EgressAll {
			sort.Strings(out)
			nd.Egress = slices.Compact(out)
		}
		top.Nodes = append(top.Nodes, nd)
	}
	for _, lb := range byType("AWS::ElasticLoadBalancingV2::LoadBalancer") {
		for _, s := range list(lb.Properties["Subnets"]) {
			addNode("lb:"+name[lb.ID]+"@"+nameOf(s), list(lb.Properties["SecurityGroups"]))
		}
	}
	if b, ok := res[IDBastion]; ok {
		ni := list(b.Properties["NetworkInterfaces"])[0].(map[string]any)
		addNode("bastion@"+nameOf(ni["SubnetId"]), list(ni["GroupSet"]))
		if ni["AssociatePublicIpAddress"] == true {
			top.Endpoints = append(top.Endpoints, "bastion ssh:22")
		}
	}
	ltGroups := map[string][]any{}
	for _, lt := range byType("AWS::EC2::LaunchTemplate") {
		ltGroups[lt.ID] = list(lt.Properties["LaunchTemplateData"].(map[string]any)["SecurityGroupIds"])
	}

	// Load balancers, listeners and target groups.
	action := func(a map[string]any) string {
		switch str(a["Type"]) {
		case "forward":
			if tg := refTarget(a["TargetGroupArn"]); tg != "" {
				return "forward:" + name[tg]
			}
			var ws []string
			for _, w := range list(a["ForwardConfig"].(map[string]any)["TargetGroups"]) {
				wm := w.(map[string]any)
				ws = append(ws, fmt.Sprintf("%s*%d", nameOf(wm["TargetGroupArn"]), atoi(wm["Weight"])))
			}
			return "forward:" + strings.Join(ws, ",")
		case "redirect":
			return "redirect:" + str(a["RedirectConfig"].(map[string]any)["StatusCode"])
		case "fixed-response":
			return "fixed:" + str(a["FixedResponseConfig"].(map[string]any)["StatusCode"])
		}
		return "none"
	}
	for _, l := range byType("AWS::ElasticLoadBalancingV2::Listener") {
		lb := nameOf(l.Properties["LoadBalancerArn"])
		port := atoi(l.Properties["Port"])
		var rs []string
		var prios []int
		byPrio := map[int]string{}
		for _, lr := range byType("AWS::ElasticLoadBalancingV2::ListenerRule") {
			if refTarget(lr.Properties["ListenerArn"]) == l.ID {
				p := atoi(lr.Properties["Priority"])
				prios = append(prios, p)
				byPrio[p] = action(list(lr.Properties["Actions"])[0].(map[string]any))
			}
		}
		sort.Ints(prios)
		for _, p := range prios {
			rs = append(rs, fmt.Sprintf("%d:%s", p, byPrio[p]))
		}
		top.Listeners = append(top.Listeners, fmt.Sprintf("%s:%d %s %s %v", lb, port, str(l.Properties["Protocol"]),
			action(list(l.Properties["DefaultActions"])[0].(map[string]any)), rs))
		top.Endpoints = append(top.Endpoints, fmt.Sprintf("listener %s:%d", lb, port))
	}
	for _, tg := range byType("AWS::ElasticLoadBalancingV2::TargetGroup") {
		p := tg.Properties
		attrs := map[string]string{}
		for _, a := range list(p["TargetGroupAttributes"]) {
			m := a.(map[string]any)
			attrs[str(m["Key"])] = str(m["Value"])
		}
		st := "sticky=off"
		if attrs["stickiness.enabled"] == "true" {
			typ := attrs["stickiness.type"]
			d := attrs["stickiness."+typ+".duration_seconds"]
			st = fmt.Sprintf("sticky=%s/%ss/%s", typ, d, attrs["stickiness.app_cookie.cookie_name"])
		}
		top.TargetGroups = append(top.TargetGroups, fmt.Sprintf("%s %s:%d hc=%s %s %s every %ds timeout %ds up %d down %d match %s drain %ss slow %ss %s %s",
			name[tg.ID], str(p["Protocol"]), atoi(p["Port"]), str(p["HealthCheckProtocol"]), str(p["HealthCheckPort"]), str(p["HealthCheckPath"]),
			atoi(p["HealthCheckIntervalSeconds"]), atoi(p["HealthCheckTimeoutSeconds"]), atoi(p["HealthyThresholdCount"]), atoi(p["UnhealthyThresholdCount"]),
			str(p["Matcher"].(map[string]any)["HttpCode"]), attrs["deregistration_delay.timeout_seconds"], attrs["slow_start.duration_seconds"],
			attrs["load_balancing.algorithm.type"], st))
	}

	// Auto scaling groups and their policies.
	for _, g := range byType("AWS::AutoScaling::AutoScalingGroup") {
		p := g.Properties
		var subs []string
		for _, s := range list(p["VPCZoneIdentifier"]) {
			sn := res[refTarget(s)]
			subs = append(subs, name[sn.ID]+"/"+str(sn.Properties["AvailabilityZone"]))
			addNode("asg:"+name[g.ID]+"@"+name[sn.ID], ltGroups[refTarget(p["LaunchTemplate"].(map[string]any)["LaunchTemplateId"])])
		}
		var tgs []string
		for _, tg := range list(p["TargetGroupARNs"]) {
			tgs = append(tgs, nameOf(tg))
		}
		// The rollout: gated on health when the create waits for the
		// desired instances' signals, the rolling update waits for each
		// batch's, and the instances signal this group only after their
		// health check passed; the pause is then the warm-up the instance
		// sleeps before signalling, else the update's PauseTime.
		ru := g.UpdatePolicy["AutoScalingRollingUpdate"].(map[string]any)
		pause, err := time.ParseDuration(strings.ToLower(strings.TrimPrefix(str(ru["PauseTime"]), "PT")))
		if err != nil {
			t.Fatalf("%s: PauseTime %v: %v", g.ID, ru["PauseTime"], err)
		}
		rs, _ := g.CreationPolicy["ResourceSignal"].(map[string]any)
		lt := res[refTarget(p["LaunchTemplate"].(map[string]any)["LaunchTemplateId"])]
		ud := userDataScript(t, tpl, lt.ID)
		_, ready, _ := strings.Cut(ud, "<<'MOAT_READY'\n")
		ready, _, _ = strings.Cut(ready, "\nMOAT_READY\n")
		gated := ru["WaitOnResourceSignals"] == true && atoi(rs["Count"]) == atoi(p["DesiredCapacity"]) &&
			strings.Contains(ready, "cfn-signal -e \"$1\" --stack 'realtime' --resource '"+g.ID+"'") &&
			strings.Count(ready, "signal 0") == 1 &&
			regexp.MustCompile(`(?s)\nuntil healthy; do\n.*\ndone\n(sleep \d+ # the instance refresh warm-up\n)?signal 0\n$`).MatchString(ready+"\n") &&
			strings.Contains(ud, "-ready.sh 600\n")
		if gated {
			pause = 0
			if m := regexp.MustCompile(`\nsleep (\d+) # the instance refresh warm-up\n`).FindStringSubmatch(ready); m != nil {
				pause = time.Duration(atoi(m[1])) * time.Second
			}
		}
		top.Groups = append(top.Groups, fmt.Sprintf("%s %v min %d desired %d max %d health %s grace %ds cooldown %ds warmup %ds tgs %v protect %v refresh keep %d gated %v pause %s",
			name[g.ID], subs, atoi(p["MinSize"]), atoi(p["DesiredCapacity"]), atoi(p["MaxSize"]), str(p["HealthCheckType"]),
			atoi(p["HealthCheckGracePeriod"]), atoi(p["Cooldown"]), atoi(p["DefaultInstanceWarmup"]), tgs,
			p["NewInstancesProtectedFromScaleIn"] == true, atoi(ru["MinInstancesInService"]), gated, dur(pause)))
	}
	alarms := map[string]*Resource{}
	for _, a := range byType("AWS::CloudWatch::Alarm") {
		alarms[refTarget(list(a.Properties["AlarmActions"])[0])] = a
	}
	metricOf := map[string]string{"CPUUtilization": "ASGAverageCPUUtilization", "RequestCountPerTarget": "ALBRequestCountPerTarget"}
	for _, sp := range byType("AWS::AutoScaling::ScalingPolicy") {
		p := sp.Properties
		asg := refTarget(p["AutoScalingGroupName"])
		pname := strings.TrimPrefix(sp.ID, asg+"Policy")
		switch str(p["PolicyType"]) {
		case "TargetTrackingScaling":
			tt := p["TargetTrackingConfiguration"].(map[string]any)
			pm := tt["PredefinedMetricSpecification"].(map[string]any)
			label := ""
			if rl, ok := pm["ResourceLabel"].(map[string]any); ok {
				parts := list(list(rl["Fn::Join"])[1])
				lbID, attr1 := getAttArgs(parts[0].(map[string]any)["Fn::GetAtt"])
				tgID, attr2 := getAttArgs(parts[1].(map[string]any)["Fn::GetAtt"])
				if attr1 != "LoadBalancerFullName" || attr2 != "TargetGroupFullName" {
					t.Errorf("%s: resource label joins %s and %s", sp.ID, attr1, attr2)
				}
				label = name[lbID] + "/" + name[tgID]
			}
			top.Policies = append(top.Policies, fmt.Sprintf("%s/%s target %s %v label=%s scaleIn=%v warmup %ds",
				name[asg], pname, str(pm["PredefinedMetricType"]), num(tt["TargetValue"]), label, tt["DisableScaleIn"] != true, atoi(p["EstimatedInstanceWarmup"])))
		case "StepScaling":
			a := alarms[sp.ID]
			if a == nil {
				t.Fatalf("%s: no alarm triggers it", sp.ID)
			}
			var steps []string
			for _, s := range list(p["StepAdjustments"]) {
				m := s.(map[string]any)
				steps = append(steps, stepString(numPtr(m["MetricIntervalLowerBound"]), numPtr(m["MetricIntervalUpperBound"]), atoi(m["ScalingAdjustment"])))
			}
			top.Policies = append(top.Policies, fmt.Sprintf("%s/%s step %s %s %v x%d %s %v warmup %ds",
				name[asg], pname, metricOf[str(a.Properties["MetricName"])], str(a.Properties["ComparisonOperator"]), num(a.Properties["Threshold"]),
				atoi(a.Properties["EvaluationPeriods"]), str(p["AdjustmentType"]), steps, atoi(p["EstimatedInstanceWarmup"])))
		}
	}
	top.sort()
	return top
}

func atoi(v any) int {
	f := num(v)
	return int(f)
}

func num(v any) float64 {
	if f, ok := number(v); ok {
		return f
	}
	var f float64
	fmt.Sscan(fmt.Sprint(v), &f)
	return f
}

func numPtr(v any) *float64 {
	if v == nil {
		return nil
	}
	f := num(v)
	return &f
}

// TestParity renders each stack, parses the JSON back, and compares its
// topology with the one the local runtime builds from the same plan,
// node for node.
func TestParity(t *testing.T) {
	for _, s := range stacks {
		t.Run(s.name, func(t *testing.T) {
			p := loadPlan(t, s.file)
			tpl, err := Render(p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := ParseJSON(mustJSON(t, tpl))
			if err != nil {
				t.Fatal(err)
			}
			local, aws := localTopology(t, p), templateTopology(t, parsed)
			for _, d := range diffTopology(local, aws) {
				t.Error(d)
			}
			if testing.Verbose() {
				t.Logf("topology: %+v", local)
			}
			t.Logf("%d subnets, %d route tables, %d NAT gateways, %d network ACL entries, %d nodes, %d endpoints, %d listeners, %d target groups, %d groups, %d policies",
				len(local.Subnets), len(local.RouteTables), len(local.NATs), len(local.NetworkACLs), len(local.Nodes), len(local.Endpoints), len(local.Listeners),
				len(local.TargetGroups), len(local.Groups), len(local.Policies))
		})
	}
}

// diffTopology lists the differences between two topologies.
func diffTopology(local, aws topology) []string {
	var diffs []string
	lv, av := reflect.ValueOf(local), reflect.ValueOf(aws)
	for i := range lv.NumField() {
		f := lv.Type().Field(i).Name
		if f == "Nodes" {
			continue
		}
		if !reflect.DeepEqual(lv.Field(i).Interface(), av.Field(i).Interface()) {
			diffs = append(diffs, fmt.Sprintf("%s differ:\n local: %v\n   aws: %v", f, lv.Field(i).Interface(), av.Field(i).Interface()))
		}
	}
	if len(local.Nodes) != len(aws.Nodes) {
		diffs = append(diffs, fmt.Sprintf("nodes: local %d, aws %d", len(local.Nodes), len(aws.Nodes)))
	}
	for i := range min(len(local.Nodes), len(aws.Nodes)) {
		if !reflect.DeepEqual(local.Nodes[i], aws.Nodes[i]) {
			diffs = append(diffs, fmt.Sprintf("node differs:\n local: %+v\n   aws: %+v", local.Nodes[i], aws.Nodes[i]))
		}
	}
	return diffs
}

// TestParityCatchesDrift: the parity check is not vacuous. A template
// edited after rendering (a rule's port, a subnet's block, the desired
// capacity) no longer matches the plan.
// drift is an edit of a rendered template that the parity check must see.
type drift struct {
	name  string
	drift func(tpl *Template)
}

func TestParityCatchesDrift(t *testing.T) {
	// three-zones has the network ACLs.
	checkDrift(t, loadPlan(t, stacks[1].file), []drift{
		{"network ACL entry port", func(tpl *Template) {
			props(t, tpl, "NetworkAclPrivateInbound100")["PortRange"] = map[string]any{"From": 8000, "To": 8001}
		}},
		{"network ACL entry action", func(tpl *Template) { props(t, tpl, "NetworkAclPublicOutbound100")["RuleAction"] = "deny" }},
		{"network ACL association", func(tpl *Template) {
			props(t, tpl, "SubnetPrivateCNetworkAclAssociation")["NetworkAclId"] = ref(naclID("public"))
		}},
		{"network ACL entry dropped", func(tpl *Template) {
			tpl.Resources = slices.DeleteFunc(tpl.Resources, func(r Resource) bool { return r.ID == "NetworkAclPrivateOutbound90" })
		}},
	})
	checkDrift(t, loadPlan(t, stacks[0].file), []drift{
		{"rule port", func(tpl *Template) {
			props(t, tpl, "SecurityGroupAppIngressFromLbTcp8000")["ToPort"] = 8001
		}},
		{"subnet block", func(tpl *Template) { props(t, tpl, "SubnetPrivateB")["CidrBlock"] = "10.0.130.0/24" }},
		{"desired capacity", func(tpl *Template) { props(t, tpl, "AutoScalingGroupWeb")["DesiredCapacity"] = "3" }},
		{"bastion group", func(tpl *Template) {
			ni := list(props(t, tpl, IDBastion)["NetworkInterfaces"])[0].(map[string]any)
			ni["GroupSet"] = []any{groupID("app")}
		}},
		{"egress", func(tpl *Template) { props(t, tpl, "SecurityGroupApp")["SecurityGroupEgress"] = []any{denyAllEgress} }},
		{"rollout without signals", func(tpl *Template) {
			find(t, tpl, "AutoScalingGroupWeb").UpdatePolicy["AutoScalingRollingUpdate"].(map[string]any)["WaitOnResourceSignals"] = false
		}},
		{"create without signals", func(tpl *Template) { find(t, tpl, "AutoScalingGroupWeb").CreationPolicy = nil }},
		{"instances signal before the health check", func(tpl *Template) {
			editUserData(t, tpl, "LaunchTemplateApp", "\nuntil healthy; do\n", "\nsignal 0\nuntil healthy; do\n")
		}},
		{"refresh warm-up", func(tpl *Template) {
			editUserData(t, tpl, "LaunchTemplateApp", "sleep 10 # the instance refresh warm-up", "sleep 1 # the instance refresh warm-up")
		}},
	})
}

// checkDrift applies each drift to a fresh template of p and wants the
// parity check to see it.
func checkDrift(t *testing.T, p *plan.Plan, drifts []drift) {
	t.Helper()
	for _, c := range drifts {
		tpl, err := Render(p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		c.drift(tpl)
		parsed, _ := ParseJSON(mustJSON(t, tpl))
		if len(diffTopology(localTopology(t, p), templateTopology(t, parsed))) == 0 {
			t.Errorf("%s: drift not detected", c.name)
		}
	}
}

// editUserData replaces old with new in a launch template's user data.
func editUserData(t *testing.T, tpl *Template, id, old, new string) {
	t.Helper()
	ud := props(t, tpl, id)["LaunchTemplateData"].(map[string]any)["UserData"].(map[string]any)
	sub := ud["Fn::Base64"].(map[string]any)
	s := sub["Fn::Sub"].(string)
	if !strings.Contains(s, old) {
		t.Fatalf("%s's user data lacks %q", id, old)
	}
	sub["Fn::Sub"] = strings.Replace(s, old, new, 1)
}
