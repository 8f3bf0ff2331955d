package secgroup

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/moat-dev/moat/internal/plan"
)

// Endpoint kinds.
const (
	EndpointNode     = "node"
	EndpointInternet = "internet"
	EndpointAddress  = "address" // an address no node holds
)

// Endpoint is one end of a connection: a node, the internet, or a bare
// address.
type Endpoint struct {
	Kind string     `json:"kind"`
	Node Member     `json:"node,omitzero"`
	Addr netip.Addr `json:"addr"`
}

// String names the endpoint for humans.
func (e Endpoint) String() string {
	switch e.Kind {
	case EndpointNode:
		return fmt.Sprintf("%s (%s)", e.Node.Name, e.Addr)
	case EndpointInternet:
		return "internet"
	}
	return e.Addr.String()
}

// NodeName is the endpoint's name on a running stack: a node's name, or
// "internet" for InternetAddr; "" for a bare address or a hypothetical
// node (nothing to try a connection from or to).
func (e Endpoint) NodeName() string {
	switch {
	case e.Kind == EndpointNode && !e.Node.Hypothetical:
		return e.Node.Name
	case e.Kind == EndpointInternet && e.Addr == InternetAddr:
		return EndpointInternet
	}
	return ""
}

// Verdict is Reach's answer.
type Verdict struct {
	Allowed bool   `json:"allowed"`
	From    string `json:"from"`
	To      string `json:"to"`
	// FromNode and ToNode name the ends as the running stack does (a
	// node's name, or "internet"), when they are such; moat reach --probe
	// tries the connection between them.
	FromNode string `json:"fromNode,omitempty"`
	ToNode   string `json:"toNode,omitempty"`
	Protocol string `json:"protocol"`
	Port     int    `json:"port"`
	// Route taken, or why there is none.
	Route string `json:"route"`
	// NetworkACLs says what the network ACLs of the subnets crossed
	// decided, both ways (they are stateless): the request leaving the
	// source's subnet and entering the destination's, and the reply
	// leaving and entering again.
	NetworkACLs []string `json:"networkAcls,omitempty"`
	// Egress and Ingress name the rule that allowed each side, or why
	// nothing did.
	Egress  string `json:"egress,omitempty"`
	Ingress string `json:"ingress,omitempty"`
	// AllowedBy are the rules that let it through, in the order its
	// packets meet them: network ACL entries (request and reply) and the
	// security group rules of both ends (when egress is restricted). Set
	// when allowed.
	AllowedBy []string `json:"allowedBy,omitempty"`
	// Probe is what the kernel did with a real connection (moat reach
	// --probe), beside the prediction; nil when none was tried.
	Probe *Probe `json:"probe,omitempty"`
	// Reason is the one-line summary: the first blocker's words.
	Reason string `json:"reason"`
	// Fix is a stack file change that would remove the first blocker,
	// when one is known.
	Fix string `json:"fix,omitempty"`
	// Blockers are everything that stops the connection, both ways, in
	// the order its packets meet them: route, network ACLs (request and
	// reply), security groups. Empty when allowed.
	Blockers []Blocker `json:"blockers,omitempty"`
}

