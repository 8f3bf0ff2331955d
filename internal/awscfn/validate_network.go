package awscfn

// Network rules: subnets inside their VPC and apart, each zone with a
// public and a private subnet, load balancers across zones in public
// subnets.

import (
	"fmt"
	"net/netip"
	"strings"
)

// subnetsInVPC checks every subnet's block lies inside its VPC's and that
// subnets of one VPC do not overlap.
func (v *validator) subnetsInVPC() {
	byVPC := map[string][]*Resource{}
	for _, sn := range v.ofType("AWS::EC2::Subnet") {
		cidr, err := netip.ParsePrefix(str(sn.Properties["CidrBlock"]))
		if err != nil {
			continue // the schema check reports it
		}
		vpcID := refTarget(sn.Properties["VpcId"])
		vpc, ok := v.res[vpcID]
		if !ok || vpc.Type != "AWS::EC2::VPC" {
			if vpcID != "" {
				v.addf(sn.ID+".Properties.VpcId", "refers to %s, which is not an AWS::EC2::VPC", vpcID)
			}
			continue
		}
		vc, err := netip.ParsePrefix(str(vpc.Properties["CidrBlock"]))
		if err != nil {
			continue
		}
		if !vc.Contains(cidr.Addr()) || cidr.Bits() < vc.Bits() {
			v.addf(sn.ID+".Properties.CidrBlock", "subnet %s is not inside VPC %s's %s", cidr, vpcID, vc)
		}
		if cidr.Bits() > 28 || cidr.Bits() < 16 {
			v.addf(sn.ID+".Properties.CidrBlock", "subnet %s: AWS subnets are /16 to /28", cidr)
		}
		for _, other := range byVPC[vpcID] {
			oc, _ := netip.ParsePrefix(str(other.Properties["CidrBlock"]))
			if oc.Overlaps(cidr) {
				v.addf(sn.ID+".Properties.CidrBlock", "subnet %s overlaps %s's %s", cidr, other.ID, oc)
			}
		}
		byVPC[vpcID] = append(byVPC[vpcID], sn)
	}
}

// zoneOf names a subnet's zone: the literal name, or "index N" for
// Fn::Select [N, Fn::GetAZs ...].
func zoneOf(sn *Resource) string {
	switch z := sn.Properties["AvailabilityZone"].(type) {
	case string:
		return z
	case map[string]any:
		if sel, ok := z["Fn::Select"].([]any); ok && len(sel) == 2 {
			return "zone index " + fmt.Sprint(sel[0])
		}
	}
	return ""
}

// publicSubnets returns the subnets whose route table sends 0.0.0.0/0 to
// an internet gateway.
func (v *validator) publicSubnets() map[string]bool {
	publicRT := map[string]bool{}
	for _, r := range v.ofType("AWS::EC2::Route") {
		if str(r.Properties["DestinationCidrBlock"]) != "0.0.0.0/0" {
			continue
		}
		if gw, ok := v.res[refTarget(r.Properties["GatewayId"])]; ok && gw.Type == "AWS::EC2::InternetGateway" {
			publicRT[refTarget(r.Properties["RouteTableId"])] = true
		}
	}
	out := map[string]bool{}
	for _, a := range v.ofType("AWS::EC2::SubnetRouteTableAssociation") {
		if publicRT[refTarget(a.Properties["RouteTableId"])] {
			out[refTarget(a.Properties["SubnetId"])] = true
		}
	}
	return out
}

// zones checks each zone has a public and a private subnet.
func (v *validator) zones() {
	public := v.publicSubnets()
	type pair struct{ pub, priv []string }
	byZone := map[string]*pair{}
	for _, sn := range v.ofType("AWS::EC2::Subnet") {
		z := zoneOf(sn)
		if z == "" {
			continue
		}
		if byZone[z] == nil {
			byZone[z] = &pair{}
		}
		if public[sn.ID] {
			byZone[z].pub = append(byZone[z].pub, sn.ID)
		} else {
			byZone[z].priv = append(byZone[z].priv, sn.ID)
		}
	}
	for _, z := range sortedKeys(byZone) {
		p := byZone[z]
		if len(p.pub) == 0 {
			v.addf(p.priv[0]+".Properties.AvailabilityZone", "zone %s has no public subnet (one routed to an internet gateway); it has only %s", z, strings.Join(p.priv, ", "))
		}
		if len(p.priv) == 0 {
			v.addf(p.pub[0]+".Properties.AvailabilityZone", "zone %s has no private subnet; it has only %s", z, strings.Join(p.pub, ", "))
		}
	}
}

// loadBalancers checks each internet-facing application load balancer
// spans at least two zones, in public subnets.
func (v *validator) loadBalancers() {
	public := v.publicSubnets()
	for _, lb := range v.ofType("AWS::ElasticLoadBalancingV2::LoadBalancer") {
		zones := map[string]bool{}
		for i, s := range list(lb.Properties["Subnets"]) {
			id := refTarget(s)
			sn, ok := v.res[id]
			if !ok || sn.Type != "AWS::EC2::Subnet" {
				continue
			}
			zones[zoneOf(sn)] = true
			if c, err := netip.ParsePrefix(str(sn.Properties["CidrBlock"])); err == nil && c.Bits() > 27 {
				v.addf(fmt.Sprintf("%s.Properties.Subnets[%d]", lb.ID, i),
					"subnet %s (%s) is smaller than /27: AWS places a load balancer only in subnets of /27 or larger, with 8 free addresses", id, c)
			}
			if str(lb.Properties["Scheme"]) != "internal" && !public[id] {
				v.addf(fmt.Sprintf("%s.Properties.Subnets[%d]", lb.ID, i), "internet-facing load balancer in %s, which is not a public subnet", id)
			}
		}
		if t := str(lb.Properties["Type"]); (t == "" || t == "application") && len(zones) < 2 {
			v.addf(lb.ID+".Properties.Subnets", "an application load balancer needs subnets in at least two zones; it has %d", len(zones))
		}
	}
}
