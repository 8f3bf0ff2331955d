package awscfn

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/fis"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
)

// Logical ids of the fixed resources, outputs and parameters.
const (
	IDVPC               = "VPC"
	IDInternetGateway   = "InternetGateway"
	IDGatewayAttachment = "InternetGatewayAttachment"
	IDBastion           = "BastionInstance"
	IDS3Endpoint        = "S3GatewayEndpoint"

	OutputBastionPublicIP = "BastionPublicIP"
	OutputSSHCommand      = "SSHCommand"
)

// Logical id builders: every plan element maps to a readable, stable id.
func subnetID(name string) string      { return "Subnet" + camel(name) }
func routeTableID(name string) string  { return "RouteTable" + camel(name) }
func natID(name string) string         { return camel(name) + "Gateway" } // nat-a -> NatAGateway
func sgID(name string) string          { return "SecurityGroup" + camel(name) }
func naclID(name string) string        { return "NetworkAcl" + camel(name) }
func keyPairID(name string) string     { return "KeyPair" + camel(name) }
func launchTplID(name string) string   { return "LaunchTemplate" + camel(name) }
func targetGroupID(name string) string { return "TargetGroup" + camel(name) }
func asgID(name string) string         { return "AutoScalingGroup" + camel(name) }
func lbID(name string) string          { return "LoadBalancer" + camel(name) }
func listenerID(lb string, port int) string {
	return fmt.Sprintf("%sListener%d", lbID(lb), port)
}

// OutputDNSName and OutputURL name a load balancer's outputs.
func OutputDNSName(lb string) string { return lbID(lb) + "DNSName" }

// OutputURL names the URL output of a load balancer.
func OutputURL(lb string) string { return lbID(lb) + "URL" }

// camel turns "private-a" or "nat_b" into "PrivateA" / "NatB". Logical ids
// allow only [A-Za-z0-9].
func camel(s string) string {
	var b strings.Builder
	up := true
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
			if up {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			up = false
		case r >= 'A' && r <= 'Z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			up = false
		default:
			up = true
		}
	}
	return b.String()
}

// Intrinsic functions.
func ref(id string) map[string]any          { return map[string]any{"Ref": id} }
func getAtt(id, attr string) map[string]any { return map[string]any{"Fn::GetAtt": []any{id, attr}} }
func sub(s string) map[string]any           { return map[string]any{"Fn::Sub": s} }
func join(sep string, parts ...any) map[string]any {
	return map[string]any{"Fn::Join": []any{sep, parts}}
}
func groupID(name string) map[string]any { return getAtt(sgID(name), "GroupId") }

func secs(d time.Duration) int { return int(d / time.Second) }

// tags names a resource after the stack, as the console shows it.
func tags(name string) []any {
	return []any{map[string]any{"Key": "Name", "Value": sub("${AWS::StackName}-" + name)}}
}

type renderer struct {
	p    *plan.Plan
	opts Options
	t    *Template
	// experiments are the stack's experiment templates, loaded and
	// checked first; ssm says one sends SSM commands to instances.
	experimentFiles []*fis.File
	ssm             bool
}

func (r *renderer) add(res Resource) { r.t.Resources = append(r.t.Resources, res) }

// has reports whether a resource was rendered.
func (r *renderer) has(id string) bool {
	return slices.ContainsFunc(r.t.Resources, func(res Resource) bool { return res.ID == id })
}

func render(p *plan.Plan, opts Options) (*Template, error) {
	if p == nil {
		return nil, fmt.Errorf("render template: no plan")
	}
	desc := "moat stack " + p.Stack
	if p.Description != "" {
		desc += ": " + p.Description
	}
	r := &renderer{p: p, opts: opts, t: &Template{Description: desc}}
	if err := r.loadExperiments(); err != nil {
		return nil, err
	}
	r.images()
	r.network()
	r.networkACLs()
	r.securityGroups()
	if err := r.keyPairs(); err != nil {
		return nil, err
	}
	r.bastion()
	for _, lt := range p.LaunchTemplates {
		if err := r.launchTemplate(lt); err != nil {
			return nil, err
		}
	}
	r.s3Endpoint()
	for _, tg := range p.TargetGroups {
		r.targetGroup(tg)
	}
	for _, lb := range p.LoadBalancers {
		r.loadBalancer(lb)
	}
	for _, g := range p.AutoScalingGroups {
		if err := r.autoScalingGroup(g); err != nil {
			return nil, err
		}
	}
	if err := r.experiments(); err != nil {
		return nil, err
	}
	r.outputs()
	return r.t, nil
}

func (r *renderer) zone(name string) string {
	for _, z := range r.p.Zones {
		if z.Name == name {
			return z.AWSName
		}
	}
	return name
}

