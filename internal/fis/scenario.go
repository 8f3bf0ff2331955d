package fis

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Scenarios moat has built in, by name.
var Scenarios = []string{"az-power-interruption"}

// Scenario writes a built-in scenario as an experiment template for a
// stack (its resources found by the tags CloudFormation gives them, so
// the template runs on the deployed stack too). zone is the zone's full
// name (us-east-1a).
//
// az-power-interruption is FIS's "AZ Availability: Power Interruption"
// with the actions that apply to moat's resources, at AWS's timings:
// the zone's instances stop and start again after 30 minutes
// (Stop-Instances), its auto scaling groups cannot launch there for 30
// minutes (Pause-ASG-Scaling) and its subnets lose all connectivity for
// the first 2 minutes (Pause-network-connectivity). The scenario's
// actions on EBS, RDS, ElastiCache, ARC and IAM roles have nothing to act
// on locally and are left out.
func Scenario(name, stack, zone string) ([]byte, error) {
	if name != "az-power-interruption" {
		return nil, fmt.Errorf("no scenario %q: moat has %s", name, strings.Join(Scenarios, ", "))
	}
	byStack := map[string]string{TagStackName: stack}
	inZone := func(path string) []Filter { return []Filter{{Path: path, Values: []string{zone}}} }
	t := Template{
		Description: fmt.Sprintf("AZ Availability: Power Interruption of %s (stack %s)", zone, stack),
		Targets: map[string]Target{
			"Instances": {ResourceType: TypeInstance, ResourceTags: byStack, SelectionMode: "ALL",
				Filters: append(inZone("Placement.AvailabilityZone"), Filter{Path: "State.Name", Values: []string{"running"}})},
			"ASG":    {ResourceType: TypeGroup, ResourceTags: byStack, SelectionMode: "ALL"},
			"Subnet": {ResourceType: TypeSubnet, ResourceTags: byStack, SelectionMode: "ALL", Filters: inZone("AvailabilityZone")},
		},
		Actions: map[string]Action{
			"Stop-Instances": {ActionID: ActionStop, Description: "Stop the zone's instances; they start again after the power interruption",
				Parameters: map[string]string{"startInstancesAfterDuration": "PT30M", "completeIfInstancesTerminated": "true"},
				Targets:    map[string]string{"Instances": "Instances"}},
			"Pause-ASG-Scaling": {ActionID: ActionInsufficientCapacity, Description: "Auto scaling cannot launch in the zone",
				Parameters: map[string]string{"duration": "PT30M", "availabilityZoneIdentifiers": zone, "percentage": "100"},
				Targets:    map[string]string{"AutoScalingGroups": "ASG"}},
			"Pause-network-connectivity": {ActionID: ActionDisruptConnectivity, Description: "The zone's subnets lose connectivity",
				Parameters: map[string]string{"duration": "PT2M", "scope": "all"},
				Targets:    map[string]string{"Subnets": "Subnet"}},
		},
		StopConditions:    []StopCondition{{Source: "none"}},
		ExperimentOptions: &ExperimentOptions{EmptyTargetResolutionMode: "skip"},
		Tags:              map[string]string{"Name": "AZ Impairment: Power Interruption"},
	}
	return json.MarshalIndent(t, "", "  ")
}

// ScenarioZone finds the zone a --zone value names, among the stack's
// (name or full name); the error lists them.
func ScenarioZone(inv Inventory, zone string) (string, error) {
	if z, ok := inv.Zones[zone]; ok {
		return z, nil
	}
	var names []string
	for k := range inv.Zones {
		names = append(names, k)
	}
	slices.Sort(names)
	return "", fmt.Errorf("no zone %q in the stack: use one of %s", zone, strings.Join(names, ", "))
}