// Blocker is one reason a connection fails, with AWS's explanation code
// (the one Reachability Analyzer reports) when there is one.
type Blocker struct {
	// Code: NO_ROUTE_TO_DESTINATION, IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS,
	// SUBNET_ACL_RESTRICTION or ENI_SG_RULES_MISMATCH.
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Probe is the outcome of a real connection tried from the source's
// namespace on a running stack.
type Probe struct {
	// Reached: the destination's kernel answered (a connection, or a
	// reset because nothing listens on the port; both crossed every
	// filter both ways).
	Reached bool `json:"reached"`
	// Outcome in words: "connected", "refused (reached; nothing listens
	// on the port)", "timed out after 1s", ...
	Outcome string `json:"outcome"`
	// Agrees: the kernel did what the prediction said.
	Agrees bool `json:"agrees"`
}

// AWS explanation codes of the blockers Reach finds.
const (
	CodeNoRoute        = "NO_ROUTE_TO_DESTINATION"
	CodeNoPublicIP     = "IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS"
	CodeSubnetACL      = "SUBNET_ACL_RESTRICTION"
	CodeSecurityGroups = "ENI_SG_RULES_MISMATCH"
)

// OfflineMembership is the membership `moat reach` assumes without a
// running stack: load balancer nodes, the bastion, and one hypothetical
// instance of each auto scaling group in its first subnet. Names follow the
// daemon's: lb-<lb>-<i>, bastion, <asg>-hypothetical.
func OfflineMembership(p *plan.Plan) Membership {
	var m Membership
	for _, lb := range p.LoadBalancers {
		for i, n := range lb.Nodes {
			m.Members = append(m.Members, Member{Name: fmt.Sprintf("lb-%s-%d", lb.Name, i), Kind: KindLoadBalancer,
				Owner: lb.Name, Subnet: n.Subnet, Addr: n.Address, Groups: lb.SecurityGroups})
		}
	}
	if b := p.Bastion; b != nil {
		m.Members = append(m.Members, Member{Name: "bastion", Kind: KindBastion, Subnet: b.Subnet, Addr: b.Address, Groups: b.SecurityGroups})
	}
	for _, g := range p.AutoScalingGroups {
		lt, _ := p.LaunchTemplate(g.LaunchTemplate)
		if len(g.Subnets) == 0 {
			continue
		}
		sn, _ := p.Subnet(g.Subnets[0])
		m.Members = append(m.Members, Member{Name: g.Name + "-hypothetical", Kind: KindInstance, Owner: g.Name,
			Subnet: sn.Name, Addr: firstFree(sn, m), Groups: lt.SecurityGroups, Hypothetical: true})
	}
	return m
}

func firstFree(sn plan.Subnet, m Membership) netip.Addr {
	for a := sn.FirstHost; a.Compare(sn.LastHost) <= 0; a = a.Next() {
		used := slices.ContainsFunc(sn.Static, func(s plan.StaticAddress) bool { return s.Addr == a })
		if _, taken := m.ByAddr(a); !used && !taken {
			return a
		}
	}
	return sn.FirstHost
}

// ResolveEndpoint turns a command-line name into an endpoint: "internet",
// a node name (instance id, "bastion", lb-<lb>-<i>), a load balancer name
// (its first node), a security group name (its first member, preferring
// live ones), an auto scaling group name, or an address.
func ResolveEndpoint(p *plan.Plan, m Membership, s string) (Endpoint, error) {
	if s == "internet" {
		return Endpoint{Kind: EndpointInternet, Addr: InternetAddr}, nil
	}
	// An explicit kind: lb:NAME, asg:NAME, sg:NAME.
	if kind, name, ok := strings.Cut(s, ":"); ok && (kind == "lb" || kind == "asg" || kind == "sg") {
		return resolveKind(p, m, kind, name)
	}
	if n, ok := m.ByName(s); ok {
		return nodeEndpoint(n), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if n, ok := m.ByAddr(a); ok {
			return nodeEndpoint(n), nil
		}
		if !p.VPC.CIDR.Contains(a) {
			return Endpoint{Kind: EndpointInternet, Addr: a}, nil
		}
		return Endpoint{Kind: EndpointAddress, Addr: a}, nil
	}
	if e, err := resolveKind(p, m, "lb", s); err == nil {
		return e, nil
	}
	if e, err := resolveKind(p, m, "asg", s); err == nil {
		return e, nil
	}
	if _, ok := p.SecurityGroup(s); ok {
		return resolveKind(p, m, "sg", s)
	}
	return Endpoint{}, fmt.Errorf("resolve %q: not internet, a node, a load balancer, an auto scaling group, a security group or an address", s)
}

// resolveKind resolves a load balancer (its first node), an auto scaling
// group or a security group (its first member, preferring live ones).
func resolveKind(p *plan.Plan, m Membership, kind, s string) (Endpoint, error) {
	pick := func(match func(Member) bool) (Endpoint, bool) {
		var hyp *Member
		for i, n := range m.Members {
			if match(n) {
				if !n.Hypothetical {
					return nodeEndpoint(n), true
				}
				if hyp == nil {
					hyp = &m.Members[i]
				}
			}
		}
		if hyp != nil {
			return nodeEndpoint(*hyp), true
		}
		return Endpoint{}, false
	}
	switch kind {
	case "lb":
		if e, ok := pick(func(n Member) bool { return n.Kind == KindLoadBalancer && n.Owner == s }); ok {
			return e, nil
		}
		return Endpoint{}, fmt.Errorf("resolve %q: no load balancer named %s", "lb:"+s, s)
	case "asg":
		if e, ok := pick(func(n Member) bool { return n.Kind == KindInstance && n.Owner == s }); ok {
			return e, nil
		}
		return Endpoint{}, fmt.Errorf("resolve %q: no auto scaling group named %s (or it has no instances)", "asg:"+s, s)
	default:
		if _, ok := p.SecurityGroup(s); !ok {
			return Endpoint{}, fmt.Errorf("resolve %q: no security group named %s", "sg:"+s, s)
		}
		if e, ok := pick(func(n Member) bool { return slices.Contains(n.Groups, s) }); ok {
			return e, nil
		}
		return Endpoint{}, fmt.Errorf("resolve %q: security group %s has no members", s, s)
	}
}

func nodeEndpoint(n Member) Endpoint { return Endpoint{Kind: EndpointNode, Node: n, Addr: n.Addr} }

// Reach decides whether a new connection from one endpoint to another on
// proto/port is allowed, with the same rules the VPC enforces: the route
// (local, internet gateway, NAT or none; nothing from the internet to a
// private subnet), the network ACLs the request and its reply cross
// (stateless), the source's egress rules and the destination's ingress
// rules (stateful, so replies need no rule). Unlike AWS's Reachability
// Analyzer it checks the reply too and reports every blocker, not the
// first.
func Reach(p *plan.Plan, m Membership, from, to Endpoint, proto string, port int) Verdict {
	v := Verdict{From: from.String(), To: to.String(), FromNode: from.NodeName(), ToNode: to.NodeName(), Protocol: proto, Port: port}
	// deny ends the answer where nothing more can be checked (no such
	// address); block records a blocker and goes on.
	deny := func(reason, fix string) Verdict {
		v.Allowed, v.Reason, v.Fix = false, reason, fix
		return v
	}
	block := func(code, reason, fix string) {
		v.Blockers = append(v.Blockers, Blocker{Code: code, Message: reason, Fix: fix})
	}
	what := fmt.Sprintf("%s %d", proto, port)
	if proto == plan.ProtoICMP || proto == plan.ProtoAll {
		what = proto
	}

	// Route.
	inVPC := func(e Endpoint) bool { return e.Kind != EndpointInternet && p.VPC.CIDR.Contains(e.Addr) }
	subnetOf := func(a netip.Addr) (plan.Subnet, bool) {
		for _, sn := range p.Subnets {
			if sn.CIDR.Contains(a) {
				return sn, true
			}
		}
		return plan.Subnet{}, false
	}
	srcAddr := from.Addr // as the destination sees it
	switch {
	case !inVPC(from) && !inVPC(to):
		return deny("neither end is in the VPC", "")
	case !inVPC(from):
		sn, ok := subnetOf(to.Addr)
		if !ok {
			return deny(fmt.Sprintf("%s is in no subnet", to.Addr), "")
		}
		if !sn.Public {
			v.Route = fmt.Sprintf("none: %s is in private subnet %s, which the internet cannot reach", to.Addr, sn.Name)
			block(CodeNoPublicIP, "no route from the internet to a private subnet", "reach it through the load balancer or the bastion in a public subnet")
		} else {
			v.Route = fmt.Sprintf("internet -> internet gateway -> public subnet %s", sn.Name)
		}
	case !inVPC(to):
		sn, ok := subnetOf(from.Addr)
		if !ok {
			return deny(fmt.Sprintf("%s is in no subnet", from.Addr), "")
		}
		rt := routeTable(p, sn.RouteTable)
		r, ok := lookup(rt, to.Addr)
		switch {
		case !ok:
			v.Route = fmt.Sprintf("none: route table %s of subnet %s has no route to %s", rt.Name, sn.Name, to.Addr)
			block(CodeNoRoute, "no route to the internet from a private subnet without a NAT gateway", "set vpc.nat: single (or per-zone) in the stack file")
		case r.Target == plan.TargetInternetGateway:
			v.Route = fmt.Sprintf("subnet %s -> route table %s: %s via internet gateway", sn.Name, rt.Name, r.Destination)
		case r.Target == plan.TargetNAT:
			v.Route = fmt.Sprintf("subnet %s -> route table %s: %s via NAT gateway %s (masquerade) -> internet gateway", sn.Name, rt.Name, r.Destination, r.NAT)
		}
	default:
		a, _ := subnetOf(from.Addr)
		b, ok := subnetOf(to.Addr)
		if !ok {
			return deny(fmt.Sprintf("%s is in no subnet", to.Addr), "")
		}
		v.Route = fmt.Sprintf("local: subnet %s -> VPC router -> subnet %s (%s local)", a.Name, b.Name, p.VPC.CIDR)
		if a.Name == b.Name {
			v.Route = fmt.Sprintf("local: within subnet %s", a.Name)
		}
	}
	if to.Kind == EndpointAddress {
		return deny(fmt.Sprintf("no node has address %s", to.Addr), "")
	}

	// Network ACLs, the request and its reply.
	var src, dst *plan.Subnet
	if inVPC(from) {
		if sn, ok := subnetOf(from.Addr); ok {
			src = &sn
		}
	}
	if inVPC(to) {
		if sn, ok := subnetOf(to.Addr); ok {
			dst = &sn
		}
	}
	for _, c := range naclChecks(p, src, dst, from, to, proto, port) {
		v.NetworkACLs = append(v.NetworkACLs, c.said)
		if !c.allowed {
			block(CodeSubnetACL, c.said, c.fix)
		} else if !slices.Contains(v.AllowedBy, c.rule) {
			v.AllowedBy = append(v.AllowedBy, c.rule)
		}
	}

	// Source egress.
	if from.Kind == EndpointNode {
		rs, err := Compile(p, from.Node.Name, from.Node.Groups, m)
		if err != nil {
			return deny(err.Error(), "")
		}
		if !rs.EgressRestricted {
			v.Egress = fmt.Sprintf("%s allows all outbound traffic", groupsOf(from.Node))
		} else if r, ok := firstMatch(rs, rs.Output, to.Addr, proto, port); ok {
			v.Egress = "allowed by " + r.Comment
			v.AllowedBy = append(v.AllowedBy, r.Comment)
		} else {
			v.Egress = fmt.Sprintf("no egress rule of %s allows %s to %s", groupsOf(from.Node), what, to.Addr)
			block(CodeSecurityGroups, v.Egress, fmt.Sprintf("add to security group %s egress: %s", firstGroup(from.Node), ruleFix(proto, port, to, p)))
		}
	}

	// Destination ingress.
	if to.Kind == EndpointNode {
		rs, err := Compile(p, to.Node.Name, to.Node.Groups, m)
		if err != nil {
			return deny(err.Error(), "")
		}
		if r, ok := firstMatch(rs, rs.Input, srcAddr, proto, port); ok {
			v.Ingress = "allowed by " + r.Comment
			v.AllowedBy = append(v.AllowedBy, r.Comment)
		} else {
			v.Ingress = fmt.Sprintf("no ingress rule of %s allows %s from %s", groupsOf(to.Node), what, from)
			block(CodeSecurityGroups, v.Ingress, fmt.Sprintf("add to security group %s ingress: %s", firstGroup(to.Node), ruleFix(proto, port, from, p)))
		}
	} else {
		v.Ingress = "the internet accepts everything"
	}
	if len(v.Blockers) > 0 {
		v.AllowedBy = nil
		return deny(v.Blockers[0].Message, v.Blockers[0].Fix)
	}
	v.Allowed = true
	v.Reason = "allowed"
	return v
}

// EphemeralPorts are the source ports a client's reply goes back to: the
// Linux kernel's default ip_local_port_range, which every local client
// (instances, load balancer nodes, the bastion, the internet namespace)
// uses. A network ACL must let all of them through for replies to be
// reliable. AWS's load balancers and NAT gateways use 1024-65535, which
// moat validate checks the network ACLs against.
var EphemeralPorts = [2]int{32768, 60999}

type naclCheck struct {
	allowed   bool
	said, fix string
	rule      string // the deciding entry, when one allowed it
}

// naclChecks evaluates the network ACLs a connection crosses, in the order
// its packets meet them: the request leaving src and entering dst, then
// the reply leaving dst and entering src, to the client's ephemeral ports.
// Nothing is checked within one subnet, or for a subnet with the VPC's
// default network ACL.
func naclChecks(p *plan.Plan, src, dst *plan.Subnet, from, to Endpoint, proto string, port int) []naclCheck {
	if src != nil && dst != nil && src.Name == dst.Name {
		return nil
	}
	lo, hi := port, port
	rlo, rhi := EphemeralPorts[0], EphemeralPorts[1]
	if proto != plan.ProtoTCP && proto != plan.ProtoUDP {
		lo, hi, rlo, rhi = 0, 0, 0, 0
	}
	var out []naclCheck
	check := func(sn *plan.Subnet, outbound bool, peer Endpoint, lo, hi int, what string) {
		if sn == nil || sn.NetworkACL == "" {
			return
		}
		acl, ok := p.NetworkACL(sn.NetworkACL)
		if !ok {
			return
		}
		dir, way, prep := "in", "entering", "from"
		if outbound {
			dir, way, prep = "out", "leaving", "to"
		}
		traffic := proto
		if lo != 0 || hi != 0 {
			traffic = fmt.Sprintf("%s %s", proto, portsString(lo, hi))
		}
		d := acl.Decide(outbound, proto, peer.Addr, lo, hi)
		desc := fmt.Sprintf("%s (%s %s %s) %s subnet %s", what, traffic, prep, peer.Addr, way, sn.Name)
		switch {
		case d.Allowed:
			e, _ := acl.Entry(outbound, d.Entry.RuleNumber)
			rule := NACLComment(acl.Name, dir, e)
			out = append(out, naclCheck{allowed: true, said: fmt.Sprintf("%s: allowed by %s", desc, rule), rule: rule})
		case d.Implicit:
			out = append(out, naclCheck{said: fmt.Sprintf("%s: denied by nacl %s %s rule * (no entry allows it)", desc, acl.Name, dir),
				fix: fmt.Sprintf("add to network ACL %s %sbound: %s", acl.Name, dir, aclEntryFix(p, nextRule(acl, outbound), proto, lo, hi, peer))})
		default:
			e, _ := acl.Entry(outbound, d.Entry.RuleNumber)
			out = append(out, naclCheck{said: fmt.Sprintf("%s: denied by %s", desc, NACLComment(acl.Name, dir, e)),
				fix: fmt.Sprintf("in network ACL %s %sbound, allow it before rule %d: %s, or remove rule %d",
					acl.Name, dir, e.RuleNumber, aclEntryFix(p, max(1, e.RuleNumber-1), proto, lo, hi, peer), e.RuleNumber)})
		}
	}
	check(src, true, to, lo, hi, "request")
	check(dst, false, from, lo, hi, "request")
	check(dst, true, from, rlo, rhi, "reply")
	check(src, false, to, rlo, rhi, "reply")
	return out
}

func portsString(lo, hi int) string {
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

// nextRule is a rule number after a direction's last entry.
func nextRule(acl plan.NetworkACL, outbound bool) int {
	entries := acl.Inbound
	if outbound {
		entries = acl.Outbound
	}
	if len(entries) == 0 {
		return 100
	}
	return min(entries[len(entries)-1].RuleNumber+10, 32766)
}

// aclEntryFix renders an allow entry numbered n in stack file syntax: the
// peer's subnet, or 0.0.0.0/0 for the internet; replies get AWS's whole
// ephemeral range.
func aclEntryFix(p *plan.Plan, n int, proto string, lo, hi int, peer Endpoint) string {
	cidr := "0.0.0.0/0"
	for _, sn := range p.Subnets {
		if peer.Kind != EndpointInternet && sn.CIDR.Contains(peer.Addr) {
			cidr = sn.CIDR.String()
		}
	}
	switch {
	case proto != plan.ProtoTCP && proto != plan.ProtoUDP:
		return fmt.Sprintf("{ruleNumber: %d, protocol: %s, cidr: %s, ruleAction: allow}", n, proto, cidr)
	case lo == EphemeralPorts[0] && hi == EphemeralPorts[1]:
		lo, hi = 1024, 65535
	}
	pr := portsString(lo, hi)
	if lo != hi {
		pr = `"` + pr + `"`
	}
	return fmt.Sprintf("{ruleNumber: %d, protocol: %s, portRange: %s, cidr: %s, ruleAction: allow}", n, proto, pr, cidr)
}

func routeTable(p *plan.Plan, name string) plan.RouteTable {
	for _, rt := range p.RouteTables {
		if rt.Name == name {
			return rt
		}
	}
	return plan.RouteTable{Name: name}
}

// lookup is a longest-prefix match in a route table.
func lookup(rt plan.RouteTable, a netip.Addr) (plan.Route, bool) {
	best, found := plan.Route{}, false
	for _, r := range rt.Routes {
		if r.Destination.Contains(a) && (!found || r.Destination.Bits() > best.Destination.Bits()) {
			best, found = r, true
		}
	}
	return best, found
}

func firstMatch(rs RuleSet, rules []NftRule, peer netip.Addr, proto string, port int) (NftRule, bool) {
	sets := map[string][]netip.Addr{}
	for _, s := range rs.Sets {
		sets[s.Name] = s.Elements
	}
	for _, r := range rules {
		if r.Matches(sets, peer, proto, port) {
			return r, true
		}
	}
	return NftRule{}, false
}

func groupsOf(n Member) string {
	if len(n.Groups) == 0 {
		return "(no security groups)"
	}
	return "security group(s) " + strings.Join(n.Groups, ", ")
}

func firstGroup(n Member) string {
	if len(n.Groups) == 0 {
		return "<one of " + n.Name + "'s groups>"
	}
	return n.Groups[0]
}

// ruleFix renders a rule allowing proto/port with the peer, in stack file
// syntax: the peer's first group when it has one, else its address.
func ruleFix(proto string, port int, peer Endpoint, p *plan.Plan) string {
	var who string
	switch {
	case peer.Kind == EndpointNode && len(peer.Node.Groups) > 0:
		who = "group: " + peer.Node.Groups[0]
	case peer.Kind == EndpointInternet && peer.Addr == InternetAddr:
		who = "cidr: 0.0.0.0/0"
	default:
		who = "cidr: " + netip.PrefixFrom(peer.Addr, peer.Addr.BitLen()).String()
	}
	if proto == plan.ProtoICMP || proto == plan.ProtoAll {
		return fmt.Sprintf("{protocol: %s, %s}", proto, who)
	}
	return fmt.Sprintf("{protocol: %s, port: %d, %s}", proto, port, who)
}