func (r *renderer) network() {
	p := r.p
	r.add(Resource{ID: IDVPC, Type: "AWS::EC2::VPC", Properties: map[string]any{
		"CidrBlock": p.VPC.CIDR.String(), "EnableDnsHostnames": true, "EnableDnsSupport": true,
		"Tags": tags("vpc"),
	}})
	r.add(Resource{ID: IDInternetGateway, Type: "AWS::EC2::InternetGateway", Properties: map[string]any{"Tags": tags("igw")}})
	r.add(Resource{ID: IDGatewayAttachment, Type: "AWS::EC2::VPCGatewayAttachment", Properties: map[string]any{
		"VpcId": ref(IDVPC), "InternetGatewayId": ref(IDInternetGateway),
	}})
	for _, s := range p.Subnets {
		r.add(Resource{ID: subnetID(s.Name), Type: "AWS::EC2::Subnet", Properties: map[string]any{
			"VpcId": ref(IDVPC), "CidrBlock": s.CIDR.String(), "AvailabilityZone": r.zone(s.Zone),
			"MapPublicIpOnLaunch": s.Public, "Tags": tags(s.Name),
		}})
	}
	for _, n := range p.NATGateways {
		eip := natID(n.Name) + "EIP"
		r.add(Resource{ID: eip, Type: "AWS::EC2::EIP", DependsOn: []string{IDGatewayAttachment},
			Properties: map[string]any{"Domain": "vpc", "Tags": tags(n.Name)}})
		r.add(Resource{ID: natID(n.Name), Type: "AWS::EC2::NatGateway", Properties: map[string]any{
			"AllocationId": getAtt(eip, "AllocationId"), "SubnetId": ref(subnetID(n.Subnet)), "Tags": tags(n.Name),
		}})
	}
	for _, rt := range p.RouteTables {
		id := routeTableID(rt.Name)
		r.add(Resource{ID: id, Type: "AWS::EC2::RouteTable", Properties: map[string]any{
			"VpcId": ref(IDVPC), "Tags": tags(rt.Name),
		}})
		for _, rr := range rt.Routes {
			props := map[string]any{"RouteTableId": ref(id), "DestinationCidrBlock": rr.Destination.String()}
			var rid string
			var deps []string
			switch rr.Target {
			case plan.TargetLocal:
				continue // every route table has the VPC's local route
			case plan.TargetInternetGateway:
				rid, deps = id+"InternetRoute", []string{IDGatewayAttachment}
				props["GatewayId"] = ref(IDInternetGateway)
			case plan.TargetNAT:
				rid = id + "NatRoute"
				props["NatGatewayId"] = ref(natID(rr.NAT))
			default:
				continue
			}
			if rr.Destination.Bits() != 0 {
				rid += strings.NewReplacer(".", "x", "/", "m").Replace(rr.Destination.String())
			}
			r.add(Resource{ID: rid, Type: "AWS::EC2::Route", Properties: props, DependsOn: deps})
		}
		for _, sn := range rt.Subnets {
			r.add(Resource{ID: subnetID(sn) + "RouteTableAssociation", Type: "AWS::EC2::SubnetRouteTableAssociation",
				Properties: map[string]any{"SubnetId": ref(subnetID(sn)), "RouteTableId": ref(id)}})
		}
	}
}

// aclProtocol is a network ACL entry's protocol as EC2 numbers it.
var aclProtocol = map[string]int{plan.ProtoTCP: 6, plan.ProtoUDP: 17, plan.ProtoICMP: 1, plan.ProtoAll: -1}

// networkACLs renders each custom network ACL, one entry resource per
// rule (Egress false inbound, true outbound) and the subnets'
// associations. Subnets without one keep the VPC's default network ACL,
// which allows everything, as locally.
func (r *renderer) networkACLs() {
	for _, a := range r.p.NetworkACLs {
		id := naclID(a.Name)
		r.add(Resource{ID: id, Type: "AWS::EC2::NetworkAcl", Properties: map[string]any{"VpcId": ref(IDVPC), "Tags": tags(a.Name)}})
		for _, dir := range []struct {
			name    string
			egress  bool
			entries []plan.ACLEntry
		}{{"Inbound", false, a.Inbound}, {"Outbound", true, a.Outbound}} {
			for _, e := range dir.entries {
				props := map[string]any{
					"NetworkAclId": ref(id), "RuleNumber": e.RuleNumber, "Protocol": aclProtocol[e.Protocol],
					"RuleAction": e.Action(), "Egress": dir.egress, "CidrBlock": e.CIDR.String(),
				}
				switch e.Protocol {
				case plan.ProtoTCP, plan.ProtoUDP:
					props["PortRange"] = map[string]any{"From": e.FromPort, "To": e.ToPort}
				case plan.ProtoICMP:
					props["Icmp"] = map[string]any{"Type": -1, "Code": -1} // every type and code
				}
				r.add(Resource{ID: fmt.Sprintf("%s%s%d", id, dir.name, e.RuleNumber), Type: "AWS::EC2::NetworkAclEntry", Properties: props})
			}
		}
		for _, sn := range a.Subnets {
			r.add(Resource{ID: subnetID(sn) + "NetworkAclAssociation", Type: "AWS::EC2::SubnetNetworkAclAssociation",
				Properties: map[string]any{"SubnetId": ref(subnetID(sn)), "NetworkAclId": ref(id)}})
		}
	}
}

// ipProtocol maps the plan's protocol to EC2's.
func ipProtocol(p string) string {
	if p == plan.ProtoAll {
		return "-1"
	}
	return p
}

