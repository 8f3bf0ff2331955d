package console

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
)

// Map is what the console's map draws: the VPC, its zones as lanes, the
// subnets in them, every node (internet, internet gateway, load balancer
// nodes, NAT gateways, bastion, instances) and the edges traffic takes.
// It is built from the plan and the running stack's membership and
// instances by BuildMap, a pure function; the page only lays it out.
type Map struct {
	Stack       string            `json:"stack"`
	VPC         string            `json:"vpc"`
	Zones       []MapZone         `json:"zones"`
	Subnets     []MapSubnet       `json:"subnets"`
	Nodes       []MapNode         `json:"nodes"`
	Edges       []MapEdge         `json:"edges"`
	RouteTables []plan.RouteTable `json:"routeTables"`
}

// MapZone is one availability zone: a lane of the map.
type MapZone struct {
	Name    string `json:"name"`
	AWSName string `json:"awsName"`
}

// MapSubnet is a subnet in its zone's lane.
type MapSubnet struct {
	Name       string `json:"name"`
	Zone       string `json:"zone"`
	Public     bool   `json:"public"`
	CIDR       string `json:"cidr"`
	RouteTable string `json:"routeTable"`
	NetworkACL string `json:"networkAcl,omitempty"`
}

// Node kinds of the map: secgroup's member kinds, and these two outside
// the VPC's subnets.
const (
	NodeInternet = "internet"
	NodeIGW      = "igw"
)

// MapNode is one box on the map. Name is the name moat reach knows it by
// (an instance id, bastion, lb-<lb>-<i>), so a pick on the map is a reach
// endpoint.
type MapNode struct {
	Name   string   `json:"name"`
	Kind   string   `json:"kind"`
	Label  string   `json:"label"`
	Owner  string   `json:"owner,omitempty"` // load balancer or auto scaling group
	Subnet string   `json:"subnet,omitempty"`
	Zone   string   `json:"zone,omitempty"`
	Addr   string   `json:"addr,omitempty"`
	Groups []string `json:"groups,omitempty"`
	// Instance is set on instances: what moat ps shows.
	Instance *api.Instance `json:"instance,omitempty"`
	// Targets is the instance's health in each target group.
	Targets []api.Target `json:"targets,omitempty"`
}

// Edge kinds: what flows along an edge.
const (
	EdgeInternet = "internet" // internet <-> internet gateway
	EdgeIngress  = "ingress"  // internet gateway -> a load balancer node or the bastion
	EdgeTarget   = "target"   // load balancer node -> a registered target
	EdgeSSH      = "ssh"      // bastion -> an instance with a key pair
	EdgeNAT      = "nat"      // a private subnet's egress through its NAT gateway
	EdgeEgress   = "egress"   // NAT gateway -> internet gateway
)

// MapEdge joins two nodes (by name; a subnet for EdgeNAT's From).
type MapEdge struct {
	From string `json:"from"`
	To   string `json:"to"`
	Kind string `json:"kind"`
	// Label says what the edge carries: a port, a target group.
	Label string `json:"label,omitempty"`
	// TargetGroup and Target identify an EdgeTarget's target, for traffic
	// figures per target.
	TargetGroup string `json:"targetGroup,omitempty"`
}

// LBNodeName is the name of a load balancer's i-th node: the daemon's,
// and the one moat reach resolves.
func LBNodeName(lb string, i int) string { return fmt.Sprintf("lb-%s-%d", lb, i) }

