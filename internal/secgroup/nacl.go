package secgroup

import (
	"fmt"

	"github.com/moat-dev/moat/internal/plan"
)

// NACLRuleSet is what the VPC router's namespace enforces for the network
// ACLs, statelessly: every packet that leaves a subnet with a custom
// network ACL goes through that subnet's outbound chain, every packet that
// enters one through its inbound chain. Traffic within a subnet never
// crosses the router, and traffic to the router itself (the DNS resolver,
// instance metadata) is not forwarded, so neither is filtered, as on AWS.
type NACLRuleSet struct {
	Subnets []NACLSubnet `json:"subnets"`
}

// NACLSubnet holds one subnet's chains, rules in evaluation order; what
// no rule matches is dropped (the implicit rule *).
type NACLSubnet struct {
	Subnet   string     `json:"subnet"`
	ACL      string     `json:"acl"`
	Inbound  []NACLRule `json:"inbound"`
	Outbound []NACLRule `json:"outbound"`
}

// NACLRule is one entry: allowed packets go on to the other subnet's
// check (nftables return), denied ones are dropped.
type NACLRule struct {
	NftRule
	Allow bool `json:"allow"`
}

// CompileNACLs builds the router's network ACL rule set from the plan
// (pure): a subnet without a custom network ACL gets no chains (the VPC's
// default network ACL allows everything).
func CompileNACLs(p *plan.Plan) NACLRuleSet {
	rs := NACLRuleSet{Subnets: []NACLSubnet{}}
	for _, sn := range p.Subnets {
		acl, ok := p.NetworkACL(sn.NetworkACL)
		if !ok {
			continue
		}
		s := NACLSubnet{Subnet: sn.Name, ACL: acl.Name, Inbound: []NACLRule{}, Outbound: []NACLRule{}}
		conv := func(dir, peer string, entries []plan.ACLEntry) []NACLRule {
			out := []NACLRule{}
			for _, e := range entries {
				r := NftRule{Peer: peer, CIDR: e.CIDR, Protocol: e.Protocol, Comment: NACLComment(acl.Name, dir, e)}
				if e.Protocol == plan.ProtoTCP || e.Protocol == plan.ProtoUDP {
					r.FromPort, r.ToPort = e.FromPort, e.ToPort
				}
				out = append(out, NACLRule{NftRule: r, Allow: e.Allow})
			}
			return out
		}
		s.Inbound = conv("in", PeerSource, acl.Inbound)
		s.Outbound = conv("out", PeerDestination, acl.Outbound)
		rs.Subnets = append(rs.Subnets, s)
	}
	return rs
}

// NACLComment names an entry as moat reach does: "nacl private in 120
// deny tcp 22 0.0.0.0/0".
func NACLComment(acl, dir string, e plan.ACLEntry) string {
	c := fmt.Sprintf("nacl %s %s %s", acl, dir, e)
	if len(c) > maxComment {
		c = c[:maxComment]
	}
	return c
}