// ruleProps renders a rule's protocol and ports.
func ruleProps(rule plan.Rule) map[string]any {
	m := map[string]any{"IpProtocol": ipProtocol(rule.Protocol)}
	switch rule.Protocol {
	case plan.ProtoTCP, plan.ProtoUDP:
		m["FromPort"], m["ToPort"] = rule.FromPort, rule.ToPort
	case plan.ProtoICMP:
		m["FromPort"], m["ToPort"] = -1, -1
	}
	if rule.Description != "" {
		m["Description"] = rule.Description
	}
	return m
}

// ruleName is a readable suffix for a separate ingress/egress resource.
func ruleName(rule plan.Rule) string {
	s := camel(rule.Group) + camel(rule.Protocol)
	if rule.Protocol == plan.ProtoTCP || rule.Protocol == plan.ProtoUDP {
		if rule.FromPort == 0 && rule.ToPort == 65535 {
			s += "All"
		} else {
			s += strconv.Itoa(rule.FromPort)
			if rule.ToPort != rule.FromPort {
				s += "To" + strconv.Itoa(rule.ToPort)
			}
		}
	}
	return s
}

// denyAllEgress is the rule that keeps AWS from adding its default
// allow-all egress when a group's egress has only group-referencing rules
// (the placeholder AWS CDK uses: ICMP type 252 code 86 to a host that
// cannot exist).
var denyAllEgress = map[string]any{"IpProtocol": "icmp", "FromPort": 252, "ToPort": 86,
	"CidrIp": "255.255.255.255/32", "Description": "disallow all traffic"}

// securityGroups renders each group with its CIDR rules inline, and every
// rule that references a group as a separate ingress or egress resource,
// so groups that reference each other do not form a dependency cycle.
func (r *renderer) securityGroups() {
	for _, g := range r.p.SecurityGroups {
		var in, out []any
		for _, rule := range g.Ingress {
			if rule.Group == "" {
				m := ruleProps(rule)
				m["CidrIp"] = rule.CIDR.String()
				in = append(in, m)
			}
		}
		for _, rule := range g.Egress {
			if rule.Group == "" {
				m := ruleProps(rule)
				m["CidrIp"] = rule.CIDR.String()
				out = append(out, m)
			}
		}
		if len(out) == 0 {
			out = append(out, denyAllEgress)
		}
		desc := g.Description
		if desc == "" {
			desc = "moat security group " + g.Name
		}
		props := map[string]any{"GroupDescription": desc, "VpcId": ref(IDVPC), "SecurityGroupEgress": out, "Tags": tags(g.Name)}
		if len(in) > 0 {
			props["SecurityGroupIngress"] = in
		}
		r.add(Resource{ID: sgID(g.Name), Type: "AWS::EC2::SecurityGroup", Properties: props})
	}
	seen := map[string]int{}
	unique := func(id string) string {
		seen[id]++
		if n := seen[id]; n > 1 {
			return fmt.Sprintf("%s%d", id, n)
		}
		return id
	}
	for _, g := range r.p.SecurityGroups {
		for _, rule := range g.Ingress {
			if rule.Group == "" {
				continue
			}
			m := ruleProps(rule)
			m["GroupId"], m["SourceSecurityGroupId"] = groupID(g.Name), groupID(rule.Group)
			r.add(Resource{ID: unique(sgID(g.Name) + "IngressFrom" + ruleName(rule)), Type: "AWS::EC2::SecurityGroupIngress", Properties: m})
		}
		for _, rule := range g.Egress {
			if rule.Group == "" {
				continue
			}
			m := ruleProps(rule)
			m["GroupId"], m["DestinationSecurityGroupId"] = groupID(g.Name), groupID(rule.Group)
			r.add(Resource{ID: unique(sgID(g.Name) + "EgressTo" + ruleName(rule)), Type: "AWS::EC2::SecurityGroupEgress", Properties: m})
		}
	}
}

// keyPairs imports a public key the file names, or lets EC2 create the key
// (its private half then lives in SSM Parameter Store under
// /ec2/keypair/<key pair id>). Every property of AWS::EC2::KeyPair is
// create-only, so a new key is a replacement, and CloudFormation cannot
// replace a resource whose custom name stays the same: the name ends in a
// hash of what makes the key (imported material, or generated and its
// type), so it changes exactly when the key does.
func (r *renderer) keyPairs() error {
	for _, k := range r.p.KeyPairs {
		props := map[string]any{"Tags": tags(k.Name)}
		h := sha256.New()
		if k.PublicKeyFile != "" {
			b, err := os.ReadFile(k.PublicKeyFile)
			if err != nil {
				return fmt.Errorf("render key pair %s: %w", k.Name, err)
			}
			props["PublicKeyMaterial"] = strings.TrimSpace(string(b))
			fmt.Fprintf(h, "imported\x00%s", props["PublicKeyMaterial"])
		} else {
			typ := k.Type
			if typ == "" {
				typ = "ed25519"
			}
			props["KeyType"] = typ
			fmt.Fprintf(h, "generated\x00%s", typ)
		}
		props["KeyName"] = sub(fmt.Sprintf("${AWS::StackName}-%s-%s", k.Name, hex.EncodeToString(h.Sum(nil))[:8]))
		r.add(Resource{ID: keyPairID(k.Name), Type: "AWS::EC2::KeyPair", Properties: props})
	}
	return nil
}

