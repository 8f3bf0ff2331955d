package fis

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
)

// Inventory is what a stack has that targets can name, as AWS would
// describe it: zones by full name, tags as the CloudFormation rendering
// sets them (see InventoryTags in docs/chaos.md).
type Inventory struct {
	Region string `json:"region"`
	// Zones maps every name a zone goes by ("a", "us-east-1a") to its
	// full name.
	Zones     map[string]string `json:"zones"`
	Instances []Instance        `json:"instances"`
	Subnets   []Subnet          `json:"subnets"`
	Groups    []Group           `json:"groups"`
}

// Instance is an instance as DescribeInstances would show it.
type Instance struct {
	ID           string            `json:"id"`
	Zone         string            `json:"zone"`
	Subnet       string            `json:"subnet"`
	State        string            `json:"state"`
	InstanceType string            `json:"instanceType"`
	IP           string            `json:"ip"`
	Group        string            `json:"group,omitempty"`
	Tags         map[string]string `json:"tags"`
}

// Subnet is a subnet; locally its id is its name.
type Subnet struct {
	Name   string            `json:"name"`
	Zone   string            `json:"zone"`
	CIDR   string            `json:"cidr"`
	Public bool              `json:"public"`
	Tags   map[string]string `json:"tags"`
}

// Group is an auto scaling group.
type Group struct {
	Name  string            `json:"name"`
	Zones []string          `json:"zones"`
	Tags  map[string]string `json:"tags"`
}

// resource is any of the three, seen through its identity and attributes.
type resource struct {
	id    string
	tags  map[string]string
	attrs map[string][]string // filter path -> values
}

var (
	arnInstance = regexp.MustCompile(`^arn:aws[a-z-]*:ec2:[a-z0-9-]*:[0-9]*:instance/(.+)$`)
	arnSubnet   = regexp.MustCompile(`^arn:aws[a-z-]*:ec2:[a-z0-9-]*:[0-9]*:subnet/(.+)$`)
	arnGroup    = regexp.MustCompile(`^arn:aws[a-z-]*:autoscaling:[a-z0-9-]*:[0-9]*:autoScalingGroup:[^:]*:autoScalingGroupName/(.+)$`)
)

// ParseARN reads the ARN of an instance, a subnet or an auto scaling group:
// the resource's id (locally a subnet's id is its name) and its type.
func ParseARN(arn string) (id, resourceType string, err error) {
	for _, c := range []struct {
		re  *regexp.Regexp
		typ string
	}{{arnInstance, TypeInstance}, {arnSubnet, TypeSubnet}, {arnGroup, TypeGroup}} {
		if m := c.re.FindStringSubmatch(arn); m != nil {
			return m[1], c.typ, nil
		}
	}
	return "", "", fmt.Errorf("%q is not the ARN of an instance, subnet or auto scaling group", arn)
}

func (inv Inventory) resources(typ string) []resource {
	var out []resource
	switch typ {
	case TypeInstance:
		for _, i := range inv.Instances {
			out = append(out, resource{id: i.ID, tags: i.Tags, attrs: map[string][]string{
				"Placement.AvailabilityZone": {i.Zone}, "State.Name": {i.State}, "SubnetId": {i.Subnet},
				"InstanceType": {i.InstanceType}, "PrivateIpAddress": {i.IP}, "InstanceId": {i.ID}, "VpcId": {"vpc"}}})
		}
	case TypeSubnet:
		for _, s := range inv.Subnets {
			out = append(out, resource{id: s.Name, tags: s.Tags, attrs: map[string][]string{
				"AvailabilityZone": {s.Zone}, "AvailabilityZoneId": {s.Zone}, "SubnetId": {s.Name}, "CidrBlock": {s.CIDR},
				"MapPublicIpOnLaunch": {fmt.Sprint(s.Public)}, "VpcId": {"vpc"}}})
		}
	case TypeGroup:
		for _, g := range inv.Groups {
			out = append(out, resource{id: g.Name, tags: g.Tags, attrs: map[string][]string{
				"AvailabilityZones": g.Zones, "AutoScalingGroupName": {g.Name}}})
		}
	}
	return out
}

