package fis

import (
	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/plan"
)

// Tags moat's resources carry, as the CloudFormation rendering (package
// awscfn) gives them on AWS, so one template names the same resources
// here and there: Name (STACK-NAME) on subnets and instances (STACK-
// LAUNCHTEMPLATE), moat:group on groups and their instances, and the tags
// CloudFormation and Auto Scaling add themselves.
const (
	TagName        = "Name"
	TagGroup       = "moat:group"
	TagVersion     = "moat:version"
	TagStackName   = "aws:cloudformation:stack-name"
	TagASGroupName = "aws:autoscaling:groupName"
)

// BuildInventory describes a running stack as FIS would see it on AWS:
// its plan (zones, subnets, groups) and its live instances (terminated
// ones left out, as DescribeInstances soon forgets them).
func BuildInventory(p *plan.Plan, instances []api.Instance) Inventory {
	inv := Inventory{Region: p.AWS.Region, Zones: map[string]string{}}
	for _, z := range p.Zones {
		inv.Zones[z.Name] = z.AWSName
		inv.Zones[z.AWSName] = z.AWSName
	}
	zone := func(z string) string {
		if full, ok := inv.Zones[z]; ok {
			return full
		}
		return z
	}
	for _, s := range p.Subnets {
		inv.Subnets = append(inv.Subnets, Subnet{Name: s.Name, Zone: zone(s.Zone), CIDR: s.CIDR.String(), Public: s.Public,
			Tags: map[string]string{TagName: p.Stack + "-" + s.Name, TagStackName: p.Stack}})
	}
	for _, g := range p.AutoScalingGroups {
		var zones []string
		for _, z := range g.Zones {
			zones = append(zones, zone(z))
		}
		inv.Groups = append(inv.Groups, Group{Name: g.Name, Zones: zones,
			Tags: map[string]string{TagGroup: g.Name, TagStackName: p.Stack}})
	}
	types := map[string]string{}
	for _, lt := range p.LaunchTemplates {
		types[lt.Name] = lt.AWSInstanceType
	}
	for _, i := range instances {
		if i.State == "terminated" {
			continue
		}
		tags := map[string]string{TagName: p.Stack + "-" + i.LaunchTemplate, TagStackName: p.Stack, TagVersion: i.Version}
		if i.Group != "" {
			tags[TagGroup], tags[TagASGroupName] = i.Group, i.Group
		}
		inv.Instances = append(inv.Instances, Instance{ID: i.ID, Zone: zone(i.Zone), Subnet: i.Subnet, State: i.State,
			InstanceType: types[i.LaunchTemplate], IP: i.IP, Group: i.Group, Tags: tags})
	}
	return inv
}