func (r *renderer) bastion() {
	b := r.p.Bastion
	if b == nil {
		return
	}
	var groups []any
	for _, g := range b.SecurityGroups {
		groups = append(groups, groupID(g))
	}
	props := map[string]any{
		"ImageId": imageRef(b.InstanceType), "InstanceType": b.InstanceType, "KeyName": ref(keyPairID(b.KeyPair)),
		"NetworkInterfaces": []any{map[string]any{
			"DeviceIndex": "0", "AssociatePublicIpAddress": true, "SubnetId": ref(subnetID(b.Subnet)), "GroupSet": groups,
		}},
		"MetadataOptions": map[string]any{"HttpTokens": "required", "HttpEndpoint": "enabled"},
		"Tags":            tags("bastion"),
	}
	props["UserData"] = map[string]any{"Fn::Base64": bastionUserData(*b)}
	r.add(Resource{ID: IDBastion, Type: "AWS::EC2::Instance", DependsOn: []string{IDGatewayAttachment}, Properties: props})
}

// launchTemplate renders the launch template, and in asset mode the role
// and instance profile that may read the app bundle.
func (r *renderer) launchTemplate(lt plan.LaunchTemplate) error {
	id := launchTplID(lt.Name)
	var groups []any
	for _, g := range lt.SecurityGroups {
		groups = append(groups, groupID(g))
	}
	ud, asset, err := r.userData(&lt)
	if err != nil {
		return err
	}
	data := map[string]any{
		"ImageId": imageRef(lt.AWSInstanceType), "InstanceType": lt.AWSInstanceType, "SecurityGroupIds": groups,
		"UserData":        ud,
		"MetadataOptions": map[string]any{"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
		"TagSpecifications": []any{map[string]any{"ResourceType": "instance", "Tags": []any{
			map[string]any{"Key": "Name", "Value": sub("${AWS::StackName}-" + lt.Name)},
			map[string]any{"Key": "moat:version", "Value": lt.Version},
		}}},
	}
	if lt.KeyPair != "" {
		data["KeyName"] = ref(keyPairID(lt.KeyPair))
	}
	if asset != nil || r.ssm {
		role, profile := id+"Role", id+"InstanceProfile"
		props := map[string]any{
			"AssumeRolePolicyDocument": map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
				"Effect": "Allow", "Principal": map[string]any{"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole",
			}}},
			"Tags": tags(lt.Name),
		}
		if asset != nil {
			props["Policies"] = []any{map[string]any{"PolicyName": "read-app-bundle", "PolicyDocument": map[string]any{
				"Version": "2012-10-17", "Statement": []any{map[string]any{
					"Effect": "Allow", "Action": "s3:GetObject",
					"Resource": sub(fmt.Sprintf("arn:${AWS::Partition}:s3:::${%s}/${%s}", asset.ParamBucket, asset.ParamKey)),
				}},
			}}}
		}
		if r.ssm {
			// An experiment sends SSM commands (aws:ssm:send-command):
			// the instances' SSM agent needs this to take them.
			props["ManagedPolicyArns"] = []any{sub("arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore")}
		}
		r.add(Resource{ID: role, Type: "AWS::IAM::Role", Properties: props})
		r.add(Resource{ID: profile, Type: "AWS::IAM::InstanceProfile", Properties: map[string]any{"Roles": []any{ref(role)}}})
		data["IamInstanceProfile"] = map[string]any{"Arn": getAtt(profile, "Arn")}
	}
	r.add(Resource{ID: id, Type: "AWS::EC2::LaunchTemplate", Properties: map[string]any{
		"LaunchTemplateName": sub("${AWS::StackName}-" + lt.Name), "LaunchTemplateData": data,
	}})
	return nil
}

// s3Endpoint gives private subnets without NAT a gateway endpoint to S3,
// so instances can fetch their app bundle.
func (r *renderer) s3Endpoint() {
	if len(r.t.Assets) == 0 || len(r.p.NATGateways) > 0 {
		return
	}
	var rts []any
	for _, rt := range r.p.RouteTables {
		private := true
		for _, sn := range rt.Subnets {
			if s, ok := r.p.Subnet(sn); ok && s.Public {
				private = false
			}
		}
		if private {
			rts = append(rts, ref(routeTableID(rt.Name)))
		}
	}
	r.add(Resource{ID: IDS3Endpoint, Type: "AWS::EC2::VPCEndpoint", Properties: map[string]any{
		"VpcId": ref(IDVPC), "VpcEndpointType": "Gateway", "ServiceName": sub("com.amazonaws.${AWS::Region}.s3"),
		"RouteTableIds": rts,
	}})
}

