package awsrules

import (
	"net/netip"
	"slices"
)

// Ingress is one ingress rule of a security group, in AWS's terms: a
// protocol ("tcp", "udp", "icmp", or "all"; AWS's numbers "6", "17", "1"
// and "-1" too), a port range (tcp and udp; every port is 0-65535), and a
// source: another group (by the name or id its caller uses) or an address
// block.
type Ingress struct {
	Protocol         string
	FromPort, ToPort int
	SourceGroup      string
	SourceCIDR       netip.Prefix
}

// CoversTCP reports whether the rule's protocol and ports include tcp/port.
func (r Ingress) CoversTCP(port int) bool {
	switch r.Protocol {
	case "all", "-1":
		return true
	case "tcp", "6":
		return r.FromPort <= port && port <= r.ToPort
	}
	return false
}

// Source is the sender of a connection: a member of Groups whose address
// may be anywhere in each of Blocks (a load balancer's subnets, an
// operator's network). A rule naming a block admits it only when the
// block holds all of every one of them.
type Source struct {
	Groups []string
	Blocks []netip.Prefix
}

// Admits reports whether any of the rules (the ingress rules of the
// destination's groups) admits src on tcp/port, as a security group does:
// a rule whose source group is one of src's groups, or whose block holds
// every block src may send from.
func Admits(rules []Ingress, src Source, port int) bool {
	for _, r := range rules {
		if !r.CoversTCP(port) {
			continue
		}
		if r.SourceGroup != "" {
			if slices.Contains(src.Groups, r.SourceGroup) {
				return true
			}
			continue
		}
		if !r.SourceCIDR.IsValid() || len(src.Blocks) == 0 {
			continue
		}
		all := true
		for _, b := range src.Blocks {
			all = all && r.SourceCIDR.Bits() <= b.Bits() && r.SourceCIDR.Contains(b.Addr())
		}
		if all {
			return true
		}
	}
	return false
}
