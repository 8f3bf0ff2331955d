package spec

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/moat-dev/moat/internal/awsrules"
)

// AWS's documented defaults (and moat's where AWS has none); a target
// group health check's are awsrules'.
const (
	DefaultRegion = "us-east-1"
	// DefaultAMI is the latest Amazon Linux 2023 image of each instance's
	// architecture (x86_64 or arm64), resolved once when moat deploy
	// creates the stack.
	DefaultAMI                = "amazon-linux-2023"
	DefaultInstanceType       = "t3.micro"
	DefaultUser               = "ec2-user"
	DefaultKeyType            = "ed25519"
	DefaultNAT                = "none"
	DefaultLBAddress          = "127.0.0.1:8080"
	DefaultBastionAddress     = "127.0.0.1:2222"
	DefaultMetricsAddress     = "127.0.0.1:9464"
	DefaultConsoleAddress     = "127.0.0.1:9465"
	DefaultMetricPeriod       = 60
	DefaultHealthCheckType    = "EC2"
	DefaultGracePeriod        = 300
	DefaultCooldown           = 300
	DefaultMinHealthyPercent  = 90
	DefaultDeregistration     = 300
	DefaultIdleTimeout        = 60
	DefaultAlgorithm          = "round_robin"
	DefaultStickinessType     = "lb_cookie"
	DefaultStickinessDuration = 86400
	DefaultEvaluationPeriods  = 1
)

// WithDefaults returns a copy of the stack with every unset field set to
// its default, and subnets carved from the VPC CIDR when none are listed.
// It never fails: values it cannot interpret are left for Validate.
func WithDefaults(in Stack) Stack {
	s := in
	if s.VPC.NAT == "" {
		s.VPC.NAT = DefaultNAT
	}
	if len(s.VPC.Subnets) == 0 {
		s.VPC.Subnets = CarveSubnets(s.VPC.CIDR, s.VPC.Zones)
	}
	s.KeyPairs = append([]KeyPair(nil), s.KeyPairs...)
	for i := range s.KeyPairs {
		kp := &s.KeyPairs[i]
		if kp.Type == "" {
			kp.Type = DefaultKeyType
		}
	}
	s.SecurityGroups = append([]SecurityGroup(nil), s.SecurityGroups...)
	for i := range s.SecurityGroups {
		g := &s.SecurityGroups[i]
		g.Ingress = defaultRules(g.Ingress)
		if g.Egress == nil {
			g.Egress = []Rule{{Protocol: "all", CIDR: "0.0.0.0/0", Description: "all outbound traffic (AWS default)"}}
		} else {
			g.Egress = defaultRules(g.Egress)
		}
		if g.Description == "" {
			g.Description = g.Name
		}
	}
	s.NetworkACLs = append([]NetworkACL(nil), s.NetworkACLs...)
	for i := range s.NetworkACLs {
		a := &s.NetworkACLs[i]
		a.Inbound, a.Outbound = defaultACLEntries(a.Inbound), defaultACLEntries(a.Outbound)
	}
	if s.Bastion != nil {
		b := *s.Bastion
		if len(b.AllowedCIDRs) == 0 {
			b.AllowedCIDRs = []string{"0.0.0.0/0"}
		}
		if b.User == "" {
			b.User = DefaultUser
		}
		if b.InstanceType == "" {
			b.InstanceType = DefaultInstanceType
		}
		s.Bastion = &b
	}
	s.LaunchTemplates = append([]LaunchTemplate(nil), s.LaunchTemplates...)
	for i := range s.LaunchTemplates {
		lt := &s.LaunchTemplates[i]
		if lt.InstanceType == "" {
			lt.InstanceType = DefaultInstanceType
		}
		if lt.User == "" {
			lt.User = DefaultUser
		}
	}
	s.TargetGroups = append([]TargetGroup(nil), s.TargetGroups...)
	for i := range s.TargetGroups {
		defaultTargetGroup(&s, &s.TargetGroups[i])
	}
	s.AutoScalingGroups = append([]AutoScalingGroup(nil), s.AutoScalingGroups...)
	for i := range s.AutoScalingGroups {
		defaultASG(&s.AutoScalingGroups[i])
	}
	s.LoadBalancers = append([]LoadBalancer(nil), s.LoadBalancers...)
	for i := range s.LoadBalancers {
		lb := &s.LoadBalancers[i]
		if lb.IdleTimeout == 0 {
			lb.IdleTimeout = DefaultIdleTimeout
		}
		lb.Listeners = append([]Listener(nil), lb.Listeners...)
		for j := range lb.Listeners {
			l := &lb.Listeners[j]
			if l.Protocol == "" {
				l.Protocol = "HTTP"
			}
			l.Rules = append([]ListenerRule(nil), l.Rules...)
			for k := range l.Rules {
				defaultAction(&l.Rules[k].Action)
			}
			defaultAction(&l.DefaultAction)
		}
	}
	defaultLocal(&s)
	if s.AWS.Region == "" {
		s.AWS.Region = DefaultRegion
	}
	if s.AWS.AMI == "" {
		s.AWS.AMI = DefaultAMI
	}
	return s
}

