// Package secgroup is the security group model: it compiles a node's
// groups, the plan's rules and the live membership into a rule set
// description (pure, golden-tested) and reasons about reachability for
// `moat reach` (reach.go) with the same rules the kernel enforces. Package
// secgroup/nft loads rule sets into the kernel; this one imports no
// netlink, so the control API's client can use its types anywhere.
package secgroup

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"github.com/moat-dev/moat/internal/plan"
)

// InternetAddr is the address "the internet" has locally: the far end of
// the VPC router's uplink (RFC 2544 benchmarking space, never routed).
var InternetAddr = netip.MustParseAddr("198.18.0.2")

// Member kinds.
const (
	KindInstance     = "instance"
	KindLoadBalancer = "lb"
	KindBastion      = "bastion"
	KindNAT          = "nat"
)

// Member is one node with a network interface in the VPC.
type Member struct {
	Name   string     `json:"name"`
	Kind   string     `json:"kind,omitempty"`
	Owner  string     `json:"owner,omitempty"` // LB or auto scaling group name
	Subnet string     `json:"subnet"`
	Addr   netip.Addr `json:"addr"`
	Groups []string   `json:"groups"`
	// Hypothetical members stand for instances that would be launched
	// (offline reasoning from the stack file alone).
	Hypothetical bool `json:"hypothetical,omitempty"`
}

// Membership is every node in the VPC and its groups.
type Membership struct {
	Members []Member `json:"members"`
}