// BuildMap is the map of a stack: its plan, the live membership (zero
// before the VPC is up), the instances of moat ps and the target health of
// moat targets. It is pure.
func BuildMap(p *plan.Plan, m secgroup.Membership, instances []api.Instance, targets []api.Target) Map {
	out := Map{Stack: p.Stack, VPC: p.VPC.CIDR.String(), Zones: []MapZone{}, Subnets: []MapSubnet{},
		Nodes: []MapNode{}, Edges: []MapEdge{}, RouteTables: p.RouteTables}
	if out.RouteTables == nil {
		out.RouteTables = []plan.RouteTable{}
	}
	zoneOf := map[string]string{}
	for _, z := range p.Zones {
		out.Zones = append(out.Zones, MapZone{Name: z.Name, AWSName: z.AWSName})
	}
	for _, s := range p.Subnets {
		zoneOf[s.Name] = s.Zone
		out.Subnets = append(out.Subnets, MapSubnet{Name: s.Name, Zone: s.Zone, Public: s.Public, CIDR: s.CIDR.String(),
			RouteTable: s.RouteTable, NetworkACL: s.NetworkACL})
	}
	out.Nodes = append(out.Nodes,
		MapNode{Name: NodeInternet, Kind: NodeInternet, Label: "internet"},
		MapNode{Name: NodeIGW, Kind: NodeIGW, Label: "internet gateway"})
	out.Edges = append(out.Edges, MapEdge{From: NodeInternet, To: NodeIGW, Kind: EdgeInternet})

	// Load balancers: one node per subnet; the target groups its
	// listeners forward to.
	lbOfTG := map[string]string{}
	lbNodes := map[string][]MapNode{}
	for _, lb := range p.LoadBalancers {
		var ports []string
		for _, ln := range lb.Listeners {
			ports = append(ports, fmt.Sprintf("%s %d", ln.Protocol, ln.Port))
			for _, tg := range ln.TargetGroups() {
				if _, ok := lbOfTG[tg]; !ok {
					lbOfTG[tg] = lb.Name
				}
			}
		}
		for i, n := range lb.Nodes {
			node := MapNode{Name: LBNodeName(lb.Name, i), Kind: secgroup.KindLoadBalancer, Label: "load balancer " + lb.Name,
				Owner: lb.Name, Subnet: n.Subnet, Zone: n.Zone, Addr: n.Address.String(), Groups: lb.SecurityGroups}
			out.Nodes = append(out.Nodes, node)
			lbNodes[lb.Name] = append(lbNodes[lb.Name], node)
			out.Edges = append(out.Edges, MapEdge{From: NodeIGW, To: node.Name, Kind: EdgeIngress, Label: strings.Join(ports, ", ")})
		}
	}
	for _, n := range p.NATGateways {
		out.Nodes = append(out.Nodes, MapNode{Name: n.Name, Kind: secgroup.KindNAT, Label: "NAT gateway " + n.Name,
			Subnet: n.Subnet, Zone: n.Zone, Addr: n.Address.String()})
		out.Edges = append(out.Edges, MapEdge{From: n.Name, To: NodeIGW, Kind: EdgeEgress})
	}
	for _, rt := range p.RouteTables {
		for _, r := range rt.Routes {
			if r.Target != plan.TargetNAT {
				continue
			}
			for _, sn := range rt.Subnets {
				out.Edges = append(out.Edges, MapEdge{From: sn, To: r.NAT, Kind: EdgeNAT, Label: r.Destination.String()})
			}
		}
	}
	if b := p.Bastion; b != nil {
		out.Nodes = append(out.Nodes, MapNode{Name: "bastion", Kind: secgroup.KindBastion, Label: "bastion",
			Subnet: b.Subnet, Zone: b.Zone, Addr: b.Address.String(), Groups: b.SecurityGroups})
		out.Edges = append(out.Edges, MapEdge{From: NodeIGW, To: "bastion", Kind: EdgeIngress, Label: "SSH 22"})
	}

	// Instances, in moat ps order, with their live security groups and
	// their health in each target group.
	byTarget := map[string][]api.Target{}
	for _, t := range targets {
		byTarget[t.ID] = append(byTarget[t.ID], t)
	}
	keyed := map[string]bool{}
	for _, g := range p.AutoScalingGroups {
		if lt, ok := p.LaunchTemplate(g.LaunchTemplate); ok && lt.KeyPair != "" {
			keyed[g.Name] = true
		}
	}
	for _, in := range instances {
		inst := in
		node := MapNode{Name: in.ID, Kind: secgroup.KindInstance, Label: in.ID, Owner: in.Group, Subnet: in.Subnet,
			Zone: in.Zone, Addr: in.IP, Instance: &inst, Targets: byTarget[in.ID]}
		if mem, ok := m.ByName(in.ID); ok {
			node.Groups = mem.Groups
		} else if g, ok := groupOf(p, in.Group); ok {
			if lt, ok := p.LaunchTemplate(g.LaunchTemplate); ok {
				node.Groups = lt.SecurityGroups
			}
		}
		if node.Zone == "" {
			node.Zone = zoneOf[in.Subnet]
		}
		out.Nodes = append(out.Nodes, node)
		for _, t := range node.Targets {
			nodes := lbNodes[lbOfTG[t.TargetGroup]]
			if len(nodes) == 0 {
				continue
			}
			// Cross-zone load balancing is on (ALB's default): any node
			// reaches any target; draw the one in the target's zone.
			from := nodes[0]
			if i := slices.IndexFunc(nodes, func(n MapNode) bool { return n.Zone == node.Zone }); i >= 0 {
				from = nodes[i]
			}
			out.Edges = append(out.Edges, MapEdge{From: from.Name, To: node.Name, Kind: EdgeTarget, Label: t.TargetGroup, TargetGroup: t.TargetGroup})
		}
		if p.Bastion != nil && keyed[in.Group] {
			out.Edges = append(out.Edges, MapEdge{From: "bastion", To: node.Name, Kind: EdgeSSH, Label: "SSH 22"})
		}
	}
	sort.SliceStable(out.Edges, func(i, j int) bool { return edgeOrder(out.Edges[i].Kind) < edgeOrder(out.Edges[j].Kind) })
	return out
}

func groupOf(p *plan.Plan, name string) (plan.AutoScalingGroup, bool) {
	for _, g := range p.AutoScalingGroups {
		if g.Name == name {
			return g, true
		}
	}
	return plan.AutoScalingGroup{}, false
}

// edgeOrder draws the outside first, then the flows inward.
func edgeOrder(kind string) int {
	return slices.Index([]string{EdgeInternet, EdgeIngress, EdgeEgress, EdgeNAT, EdgeTarget, EdgeSSH}, kind)
}
