package spec

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/moat-dev/moat/internal/awsrules"
	"github.com/moat-dev/moat/internal/ec2facts"
)

// Validate checks a loaded stack file and returns every problem found,
// errors and warnings, sorted by position. It applies defaults first, so
// it checks what moat will actually run.
func Validate(f *File) Problems {
	v := validator{f: f, s: WithDefaults(f.Stack), problems: append(Problems(nil), f.parseProblems...)}
	// Subnets carved from a VPC CIDR that is missing or wrong do not
	// exist; the CIDR's error is the one to report, not every reference
	// to a subnet that would have been carved.
	v.subnetsUnknown = len(v.s.VPC.Subnets) == 0
	v.run()
	v.problems.Sort()
	return v.problems
}

type validator struct {
	f              *File
	s              Stack
	problems       Problems
	subnetsUnknown bool
}

func (v *validator) errf(path, hint, format string, args ...any) {
	v.problems = append(v.problems, Problem{Severity: Error, Pos: v.f.Pos(path), Path: path,
		Message: fmt.Sprintf(format, args...), Hint: hint})
}

func (v *validator) warnf(path, hint, format string, args ...any) {
	v.problems = append(v.problems, Problem{Severity: Warning, Pos: v.f.Pos(path), Path: path,
		Message: fmt.Sprintf(format, args...), Hint: hint})
}

