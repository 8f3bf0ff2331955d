package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/moat-dev/moat/internal/spec"
)

// Build validates a loaded stack file and resolves it into a plan. It
// returns every problem found; the plan is nil if any is an error.
// Warnings come back with a plan.
func Build(f *spec.File) (*Plan, spec.Problems) {
	problems := spec.Validate(f)
	if len(problems.Errors()) > 0 {
		return nil, problems
	}
	return resolve(f.Dir, spec.WithDefaults(f.Stack)), problems
}

// resolve turns a valid, defaulted stack into a plan.
func resolve(dir string, s spec.Stack) *Plan {
	p := &Plan{Stack: s.Name, Description: s.Description}
	p.VPC.CIDR = netip.MustParsePrefix(s.VPC.CIDR).Masked()
	for i, z := range s.VPC.Zones {
		aws := z
		if len(z) == 1 {
			aws = s.AWS.Region + z
		}
		p.Zones = append(p.Zones, Zone{Name: z, AWSName: aws, Index: i})
	}
	subnetIdx := map[string]int{}
	for _, sn := range s.VPC.Subnets {
		cidr := netip.MustParsePrefix(sn.CIDR).Masked()
		net := cidr.Addr()
		sub := Subnet{
			Name: sn.Name, Zone: sn.Zone, Public: sn.Type == "public", CIDR: cidr,
			Gateway: net.Next(), DNS: net.Next().Next(),
			FirstHost: net.Next().Next().Next().Next(), LastHost: lastAddr(cidr).Prev(),
		}
		if sub.Public {
			sub.RouteTable = "public"
		} else {
			sub.RouteTable = "private-" + sn.Zone
		}
		subnetIdx[sn.Name] = len(p.Subnets)
		p.Subnets = append(p.Subnets, sub)
	}
	static := func(subnet string, offset int, node string) netip.Addr {
		sub := &p.Subnets[subnetIdx[subnet]]
		a := sub.FirstHost
		for range offset {
			a = a.Next()
		}
		sub.Static = append(sub.Static, StaticAddress{Addr: a, Node: node})
		return a
	}
	firstPublic := func(zone string) string {
		for _, sn := range p.Subnets {
			if sn.Public && sn.Zone == zone {
				return sn.Name
			}
		}
		return ""
	}

	// NAT gateways take the first address of a public subnet.
	natOfZone := map[string]string{}
	for _, z := range s.VPC.Zones {
		if s.VPC.NAT == "none" || (s.VPC.NAT == "single" && z != s.VPC.Zones[0]) {
			continue
		}
		sn := firstPublic(z)
		name := "nat-" + z
		p.NATGateways = append(p.NATGateways, NATGateway{Name: name, Zone: z, Subnet: sn, Address: static(sn, 0, "nat/"+z)})
		natOfZone[z] = name
	}
	// Route tables: one public, one private per zone.
	local := Route{Destination: p.VPC.CIDR, Target: TargetLocal}
	public := RouteTable{Name: "public", Routes: []Route{local, {Destination: netip.MustParsePrefix("0.0.0.0/0"), Target: TargetInternetGateway}}}
	for _, sn := range p.Subnets {
		if sn.Public {
			public.Subnets = append(public.Subnets, sn.Name)
		}
	}
	p.RouteTables = append(p.RouteTables, public)
	for _, z := range s.VPC.Zones {
		rt := RouteTable{Name: "private-" + z, Routes: []Route{local}}
		for _, sn := range p.Subnets {
			if !sn.Public && sn.Zone == z {
				rt.Subnets = append(rt.Subnets, sn.Name)
			}
		}
		if len(rt.Subnets) == 0 {
			continue
		}
		nat := natOfZone[z]
		if nat == "" && s.VPC.NAT == "single" {
			nat = natOfZone[s.VPC.Zones[0]]
		}
		if nat != "" {
			rt.Routes = append(rt.Routes, Route{Destination: netip.MustParsePrefix("0.0.0.0/0"), Target: TargetNAT, NAT: nat})
		}
		p.RouteTables = append(p.RouteTables, rt)
	}

	for _, g := range s.SecurityGroups {
		sg := SecurityGroup{Name: g.Name, Description: g.Description}
		for _, r := range g.Ingress {
			sg.Ingress = append(sg.Ingress, resolveRule(r))
		}
		for _, r := range g.Egress {
			sg.Egress = append(sg.Egress, resolveRule(r))
		}
		p.SecurityGroups = append(p.SecurityGroups, sg)
	}
	for _, a := range s.NetworkACLs {
		acl := NetworkACL{Name: a.Name, Subnets: a.Subnets, Inbound: resolveACLEntries(a.Inbound), Outbound: resolveACLEntries(a.Outbound)}
		for _, sn := range a.Subnets {
			p.Subnets[subnetIdx[sn]].NetworkACL = a.Name
		}
		p.NetworkACLs = append(p.NetworkACLs, acl)
	}
	for _, kp := range s.KeyPairs {
		k := KeyPair{Name: kp.Name, Type: kp.Type}
		if kp.PublicKeyFile != "" {
			k.PublicKeyFile = abs(dir, kp.PublicKeyFile)
		}
		p.KeyPairs = append(p.KeyPairs, k)
	}
	if b := s.Bastion; b != nil {
		pb := &Bastion{
			Subnet: b.Subnet, Zone: p.Subnets[subnetIdx[b.Subnet]].Zone, KeyPair: b.KeyPair,
			SecurityGroups: b.SecurityGroups, User: b.User, InstanceType: b.InstanceType,
			Publish: netip.MustParseAddrPort(s.Local.Bastion),
		}
		pb.Address = static(b.Subnet, 1, "bastion")
		for _, c := range b.AllowedCIDRs {
			pb.AllowedCIDRs = append(pb.AllowedCIDRs, netip.MustParsePrefix(c).Masked())
		}
		p.Bastion = pb
		p.Endpoints = append(p.Endpoints, Endpoint{Kind: EndpointBastion, Name: "bastion", Publish: pb.Publish,
			Target: fmt.Sprintf("%s:22", pb.Address),
			URL:    fmt.Sprintf("ssh -p %d %s@%s", pb.Publish.Port(), pb.User, pb.Publish.Addr())})
	}
	for _, lt := range s.LaunchTemplates {
		l := LaunchTemplate{
			Name: lt.Name, Command: lt.Command, UserData: lt.UserData, Environment: lt.Environment,
			Port: lt.Port, SecurityGroups: lt.SecurityGroups, KeyPair: lt.KeyPair,
			InstanceType: lt.InstanceType, AWSInstanceType: lt.InstanceType, User: lt.User,
		}
		if t, ok := s.AWS.InstanceTypes[lt.Name]; ok {
			l.AWSInstanceType = t
		}
		if lt.Files != "" {
			l.FilesDir = abs(dir, lt.Files)
		}
		l.Version = version(l)
		p.LaunchTemplates = append(p.LaunchTemplates, l)
	}
	for _, tg := range s.TargetGroups {
		hc := tg.HealthCheck
		t := TargetGroup{
			Name: tg.Name, Protocol: tg.Protocol, Port: tg.Port,
			HealthCheck: HealthCheck{
				Protocol: hc.Protocol, Path: hc.Path,
				Interval: seconds(hc.IntervalSeconds), Timeout: seconds(hc.TimeoutSeconds),
				HealthyThreshold: hc.HealthyThreshold, UnhealthyThreshold: hc.UnhealthyThreshold, Matcher: hc.Matcher,
			},
			DeregistrationDelay: seconds(*tg.DeregistrationDelay), SlowStart: seconds(tg.SlowStart), Algorithm: tg.Algorithm,
		}
		if hc.Port != "traffic-port" {
			t.HealthCheck.Port, _ = strconv.Atoi(hc.Port)
		}
		if st := tg.Stickiness; st != nil && st.Enabled {
			t.Stickiness = &Stickiness{Type: st.Type, Duration: seconds(st.DurationSeconds), CookieName: st.CookieName}
		}
		for _, g := range s.AutoScalingGroups {
			for _, n := range g.TargetGroups {
				if n == tg.Name {
					t.AutoScalingGroups = append(t.AutoScalingGroups, g.Name)
				}
			}
		}
		p.TargetGroups = append(p.TargetGroups, t)
	}
	for _, g := range s.AutoScalingGroups {
		a := AutoScalingGroup{
			Name: g.Name, LaunchTemplate: g.LaunchTemplate, Subnets: g.Subnets,
			MinSize: g.MinSize, MaxSize: g.MaxSize, DesiredCapacity: *g.DesiredCapacity,
			HealthCheckType: g.HealthCheckType, HealthCheckGracePeriod: seconds(*g.HealthCheckGracePeriod),
			TargetGroups: g.TargetGroups, DefaultCooldown: seconds(*g.DefaultCooldown),
			NewInstancesProtectedFromScaleIn: g.NewInstancesProtectedFromScaleIn,
			MinHealthyPercentage:             *g.InstanceRefresh.MinHealthyPercentage,
		}
		for _, sn := range g.Subnets {
			a.Zones = append(a.Zones, p.Subnets[subnetIdx[sn]].Zone)
		}
		// AWS: without a default instance warm-up, policies fall back to
		// the cooldown.
		a.DefaultInstanceWarmup = a.DefaultCooldown
		if g.DefaultInstanceWarmup != nil {
			a.DefaultInstanceWarmup = seconds(*g.DefaultInstanceWarmup)
		}
		a.RefreshWarmup = a.DefaultInstanceWarmup
		if g.InstanceRefresh.InstanceWarmup != nil {
			a.RefreshWarmup = seconds(*g.InstanceRefresh.InstanceWarmup)
		}
		for _, sp := range g.ScalingPolicies {
			pol := ScalingPolicy{
				Name: sp.Name, Type: sp.Type, Metric: sp.Metric, TargetGroup: sp.TargetGroup,
				TargetValue: sp.TargetValue, DisableScaleIn: sp.DisableScaleIn, Warmup: a.DefaultInstanceWarmup,
				Alarm: sp.Alarm, AdjustmentType: sp.AdjustmentType, Steps: sp.Steps,
			}
			if sp.EstimatedInstanceWarmup != nil {
				pol.Warmup = seconds(*sp.EstimatedInstanceWarmup)
			}
			a.ScalingPolicies = append(a.ScalingPolicies, pol)
		}
		p.AutoScalingGroups = append(p.AutoScalingGroups, a)
	}
	publish := map[string]netip.AddrPort{}
	for _, pub := range s.Local.Publish {
		publish[fmt.Sprintf("%s:%d", pub.LoadBalancer, pub.Listener)] = netip.MustParseAddrPort(pub.Address)
	}
	for i, lb := range s.LoadBalancers {
		l := LoadBalancer{Name: lb.Name, SecurityGroups: lb.SecurityGroups, IdleTimeout: seconds(lb.IdleTimeout)}
		for _, sn := range lb.Subnets {
			l.Nodes = append(l.Nodes, LBNode{Subnet: sn, Zone: p.Subnets[subnetIdx[sn]].Zone,
				Address: static(sn, 2+i, "lb/"+lb.Name)})
		}
		for _, ln := range lb.Listeners {
			rules := append([]spec.ListenerRule(nil), ln.Rules...)
			sort.SliceStable(rules, func(a, b int) bool { return rules[a].Priority < rules[b].Priority })
			pl := Listener{Port: ln.Port, Protocol: ln.Protocol, DefaultAction: ln.DefaultAction, Rules: rules,
				Publish: publish[fmt.Sprintf("%s:%d", lb.Name, ln.Port)]}
			if c := ln.Certificate; c != nil {
				cc := *c
				if cc.CertFile != "" {
					cc.CertFile, cc.KeyFile = abs(dir, cc.CertFile), abs(dir, cc.KeyFile)
				}
				pl.Certificate = &cc
			}
			l.Listeners = append(l.Listeners, pl)
			scheme := "http"
			if ln.Protocol == "HTTPS" {
				scheme = "https"
			}
			p.Endpoints = append(p.Endpoints, Endpoint{Kind: EndpointListener, Name: fmt.Sprintf("%s:%d", lb.Name, ln.Port),
				Publish: pl.Publish, Target: fmt.Sprintf("%s %s listener", lb.Name, ln.Protocol),
				URL: fmt.Sprintf("%s://%s/", scheme, pl.Publish)})
		}
		p.LoadBalancers = append(p.LoadBalancers, l)
	}
	p.Local = Local{Egress: s.Local.Egress, Metrics: netip.MustParseAddrPort(s.Local.Metrics), MetricPeriod: seconds(s.Local.MetricPeriod), Isolation: s.Local.Isolation,
		Console: netip.MustParseAddrPort(s.Local.Console)}
	p.Endpoints = append(p.Endpoints, Endpoint{Kind: EndpointMetrics, Name: "metrics", Publish: p.Local.Metrics, Target: "Prometheus metrics",
		URL: fmt.Sprintf("http://%s/metrics", p.Local.Metrics)})
	p.Endpoints = append(p.Endpoints, Endpoint{Kind: EndpointConsole, Name: "console", Publish: p.Local.Console, Target: "the live web console",
		URL: fmt.Sprintf("http://%s/", p.Local.Console)})
	p.AWS = AWS{Region: s.AWS.Region, AMI: s.AWS.AMI, AssetBucket: s.AWS.AssetBucket}
	for _, e := range s.Experiments {
		p.Experiments = append(p.Experiments, Experiment{Name: e.Name, Template: abs(dir, e.Template)})
	}
	return p
}

