package secgroup

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/moat-dev/moat/internal/plan"
)

// Exposure is one thing the internet can open a connection to: a node (or
// a load balancer's nodes), a protocol and a port range, and the rules
// that let it in. moat reach --exposed lists them, the question AWS
// answers with Network Access Analyzer.
type Exposure struct {
	// Target is what is exposed: "lb:web", "bastion", an instance id.
	Target string `json:"target"`
	Kind   string `json:"kind"`
	// Nodes and their addresses (a load balancer has one per subnet).
	Nodes []string     `json:"nodes"`
	Addrs []netip.Addr `json:"addrs"`
	// Protocol tcp, udp or icmp; FromPort-ToPort for tcp and udp.
	Protocol string `json:"protocol"`
	FromPort int    `json:"fromPort,omitempty"`
	ToPort   int    `json:"toPort,omitempty"`
	// From is who on the internet: "anywhere", or the address block a
	// rule names.
	From string `json:"from"`
	// Listener is the load balancer listener ("HTTP:80") that accepts it.
	Listener string `json:"listener,omitempty"`
	// AllowedBy are the rules that let it in and its replies out: network
	// ACL entries, then security group rules.
	AllowedBy []string `json:"allowedBy"`
}

// Ports renders the protocol and port range: "tcp 80", "tcp 1024-2048",
// "icmp".
func (e Exposure) Ports() string {
	if e.Protocol != plan.ProtoTCP && e.Protocol != plan.ProtoUDP {
		return e.Protocol
	}
	return e.Protocol + " " + portsString(e.FromPort, e.ToPort)
}

// Exposed lists everything reachable from the internet (pure): every
// node's protocols and port ranges that Reach allows from an internet
// address, with the rules that allow them. A load balancer accepts only
// on its listeners' ports (TCP); other nodes on whatever their security
// groups and network ACLs let through. Sources: any internet address
// ("anywhere"), and each narrower address block outside the VPC that a
// rule or network ACL entry names. A load balancer's nodes that expose
// the same thing by the same rules are one entry. Sorted by target.
func Exposed(p *plan.Plan, m Membership) []Exposure {
	sources := internetSources(p)
	bounds := portBounds(p)
	var out []Exposure
	for _, n := range m.Members {
		target := n.Name
		if n.Kind == KindLoadBalancer {
			target = "lb:" + n.Owner
		}
		to := nodeEndpoint(n)
		for _, src := range sources {
			from := Endpoint{Kind: EndpointInternet, Addr: src.addr}
			add := func(proto string, lo, hi int, listener string, v Verdict) {
				e := Exposure{Target: target, Kind: n.Kind, Nodes: []string{n.Name}, Addrs: []netip.Addr{n.Addr},
					Protocol: proto, From: src.label, Listener: listener, AllowedBy: v.AllowedBy}
				if proto == plan.ProtoTCP || proto == plan.ProtoUDP {
					e.FromPort, e.ToPort = lo, hi
				}
				// Merge with the previous range of the same node when the
				// same rules allow both.
				if k := len(out) - 1; k >= 0 && out[k].Nodes[0] == n.Name && out[k].Protocol == proto && out[k].From == src.label &&
					out[k].Listener == "" && listener == "" && out[k].ToPort+1 == lo && slices.Equal(out[k].AllowedBy, v.AllowedBy) {
					out[k].ToPort = hi
					return
				}
				out = append(out, e)
			}
			if n.Kind == KindLoadBalancer {
				lb, _ := p.LoadBalancer(n.Owner)
				for _, l := range lb.Listeners {
					if v := Reach(p, m, from, to, plan.ProtoTCP, l.Port); v.Allowed {
						add(plan.ProtoTCP, l.Port, l.Port, fmt.Sprintf("%s:%d", l.Protocol, l.Port), v)
					}
				}
				continue
			}
			for _, proto := range []string{plan.ProtoTCP, plan.ProtoUDP} {
				for i := 0; i+1 < len(bounds); i++ {
					if v := Reach(p, m, from, to, proto, bounds[i]); v.Allowed {
						add(proto, bounds[i], bounds[i+1]-1, "", v)
					}
				}
			}
			if v := Reach(p, m, from, to, plan.ProtoICMP, 0); v.Allowed {
				add(plan.ProtoICMP, 0, 0, "", v)
			}
		}
	}
	return groupExposures(out)
}

// groupExposures makes a load balancer's nodes one entry where they
// expose the same thing by the same rules, and drops what a narrower
// source adds nothing to (the same node, protocol and ports are open to
// anywhere), and sorts by target.
func groupExposures(in []Exposure) []Exposure {
	var out []Exposure
	same := func(a, b Exposure) bool {
		return a.Target == b.Target && a.Protocol == b.Protocol && a.FromPort == b.FromPort && a.ToPort == b.ToPort
	}
next:
	for _, e := range in {
		for i := range out {
			o := &out[i]
			if same(*o, e) && o.From == e.From && o.Kind == KindLoadBalancer && slices.Equal(o.AllowedBy, e.AllowedBy) {
				o.Nodes = append(o.Nodes, e.Nodes...)
				o.Addrs = append(o.Addrs, e.Addrs...)
				continue next
			}
		}
		if e.From != anywhere {
			for _, o := range in {
				if o.From == anywhere && o.Nodes[0] == e.Nodes[0] && o.Protocol == e.Protocol && o.FromPort <= e.FromPort && e.ToPort <= o.ToPort {
					continue next
				}
			}
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b Exposure) int { return strings.Compare(a.Target, b.Target) })
	return out
}

const anywhere = "anywhere"

type internetSource struct {
	addr  netip.Addr
	label string
}

// internetSources are the internet addresses Exposed tries: InternetAddr
// for anywhere, and the first address of each block outside the VPC that
// a security group rule or network ACL entry names (narrower than the
// whole internet).
func internetSources(p *plan.Plan) []internetSource {
	out := []internetSource{{InternetAddr, anywhere}}
	seen := map[netip.Prefix]bool{}
	consider := func(c netip.Prefix) {
		if !c.IsValid() || c.Bits() == 0 || seen[c] || c.Overlaps(p.VPC.CIDR) || !c.Addr().Is4() {
			return
		}
		seen[c] = true
		out = append(out, internetSource{c.Masked().Addr(), c.String()})
	}
	for _, sg := range p.SecurityGroups {
		for _, r := range sg.Ingress {
			consider(r.CIDR)
		}
	}
	for _, a := range p.NetworkACLs {
		for _, e := range a.Inbound {
			consider(e.CIDR)
		}
	}
	return out
}

// portBounds are the points where some rule's port range starts or ends
// (one past), with 0 and 65536: within two neighbours every port meets the
// same rules, so Reach's answer is the same for all of them.
func portBounds(p *plan.Plan) []int {
	b := []int{0, 65536}
	add := func(proto string, from, to int) {
		if proto == plan.ProtoTCP || proto == plan.ProtoUDP {
			b = append(b, from, to+1)
		}
	}
	for _, sg := range p.SecurityGroups {
		for _, r := range append(slices.Clone(sg.Ingress), sg.Egress...) {
			add(r.Protocol, r.FromPort, r.ToPort)
		}
	}
	for _, a := range p.NetworkACLs {
		for _, e := range append(slices.Clone(a.Inbound), a.Outbound...) {
			add(e.Protocol, e.FromPort, e.ToPort)
		}
	}
	slices.Sort(b)
	return slices.Compact(b)
}