func (r *renderer) targetGroup(tg plan.TargetGroup) {
	hc := tg.HealthCheck
	hcPort := "traffic-port"
	if hc.Port != 0 {
		hcPort = strconv.Itoa(hc.Port)
	}
	attrs := []any{
		attr("deregistration_delay.timeout_seconds", strconv.Itoa(secs(tg.DeregistrationDelay))),
		attr("slow_start.duration_seconds", strconv.Itoa(secs(tg.SlowStart))),
		attr("load_balancing.algorithm.type", tg.Algorithm),
	}
	if st := tg.Stickiness; st != nil {
		attrs = append(attrs, attr("stickiness.enabled", "true"), attr("stickiness.type", st.Type))
		if st.Type == "app_cookie" {
			attrs = append(attrs, attr("stickiness.app_cookie.cookie_name", st.CookieName),
				attr("stickiness.app_cookie.duration_seconds", strconv.Itoa(secs(st.Duration))))
		} else {
			attrs = append(attrs, attr("stickiness.lb_cookie.duration_seconds", strconv.Itoa(secs(st.Duration))))
		}
	} else {
		attrs = append(attrs, attr("stickiness.enabled", "false"))
	}
	r.add(Resource{ID: targetGroupID(tg.Name), Type: "AWS::ElasticLoadBalancingV2::TargetGroup", Properties: map[string]any{
		"VpcId": ref(IDVPC), "TargetType": "instance", "Protocol": tg.Protocol, "Port": tg.Port,
		"HealthCheckEnabled": true, "HealthCheckProtocol": hc.Protocol, "HealthCheckPath": hc.Path, "HealthCheckPort": hcPort,
		"HealthCheckIntervalSeconds": secs(hc.Interval), "HealthCheckTimeoutSeconds": secs(hc.Timeout),
		"HealthyThresholdCount": hc.HealthyThreshold, "UnhealthyThresholdCount": hc.UnhealthyThreshold,
		"Matcher":               map[string]any{"HttpCode": hc.Matcher},
		"TargetGroupAttributes": attrs, "Tags": tags(tg.Name),
	}})
}

func attr(k, v string) map[string]any { return map[string]any{"Key": k, "Value": v} }

func (r *renderer) loadBalancer(lb plan.LoadBalancer) {
	id := lbID(lb.Name)
	var subnets, groups []any
	for _, n := range lb.Nodes {
		subnets = append(subnets, ref(subnetID(n.Subnet)))
	}
	for _, g := range lb.SecurityGroups {
		groups = append(groups, groupID(g))
	}
	r.add(Resource{ID: id, Type: "AWS::ElasticLoadBalancingV2::LoadBalancer", DependsOn: []string{IDGatewayAttachment},
		Properties: map[string]any{
			"Type": "application", "Scheme": "internet-facing", "IpAddressType": "ipv4",
			"Subnets": subnets, "SecurityGroups": groups,
			"LoadBalancerAttributes": []any{attr("idle_timeout.timeout_seconds", strconv.Itoa(secs(lb.IdleTimeout)))},
			"Tags":                   tags(lb.Name),
		}})
	for _, l := range lb.Listeners {
		lid := listenerID(lb.Name, l.Port)
		props := map[string]any{"LoadBalancerArn": ref(id), "Port": l.Port, "Protocol": l.Protocol,
			"DefaultActions": []any{r.action(l.DefaultAction)}}
		if l.Protocol == "HTTPS" {
			props["SslPolicy"] = "ELBSecurityPolicy-TLS13-1-2-2021-06"
			arn := ""
			if l.Certificate != nil {
				arn = l.Certificate.ARN
			}
			param := lid + "CertificateArn"
			r.t.Parameters = append(r.t.Parameters, Parameter{Name: param, Type: "String", Default: arn,
				Description: fmt.Sprintf("Required: the ARN of an ACM certificate, in the stack's region, for the HTTPS listener on port %d of load balancer %s "+
					"(default: certificate.arn of the stack file; local certificate files are not uploaded). AWS refuses the stack without it.", l.Port, lb.Name)})
			props["Certificates"] = []any{map[string]any{"CertificateArn": ref(param)}}
		}
		r.add(Resource{ID: lid, Type: "AWS::ElasticLoadBalancingV2::Listener", Properties: props})
		for _, rule := range l.Rules {
			r.add(Resource{ID: fmt.Sprintf("%sRule%d", lid, rule.Priority), Type: "AWS::ElasticLoadBalancingV2::ListenerRule",
				Properties: map[string]any{"ListenerArn": ref(lid), "Priority": rule.Priority,
					"Conditions": conditions(rule.Conditions), "Actions": []any{r.action(rule.Action)}}})
		}
	}
}

func (r *renderer) action(a spec.Action) map[string]any {
	switch {
	case a.Forward != nil && a.Forward.TargetGroup != "":
		return map[string]any{"Type": "forward", "TargetGroupArn": ref(targetGroupID(a.Forward.TargetGroup))}
	case a.Forward != nil:
		var tgs []any
		for _, w := range a.Forward.TargetGroups {
			tgs = append(tgs, map[string]any{"TargetGroupArn": ref(targetGroupID(w.Name)), "Weight": w.Weight})
		}
		return map[string]any{"Type": "forward", "ForwardConfig": map[string]any{"TargetGroups": tgs}}
	case a.Redirect != nil:
		rc := map[string]any{"StatusCode": a.Redirect.StatusCode}
		for k, v := range map[string]string{"Protocol": a.Redirect.Protocol, "Host": a.Redirect.Host, "Port": a.Redirect.Port,
			"Path": a.Redirect.Path, "Query": a.Redirect.Query} {
			if v != "" {
				rc[k] = v
			}
		}
		return map[string]any{"Type": "redirect", "RedirectConfig": rc}
	case a.FixedResponse != nil:
		fc := map[string]any{"StatusCode": strconv.Itoa(a.FixedResponse.StatusCode)}
		if a.FixedResponse.ContentType != "" {
			fc["ContentType"] = a.FixedResponse.ContentType
		}
		if a.FixedResponse.MessageBody != "" {
			fc["MessageBody"] = a.FixedResponse.MessageBody
		}
		return map[string]any{"Type": "fixed-response", "FixedResponseConfig": fc}
	}
	return map[string]any{"Type": "fixed-response", "FixedResponseConfig": map[string]any{"StatusCode": "404"}}
}