func defaultRules(in []Rule) []Rule {
	out := append([]Rule(nil), in...)
	for i := range out {
		out[i].Protocol = defaultProtocol(out[i].Protocol)
	}
	return out
}

func defaultACLEntries(in []NetworkACLEntry) []NetworkACLEntry {
	out := append([]NetworkACLEntry(nil), in...)
	for i := range out {
		out[i].Protocol = defaultProtocol(out[i].Protocol)
		out[i].RuleAction = strings.ToLower(out[i].RuleAction)
	}
	return out
}

// defaultProtocol is a rule's protocol in lower case: tcp when unset, all
// for EC2's "-1".
func defaultProtocol(p string) string {
	switch p = strings.ToLower(p); p {
	case "":
		return "tcp"
	case "-1":
		return "all"
	}
	return p
}

func defaultAction(a *Action) {
	if a.Redirect != nil {
		r := *a.Redirect
		if r.Protocol == "" {
			r.Protocol = "#{protocol}"
		}
		if r.Host == "" {
			r.Host = "#{host}"
		}
		if r.Port == "" {
			r.Port = "#{port}"
		}
		if r.Path == "" {
			r.Path = "/#{path}"
		}
		if r.Query == "" {
			r.Query = "#{query}"
		}
		a.Redirect = &r
	}
	if a.FixedResponse != nil && a.FixedResponse.ContentType == "" {
		fr := *a.FixedResponse
		fr.ContentType = "text/plain"
		a.FixedResponse = &fr
	}
}

func defaultTargetGroup(s *Stack, tg *TargetGroup) {
	if tg.Protocol == "" {
		tg.Protocol = "HTTP"
	}
	if tg.Port == 0 {
		// The port of the first launch template whose group uses this target group.
		for _, g := range s.AutoScalingGroups {
			for _, name := range g.TargetGroups {
				if name != tg.Name {
					continue
				}
				for _, lt := range s.LaunchTemplates {
					if lt.Name == g.LaunchTemplate && tg.Port == 0 {
						tg.Port = lt.Port
					}
				}
			}
		}
	}
	hc := &tg.HealthCheck
	if hc.Protocol == "" {
		hc.Protocol = tg.Protocol
	}
	*hc = HealthCheck(awsrules.HealthCheck(*hc).WithDefaults())
	if tg.DeregistrationDelay == nil {
		tg.DeregistrationDelay = ptr(DefaultDeregistration)
	}
	if tg.Algorithm == "" {
		tg.Algorithm = DefaultAlgorithm
	}
	if tg.Stickiness != nil {
		st := *tg.Stickiness
		if st.Type == "" {
			st.Type = DefaultStickinessType
		}
		if st.DurationSeconds == 0 {
			st.DurationSeconds = DefaultStickinessDuration
		}
		tg.Stickiness = &st
	}
}

