package awscfn

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// pseudoParameters are the parameters every stack has.
var pseudoParameters = map[string]bool{
	"AWS::AccountId": true, "AWS::NotificationARNs": true, "AWS::NoValue": true, "AWS::Partition": true,
	"AWS::Region": true, "AWS::StackId": true, "AWS::StackName": true, "AWS::URLSuffix": true,
}

var logicalID = regexp.MustCompile(`^[A-Za-z0-9]{1,255}$`)

// validator holds the template's index for the rules.
type validator struct {
	t        *Template
	res      map[string]*Resource
	params   map[string]bool
	schemas  map[string]*resourceSchema
	findings []Finding
}

func (v *validator) addf(path, format string, a ...any) {
	v.findings = append(v.findings, Finding{Path: path, Message: fmt.Sprintf(format, a...)})
}

func validate(t *Template) []Finding {
	v := &validator{t: t, res: map[string]*Resource{}, params: map[string]bool{}}
	s, err := loadSchemas()
	if err != nil {
		return []Finding{{Path: "(schemas)", Message: err.Error()}}
	}
	v.schemas = s
	for _, p := range t.Parameters {
		if !logicalID.MatchString(p.Name) {
			v.addf(fmt.Sprintf("Parameters[%q]", p.Name), "parameter name must be 1-255 letters and digits")
		}
		v.params[p.Name] = true
	}
	for i := range t.Resources {
		r := &t.Resources[i]
		if !logicalID.MatchString(r.ID) {
			v.addf(fmt.Sprintf("Resources[%q]", r.ID), "logical id must be 1-255 letters and digits")
		}
		if _, dup := v.res[r.ID]; dup || v.params[r.ID] {
			v.addf(r.ID, "logical id is used twice")
		}
		v.res[r.ID] = r
	}
	if len(t.Resources) == 0 {
		v.addf("Resources", "a template needs at least one resource")
	}
	// CloudFormation's quotas per template.
	if n := len(t.Description); n > 1024 {
		v.addf("Description", "%d bytes; CloudFormation takes at most 1024", n)
	}
	if n := len(t.Resources); n > 500 {
		v.addf("Resources", "%d resources; CloudFormation takes at most 500 per template", n)
	}
	if n := len(t.Parameters); n > 200 {
		v.addf("Parameters", "%d parameters; CloudFormation takes at most 200", n)
	}
	if n := len(t.Outputs); n > 200 {
		v.addf("Outputs", "%d outputs; CloudFormation takes at most 200", n)
	}
	for _, o := range t.Outputs {
		if !logicalID.MatchString(o.Name) {
			v.addf(fmt.Sprintf("Outputs[%q]", o.Name), "output name must be 1-255 letters and digits")
		}
	}
	if b, err := t.JSON(); err == nil && len(b) > 1_000_000 {
		v.addf("(template)", "%d bytes; CloudFormation takes at most 1,000,000 (from S3)", len(b))
	}
	for i := range t.Resources {
		v.schema(&t.Resources[i])
	}
	v.references()
	v.cycles()
	v.subnetsInVPC()
	v.zones()
	v.loadBalancers()
	v.targetPorts()
	v.resourceLabels()
	sort.SliceStable(v.findings, func(i, j int) bool { return v.findings[i].Path < v.findings[j].Path })
	return v.findings
}

// schema checks a resource's properties against its provider schema.
func (v *validator) schema(r *Resource) {
	s, ok := v.schemas[r.Type]
	if !ok {
		v.addf(r.ID+".Type", "resource type %s has no vendored schema (unknown type, or add it to schemas/refresh.py)", r.Type)
		return
	}
	c := &checker{s: s}
	props := map[string]any(r.Properties)
	if props == nil {
		props = map[string]any{}
	}
	// Normalise to what the JSON decoder produces, so a rendered template
	// and a parsed one are checked alike.
	c.check(r.ID+".Properties", normalise(props), s.root)
	for _, ro := range s.ReadOnlyProperties {
		name := strings.TrimPrefix(ro, "/properties/")
		if strings.Contains(name, "/") {
			continue
		}
		if _, set := props[name]; set {
			// Read-only properties are outputs (GetAtt), not inputs.
			if _, declared := s.root.Properties[name]; declared {
				c.addf(r.ID+".Properties."+name, "is read-only: CloudFormation sets it")
			}
		}
	}
	v.findings = append(v.findings, c.findings...)
}

