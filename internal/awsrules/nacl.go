package awsrules

import "net/netip"

// Protocols of security group rules and network ACL entries.
const (
	ProtoTCP  = "tcp"
	ProtoUDP  = "udp"
	ProtoICMP = "icmp"
	ProtoAll  = "all"
)

// ACLEntry is one network ACL entry as AWS evaluates it: Protocol is tcp,
// udp, icmp or all; FromPort-ToPort are the destination ports of tcp and
// udp; CIDR is the peer block (source inbound, destination outbound).
type ACLEntry struct {
	RuleNumber       int
	Protocol         string
	FromPort, ToPort int
	CIDR             netip.Prefix
	Allow            bool
}

// ACLDecision is what a network ACL decides for a set of packets.
type ACLDecision struct {
	// Allowed: every packet is allowed.
	Allowed bool
	// Entry decided: the first entry (by rule number) that denies some of
	// the packets or, when all are allowed, the one that allowed the last
	// of them. Implicit is set instead when some packet matches no entry
	// and falls to the implicit rule * (deny).
	Entry    ACLEntry
	Implicit bool
}

// DecideACL evaluates a network ACL's entries, sorted by rule number, for
// packets of proto to or from peer with destination ports lo-hi (pass
// 0, 0 for icmp and all): the lowest-numbered matching entry decides each
// packet, and what no entry matches is denied. A range answers "would a
// client's ephemeral port be let through whatever it is": allowed only
// when every port is.
func DecideACL(entries []ACLEntry, proto string, peer netip.Addr, lo, hi int) ACLDecision {
	undecided := []portSpan{{lo, hi}}
	for _, e := range entries {
		if !e.CIDR.Contains(peer) || (e.Protocol != ProtoAll && e.Protocol != proto) {
			continue
		}
		span := portSpan{0, 65535}
		if e.Protocol == ProtoTCP || e.Protocol == ProtoUDP {
			span = portSpan{e.FromPort, e.ToPort}
		}
		rest := subtract(undecided, span)
		if len(rest) == len(undecided) && equalSpans(rest, undecided) {
			continue // none of the undecided ports
		}
		if !e.Allow {
			return ACLDecision{Entry: e}
		}
		if undecided = rest; len(undecided) == 0 {
			return ACLDecision{Allowed: true, Entry: e}
		}
	}
	return ACLDecision{Implicit: true}
}

type portSpan struct{ lo, hi int }

// subtract removes s from every span.
func subtract(spans []portSpan, s portSpan) []portSpan {
	var out []portSpan
	for _, p := range spans {
		if s.hi < p.lo || s.lo > p.hi {
			out = append(out, p)
			continue
		}
		if p.lo < s.lo {
			out = append(out, portSpan{p.lo, s.lo - 1})
		}
		if s.hi < p.hi {
			out = append(out, portSpan{s.hi + 1, p.hi})
		}
	}
	return out
}

func equalSpans(a, b []portSpan) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