// Addrs returns the sorted addresses of a group's members.
func (m Membership) Addrs(group string) []netip.Addr {
	var out []netip.Addr
	for _, n := range m.Members {
		if slices.Contains(n.Groups, group) {
			out = append(out, n.Addr)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// ByName returns the named member.
func (m Membership) ByName(name string) (Member, bool) {
	for _, n := range m.Members {
		if n.Name == name {
			return n, true
		}
	}
	return Member{}, false
}

// ByAddr returns the member with that address.
func (m Membership) ByAddr(a netip.Addr) (Member, bool) {
	for _, n := range m.Members {
		if n.Addr == a {
			return n, true
		}
	}
	return Member{}, false
}

// Directions of a compiled rule: which address the peer is.
const (
	PeerSource      = "saddr" // ingress
	PeerDestination = "daddr" // egress
)

// RuleSet is what one node's namespace enforces: table inet moat with an
// input chain (policy drop) and, when its groups restrict egress, an output
// chain (policy drop); without one, output accepts everything.
type RuleSet struct {
	Node   string    `json:"node"`
	Sets   []Set     `json:"sets"`
	Input  []NftRule `json:"input"`
	Output []NftRule `json:"output,omitempty"`
	// EgressRestricted says whether the output chain exists.
	EgressRestricted bool `json:"egressRestricted"`
}

// SameRules reports whether two rule sets have the same rules and sets,
// whatever the sets' members (those change as nodes come and go).
func (rs RuleSet) SameRules(o RuleSet) bool {
	setNames := func(r RuleSet) []string {
		var out []string
		for _, s := range r.Sets {
			out = append(out, s.Name)
		}
		return out
	}
	return rs.Node == o.Node && rs.EgressRestricted == o.EgressRestricted &&
		slices.Equal(rs.Input, o.Input) && slices.Equal(rs.Output, o.Output) &&
		slices.Equal(setNames(rs), setNames(o))
}

// Set is a named address set holding one group's members.
type Set struct {
	Name     string       `json:"name"`
	Group    string       `json:"group"`
	Elements []netip.Addr `json:"elements"`
}

// NftRule is one accept rule after the fixed prologue
// (ct state established,related accept; iif lo accept).
type NftRule struct {
	Peer     string       `json:"peer"`          // PeerSource or PeerDestination
	CIDR     netip.Prefix `json:"cidr,omitzero"` // when the peer is a block
	Set      string       `json:"set,omitempty"` // when the peer is a group
	Protocol string       `json:"protocol"`      // tcp, udp, icmp, all
	FromPort int          `json:"fromPort"`      // tcp/udp only
	ToPort   int          `json:"toPort"`        // tcp/udp only
	Comment  string       `json:"comment"`       // group and rule
}

// SetName is the nftables set of a group's members.
func SetName(group string) string { return "sg_" + group }

// maxComment is nftables' limit on a rule comment.
const maxComment = 127

// Compile builds a node's rule set from its groups, the plan's rules and
// the membership (group references become sets of member addresses).
func Compile(p *plan.Plan, node string, groups []string, m Membership) (RuleSet, error) {
	rs := RuleSet{Node: node}
	referenced := map[string]bool{}
	add := func(dst *[]NftRule, peer, group, dir string, i int, r plan.Rule) {
		nr := NftRule{Peer: peer, Protocol: r.Protocol}
		if r.Protocol == plan.ProtoTCP || r.Protocol == plan.ProtoUDP {
			nr.FromPort, nr.ToPort = r.FromPort, r.ToPort
		}
		if r.Group != "" {
			nr.Set = SetName(r.Group)
			referenced[r.Group] = true
		} else {
			nr.CIDR = r.CIDR
		}
		nr.Comment = comment(group, dir, i, r)
		*dst = append(*dst, nr)
	}
	allEgress := false
	for _, g := range groups {
		sg, ok := p.SecurityGroup(g)
		if !ok {
			return RuleSet{}, fmt.Errorf("compile rules of %s: security group %q is not in the plan", node, g)
		}
		for i, r := range sg.Ingress {
			add(&rs.Input, PeerSource, g, "ingress", i, r)
		}
		for i, r := range sg.Egress {
			if allowsEverything(r) {
				allEgress = true
			}
			add(&rs.Output, PeerDestination, g, "egress", i, r)
		}
	}
	if allEgress || len(groups) == 0 {
		rs.Output = nil
		// Drop references only output rules made.
		referenced = map[string]bool{}
		for _, r := range rs.Input {
			if r.Set != "" {
				referenced[r.Set[len("sg_"):]] = true
			}
		}
	} else {
		rs.EgressRestricted = true
	}
	names := make([]string, 0, len(referenced))
	for g := range referenced {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		rs.Sets = append(rs.Sets, Set{Name: SetName(g), Group: g, Elements: nonNil(m.Addrs(g))})
	}
	return rs, nil
}

// References reports whether the rule set has a set for the group.
func (rs RuleSet) References(group string) bool {
	for _, s := range rs.Sets {
		if s.Group == group {
			return true
		}
	}
	return false
}

func nonNil(a []netip.Addr) []netip.Addr {
	if a == nil {
		return []netip.Addr{}
	}
	return a
}

func allowsEverything(r plan.Rule) bool {
	return r.Protocol == plan.ProtoAll && r.Group == "" && r.CIDR.Bits() == 0
}

func comment(group, dir string, i int, r plan.Rule) string {
	c := fmt.Sprintf("sg %s %s #%d: %s", group, dir, i+1, describe(r))
	if r.Description != "" {
		c += " (" + r.Description + ")"
	}
	if len(c) > maxComment {
		c = c[:maxComment]
	}
	return c
}

// describe renders a rule's protocol, ports and peer for humans.
func describe(r plan.Rule) string {
	return fmt.Sprintf("%s %s", ports(r), r.Peer())
}

func ports(r plan.Rule) string {
	switch {
	case r.Protocol == plan.ProtoAll:
		return "all traffic"
	case r.Protocol == plan.ProtoICMP:
		return "icmp"
	case r.FromPort == 0 && r.ToPort == 65535:
		return r.Protocol + " all ports"
	case r.FromPort == r.ToPort:
		return fmt.Sprintf("%s %d", r.Protocol, r.FromPort)
	default:
		return fmt.Sprintf("%s %d-%d", r.Protocol, r.FromPort, r.ToPort)
	}
}

// Matches reports whether a compiled rule accepts a packet whose peer
// address is peer, with proto and destination port.
func (r NftRule) Matches(sets map[string][]netip.Addr, peer netip.Addr, proto string, port int) bool {
	if r.Set != "" {
		if !slices.Contains(sets[r.Set], peer) {
			return false
		}
	} else if !r.CIDR.Contains(peer) {
		return false
	}
	switch r.Protocol {
	case plan.ProtoAll:
		return true
	case plan.ProtoICMP:
		return proto == plan.ProtoICMP
	default:
		return r.Protocol == proto && r.FromPort <= port && port <= r.ToPort
	}
}