// normalise round-trips a value through JSON (ints become json.Number).
func normalise(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		return m
	}
	var out map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if dec.Decode(&out) != nil {
		return m
	}
	return out
}

// ref is one reference from a resource (or output) to another.
type reference struct {
	from, path string
	to         string
	attr       string // GetAtt attribute, or "" for Ref
	dependsOn  bool
}

// refs collects every Ref, Fn::GetAtt and Fn::Sub variable in v.
func refs(from, path string, v any, out *[]reference) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, a := range x {
				switch k {
				case "Ref":
					if s, ok := a.(string); ok {
						*out = append(*out, reference{from: from, path: path, to: s})
						return
					}
				case "Fn::GetAtt":
					id, attr := getAttArgs(a)
					if id != "" {
						*out = append(*out, reference{from: from, path: path, to: id, attr: attr})
						refs(from, path+".Fn::GetAtt", a, out)
						return
					}
				case "Fn::Sub":
					var str string
					locals := map[string]bool{}
					switch s := a.(type) {
					case string:
						str = s
					case []any:
						if len(s) == 2 {
							str, _ = s[0].(string)
							if m, ok := s[1].(map[string]any); ok {
								for name, val := range m {
									locals[name] = true
									refs(from, path+".Fn::Sub."+name, val, out)
								}
							}
						}
					}
					for _, name := range subVars(str) {
						if locals[name] {
							continue
						}
						id, attr, _ := strings.Cut(name, ".")
						*out = append(*out, reference{from: from, path: path + ".Fn::Sub", to: id, attr: attr})
					}
					return
				}
			}
		}
		for _, k := range sortedKeys(x) {
			refs(from, join2(path, k), x[k], out)
		}
	case []any:
		for i, item := range x {
			refs(from, fmt.Sprintf("%s[%d]", path, i), item, out)
		}
	}
}

func getAttArgs(a any) (id, attr string) {
	switch x := a.(type) {
	case []any:
		if len(x) == 2 {
			id, _ = x[0].(string)
			attr, _ = x[1].(string)
		}
	case []string:
		if len(x) == 2 {
			id, attr = x[0], x[1]
		}
	case string:
		id, attr, _ = strings.Cut(x, ".")
	}
	return id, attr
}

var subVar = regexp.MustCompile(`\$\{([^}!][^}]*)\}`)

// subVars returns the ${Name} and ${Name.Attr} variables of a Fn::Sub
// string; ${!Literal} is not a variable.
func subVars(s string) []string {
	var out []string
	for _, m := range subVar.FindAllStringSubmatch(s, -1) {
		out = append(out, strings.TrimSpace(m[1]))
	}
	return out
}

// allRefs returns every reference in the template, DependsOn included.
func (v *validator) allRefs() []reference {
	var out []reference
	for _, r := range v.t.Resources {
		refs(r.ID, r.ID+".Properties", map[string]any(r.Properties), &out)
		for _, d := range r.DependsOn {
			out = append(out, reference{from: r.ID, path: r.ID + ".DependsOn", to: d, dependsOn: true})
		}
	}
	for _, o := range v.t.Outputs {
		refs("", "Outputs."+o.Name+".Value", o.Value, &out)
	}
	return out
}

// references checks that every Ref names a resource, parameter or pseudo
// parameter, and every GetAtt a resource attribute its schema declares.
func (v *validator) references() {
	for _, rf := range v.allRefs() {
		target, isRes := v.res[rf.to]
		switch {
		case rf.dependsOn:
			if !isRes {
				v.addf(rf.path, "DependsOn names %s, which is not a resource", rf.to)
			}
		case rf.attr == "":
			if !isRes && !v.params[rf.to] && !pseudoParameters[rf.to] {
				v.addf(rf.path, "Ref to %s, which is not a resource, parameter or pseudo parameter", rf.to)
			}
		default:
			if !isRes {
				v.addf(rf.path, "Fn::GetAtt of %s, which is not a resource", rf.to)
				continue
			}
			if s, ok := v.schemas[target.Type]; ok && !s.attrs[rf.attr] {
				v.addf(rf.path, "Fn::GetAtt %s.%s: %s has no attribute %s (has %s)", rf.to, rf.attr, target.Type, rf.attr,
					strings.Join(sortedKeys(s.attrs), ", "))
			}
		}
	}
}