func strs(v []string) []any {
	out := make([]any, len(v))
	for i, s := range v {
		out[i] = s
	}
	return out
}

func conditions(c spec.Conditions) []any {
	var out []any
	if len(c.HostHeader) > 0 {
		out = append(out, map[string]any{"Field": "host-header", "HostHeaderConfig": map[string]any{"Values": strs(c.HostHeader)}})
	}
	if len(c.PathPattern) > 0 {
		out = append(out, map[string]any{"Field": "path-pattern", "PathPatternConfig": map[string]any{"Values": strs(c.PathPattern)}})
	}
	if h := c.HTTPHeader; h != nil {
		out = append(out, map[string]any{"Field": "http-header", "HttpHeaderConfig": map[string]any{"HttpHeaderName": h.Name, "Values": strs(h.Values)}})
	}
	if len(c.HTTPRequestMethod) > 0 {
		out = append(out, map[string]any{"Field": "http-request-method", "HttpRequestMethodConfig": map[string]any{"Values": strs(c.HTTPRequestMethod)}})
	}
	if len(c.QueryString) > 0 {
		var kvs []any
		for _, kv := range c.QueryString {
			m := map[string]any{"Value": kv.Value}
			if kv.Key != "" {
				m["Key"] = kv.Key
			}
			kvs = append(kvs, m)
		}
		out = append(out, map[string]any{"Field": "query-string", "QueryStringConfig": map[string]any{"Values": kvs}})
	}
	if len(c.SourceIP) > 0 {
		out = append(out, map[string]any{"Field": "source-ip", "SourceIpConfig": map[string]any{"Values": strs(c.SourceIP)}})
	}
	return out
}

// lbOfTargetGroup finds the load balancer that forwards to a target group
// (ALBRequestCountPerTarget needs both in its resource label).
func (r *renderer) lbOfTargetGroup(tg string) string {
	for _, lb := range r.p.LoadBalancers {
		for _, l := range lb.Listeners {
			acts := []spec.Action{l.DefaultAction}
			for _, rule := range l.Rules {
				acts = append(acts, rule.Action)
			}
			for _, a := range acts {
				if a.Forward == nil {
					continue
				}
				if a.Forward.TargetGroup == tg {
					return lb.Name
				}
				for _, w := range a.Forward.TargetGroups {
					if w.Name == tg {
						return lb.Name
					}
				}
			}
		}
	}
	return ""
}

// listenersOf returns the listeners (and listener rules) forwarding to a
// target group.
func (r *renderer) listenersOf(tg string) []string {
	forwards := func(a spec.Action) bool {
		if a.Forward == nil {
			return false
		}
		if a.Forward.TargetGroup == tg {
			return true
		}
		for _, w := range a.Forward.TargetGroups {
			if w.Name == tg {
				return true
			}
		}
		return false
	}
	var out []string
	for _, lb := range r.p.LoadBalancers {
		for _, l := range lb.Listeners {
			lid := listenerID(lb.Name, l.Port)
			if forwards(l.DefaultAction) {
				out = append(out, lid)
			}
			for _, rule := range l.Rules {
				if forwards(rule.Action) {
					out = append(out, fmt.Sprintf("%sRule%d", lid, rule.Priority))
				}
			}
		}
	}
	return out
}