var (
	stackNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,23}$`)
	resourceRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	userRE      = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	regionRE    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
	zoneRE      = regexp.MustCompile(`^([a-z]|[a-z0-9-]{2,})$`) // a letter, or a full name (checked against the region)
	envRE       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	methodRE    = regexp.MustCompile(`^[A-Z_-]{1,40}$`)
)

func (v *validator) run() {
	s := v.s
	if s.Name == "" {
		v.errf("name", "add a line like: name: my-stack", "the stack has no name")
	} else if !stackNameRE.MatchString(s.Name) {
		v.errf("name", "use lower-case letters, digits and dashes, starting with a letter (it names kernel objects and the CloudFormation stack)",
			"stack name %q is not valid", s.Name)
	}
	vpc := v.vpc()
	v.keyPairs()
	v.securityGroups()
	v.networkACLs()
	v.bastion()
	v.launchTemplates()
	v.targetGroups()
	v.autoScalingGroups()
	v.loadBalancers(vpc)
	v.experiments()
	v.local()
	v.aws()
	v.reachability()
	v.naclReturnPaths()
}

// names collects the names of a list and reports duplicates and bad names.
func names[T any](v *validator, list []T, path, what string, name func(T) string) []string {
	seen := map[string]bool{}
	var out []string
	for i, it := range list {
		n := name(it)
		p := fmt.Sprintf("%s[%d].name", path, i)
		switch {
		case n == "":
			v.errf(p, fmt.Sprintf("give every %s a name", what), "this %s has no name", what)
			continue
		case !resourceRE.MatchString(n):
			v.errf(p, "use letters, digits, '-', '_' and '.', at most 63 characters", "%s name %q is not valid", what, n)
		case seen[n]:
			v.errf(p, "names must be unique; rename one of them", "%s %q is defined twice", what, n)
		}
		seen[n] = true
		out = append(out, n)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ref reports a reference to an undefined name, with a suggestion.
func (v *validator) ref(path, name string, defined []string, what string) bool {
	if name == "" {
		v.errf(path, fmt.Sprintf("name the %s to use", what), "no %s given", what)
		return false
	}
	if contains(defined, name) {
		return true
	}
	if what == "subnet" && v.subnetsUnknown {
		return false
	}
	v.errf(path, didYouMean(name, defined, what), "%s %q is not defined", what, name)
	return false
}

func (v *validator) subnetNames() []string {
	var out []string
	for _, sn := range v.s.VPC.Subnets {
		out = append(out, sn.Name)
	}
	return out
}

func (v *validator) subnet(name string) (Subnet, bool) {
	for _, sn := range v.s.VPC.Subnets {
		if sn.Name == name {
			return sn, true
		}
	}
	return Subnet{}, false
}

func (v *validator) groupNames() []string {
	var out []string
	for _, g := range v.s.SecurityGroups {
		out = append(out, g.Name)
	}
	return out
}

func (v *validator) vpc() netip.Prefix {
	s := v.s
	var vpc netip.Prefix
	if s.VPC.CIDR == "" {
		v.errf("vpc.cidr", "add e.g. cidr: 10.0.0.0/16", "the VPC has no CIDR")
	} else if p, err := netip.ParsePrefix(s.VPC.CIDR); err != nil || !p.Addr().Is4() {
		v.errf("vpc.cidr", "write an IPv4 block like 10.0.0.0/16", "%q is not an IPv4 CIDR block", s.VPC.CIDR)
	} else if p.Bits() < 16 || p.Bits() > 28 {
		v.errf("vpc.cidr", "AWS allows VPC blocks from /16 to /28", "VPC block %s is /%d", s.VPC.CIDR, p.Bits())
	} else {
		if p != p.Masked() {
			v.errf("vpc.cidr", fmt.Sprintf("write %s", p.Masked()), "%s has host bits set", s.VPC.CIDR)
		}
		vpc = p.Masked()
		if !vpc.Addr().IsPrivate() {
			v.warnf("vpc.cidr", "use a private range (RFC 1918: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)",
				"VPC block %s is not a private range", vpc)
		}
	}
	if len(s.VPC.Zones) == 0 {
		v.errf("vpc.zones", "list the availability zones, e.g. zones: [a, b]", "the VPC has no zones")
	}
	seen := map[string]bool{}
	for i, z := range s.VPC.Zones {
		p := fmt.Sprintf("vpc.zones[%d]", i)
		if z == "" || !zoneRE.MatchString(z) {
			v.errf(p, "use a zone letter (a) or a full zone name (us-east-1a)", "zone %q is not valid", z)
		}
		if seen[z] {
			v.errf(p, "remove the duplicate", "zone %q is listed twice", z)
		}
		seen[z] = true
	}
	switch s.VPC.NAT {
	case "none", "single", "per-zone":
	default:
		v.errf("vpc.nat", didYouMean(s.VPC.NAT, []string{"none", "single", "per-zone"}, "NAT mode"), "NAT mode %q is not known", s.VPC.NAT)
	}
	if len(v.f.Stack.VPC.Subnets) == 0 && vpc.IsValid() && len(s.VPC.Subnets) == 0 && len(s.VPC.Zones) > 0 {
		v.errf("vpc.cidr", "use a larger VPC block or list the subnets explicitly", "VPC block %s is too small to carve a public and a private subnet for each of %d zones", vpc, len(s.VPC.Zones))
	}
	names(v, s.VPC.Subnets, "vpc.subnets", "subnet", func(sn Subnet) string { return sn.Name })
	var parsed []netip.Prefix
	var parsedIdx []int
	for i, sn := range s.VPC.Subnets {
		p := fmt.Sprintf("vpc.subnets[%d]", i)
		if !contains(s.VPC.Zones, sn.Zone) {
			v.errf(p+".zone", didYouMean(sn.Zone, s.VPC.Zones, "zone"), "zone %q is not one of the VPC's zones", sn.Zone)
		}
		if sn.Type != "public" && sn.Type != "private" {
			v.errf(p+".type", "write type: public or type: private", "subnet type %q is not public or private", sn.Type)
		}
		cidr, err := netip.ParsePrefix(sn.CIDR)
		if err != nil || !cidr.Addr().Is4() {
			v.errf(p+".cidr", "write an IPv4 block like 10.0.1.0/24", "%q is not an IPv4 CIDR block", sn.CIDR)
			continue
		}
		if cidr.Bits() < 16 || cidr.Bits() > 28 {
			v.errf(p+".cidr", "AWS allows subnet blocks from /16 to /28", "subnet block %s is /%d", sn.CIDR, cidr.Bits())
		}
		if cidr != cidr.Masked() {
			v.errf(p+".cidr", fmt.Sprintf("write %s", cidr.Masked()), "%s has host bits set", sn.CIDR)
		}
		cidr = cidr.Masked()
		if vpc.IsValid() && !(vpc.Contains(cidr.Addr()) && cidr.Bits() >= vpc.Bits()) {
			v.errf(p+".cidr", fmt.Sprintf("choose a block inside %s", vpc), "subnet %s (%s) is outside the VPC block %s", sn.Name, cidr, vpc)
		}
		for k, other := range parsed {
			if other.Overlaps(cidr) {
				v.errf(p+".cidr", "give each subnet its own block", "subnet %s (%s) overlaps subnet %s (%s)",
					sn.Name, cidr, s.VPC.Subnets[parsedIdx[k]].Name, other)
			}
		}
		parsed = append(parsed, cidr)
		parsedIdx = append(parsedIdx, i)
	}
	if s.VPC.NAT == "none" && len(s.AutoScalingGroups) > 0 {
		v.warnf("vpc.nat", "use nat: single (or per-zone) for deploys that wait for healthy instances",
			"without NAT the instances on AWS cannot reach CloudFormation to report that they are healthy, so moat deploy does not wait for them: a rolling update pauses the warm-up instead")
	}
	if s.VPC.NAT != "none" && !v.subnetsUnknown {
		for _, z := range s.VPC.Zones {
			if s.VPC.NAT == "single" && z != s.VPC.Zones[0] {
				continue
			}
			if !v.hasSubnet(z, "public") {
				v.errf("vpc.nat", "add a public subnet in that zone, or set nat: none", "a NAT gateway in zone %s needs a public subnet there", z)
			}
		}
	}
	return vpc
}

func (v *validator) hasSubnet(zone, typ string) bool {
	for _, sn := range v.s.VPC.Subnets {
		if sn.Zone == zone && sn.Type == typ {
			return true
		}
	}
	return false
}

func (v *validator) keyPairs() {
	names(v, v.s.KeyPairs, "keyPairs", "key pair", func(k KeyPair) string { return k.Name })
	for i, kp := range v.s.KeyPairs {
		p := fmt.Sprintf("keyPairs[%d]", i)
		if kp.Type != "ed25519" && kp.Type != "rsa" {
			v.errf(p+".type", "use ed25519 or rsa", "key type %q is not supported", kp.Type)
		}
		if kp.PublicKeyFile != "" {
			if _, err := os.Stat(v.path(kp.PublicKeyFile)); err != nil {
				v.errf(p+".publicKeyFile", "give the path of an OpenSSH public key (relative to the stack file), or remove publicKeyFile to generate a key",
					"cannot read public key file %s", kp.PublicKeyFile)
			}
		}
	}
}

// path resolves a path relative to the stack file.
func (v *validator) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(v.f.Dir, p)
}

func (v *validator) securityGroups() {
	groups := names(v, v.s.SecurityGroups, "securityGroups", "security group", func(g SecurityGroup) string { return g.Name })
	for i, g := range v.s.SecurityGroups {
		v.description(fmt.Sprintf("securityGroups[%d].description", i), g.Description)
		for dir, rules := range map[string][]Rule{"ingress": g.Ingress, "egress": g.Egress} {
			if dir == "egress" && v.f.Stack.SecurityGroups[i].Egress == nil {
				continue // the default rule
			}
			for j, r := range rules {
				v.rule(fmt.Sprintf("securityGroups[%d].%s[%d]", i, dir, j), r, groups, dir)
			}
		}
	}
}

// description checks a security group's or rule's description against the
// characters EC2 takes (it refuses the stack otherwise).
func (v *validator) description(p, d string) {
	if err := ec2facts.CheckDescription(d); err != nil {
		v.errf(p, "use only "+ec2facts.DescriptionAllowed+", at most 255 characters", "%v", err)
	}
}

func (v *validator) rule(p string, r Rule, groups []string, dir string) {
	v.description(p+".description", r.Description)
	v.protocolPorts(p, "port", r.Protocol, r.Port)
	peer := "source"
	if dir == "egress" {
		peer = "destination"
	}
	switch {
	case r.CIDR == "" && r.Group == "":
		v.errf(p, "add cidr: 0.0.0.0/0 or group: <security group>", "the rule has no %s", peer)
	case r.CIDR != "" && r.Group != "":
		v.errf(p, "split it into two rules", "the rule has both a cidr and a group %s", peer)
	case r.CIDR != "":
		if c, err := netip.ParsePrefix(r.CIDR); err != nil || !c.Addr().Is4() {
			v.errf(p+".cidr", "write an IPv4 block like 0.0.0.0/0 or 10.0.0.0/16", "%q is not an IPv4 CIDR block", r.CIDR)
		}
	default:
		v.ref(p+".group", r.Group, groups, "security group")
	}
}

// protocolPorts checks a rule's protocol and its ports (field portField).
func (v *validator) protocolPorts(p, portField, proto string, port PortRange) {
	switch proto {
	case "tcp", "udp", "icmp", "all":
	default:
		v.errf(p+".protocol", didYouMean(proto, []string{"tcp", "udp", "icmp", "all"}, "protocol"), "protocol %q is not known", proto)
	}
	if !port.IsZero() {
		if port.From < 0 || port.To > 65535 || port.From > port.To {
			v.errf(p+"."+portField, "ports are 0-65535 and a range goes low-high, e.g. 8000-8010", "port %s is out of range", port)
		}
		if proto == "all" || proto == "icmp" {
			v.errf(p+"."+portField, fmt.Sprintf("remove %s, or use protocol tcp or udp", portField), "protocol %s has no ports", proto)
		}
	}
}

// networkACLs checks names, subnet associations (each subnet at most
// once) and entries: rule numbers 1-32766, unique per direction.
func (v *validator) networkACLs() {
	names(v, v.s.NetworkACLs, "networkAcls", "network ACL", func(a NetworkACL) string { return a.Name })
	owner := map[string]string{}
	for i, a := range v.s.NetworkACLs {
		p := fmt.Sprintf("networkAcls[%d]", i)
		for j, sn := range a.Subnets {
			sp := fmt.Sprintf("%s.subnets[%d]", p, j)
			if !v.ref(sp, sn, v.subnetNames(), "subnet") {
				continue
			}
			if other, dup := owner[sn]; dup {
				v.errf(sp, "a subnet has one network ACL: remove it from one of them",
					"subnet %s is already associated with network ACL %s", sn, other)
			}
			owner[sn] = a.Name
		}
		for dir, entries := range map[string][]NetworkACLEntry{"inbound": a.Inbound, "outbound": a.Outbound} {
			numbers := map[int]bool{}
			for j, e := range entries {
				ep := fmt.Sprintf("%s.%s[%d]", p, dir, j)
				if e.RuleNumber < 1 || e.RuleNumber > 32766 {
					v.errf(ep+".ruleNumber", "use a rule number 1-32766 (AWS's range; leave gaps, e.g. 100, 110, 120, to insert rules later)",
						"rule number %d is out of range", e.RuleNumber)
				} else if numbers[e.RuleNumber] {
					v.errf(ep+".ruleNumber", fmt.Sprintf("give each %s entry its own rule number", dir),
						"rule number %d is used twice in %s", e.RuleNumber, dir)
				}
				numbers[e.RuleNumber] = true
				v.protocolPorts(ep, "portRange", e.Protocol, e.PortRange)
				if e.CIDR == "" {
					v.errf(ep, "add cidr: 0.0.0.0/0 or a narrower block", "the entry has no cidr")
				} else if c, err := netip.ParsePrefix(e.CIDR); err != nil || !c.Addr().Is4() {
					v.errf(ep+".cidr", "write an IPv4 block like 0.0.0.0/0 or 10.0.0.0/16", "%q is not an IPv4 CIDR block", e.CIDR)
				}
				if e.RuleAction == "" {
					v.errf(ep, "add ruleAction: allow or ruleAction: deny", "the entry has no ruleAction")
				} else if e.RuleAction != "allow" && e.RuleAction != "deny" {
					v.errf(ep+".ruleAction", didYouMean(e.RuleAction, []string{"allow", "deny"}, "rule action"), "rule action %q is not allow or deny", e.RuleAction)
				}
			}
		}
	}
}

func (v *validator) groupRefs(p string, refs []string) {
	if len(refs) == 0 {
		v.errf(p, "list at least one security group", "no security groups given")
	}
	for i, g := range refs {
		v.ref(fmt.Sprintf("%s[%d]", p, i), g, v.groupNames(), "security group")
	}
}

func (v *validator) keyPairRef(p, name string) {
	var defined []string
	for _, k := range v.s.KeyPairs {
		defined = append(defined, k.Name)
	}
	v.ref(p, name, defined, "key pair")
}

func (v *validator) bastion() {
	b := v.s.Bastion
	if b == nil {
		return
	}
	if v.ref("bastion.subnet", b.Subnet, v.subnetNames(), "subnet") {
		if sn, _ := v.subnet(b.Subnet); sn.Type != "public" {
			v.errf("bastion.subnet", "put the bastion in a public subnet", "subnet %s is private: the bastion must be reachable from outside", b.Subnet)
		}
	}
	v.keyPairRef("bastion.keyPair", b.KeyPair)
	v.groupRefs("bastion.securityGroups", b.SecurityGroups)
	for i, c := range b.AllowedCIDRs {
		p := fmt.Sprintf("bastion.allowedCidrs[%d]", i)
		cidr, err := netip.ParsePrefix(c)
		if err != nil || !cidr.Addr().Is4() {
			v.errf(p, "write an IPv4 block like 203.0.113.0/24", "%q is not an IPv4 CIDR block", c)
			continue
		}
		if !awsrules.Admits(v.ingress(b.SecurityGroups), awsrules.Source{Blocks: []netip.Prefix{cidr}}, 22) {
			v.warnf(p, fmt.Sprintf("add to one of %s an ingress rule: {protocol: tcp, port: 22, cidr: %s}", strings.Join(b.SecurityGroups, ", "), c),
				"the bastion's security groups do not admit %s on tcp/22", c)
		}
	}
	if !userRE.MatchString(b.User) {
		v.errf("bastion.user", "use a Unix user name like ec2-user", "user %q is not a valid user name", b.User)
	}
	v.bastionWiderThanAllowed(b)
}

// bastionWiderThanAllowed warns when allowedCidrs is set and a bastion
// group admits tcp/22 from beyond it: on AWS the bastion's sshd refuses
// those sources, but the port stays open to them, and the group is where
// AWS users expect the limit.
func (v *validator) bastionWiderThanAllowed(b *Bastion) {
	if v.f.Stack.Bastion == nil || len(v.f.Stack.Bastion.AllowedCIDRs) == 0 {
		return
	}
	var allowed []netip.Prefix
	for _, c := range b.AllowedCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return // reported above
		}
		allowed = append(allowed, p.Masked())
	}
	within := func(c netip.Prefix) bool {
		for _, a := range allowed {
			if a.Bits() <= c.Bits() && a.Contains(c.Addr()) {
				return true
			}
		}
		return false
	}
	for gi, g := range v.s.SecurityGroups {
		if !contains(b.SecurityGroups, g.Name) {
			continue
		}
		for ri, r := range g.Ingress {
			if !r.ingress().CoversTCP(22) || r.CIDR == "" {
				continue
			}
			if c, err := netip.ParsePrefix(r.CIDR); err == nil && !within(c.Masked()) {
				v.warnf(fmt.Sprintf("securityGroups[%d].ingress[%d]", gi, ri),
					fmt.Sprintf("narrow the rule to the allowed networks, e.g. {protocol: tcp, port: 22, cidr: %s}", b.AllowedCIDRs[0]),
					"security group %s admits %s on tcp/22, wider than bastion.allowedCidrs (%s)", g.Name, r.CIDR, strings.Join(b.AllowedCIDRs, ", "))
			}
		}
	}
}

func (v *validator) launchTemplates() {
	names(v, v.s.LaunchTemplates, "launchTemplates", "launch template", func(l LaunchTemplate) string { return l.Name })
	for i, lt := range v.s.LaunchTemplates {
		p := fmt.Sprintf("launchTemplates[%d]", i)
		if strings.TrimSpace(lt.Command) == "" {
			v.errf(p+".command", "add the command that starts the app, e.g. command: python3 app.py", "the launch template has no command")
		}
		if lt.Port < 1 || lt.Port > 65535 {
			v.errf(p+".port", "set the port the app listens on, 1-65535", "port %d is out of range", lt.Port)
		}
		v.groupRefs(p+".securityGroups", lt.SecurityGroups)
		if lt.KeyPair != "" {
			v.keyPairRef(p+".keyPair", lt.KeyPair)
		}
		if lt.Files != "" {
			if st, err := os.Stat(v.path(lt.Files)); err != nil || !st.IsDir() {
				v.errf(p+".files", "give a directory relative to the stack file", "files directory %s does not exist", lt.Files)
			}
		}
		if !userRE.MatchString(lt.User) {
			v.errf(p+".user", "use a Unix user name like ec2-user", "user %q is not a valid user name", lt.User)
		}
		for k := range lt.Environment {
			if !envRE.MatchString(k) {
				v.errf(p+".environment."+k, "use letters, digits and '_', not starting with a digit", "%q is not a valid environment variable name", k)
			}
		}
	}
}

func (v *validator) targetGroups() {
	names(v, v.s.TargetGroups, "targetGroups", "target group", func(t TargetGroup) string { return t.Name })
	for i, tg := range v.s.TargetGroups {
		p := fmt.Sprintf("targetGroups[%d]", i)
		if tg.Protocol != "HTTP" && tg.Protocol != "HTTPS" {
			v.errf(p+".protocol", "use HTTP or HTTPS", "protocol %q is not supported for a target group", tg.Protocol)
		}
		if tg.Port < 1 || tg.Port > 65535 {
			v.errf(p+".port", "set port: to the app's port (or use the target group from an auto scaling group so the launch template's port is used)", "port %d is out of range 1-65535", tg.Port)
		}
		hc, hp := tg.HealthCheck, p+".healthCheck"
		if hc.Protocol != "HTTP" && hc.Protocol != "HTTPS" {
			v.errf(hp+".protocol", "use HTTP or HTTPS", "health check protocol %q is not supported", hc.Protocol)
		}
		for _, pr := range awsrules.HealthCheck(hc).Problems() {
			v.errf(hp+"."+pr.Field, pr.Fix, "%s", pr.Problem)
		}
		v.between(p+".deregistrationDelay", *tg.DeregistrationDelay, 0, 3600, "deregistration delay")
		if tg.SlowStart != 0 && (tg.SlowStart < 30 || tg.SlowStart > 900) {
			v.errf(p+".slowStart", "use 0 (off) or 30-900 seconds", "slow start %ds is out of range", tg.SlowStart)
		}
		switch tg.Algorithm {
		case "round_robin", "least_outstanding_requests", "weighted_random":
		default:
			v.errf(p+".algorithm", didYouMean(tg.Algorithm, []string{"round_robin", "least_outstanding_requests", "weighted_random"}, "algorithm"), "algorithm %q is not known", tg.Algorithm)
		}
		if tg.SlowStart != 0 && tg.Algorithm == "least_outstanding_requests" {
			v.errf(p+".slowStart", "use round_robin, or set slowStart: 0", "ALB does not support slow start with least_outstanding_requests")
		}
		if st := tg.Stickiness; st != nil {
			sp := p + ".stickiness"
			if st.Type != "lb_cookie" && st.Type != "app_cookie" {
				v.errf(sp+".type", "use lb_cookie or app_cookie", "stickiness type %q is not known", st.Type)
			}
			v.between(sp+".durationSeconds", st.DurationSeconds, 1, 604800, "stickiness duration")
			if st.Type == "app_cookie" {
				switch {
				case st.CookieName == "":
					v.errf(sp+".cookieName", "name the application's cookie", "app_cookie stickiness needs a cookie name")
				case strings.HasPrefix(st.CookieName, "AWSALB") || strings.HasPrefix(st.CookieName, "AWSALBAPP") || strings.HasPrefix(st.CookieName, "AWSALBTG"):
					v.errf(sp+".cookieName", "choose another name", "cookie names starting with AWSALB are reserved")
				}
			}
		}
	}
}

func (v *validator) between(p string, n, lo, hi int, what string) {
	if n < lo || n > hi {
		v.errf(p, fmt.Sprintf("AWS allows %d to %d", lo, hi), "%s %d is out of range", what, n)
	}
}

func (v *validator) tgNames() []string {
	var out []string
	for _, tg := range v.s.TargetGroups {
		out = append(out, tg.Name)
	}
	return out
}

func (v *validator) autoScalingGroups() {
	names(v, v.s.AutoScalingGroups, "autoScalingGroups", "auto scaling group", func(g AutoScalingGroup) string { return g.Name })
	var lts []string
	for _, lt := range v.s.LaunchTemplates {
		lts = append(lts, lt.Name)
	}
	for i, g := range v.s.AutoScalingGroups {
		p := fmt.Sprintf("autoScalingGroups[%d]", i)
		v.ref(p+".launchTemplate", g.LaunchTemplate, lts, "launch template")
		if len(g.Subnets) == 0 {
			v.errf(p+".subnets", "list the subnets to launch into, e.g. [private-a, private-b]", "the group has no subnets")
		}
		for j, sn := range g.Subnets {
			sp := fmt.Sprintf("%s.subnets[%d]", p, j)
			if v.ref(sp, sn, v.subnetNames(), "subnet") {
				if s, _ := v.subnet(sn); s.Type == "public" {
					v.warnf(sp, "launch app instances into private subnets", "subnet %s is public", sn)
				}
			}
		}
		desired := *g.DesiredCapacity
		switch {
		case g.MinSize < 0:
			v.errf(p+".minSize", "use 0 or more", "minSize %d is negative", g.MinSize)
		case g.MaxSize < 1:
			v.errf(p+".maxSize", "set maxSize to at least 1", "maxSize %d is less than 1", g.MaxSize)
		case g.MinSize > g.MaxSize:
			v.errf(p+".minSize", "make minSize ≤ maxSize", "minSize %d is greater than maxSize %d", g.MinSize, g.MaxSize)
		case desired < g.MinSize || desired > g.MaxSize:
			v.errf(p+".desiredCapacity", fmt.Sprintf("choose a value from %d to %d", g.MinSize, g.MaxSize),
				"desiredCapacity %d is outside minSize %d .. maxSize %d", desired, g.MinSize, g.MaxSize)
		}
		if g.HealthCheckType != "EC2" && g.HealthCheckType != "ELB" {
			v.errf(p+".healthCheckType", "use EC2 or ELB", "health check type %q is not known", g.HealthCheckType)
		}
		if g.HealthCheckType == "ELB" && len(g.TargetGroups) == 0 {
			v.errf(p+".healthCheckType", "add targetGroups, or use healthCheckType: EC2", "ELB health checks need a target group")
		}
		v.between(p+".healthCheckGracePeriod", *g.HealthCheckGracePeriod, 0, 7200, "health check grace period")
		v.between(p+".defaultCooldown", *g.DefaultCooldown, 0, 86400, "default cooldown")
		if g.DefaultInstanceWarmup != nil {
			v.between(p+".defaultInstanceWarmup", *g.DefaultInstanceWarmup, 0, 3600, "default instance warm-up")
		}
		for j, tg := range g.TargetGroups {
			v.ref(fmt.Sprintf("%s.targetGroups[%d]", p, j), tg, v.tgNames(), "target group")
		}
		names(v, g.ScalingPolicies, p+".scalingPolicies", "scaling policy", func(sp ScalingPolicy) string { return sp.Name })
		for j, sp := range g.ScalingPolicies {
			v.policy(fmt.Sprintf("%s.scalingPolicies[%d]", p, j), sp, g)
		}
		v.between(p+".instanceRefresh.minHealthyPercentage", *g.InstanceRefresh.MinHealthyPercentage, 0, 100, "minimum healthy percentage")
		if g.InstanceRefresh.InstanceWarmup != nil {
			v.between(p+".instanceRefresh.instanceWarmup", *g.InstanceRefresh.InstanceWarmup, 0, 3600, "instance refresh warm-up")
		}
	}
}

func (v *validator) policy(p string, sp ScalingPolicy, g AutoScalingGroup) {
	switch sp.Metric {
	case "ASGAverageCPUUtilization":
	case "ALBRequestCountPerTarget":
		if sp.TargetGroup == "" {
			v.errf(p+".targetGroup", "name the target group whose requests are counted", "ALBRequestCountPerTarget needs a target group (the group has %d)", len(g.TargetGroups))
		} else if !contains(g.TargetGroups, sp.TargetGroup) {
			v.errf(p+".targetGroup", didYouMean(sp.TargetGroup, g.TargetGroups, "target group of this auto scaling group"),
				"target group %q is not attached to auto scaling group %s", sp.TargetGroup, g.Name)
		}
	default:
		v.errf(p+".metric", didYouMean(sp.Metric, []string{"ASGAverageCPUUtilization", "ALBRequestCountPerTarget"}, "metric"), "metric %q is not supported", sp.Metric)
	}
	if sp.EstimatedInstanceWarmup != nil {
		v.between(p+".estimatedInstanceWarmup", *sp.EstimatedInstanceWarmup, 0, 3600, "estimated instance warm-up")
	}
	switch sp.Type {
	case "TargetTrackingScaling":
		if sp.TargetValue <= 0 {
			v.errf(p+".targetValue", "set the value to hold, e.g. targetValue: 50", "target tracking needs a positive targetValue")
		}
		if sp.Metric == "ASGAverageCPUUtilization" && sp.TargetValue > 100 {
			v.errf(p+".targetValue", "CPU utilisation is a percentage: use 1-100", "target value %g is above 100%%", sp.TargetValue)
		}
	case "StepScaling":
		if sp.Alarm == nil {
			v.errf(p+".alarm", "add alarm: {comparison: GreaterThanOrEqualToThreshold, threshold: 70}", "step scaling needs an alarm")
		} else {
			switch sp.Alarm.Comparison {
			case "GreaterThanOrEqualToThreshold", "GreaterThanThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold":
			default:
				v.errf(p+".alarm.comparison", didYouMean(sp.Alarm.Comparison, []string{"GreaterThanOrEqualToThreshold", "GreaterThanThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold"}, "comparison"),
					"comparison %q is not known", sp.Alarm.Comparison)
			}
			v.between(p+".alarm.evaluationPeriods", sp.Alarm.EvaluationPeriods, 1, 100, "evaluation periods")
		}
		if len(sp.Steps) == 0 {
			v.errf(p+".steps", "add steps, e.g. [{lowerBound: 0, adjustment: 1}]", "step scaling needs at least one step")
		}
		switch sp.AdjustmentType {
		case "ChangeInCapacity", "PercentChangeInCapacity", "ExactCapacity":
		default:
			v.errf(p+".adjustmentType", "use ChangeInCapacity, PercentChangeInCapacity or ExactCapacity", "adjustment type %q is not known", sp.AdjustmentType)
		}
		for k, st := range sp.Steps {
			if st.LowerBound != nil && st.UpperBound != nil && *st.LowerBound >= *st.UpperBound {
				v.errf(fmt.Sprintf("%s.steps[%d]", p, k), "make lowerBound < upperBound", "step bounds are empty")
			}
		}
	default:
		v.errf(p+".type", "use TargetTrackingScaling or StepScaling", "policy type %q is not supported", sp.Type)
	}
}

func (v *validator) loadBalancers(vpc netip.Prefix) {
	names(v, v.s.LoadBalancers, "loadBalancers", "load balancer", func(l LoadBalancer) string { return l.Name })
	for i, lb := range v.s.LoadBalancers {
		p := fmt.Sprintf("loadBalancers[%d]", i)
		zones := map[string]string{}
		for j, sn := range lb.Subnets {
			sp := fmt.Sprintf("%s.subnets[%d]", p, j)
			if !v.ref(sp, sn, v.subnetNames(), "subnet") {
				continue
			}
			s, _ := v.subnet(sn)
			if s.Type != "public" {
				v.errf(sp, "use the public subnets, one per zone", "subnet %s is private: an internet-facing load balancer needs public subnets", sn)
			}
			if c, err := netip.ParsePrefix(s.CIDR); err == nil && c.Addr().Is4() && c.Bits() > 27 {
				v.errf(sp, "give the load balancer public subnets of /27 or larger", "subnet %s (%s) is smaller than /27: AWS places a load balancer only in subnets of /27 or larger, with 8 free addresses", sn, c)
			} else if err == nil && c.Addr().Is4() && c.Bits() <= 32 {
				// Fixed addresses from the first host: NAT, bastion, then
				// one per load balancer (see package plan).
				if hosts := 1<<(32-c.Bits()) - 5; 2+i >= hosts {
					v.errf(sp, "use a larger subnet or fewer load balancers", "subnet %s (%s) has no address left for load balancer %s", sn, c, lb.Name)
				}
			}
			if other, dup := zones[s.Zone]; dup {
				v.errf(sp, "use one subnet per zone", "subnets %s and %s are both in zone %s; AWS allows one subnet per zone", other, sn, s.Zone)
			}
			zones[s.Zone] = sn
		}
		if len(zones) < 2 && !v.subnetsUnknown {
			v.errf(p+".subnets", "list a public subnet in each of at least two zones, e.g. [public-a, public-b]",
				"a load balancer needs subnets in at least two availability zones (AWS requires it); it has %d", len(zones))
		}
		v.groupRefs(p+".securityGroups", lb.SecurityGroups)
		v.between(p+".idleTimeout", lb.IdleTimeout, 1, 4000, "idle timeout")
		if len(lb.Listeners) == 0 {
			v.errf(p+".listeners", "add a listener, e.g. {port: 80, defaultAction: {forward: {targetGroup: web}}}", "the load balancer has no listeners")
		}
		ports := map[int]bool{}
		for j, l := range lb.Listeners {
			lp := fmt.Sprintf("%s.listeners[%d]", p, j)
			if l.Port < 1 || l.Port > 65535 {
				v.errf(lp+".port", "use a port 1-65535", "listener port %d is out of range", l.Port)
			}
			if ports[l.Port] {
				v.errf(lp+".port", "use a different port", "two listeners on port %d", l.Port)
			}
			ports[l.Port] = true
			switch l.Protocol {
			case "HTTP":
				if l.Certificate != nil {
					v.errf(lp+".certificate", "set protocol: HTTPS, or remove the certificate", "an HTTP listener takes no certificate")
				}
			case "HTTPS":
				v.acmCertificate(lp, l.Certificate)
				if c := l.Certificate; c != nil && (c.CertFile == "") != (c.KeyFile == "") {
					v.errf(lp+".certificate", "give both certFile and keyFile", "a certificate needs both a certificate and a key file")
				} else if c != nil {
					for _, f := range []struct{ path, field string }{{c.CertFile, "certFile"}, {c.KeyFile, "keyFile"}} {
						if f.path == "" {
							continue
						}
						if _, err := os.Stat(v.path(f.path)); err != nil {
							v.errf(lp+".certificate."+f.field, "give a PEM file path relative to the stack file", "cannot read %s", f.path)
						}
					}
				}
			default:
				v.errf(lp+".protocol", "use HTTP or HTTPS", "listener protocol %q is not supported", l.Protocol)
			}
			v.action(lp+".defaultAction", l.DefaultAction)
			prios := map[int]bool{}
			for k, r := range l.Rules {
				rp := fmt.Sprintf("%s.rules[%d]", lp, k)
				v.between(rp+".priority", r.Priority, 1, 50000, "rule priority")
				if prios[r.Priority] {
					v.errf(rp+".priority", "give each rule of a listener its own priority", "priority %d is used twice", r.Priority)
				}
				prios[r.Priority] = true
				v.conditions(rp+".conditions", r.Conditions)
				v.action(rp+".action", r.Action)
			}
		}
	}
}

// acmCertificate warns when an HTTPS listener has no ACM certificate: on
// AWS the listener takes its certificate from ACM (the template's
// CertificateArn parameter of the listener, default certificate.arn), and
// AWS refuses the stack without one. Locally moat serves the certificate
// files, or a self-signed certificate.
func (v *validator) acmCertificate(lp string, c *Certificate) {
	if c != nil && c.ARN != "" {
		return
	}
	hint := "add certificate: {arn: arn:aws:acm:REGION:ACCOUNT:certificate/ID} (an ACM certificate in aws.region), or pass the ARN to moat deploy as the listener's template parameter: --parameter LoadBalancer<Name>Listener<Port>CertificateArn=ARN (moat template lists it)"
	if c == nil {
		v.warnf(lp+".protocol", hint, "on AWS an HTTPS listener needs an ACM certificate, and this one has none (locally moat serves a self-signed one)")
		return
	}
	v.warnf(lp+".certificate", hint, "local certificate files are not uploaded to AWS: on AWS an HTTPS listener needs an ACM certificate (certificate.arn)")
}

func (v *validator) conditions(p string, c Conditions) {
	n := len(c.HostHeader) + len(c.PathPattern) + len(c.HTTPRequestMethod) + len(c.QueryString) + len(c.SourceIP)
	if c.HTTPHeader != nil {
		n += len(c.HTTPHeader.Values)
		if c.HTTPHeader.Name == "" || len(c.HTTPHeader.Values) == 0 {
			v.errf(p+".httpHeader", "give name: and values:", "an http-header condition needs a header name and values")
		}
	}
	if n == 0 {
		v.errf(p, "add a condition such as pathPattern: [/api/*]", "the rule has no conditions")
	}
	for i, m := range c.HTTPRequestMethod {
		if !methodRE.MatchString(m) {
			v.errf(fmt.Sprintf("%s.httpRequestMethod[%d]", p, i), "methods are upper case, e.g. GET", "method %q is not valid", m)
		}
	}
	for i, s := range c.SourceIP {
		if _, err := netip.ParsePrefix(s); err != nil {
			v.errf(fmt.Sprintf("%s.sourceIp[%d]", p, i), "write a CIDR block like 192.0.2.0/24", "%q is not a CIDR block", s)
		}
	}
	for i, s := range c.PathPattern {
		if len(s) > 128 {
			v.errf(fmt.Sprintf("%s.pathPattern[%d]", p, i), "ALB allows at most 128 characters", "path pattern is too long")
		}
	}
}

func (v *validator) action(p string, a Action) {
	set := 0
	for _, b := range []bool{a.Forward != nil, a.Redirect != nil, a.FixedResponse != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		v.errf(p, "give exactly one of forward:, redirect: or fixedResponse:", "an action needs exactly one of forward, redirect or fixedResponse (it has %d)", set)
		return
	}
	switch {
	case a.Forward != nil:
		f := a.Forward
		if (f.TargetGroup == "") == (len(f.TargetGroups) == 0) {
			v.errf(p+".forward", "give targetGroup: NAME, or targetGroups: [{name: NAME, weight: 1}]", "forward needs one targetGroup or a weighted targetGroups list")
		}
		if f.TargetGroup != "" {
			v.ref(p+".forward.targetGroup", f.TargetGroup, v.tgNames(), "target group")
		}
		if len(f.TargetGroups) > 5 {
			v.errf(p+".forward.targetGroups", "ALB allows at most 5", "%d target groups in one forward action", len(f.TargetGroups))
		}
		for i, w := range f.TargetGroups {
			wp := fmt.Sprintf("%s.forward.targetGroups[%d]", p, i)
			v.ref(wp+".name", w.Name, v.tgNames(), "target group")
			v.between(wp+".weight", w.Weight, 0, 999, "weight")
		}
	case a.Redirect != nil:
		if a.Redirect.StatusCode != "HTTP_301" && a.Redirect.StatusCode != "HTTP_302" {
			v.errf(p+".redirect.statusCode", "use HTTP_301 or HTTP_302", "redirect status %q is not valid", a.Redirect.StatusCode)
		}
		if pr := a.Redirect.Protocol; pr != "#{protocol}" && pr != "HTTP" && pr != "HTTPS" {
			v.errf(p+".redirect.protocol", "use HTTP, HTTPS or #{protocol}", "redirect protocol %q is not valid", pr)
		}
	case a.FixedResponse != nil:
		c := a.FixedResponse.StatusCode
		if !(c >= 200 && c <= 299 || c >= 400 && c <= 599) {
			v.errf(p+".fixedResponse.statusCode", "use a 2XX, 4XX or 5XX code", "status code %d is not allowed for a fixed response", c)
		}
		if len(a.FixedResponse.MessageBody) > 1024 {
			v.errf(p+".fixedResponse.messageBody", "ALB allows at most 1024 characters", "message body is too long")
		}
	}
}

func (v *validator) local() {
	l := v.s.Local
	seen := map[string]string{}
	check := func(p, addr, what string) {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			v.errf(p, "write a loopback address and port, e.g. 127.0.0.1:8080", "%q is not an address:port", addr)
			return
		}
		if !ap.Addr().IsLoopback() {
			v.errf(p, "use an address in 127.0.0.0/8 or [::1]: moat publishes only on loopback", "%s is not a loopback address", ap.Addr())
		}
		if ap.Port() == 0 {
			v.errf(p, "choose a port 1-65535", "port 0 is not allowed")
		}
		if other, dup := seen[addr]; dup {
			v.errf(p, "give each endpoint its own address", "%s is also used by %s", addr, other)
		}
		seen[addr] = what
	}
	var lbs []string
	for _, lb := range v.s.LoadBalancers {
		lbs = append(lbs, lb.Name)
	}
	listeners := map[string]bool{}
	for i, pub := range l.Publish {
		p := fmt.Sprintf("local.publish[%d]", i)
		key := fmt.Sprintf("%s:%d", pub.LoadBalancer, pub.Listener)
		if listeners[key] {
			v.errf(p, "publish each listener once", "listener %s is published twice", key)
		}
		listeners[key] = true
		if v.ref(p+".loadBalancer", pub.LoadBalancer, lbs, "load balancer") {
			found := false
			for _, lb := range v.s.LoadBalancers {
				for _, ln := range lb.Listeners {
					found = found || (lb.Name == pub.LoadBalancer && ln.Port == pub.Listener)
				}
			}
			if !found {
				v.errf(p+".listener", "name the port of one of the load balancer's listeners", "load balancer %s has no listener on port %d", pub.LoadBalancer, pub.Listener)
			}
		}
		check(p+".address", pub.Address, fmt.Sprintf("listener %s:%d", pub.LoadBalancer, pub.Listener))
	}
	if v.s.Bastion != nil {
		check("local.bastion", l.Bastion, "the bastion")
	}
	check("local.metrics", l.Metrics, "the metrics endpoint")
	check("local.console", l.Console, "the console")
	v.between("local.metricPeriod", l.MetricPeriod, 1, 3600, "metric period")
	switch l.Isolation {
	case "machine", "process":
	default:
		v.errf("local.isolation", didYouMean(l.Isolation, []string{"machine", "process"}, "isolation"), "isolation %q is not known", l.Isolation)
	}
}

func (v *validator) aws() {
	if !regionRE.MatchString(v.s.AWS.Region) {
		v.errf("aws.region", "use a region name like us-east-1", "%q is not a region name", v.s.AWS.Region)
	}
	region := v.s.AWS.Region
	letters, known := ec2facts.ZoneLetters(region)
	if !known && regionRE.MatchString(region) {
		v.warnf("aws.region", "check the name against AWS's list of regions (moat deploy asks EC2 for the region's zones)",
			"region %s is not one moat knows, so its zones are not checked", region)
	}
	for i, z := range v.s.VPC.Zones {
		p := fmt.Sprintf("vpc.zones[%d]", i)
		switch {
		case len(z) > 1 && !strings.HasPrefix(z, region):
			v.errf(p, fmt.Sprintf("use zone letters (a, b) or zones of %s", region), "zone %s is not in region %s", z, region)
		case zoneRE.MatchString(z) && !ec2facts.HasZone(region, z):
			v.errf(p, fmt.Sprintf("use zones of %s: %s", region, strings.Join(letters, ", ")),
				"region %s has no zone %s: EC2 creates subnets only in its zones", region, strings.TrimPrefix(z, region))
		}
	}
	v.images()
}

var amiRE = regexp.MustCompile(`^(ami-([0-9a-f]{8}|[0-9a-f]{17})|(resolve:ssm:)?/[A-Za-z0-9_.\-/]+)$`)

// images checks the instance types are EC2's and that one image fits them:
// an image is built for one CPU architecture, so an SSM path or image id in
// aws.ami serves only instance types of one architecture (the default,
// amazon-linux-2023, has an image for each).
func (v *validator) images() {
	ami := v.s.AWS.AMI
	if ami != DefaultAMI && !amiRE.MatchString(ami) {
		v.errf("aws.ami", "write "+DefaultAMI+", an SSM parameter path (/aws/service/…) or an image id (ami-0123456789abcdef0)",
			"%q is not an image id or SSM parameter path", ami)
	}
	type use struct{ path, typ, arch string }
	var uses []use
	add := func(path, typ string) {
		arch, err := ec2facts.Arch(typ)
		if err != nil {
			v.errf(path, "use an EC2 instance type such as t3.micro (x86_64) or t4g.micro (arm64, Graviton)", "%v", err)
			return
		}
		uses = append(uses, use{path, typ, arch})
	}
	if b := v.s.Bastion; b != nil {
		add("bastion.instanceType", b.InstanceType)
	}
	for i, lt := range v.s.LaunchTemplates {
		if t, ok := v.s.AWS.InstanceTypes[lt.Name]; ok {
			add("aws.instanceTypes."+lt.Name, t)
		} else {
			add(fmt.Sprintf("launchTemplates[%d].instanceType", i), lt.InstanceType)
		}
	}
	if ami == DefaultAMI {
		return
	}
	for _, u := range uses[min(1, len(uses)):] {
		if u.arch != uses[0].arch {
			v.errf("aws.ami", fmt.Sprintf("use instance types of one architecture, or remove aws.ami to get the %s image of each architecture", DefaultAMI),
				"image %s serves one architecture, but %s is %s (%s) and %s is %s (%s)",
				ami, uses[0].path, uses[0].typ, uses[0].arch, u.path, u.typ, u.arch)
			return
		}
	}
}

// ingress is the ingress rules of the groups, in awsrules' terms.
func (v *validator) ingress(groups []string) []awsrules.Ingress {
	var out []awsrules.Ingress
	for _, g := range v.s.SecurityGroups {
		if contains(groups, g.Name) {
			for _, r := range g.Ingress {
				out = append(out, r.ingress())
			}
		}
	}
	return out
}

// ingress is the rule in awsrules' terms: every port is 0-65535, and a
// block that does not parse (an error of its own) admits nothing.
func (r Rule) ingress() awsrules.Ingress {
	in := awsrules.Ingress{Protocol: r.Protocol, FromPort: r.Port.From, ToPort: r.Port.To, SourceGroup: r.Group}
	if r.Port.IsZero() {
		in.FromPort, in.ToPort = 0, 65535
	}
	if c, err := netip.ParsePrefix(r.CIDR); err == nil {
		in.SourceCIDR = c
	}
	return in
}

// reachability warns when a load balancer forwards to a target group whose
// instances' security groups do not admit the load balancer on the port.
// It reasons over a file without errors only: a misspelt group or protocol
// is reported once, not again as an unreachable target group.
func (v *validator) reachability() {
	if len(v.problems.Errors()) > 0 {
		return
	}
	for i, lb := range v.s.LoadBalancers {
		var subnets []netip.Prefix
		for _, sn := range lb.Subnets {
			if s, ok := v.subnet(sn); ok {
				if c, err := netip.ParsePrefix(s.CIDR); err == nil {
					subnets = append(subnets, c)
				}
			}
		}
		for j, l := range lb.Listeners {
			tgs := map[string]bool{}
			for _, a := range append([]Action{l.DefaultAction}, ruleActions(l.Rules)...) {
				if a.Forward == nil {
					continue
				}
				if a.Forward.TargetGroup != "" {
					tgs[a.Forward.TargetGroup] = true
				}
				for _, w := range a.Forward.TargetGroups {
					tgs[w.Name] = true
				}
			}
			for _, tg := range v.s.TargetGroups {
				if !tgs[tg.Name] {
					continue
				}
				ports := []int{tg.Port}
				if n, err := strconv.Atoi(tg.HealthCheck.Port); err == nil && n != tg.Port {
					ports = append(ports, n)
				}
				for _, g := range v.s.AutoScalingGroups {
					if !contains(g.TargetGroups, tg.Name) {
						continue
					}
					var lt *LaunchTemplate
					for k := range v.s.LaunchTemplates {
						if v.s.LaunchTemplates[k].Name == g.LaunchTemplate {
							lt = &v.s.LaunchTemplates[k]
						}
					}
					if lt == nil {
						continue
					}
					for _, port := range ports {
						if !awsrules.Admits(v.ingress(lt.SecurityGroups), awsrules.Source{Groups: lb.SecurityGroups, Blocks: subnets}, port) {
							v.warnf(fmt.Sprintf("loadBalancers[%d].listeners[%d]", i, j),
								fmt.Sprintf("add to security group %s an ingress rule: {protocol: tcp, port: %d, group: %s}", first(lt.SecurityGroups), port, first(lb.SecurityGroups)),
								"target group %s is unreachable: the security groups of auto scaling group %s (%s) do not admit load balancer %s on tcp/%d",
								tg.Name, g.Name, strings.Join(lt.SecurityGroups, ", "), lb.Name, port)
						}
					}
				}
			}
		}
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return "<group>"
	}
	return s[0]
}

func ruleActions(rules []ListenerRule) []Action {
	var out []Action
	for _, r := range rules {
		out = append(out, r.Action)
	}
	return out
}