func defaultASG(g *AutoScalingGroup) {
	if g.DesiredCapacity == nil {
		g.DesiredCapacity = ptr(g.MinSize)
	}
	if g.HealthCheckType == "" {
		g.HealthCheckType = DefaultHealthCheckType
	}
	if g.HealthCheckGracePeriod == nil {
		g.HealthCheckGracePeriod = ptr(DefaultGracePeriod)
	}
	if g.DefaultCooldown == nil {
		g.DefaultCooldown = ptr(DefaultCooldown)
	}
	if g.InstanceRefresh.MinHealthyPercentage == nil {
		g.InstanceRefresh.MinHealthyPercentage = ptr(DefaultMinHealthyPercent)
	}
	g.ScalingPolicies = append([]ScalingPolicy(nil), g.ScalingPolicies...)
	for i := range g.ScalingPolicies {
		p := &g.ScalingPolicies[i]
		if p.Type == "" {
			p.Type = "TargetTrackingScaling"
		}
		if p.Type == "StepScaling" && p.AdjustmentType == "" {
			p.AdjustmentType = "ChangeInCapacity"
		}
		if p.Alarm != nil && p.Alarm.EvaluationPeriods == 0 {
			a := *p.Alarm
			a.EvaluationPeriods = DefaultEvaluationPeriods
			p.Alarm = &a
		}
		if p.Metric == "ALBRequestCountPerTarget" && p.TargetGroup == "" && len(g.TargetGroups) == 1 {
			p.TargetGroup = g.TargetGroups[0]
		}
	}
}

func defaultLocal(s *Stack) {
	l := &s.Local
	if l.Bastion == "" {
		l.Bastion = DefaultBastionAddress
	}
	if l.Metrics == "" {
		l.Metrics = DefaultMetricsAddress
	}
	if l.Console == "" {
		l.Console = DefaultConsoleAddress
	}
	if l.MetricPeriod == 0 {
		l.MetricPeriod = DefaultMetricPeriod
	}
	if l.Isolation == "" {
		l.Isolation = "machine"
	}
	published := map[string]bool{}
	used := map[string]bool{}
	for _, p := range l.Publish {
		published[fmt.Sprintf("%s:%d", p.LoadBalancer, p.Listener)] = true
		used[p.Address] = true
	}
	next := netip.MustParseAddrPort(DefaultLBAddress)
	l.Publish = append([]Publish(nil), l.Publish...)
	for _, lb := range s.LoadBalancers {
		for _, ln := range lb.Listeners {
			if published[fmt.Sprintf("%s:%d", lb.Name, ln.Port)] {
				continue
			}
			for used[next.String()] {
				next = netip.AddrPortFrom(next.Addr(), next.Port()+1)
			}
			l.Publish = append(l.Publish, Publish{LoadBalancer: lb.Name, Listener: ln.Port, Address: next.String()})
			used[next.String()] = true
		}
	}
}

// CarveSubnets divides a VPC CIDR into one public and one private subnet
// per zone: public subnets take the first blocks, private ones start half
// way through the VPC, so that adding a zone later renumbers nothing. The
// subnet size is /24, or 4 bits smaller than the VPC if that is smaller,
// capped at /27 (the smallest subnet AWS puts a load balancer in), or /28
// (AWS's smallest) when /27 blocks do not fit the zones. It returns nil if
// the CIDR does not parse or is too small; Validate reports why.
func CarveSubnets(vpcCIDR string, zones []string) []Subnet {
	p, err := netip.ParsePrefix(vpcCIDR)
	if err != nil || !p.Addr().Is4() || len(zones) == 0 {
		return nil
	}
	p = p.Masked()
	bits := min(max(p.Bits()+4, 24), 27)
	for bits <= p.Bits() || len(zones) > 1<<(bits-p.Bits())/2 {
		if bits == 28 {
			return nil // too small to split for these zones
		}
		bits++
	}
	half := 1 << (bits - p.Bits()) / 2
	base := ipv4ToUint(p.Addr())
	size := uint32(1) << (32 - bits)
	block := func(i int) string {
		return netip.PrefixFrom(uintToIPv4(base+uint32(i)*size), bits).String()
	}
	var out []Subnet
	for i, z := range zones {
		out = append(out, Subnet{Name: "public-" + z, Zone: z, Type: "public", CIDR: block(i)})
	}
	for i, z := range zones {
		out = append(out, Subnet{Name: "private-" + z, Zone: z, Type: "private", CIDR: block(half + i)})
	}
	return out
}

func ipv4ToUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uintToIPv4(u uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}

func ptr[T any](v T) *T { return &v }