func (r *renderer) autoScalingGroup(g plan.AutoScalingGroup) error {
	id := asgID(g.Name)
	var subnets, tgs []any
	for _, s := range g.Subnets {
		subnets = append(subnets, ref(subnetID(s)))
	}
	for _, t := range g.TargetGroups {
		tgs = append(tgs, ref(targetGroupID(t)))
	}
	lt := launchTplID(g.LaunchTemplate)
	props := map[string]any{
		"LaunchTemplate": map[string]any{"LaunchTemplateId": ref(lt), "Version": getAtt(lt, "LatestVersionNumber")},
		"MinSize":        strconv.Itoa(g.MinSize), "MaxSize": strconv.Itoa(g.MaxSize),
		"DesiredCapacity":        strconv.Itoa(g.DesiredCapacity),
		"VPCZoneIdentifier":      subnets,
		"HealthCheckType":        g.HealthCheckType,
		"HealthCheckGracePeriod": secs(g.HealthCheckGracePeriod),
		"Cooldown":               strconv.Itoa(secs(g.DefaultCooldown)),
		"DefaultInstanceWarmup":  secs(g.DefaultInstanceWarmup),
		"Tags":                   []any{map[string]any{"Key": "moat:group", "Value": g.Name, "PropagateAtLaunch": true}},
	}
	if len(tgs) > 0 {
		props["TargetGroupARNs"] = tgs
	}
	if g.NewInstancesProtectedFromScaleIn {
		props["NewInstancesProtectedFromScaleIn"] = true
	}
	deps := []string{}
	for _, rt := range r.p.RouteTables {
		for _, rr := range rt.Routes {
			if rr.Target == plan.TargetNAT {
				// Instances fetch packages and bundles through NAT on boot.
				deps = append(deps, routeTableID(rt.Name)+"NatRoute")
			}
		}
	}
	if r.has(IDS3Endpoint) {
		// Without NAT, instances fetch their bundle through the endpoint.
		deps = append(deps, IDS3Endpoint)
	}
	// A target group must be associated with its load balancer (through a
	// listener) before the group registers into it and before an
	// ALBRequestCountPerTarget policy names the pair.
	for _, tg := range g.TargetGroups {
		deps = append(deps, r.listenersOf(tg)...)
	}
	sort.Strings(deps)
	deps = slices.Compact(deps)
	// A rolling replacement with the instance refresh's semantics: keep
	// MinHealthyPercentage of the desired capacity in service, replace the
	// rest per batch, and wait the refresh warm-up between batches.
	minIn := int(math.Ceil(float64(g.DesiredCapacity) * float64(g.MinHealthyPercentage) / 100))
	if minIn >= g.MaxSize {
		minIn = g.MaxSize - 1
	}
	if minIn < 0 {
		minIn = 0
	}
	batch := max(g.DesiredCapacity-minIn, 1)
	// With signals (see readiness), the first create waits for the desired
	// instances to pass their health check, and each batch of a rolling
	// update waits for its new instances' signals (PauseTime is then how
	// long) after their warm-up: a broken app fails the deploy and
	// CloudFormation rolls back. Without them the update pauses the warm-up.
	rolling := map[string]any{
		"MinInstancesInService": strconv.Itoa(minIn), "MaxBatchSize": strconv.Itoa(batch),
		"PauseTime":             fmt.Sprintf("PT%dS", secs(g.RefreshWarmup)),
		"SuspendProcesses":      []any{"HealthCheck", "ReplaceUnhealthy", "AZRebalance", "AlarmNotification", "ScheduledActions"},
		"WaitOnResourceSignals": false,
	}
	res := Resource{ID: id, Type: "AWS::AutoScaling::AutoScalingGroup", Properties: props, DependsOn: deps,
		UpdatePolicy: map[string]any{"AutoScalingRollingUpdate": rolling}}
	if sg, ok := r.signalledGroup(g.LaunchTemplate); ok && sg.Name == g.Name {
		timeout := fmt.Sprintf("PT%dS", secs(signalTimeout(g)))
		rolling["WaitOnResourceSignals"], rolling["PauseTime"] = true, timeout
		if g.DesiredCapacity > 0 {
			res.CreationPolicy = map[string]any{
				"ResourceSignal":            map[string]any{"Count": g.DesiredCapacity, "Timeout": timeout},
				"AutoScalingCreationPolicy": map[string]any{"MinSuccessfulInstancesPercent": 100},
			}
		}
	}
	if len(deps) == 0 {
		res.DependsOn = nil
	}
	r.add(res)
	for _, sp := range g.ScalingPolicies {
		if err := r.scalingPolicy(g, sp); err != nil {
			return err
		}
	}
	return nil
}