// cycles finds dependency cycles between resources.
func (v *validator) cycles() {
	edges := map[string][]string{}
	for _, rf := range v.allRefs() {
		if rf.from == "" {
			continue
		}
		if _, ok := v.res[rf.to]; ok {
			edges[rf.from] = append(edges[rf.from], rf.to)
		}
	}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	reported := map[string]bool{}
	var visit func(id string)
	visit = func(id string) {
		color[id] = grey
		stack = append(stack, id)
		deps := append([]string(nil), edges[id]...)
		sort.Strings(deps)
		for _, d := range deps {
			switch color[d] {
			case white:
				visit(d)
			case grey:
				// The cycle is the stack from d to here.
				i := len(stack) - 1
				for i > 0 && stack[i] != d {
					i--
				}
				cyc := rotate(stack[i:])
				key := strings.Join(sortedUnique(cyc), ",")
				if !reported[key] {
					reported[key] = true
					v.addf(cyc[0], "dependency cycle: %s -> %s", strings.Join(cyc, " -> "), cyc[0])
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[id] = black
	}
	for _, r := range v.t.Resources {
		if color[r.ID] == white {
			visit(r.ID)
		}
	}
}

// rotate starts a cycle at its smallest id, so it reads the same whatever
// the resource order.
func rotate(cyc []string) []string {
	m := 0
	for i, id := range cyc {
		if id < cyc[m] {
			m = i
		}
	}
	return append(append([]string(nil), cyc[m:]...), cyc[:m]...)
}

func sortedUnique(s []string) []string {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return sortedKeys(m)
}

// refTarget returns the logical id v refers to (Ref or GetAtt), if any.
func refTarget(v any) string {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return ""
	}
	if s, ok := m["Ref"].(string); ok {
		return s
	}
	if a, ok := m["Fn::GetAtt"]; ok {
		id, _ := getAttArgs(a)
		return id
	}
	return ""
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	}
	return nil
}

func (v *validator) ofType(typ string) []*Resource {
	var out []*Resource
	for i := range v.t.Resources {
		if v.t.Resources[i].Type == typ {
			out = append(out, &v.t.Resources[i])
		}
	}
	// By id, so findings do not depend on the order of the resources.
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// subnetsInVPC checks every subnet's block lies inside its VPC's and that
// subnets of one VPC do not overlap.
func (v *validator) subnetsInVPC() {
	byVPC := map[string][]*Resource{}
	for _, sn := range v.ofType("AWS::EC2::Subnet") {
		cidr, err := netip.ParsePrefix(str(sn.Properties["CidrBlock"]))
		if err != nil {
			continue // the schema check reports it
		}
		vpcID := refTarget(sn.Properties["VpcId"])
		vpc, ok := v.res[vpcID]
		if !ok || vpc.Type != "AWS::EC2::VPC" {
			if vpcID != "" {
				v.addf(sn.ID+".Properties.VpcId", "refers to %s, which is not an AWS::EC2::VPC", vpcID)
			}
			continue
		}
		vc, err := netip.ParsePrefix(str(vpc.Properties["CidrBlock"]))
		if err != nil {
			continue
		}
		if !vc.Contains(cidr.Addr()) || cidr.Bits() < vc.Bits() {
			v.addf(sn.ID+".Properties.CidrBlock", "subnet %s is not inside VPC %s's %s", cidr, vpcID, vc)
		}
		if cidr.Bits() > 28 || cidr.Bits() < 16 {
			v.addf(sn.ID+".Properties.CidrBlock", "subnet %s: AWS subnets are /16 to /28", cidr)
		}
		for _, other := range byVPC[vpcID] {
			oc, _ := netip.ParsePrefix(str(other.Properties["CidrBlock"]))
			if oc.Overlaps(cidr) {
				v.addf(sn.ID+".Properties.CidrBlock", "subnet %s overlaps %s's %s", cidr, other.ID, oc)
			}
		}
		byVPC[vpcID] = append(byVPC[vpcID], sn)
	}
}

// zoneOf names a subnet's zone: the literal name, or "index N" for
// Fn::Select [N, Fn::GetAZs ...].
func zoneOf(sn *Resource) string {
	switch z := sn.Properties["AvailabilityZone"].(type) {
	case string:
		return z
	case map[string]any:
		if sel, ok := z["Fn::Select"].([]any); ok && len(sel) == 2 {
			return "zone index " + fmt.Sprint(sel[0])
		}
	}
	return ""
}

// publicSubnets returns the subnets whose route table sends 0.0.0.0/0 to
// an internet gateway.
func (v *validator) publicSubnets() map[string]bool {
	publicRT := map[string]bool{}
	for _, r := range v.ofType("AWS::EC2::Route") {
		if str(r.Properties["DestinationCidrBlock"]) != "0.0.0.0/0" {
			continue
		}
		if gw, ok := v.res[refTarget(r.Properties["GatewayId"])]; ok && gw.Type == "AWS::EC2::InternetGateway" {
			publicRT[refTarget(r.Properties["RouteTableId"])] = true
		}
	}
	out := map[string]bool{}
	for _, a := range v.ofType("AWS::EC2::SubnetRouteTableAssociation") {
		if publicRT[refTarget(a.Properties["RouteTableId"])] {
			out[refTarget(a.Properties["SubnetId"])] = true
		}
	}
	return out
}

// zones checks each zone has a public and a private subnet.
func (v *validator) zones() {
	public := v.publicSubnets()
	type pair struct{ pub, priv []string }
	byZone := map[string]*pair{}
	for _, sn := range v.ofType("AWS::EC2::Subnet") {
		z := zoneOf(sn)
		if z == "" {
			continue
		}
		if byZone[z] == nil {
			byZone[z] = &pair{}
		}
		if public[sn.ID] {
			byZone[z].pub = append(byZone[z].pub, sn.ID)
		} else {
			byZone[z].priv = append(byZone[z].priv, sn.ID)
		}
	}
	for _, z := range sortedKeys(byZone) {
		p := byZone[z]
		if len(p.pub) == 0 {
			v.addf(p.priv[0]+".Properties.AvailabilityZone", "zone %s has no public subnet (one routed to an internet gateway); it has only %s", z, strings.Join(p.priv, ", "))
		}
		if len(p.priv) == 0 {
			v.addf(p.pub[0]+".Properties.AvailabilityZone", "zone %s has no private subnet; it has only %s", z, strings.Join(p.pub, ", "))
		}
	}
}

// loadBalancers checks each internet-facing application load balancer
// spans at least two zones, in public subnets.
func (v *validator) loadBalancers() {
	public := v.publicSubnets()
	for _, lb := range v.ofType("AWS::ElasticLoadBalancingV2::LoadBalancer") {
		zones := map[string]bool{}
		for i, s := range list(lb.Properties["Subnets"]) {
			id := refTarget(s)
			sn, ok := v.res[id]
			if !ok || sn.Type != "AWS::EC2::Subnet" {
				continue
			}
			zones[zoneOf(sn)] = true
			if str(lb.Properties["Scheme"]) != "internal" && !public[id] {
				v.addf(fmt.Sprintf("%s.Properties.Subnets[%d]", lb.ID, i), "internet-facing load balancer in %s, which is not a public subnet", id)
			}
		}
		if t := str(lb.Properties["Type"]); (t == "" || t == "application") && len(zones) < 2 {
			v.addf(lb.ID+".Properties.Subnets", "an application load balancer needs subnets in at least two zones; it has %d", len(zones))
		}
	}
}

// ingressRule is a rule admitting a source group into a group.
type ingressRule struct {
	group, source string
	proto         string
	from, to      int
}

// groupIngress collects the group-referencing ingress rules, inline and
// separate.
func (v *validator) groupIngress() []ingressRule {
	var out []ingressRule
	rule := func(group string, m map[string]any) {
		src := refTarget(m["SourceSecurityGroupId"])
		if src == "" {
			return
		}
		from, _ := strconv.Atoi(fmt.Sprint(m["FromPort"]))
		to, _ := strconv.Atoi(fmt.Sprint(m["ToPort"]))
		out = append(out, ingressRule{group: group, source: src, proto: fmt.Sprint(m["IpProtocol"]), from: from, to: to})
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

func (r ingressRule) admits(port int) bool {
	switch r.proto {
	case "-1", "all":
		return true
	case "tcp", "6":
		return r.from <= port && port <= r.to
	}
	return false
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
		for _, g := range list(data["SecurityGroupIds"]) {
			instGroups = append(instGroups, refTarget(g))
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
						admitted := false
						for _, r := range rules {
							if r.source == lbGroup && r.admits(port) && contains(instGroups, r.group) {
								admitted = true
							}
						}
						if !admitted {
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

func contains(s []string, x string) bool {
	for _, e := range s {
		if e == x {
			return true
		}
	}
	return false
}

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