// zone is the full name of a zone value, or the value itself.
func (inv Inventory) zone(v string) string {
	if z, ok := inv.Zones[v]; ok {
		return z
	}
	return v
}

// Resolution is what each target resolved to.
type Resolution struct {
	// Identified are the resources each target matched, before selection.
	Identified map[string][]string `json:"identified"`
	// Selected are those the actions act on (selectionMode applied).
	Selected map[string][]string `json:"selected"`
}

// Resolve identifies each target's resources in inv, as FIS does at the
// start of an experiment, and applies its selection mode, choosing at
// random with rnd. A target that matches nothing is an error unless
// experimentOptions.emptyTargetResolutionMode is skip.
func Resolve(f *File, inv Inventory, rnd *rand.Rand) (Resolution, error) {
	res := Resolution{Identified: map[string][]string{}, Selected: map[string][]string{}}
	var problems []string
	for _, name := range f.TargetNames() {
		t := f.Template.Targets[name]
		ids := inv.identify(t)
		res.Identified[name] = ids
		kind, n, _ := ParseSelectionMode(t.SelectionMode)
		sel := slices.Clone(ids)
		rnd.Shuffle(len(sel), func(i, j int) { sel[i], sel[j] = sel[j], sel[i] })
		switch kind {
		case "COUNT":
			sel = sel[:min(n, len(sel))]
		case "PERCENT":
			// FIS rounds down; a percentage of a non-empty set that rounds
			// to none is none.
			sel = sel[:len(sel)*n/100]
		default:
			sel = slices.Clone(ids)
		}
		slices.Sort(sel)
		res.Selected[name] = sel
		if len(sel) == 0 && f.emptyMode() != "skip" {
			problems = append(problems, fmt.Sprintf("target %s (%s) resolved to no resources%s", name, t.ResourceType, inv.near(t)))
		}
	}
	if len(problems) > 0 {
		return res, fmt.Errorf("resolve targets: %s; fix the template, or set experimentOptions.emptyTargetResolutionMode to skip",
			strings.Join(problems, "; "))
	}
	return res, nil
}

func (f *File) emptyMode() string {
	if o := f.Template.ExperimentOptions; o != nil && o.EmptyTargetResolutionMode != "" {
		return o.EmptyTargetResolutionMode
	}
	return "fail"
}

// identify lists the resources a target names, in inventory order.
func (inv Inventory) identify(t Target) []string {
	var out []string
	for _, r := range inv.resources(t.ResourceType) {
		if inv.matches(t, r) {
			out = append(out, r.id)
		}
	}
	return out
}

func (inv Inventory) matches(t Target, r resource) bool {
	if len(t.ResourceArns) > 0 {
		found := false
		for _, a := range t.ResourceArns {
			if id, _, err := ParseARN(a); err == nil && id == r.id {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	for k, v := range t.ResourceTags {
		if got, ok := r.tags[k]; !ok || got != v {
			return false
		}
	}
	for _, f := range t.Filters {
		ok := false
		for _, have := range r.attrs[f.Path] {
			for _, want := range f.Values {
				if have == want || inv.zone(want) == have && strings.Contains(f.Path, "AvailabilityZone") {
					ok = true
				}
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// near says what a target that matched nothing might have meant.
func (inv Inventory) near(t Target) string {
	all := inv.resources(t.ResourceType)
	if len(all) == 0 {
		return ": the stack has none of that type"
	}
	if len(t.ResourceTags) > 0 {
		var tags []string
		seen := map[string]bool{}
		for _, r := range all {
			for _, k := range mapKeys(r.tags) {
				kv := k + "=" + r.tags[k]
				if !seen[kv] {
					seen[kv] = true
					tags = append(tags, kv)
				}
			}
		}
		return fmt.Sprintf(" (its resources carry the tags %s)", strings.Join(tags, ", "))
	}
	return ""
}