func (r *renderer) scalingPolicy(g plan.AutoScalingGroup, sp plan.ScalingPolicy) error {
	asg := asgID(g.Name)
	pid := asg + "Policy" + camel(sp.Name)
	props := map[string]any{"AutoScalingGroupName": ref(asg), "PolicyType": sp.Type,
		"EstimatedInstanceWarmup": secs(sp.Warmup)}
	var label any
	if sp.Metric == "ALBRequestCountPerTarget" {
		lb := r.lbOfTargetGroup(sp.TargetGroup)
		if lb == "" {
			return fmt.Errorf("render scaling policy %s of %s: target group %q is behind no load balancer; ALBRequestCountPerTarget needs one", sp.Name, g.Name, sp.TargetGroup)
		}
		label = join("/", getAtt(lbID(lb), "LoadBalancerFullName"), getAtt(targetGroupID(sp.TargetGroup), "TargetGroupFullName"))
	}
	switch sp.Type {
	case "TargetTrackingScaling", "":
		props["PolicyType"] = "TargetTrackingScaling"
		pm := map[string]any{"PredefinedMetricType": sp.Metric}
		if label != nil {
			pm["ResourceLabel"] = label
		}
		tt := map[string]any{"PredefinedMetricSpecification": pm, "TargetValue": sp.TargetValue}
		if sp.DisableScaleIn {
			tt["DisableScaleIn"] = true
		}
		props["TargetTrackingConfiguration"] = tt
		r.add(Resource{ID: pid, Type: "AWS::AutoScaling::ScalingPolicy", Properties: props})
	case "StepScaling":
		adj := sp.AdjustmentType
		if adj == "" {
			adj = "ChangeInCapacity"
		}
		props["AdjustmentType"], props["MetricAggregationType"] = adj, "Average"
		var steps []any
		for _, st := range sp.Steps {
			m := map[string]any{"ScalingAdjustment": st.Adjustment}
			if st.LowerBound != nil {
				m["MetricIntervalLowerBound"] = *st.LowerBound
			}
			if st.UpperBound != nil {
				m["MetricIntervalUpperBound"] = *st.UpperBound
			}
			steps = append(steps, m)
		}
		props["StepAdjustments"] = steps
		r.add(Resource{ID: pid, Type: "AWS::AutoScaling::ScalingPolicy", Properties: props})
		if sp.Alarm == nil {
			return fmt.Errorf("render scaling policy %s of %s: a step scaling policy needs an alarm", sp.Name, g.Name)
		}
		alarm := map[string]any{
			"AlarmDescription":   fmt.Sprintf("moat: step scaling %s of %s", sp.Name, g.Name),
			"ComparisonOperator": sp.Alarm.Comparison, "Threshold": sp.Alarm.Threshold,
			"EvaluationPeriods": max(sp.Alarm.EvaluationPeriods, 1), "Period": 60,
			"AlarmActions": []any{ref(pid)},
		}
		if sp.Metric == "ALBRequestCountPerTarget" {
			alarm["Namespace"], alarm["MetricName"], alarm["Statistic"] = "AWS/ApplicationELB", "RequestCountPerTarget", "Sum"
			alarm["Dimensions"] = []any{map[string]any{"Name": "TargetGroup", "Value": getAtt(targetGroupID(sp.TargetGroup), "TargetGroupFullName")}}
		} else {
			alarm["Namespace"], alarm["MetricName"], alarm["Statistic"] = "AWS/EC2", "CPUUtilization", "Average"
			alarm["Dimensions"] = []any{map[string]any{"Name": "AutoScalingGroupName", "Value": ref(asg)}}
		}
		r.add(Resource{ID: pid + "Alarm", Type: "AWS::CloudWatch::Alarm", Properties: alarm})
	default:
		return fmt.Errorf("render scaling policy %s of %s: policy type %q is not supported", sp.Name, g.Name, sp.Type)
	}
	return nil
}

// SSHCommand is the OpenSSH command line that logs in to target through
// the jump host with one key on both hops.
func SSHCommand(key, jump, target string) string {
	return fmt.Sprintf(`ssh -i %s -o ProxyCommand="ssh -i %s -W %%h:%%p %s" %s`, key, key, jump, target)
}

func (r *renderer) outputs() {
	for _, lb := range r.p.LoadBalancers {
		id := lbID(lb.Name)
		r.t.Outputs = append(r.t.Outputs, Output{Name: OutputDNSName(lb.Name),
			Description: fmt.Sprintf("DNS name of load balancer %s", lb.Name), Value: getAtt(id, "DNSName")})
		if len(lb.Listeners) > 0 {
			l := lb.Listeners[0]
			scheme := strings.ToLower(l.Protocol)
			port := ""
			if !(scheme == "http" && l.Port == 80) && !(scheme == "https" && l.Port == 443) {
				port = ":" + strconv.Itoa(l.Port)
			}
			r.t.Outputs = append(r.t.Outputs, Output{Name: OutputURL(lb.Name),
				Description: fmt.Sprintf("URL of load balancer %s, listener %d", lb.Name, l.Port),
				Value:       sub(fmt.Sprintf("%s://${%s.DNSName}%s/", scheme, id, port))})
		}
	}
	if b := r.p.Bastion; b != nil {
		r.t.Outputs = append(r.t.Outputs, Output{Name: OutputBastionPublicIP, Description: "public IP address of the bastion",
			Value: getAtt(IDBastion, "PublicIp")})
		// The instances' login is Amazon Linux's ec2-user, the bastion's is
		// bastion.user (created by its user data when it is not ec2-user);
		// the key pair is installed for both. OpenSSH's -J would not pass -i
		// to the jump host, so the key rides in a ProxyCommand.
		key := "~/.ssh/" + b.KeyPair
		r.t.Outputs = append(r.t.Outputs, Output{Name: OutputSSHCommand,
			Description: "ssh to an instance through the bastion (replace PRIVATE_IP with an instance's private address)",
			Value:       sub(SSHCommand(key, b.User+"@${"+IDBastion+".PublicIp}", "ec2-user@PRIVATE_IP"))})
	}
	for _, k := range r.p.KeyPairs {
		if k.PublicKeyFile != "" {
			continue
		}
		r.t.Outputs = append(r.t.Outputs, Output{Name: keyPairID(k.Name) + "PrivateKeyCommand",
			Description: fmt.Sprintf("fetch the private key EC2 created for key pair %s", k.Name),
			Value: sub(fmt.Sprintf("aws ssm get-parameter --name /ec2/keypair/${%s.KeyPairId} --with-decryption --query Parameter.Value --output text > ~/.ssh/%s && chmod 600 ~/.ssh/%s",
				keyPairID(k.Name), k.Name, k.Name))})
	}
}
