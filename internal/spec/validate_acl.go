package spec

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/moat-dev/moat/internal/awsrules"
)

// ephemeral is the port range AWS's load balancers (and most clients)
// send from: replies go back to it.
var ephemeral = [2]int{1024, 65535}

// internetClient stands for a client on the internet (TEST-NET-2).
var internetClient = netip.MustParseAddr("198.51.100.1")

// naclReturnPaths warns, for each load balancer, when a custom network ACL
// blocks replies to the ephemeral ports 1024-65535: on the targets'
// subnets outbound to the load balancer's subnets, on the load balancer's
// subnets inbound from the targets' and outbound to internet clients.
// Network ACLs are stateless, so the request passes and its reply is
// dropped: on AWS the load balancer answers 504 (or the client hangs). It
// reasons over a file without errors only.
func (v *validator) naclReturnPaths() {
	if len(v.problems.Errors()) > 0 || len(v.s.NetworkACLs) == 0 {
		return
	}
	type hop struct {
		acl      int
		outbound bool
		peer     Subnet // zero for internet clients
		why      string
	}
	seen := map[string]bool{}
	warn := func(h hop) {
		a := v.s.NetworkACLs[h.acl]
		entries, dir := a.Inbound, "inbound"
		if h.outbound {
			entries, dir = a.Outbound, "outbound"
		}
		peer, cidr, what := internetClient, "0.0.0.0/0", "internet clients"
		if h.peer.Name != "" {
			p, _ := netip.ParsePrefix(h.peer.CIDR)
			peer, cidr = p.Masked().Addr(), p.Masked().String()
			what = fmt.Sprintf("subnet %s (%s)", h.peer.Name, cidr)
		}
		key := fmt.Sprintf("%d %s %s", h.acl, dir, cidr)
		if seen[key] {
			return
		}
		seen[key] = true
		d := awsrules.DecideACL(aclEntries(entries), awsrules.ProtoTCP, peer, ephemeral[0], ephemeral[1])
		if d.Allowed {
			return
		}
		by := "no entry allows them (rule * denies)"
		if !d.Implicit {
			by = fmt.Sprintf("rule %d denies them", d.Entry.RuleNumber)
		}
		prep := "from"
		if h.outbound {
			prep = "to"
		}
		n := 100
		for _, e := range entries {
			n = max(n, e.RuleNumber+10)
		}
		if !d.Implicit {
			n = max(1, d.Entry.RuleNumber-1)
		}
		v.warnf(fmt.Sprintf("networkAcls[%d].%s", h.acl, dir),
			fmt.Sprintf("add to %s: {ruleNumber: %d, protocol: tcp, portRange: 1024-65535, cidr: %s, ruleAction: allow}", dir, min(n, 32766), cidr),
			"network ACL %s blocks %s: tcp 1024-65535 %s %s, where %s; network ACLs are stateless, so on AWS the requests pass and their replies are dropped (the load balancer answers 504, clients time out)",
			a.Name, h.why, prep, what, by)
	}
	aclOf := map[string]int{}
	for i, a := range v.s.NetworkACLs {
		for _, sn := range a.Subnets {
			aclOf[sn] = i
		}
	}
	for _, lb := range v.s.LoadBalancers {
		targets := map[string]bool{}
		for _, tg := range v.forwardedTargetGroups(lb) {
			for _, g := range v.s.AutoScalingGroups {
				if contains(g.TargetGroups, tg) {
					for _, sn := range g.Subnets {
						targets[sn] = true
					}
				}
			}
		}
		tsubs := make([]string, 0, len(targets))
		for sn := range targets {
			tsubs = append(tsubs, sn)
		}
		sort.Strings(tsubs)
		for _, lsn := range lb.Subnets {
			ls, _ := v.subnet(lsn)
			if i, ok := aclOf[lsn]; ok {
				warn(hop{i, true, Subnet{}, fmt.Sprintf("replies of load balancer %s to its clients", lb.Name)})
			}
			for _, tsn := range tsubs {
				if tsn == lsn {
					continue // within a subnet no network ACL applies
				}
				ts, _ := v.subnet(tsn)
				if i, ok := aclOf[tsn]; ok {
					warn(hop{i, true, ls, fmt.Sprintf("the targets' replies to load balancer %s", lb.Name)})
				}
				if i, ok := aclOf[lsn]; ok {
					warn(hop{i, false, ts, fmt.Sprintf("the targets' replies to load balancer %s", lb.Name)})
				}
			}
		}
	}
}

// forwardedTargetGroups are the target groups a load balancer's listeners
// forward to.
func (v *validator) forwardedTargetGroups(lb LoadBalancer) []string {
	var out []string
	for _, l := range lb.Listeners {
		for _, a := range append([]Action{l.DefaultAction}, ruleActions(l.Rules)...) {
			if a.Forward == nil {
				continue
			}
			if a.Forward.TargetGroup != "" && !contains(out, a.Forward.TargetGroup) {
				out = append(out, a.Forward.TargetGroup)
			}
			for _, w := range a.Forward.TargetGroups {
				if !contains(out, w.Name) {
					out = append(out, w.Name)
				}
			}
		}
	}
	return out
}

// aclEntries converts valid entries to awsrules' form, by rule number.
func aclEntries(entries []NetworkACLEntry) []awsrules.ACLEntry {
	out := make([]awsrules.ACLEntry, 0, len(entries))
	for _, e := range entries {
		c, _ := netip.ParsePrefix(e.CIDR)
		from, to := e.PortRange.From, e.PortRange.To
		if e.PortRange.IsZero() {
			from, to = 0, 65535
		}
		out = append(out, awsrules.ACLEntry{RuleNumber: e.RuleNumber, Protocol: strings.ToLower(e.Protocol),
			FromPort: from, ToPort: to, CIDR: c.Masked(), Allow: e.RuleAction == "allow"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RuleNumber < out[j].RuleNumber })
	return out
}