func resolveRule(r spec.Rule) Rule {
	out := Rule{Protocol: r.Protocol, Group: r.Group, Description: r.Description}
	switch {
	case r.Protocol == ProtoAll || r.Protocol == ProtoICMP:
		out.FromPort, out.ToPort = 0, 0
		if r.Protocol == ProtoAll {
			out.ToPort = 65535
		}
	case r.Port.IsZero():
		out.FromPort, out.ToPort = 0, 65535
	default:
		out.FromPort, out.ToPort = r.Port.From, r.Port.To
	}
	if r.CIDR != "" {
		out.CIDR = netip.MustParsePrefix(r.CIDR).Masked()
	}
	return out
}

// resolveACLEntries resolves entries and sorts them by rule number.
func resolveACLEntries(in []spec.NetworkACLEntry) []ACLEntry {
	out := []ACLEntry{}
	for _, e := range in {
		r := resolveRule(spec.Rule{Protocol: e.Protocol, Port: e.PortRange, CIDR: e.CIDR})
		out = append(out, ACLEntry{RuleNumber: e.RuleNumber, Rule: r, Allow: e.RuleAction == "allow"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RuleNumber < out[j].RuleNumber })
	return out
}

// WithNetworkACLs returns a copy of the plan with other network ACLs, the
// subnets' associations following them (a live update).
func (p *Plan) WithNetworkACLs(acls []NetworkACL) *Plan {
	np := *p
	np.NetworkACLs = acls
	np.Subnets = slices.Clone(p.Subnets)
	for i := range np.Subnets {
		np.Subnets[i].NetworkACL = ""
		for _, a := range acls {
			if slices.Contains(a.Subnets, np.Subnets[i].Name) {
				np.Subnets[i].NetworkACL = a.Name
			}
		}
	}
	return &np
}

// NetworkACL returns the named network ACL.
func (p *Plan) NetworkACL(name string) (NetworkACL, bool) {
	for _, a := range p.NetworkACLs {
		if a.Name == name {
			return a, true
		}
	}
	return NetworkACL{}, false
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	u := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | host
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}

func seconds(n int) time.Duration { return time.Duration(n) * time.Second }

func abs(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// version is a short content hash of a launch template.
func version(l LaunchTemplate) string {
	l.Version = ""
	b, _ := json.Marshal(l)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// Subnet returns the named subnet.
func (p *Plan) Subnet(name string) (Subnet, bool) {
	for _, s := range p.Subnets {
		if s.Name == name {
			return s, true
		}
	}
	return Subnet{}, false
}

// SecurityGroup returns the named group.
func (p *Plan) SecurityGroup(name string) (SecurityGroup, bool) {
	for _, g := range p.SecurityGroups {
		if g.Name == name {
			return g, true
		}
	}
	return SecurityGroup{}, false
}

// LaunchTemplate returns the named launch template.
func (p *Plan) LaunchTemplate(name string) (LaunchTemplate, bool) {
	for _, l := range p.LaunchTemplates {
		if l.Name == name {
			return l, true
		}
	}
	return LaunchTemplate{}, false
}

// TargetGroup returns the named target group.
func (p *Plan) TargetGroup(name string) (TargetGroup, bool) {
	for _, t := range p.TargetGroups {
		if t.Name == name {
			return t, true
		}
	}
	return TargetGroup{}, false
}

// LoadBalancer returns the named load balancer.
func (p *Plan) LoadBalancer(name string) (LoadBalancer, bool) {
	for _, l := range p.LoadBalancers {
		if l.Name == name {
			return l, true
		}
	}
	return LoadBalancer{}, false
}

// TargetGroups lists the target groups a listener forwards to: its default
// action's and its rules', in that order.
func (l Listener) TargetGroups() []string {
	var out []string
	fwds := []*spec.Forward{l.DefaultAction.Forward}
	for _, r := range l.Rules {
		fwds = append(fwds, r.Action.Forward)
	}
	for _, f := range fwds {
		if f == nil {
			continue
		}
		if f.TargetGroup != "" {
			out = append(out, f.TargetGroup)
		}
		for _, w := range f.TargetGroups {
			out = append(out, w.Name)
		}
	}
	return out
}
