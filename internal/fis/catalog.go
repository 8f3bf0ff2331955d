package fis

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/moat-dev/moat/internal/fault"
)

// Resource types moat resolves targets of.
const (
	TypeInstance = "aws:ec2:instance"
	TypeSubnet   = "aws:ec2:subnet"
	TypeGroup    = "aws:ec2:autoscaling-group"
)

// Action ids moat runs.
const (
	ActionWait                 = "aws:fis:wait"
	ActionTerminate            = "aws:ec2:terminate-instances"
	ActionStop                 = "aws:ec2:stop-instances"
	ActionReboot               = "aws:ec2:reboot-instances"
	ActionDisruptConnectivity  = "aws:network:disrupt-connectivity"
	ActionInsufficientCapacity = "aws:ec2:asg-insufficient-instance-capacity-error"
	ActionSendCommand          = "aws:ssm:send-command"
)

// Fault kinds of the daemon's fault API (package fault), and two things
// that are not faults: terminate, done through the terminate API, and wait.
const (
	KindWait                 = "wait"
	KindTerminate            = "terminate"
	KindStop                 = string(fault.StopInstances)
	KindReboot               = string(fault.RebootInstances)
	KindDisruptConnectivity  = string(fault.DisruptConnectivity)
	KindInsufficientCapacity = string(fault.InsufficientCapacity)
	KindNetworkLatency       = string(fault.NetworkLatency)
	KindPacketLoss           = string(fault.PacketLoss)
	KindCPUStress            = string(fault.CPUStress)
	KindMemoryStress         = string(fault.MemoryStress)
	KindKillProcess          = string(fault.KillProcess)
)

// maxDuration is the longest action FIS runs.
const maxDuration = "PT12H"

// param describes one action parameter.
type param struct {
	required bool
	// check validates a value; nil accepts anything.
	check func(string) error
	hint  string
}

// actionSpec is what an action takes.
type actionSpec struct {
	// targetKey is the key of the action's targets map (Instances,
	// Subnets, AutoScalingGroups); "" for an action without targets.
	targetKey    string
	resourceType string
	params       map[string]param
}

var (
	durationParam = param{required: true, check: checkDuration, hint: `an ISO 8601 duration, e.g. "PT5M" or "PT30S"`}
	optDuration   = param{check: checkDuration, hint: `an ISO 8601 duration, e.g. "PT5M"`}
	boolParam     = param{check: oneOf("true", "false"), hint: `"true" or "false"`}
)

// actions are the FIS actions moat runs, with their parameters.
var actions = map[string]actionSpec{
	ActionWait:      {params: map[string]param{"duration": durationParam}},
	ActionTerminate: {targetKey: "Instances", resourceType: TypeInstance, params: map[string]param{}},
	ActionStop: {targetKey: "Instances", resourceType: TypeInstance, params: map[string]param{
		"startInstancesAfterDuration":   optDuration,
		"completeIfInstancesTerminated": boolParam,
	}},
	ActionReboot: {targetKey: "Instances", resourceType: TypeInstance, params: map[string]param{}},
	ActionDisruptConnectivity: {targetKey: "Subnets", resourceType: TypeSubnet, params: map[string]param{
		"duration": durationParam,
		"scope":    {check: scopeCheck, hint: `"all" or "availability-zone"`},
	}},
	ActionInsufficientCapacity: {targetKey: "AutoScalingGroups", resourceType: TypeGroup, params: map[string]param{
		"duration":                    durationParam,
		"availabilityZoneIdentifiers": {required: true, check: nonEmpty, hint: `the zones whose launches fail, comma-separated, e.g. "us-east-1a"`},
		"percentage":                  {check: intRange(1, 100), hint: "a whole number from 1 to 100 (default 100)"},
	}},
	ActionSendCommand: {targetKey: "Instances", resourceType: TypeInstance, params: map[string]param{
		"documentArn":        {required: true, check: documentCheck, hint: `"arn:aws:ssm:REGION::document/AWSFIS-Run-CPU-Stress" (or -Memory-Stress, -Network-Latency, -Network-Packet-Loss, -Kill-Process)`},
		"documentVersion":    {},
		"documentParameters": {check: jsonObject, hint: `a JSON object in a string, e.g. "{\"DurationSeconds\":\"60\"}"`},
		"duration":           durationParam,
	}},
}

// otherActions are FIS actions moat knows of but does not run locally.
var otherActions = []string{
	"aws:cloudwatch:assert-alarm-state", "aws:dynamodb:global-table-pause-replication", "aws:ebs:pause-volume-io",
	"aws:ec2:api-insufficient-instance-capacity-error", "aws:ec2:send-spot-instance-interruptions",
	"aws:ecs:drain-container-instances", "aws:ecs:stop-task", "aws:eks:terminate-nodegroup-instances",
	"aws:elasticache:interrupt-cluster-az-power", "aws:elasticache:replicationgroup-interrupt-az-power",
	"aws:fis:inject-api-internal-error", "aws:fis:inject-api-throttle-error", "aws:fis:inject-api-unavailable-error",
	"aws:network:route-table-disrupt-cross-region-connectivity", "aws:network:transit-gateway-disrupt-cross-region-connectivity",
	"aws:rds:failover-db-cluster", "aws:rds:reboot-db-instances", "aws:s3:bucket-pause-replication",
	"aws:ssm:start-automation-execution", "aws:arc:start-zonal-autoshift", "aws:lambda:invocation-add-delay",
}

// resourceTypes moat resolves, and the filter paths each takes.
var resourceTypes = map[string][]string{
	TypeInstance: {"Placement.AvailabilityZone", "State.Name", "SubnetId", "InstanceType", "PrivateIpAddress", "InstanceId", "VpcId"},
	TypeSubnet:   {"AvailabilityZone", "AvailabilityZoneId", "SubnetId", "CidrBlock", "MapPublicIpOnLaunch", "VpcId"},
	TypeGroup:    {"AvailabilityZones", "AutoScalingGroupName"},
}

// document is an AWSFIS-Run-* SSM document: its parameters and the fault it maps to.
type document struct {
	kind   string
	params map[string]param
}

var (
	secondsParam = param{required: true, check: intRange(1, 43200), hint: "seconds, e.g. \"60\""}
	installDeps  = param{check: oneOf("True", "False", "true", "false"), hint: `"True" or "False"`}
)

// documents are the AWS-owned SSM documents moat runs (their names after
// "document/"); parameters as AWS documents them.
var documents = map[string]document{
	"AWSFIS-Run-CPU-Stress": {kind: KindCPUStress, params: map[string]param{
		"DurationSeconds": secondsParam, "CPU": {check: intRange(0, 1024), hint: "number of CPU stressors, 0 for all"},
		"LoadPercent": {check: intRange(0, 100), hint: "0 to 100"}, "InstallDependencies": installDeps}},
	"AWSFIS-Run-Memory-Stress": {kind: KindMemoryStress, params: map[string]param{
		"DurationSeconds": secondsParam, "Percent": {required: true, check: intRange(1, 100), hint: "percent of memory, 1 to 100"},
		"Workers": {check: intRange(1, 1024), hint: "a whole number"}, "InstallDependencies": installDeps}},
	"AWSFIS-Run-Network-Latency": {kind: KindNetworkLatency, params: map[string]param{
		"DurationSeconds": secondsParam, "DelayMilliseconds": {check: intRange(0, 60000), hint: "milliseconds (default 200)"},
		"JitterMilliseconds": {check: intRange(0, 60000), hint: "milliseconds"},
		"Interface":          {}, "InstallDependencies": installDeps}},
	"AWSFIS-Run-Network-Packet-Loss": {kind: KindPacketLoss, params: map[string]param{
		"DurationSeconds": secondsParam, "LossPercent": {check: intRange(0, 100), hint: "0 to 100 (default 7)"},
		"Interface": {}, "InstallDependencies": installDeps}},
	"AWSFIS-Run-Kill-Process": {kind: KindKillProcess, params: map[string]param{
		"ProcessName": {required: true, check: nonEmpty, hint: "the process name, e.g. \"python3\""},
		"Signal":      {check: oneOf("SIGTERM", "SIGKILL"), hint: `"SIGTERM" or "SIGKILL" (default)`}, "InstallDependencies": installDeps}},
}

// documentName is the document of an SSM document ARN, or "".
func documentName(arn string) string {
	_, name, ok := strings.Cut(arn, ":document/")
	if !ok || !strings.HasPrefix(arn, "arn:") {
		return ""
	}
	return name
}

func checkDuration(s string) error {
	d, err := ParseDuration(s)
	if err != nil {
		return err
	}
	if max, _ := ParseDuration(maxDuration); d > max {
		return fmt.Errorf("%s is longer than FIS's 12 hours", s)
	}
	return nil
}

func oneOf(vals ...string) func(string) error {
	return func(s string) error {
		for _, v := range vals {
			if s == v {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", s, strings.Join(vals, ", "))
	}
}

func nonEmpty(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("it is empty")
	}
	return nil
}

func intRange(lo, hi int) func(string) error {
	return func(s string) error {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		if n < lo || n > hi {
			return fmt.Errorf("%d is outside %d-%d", n, lo, hi)
		}
		return nil
	}
}

func scopeCheck(s string) error {
	switch s {
	case "all", "availability-zone":
		return nil
	case "dynamodb", "prefix-list", "s3":
		return fmt.Errorf("scope %q is an AWS FIS scope moat does not run locally (moat runs all and availability-zone)", s)
	}
	return fmt.Errorf("%q is not a scope", s)
}

func documentCheck(s string) error {
	name := documentName(s)
	if name == "" {
		return fmt.Errorf("%q is not an SSM document ARN", s)
	}
	if _, ok := documents[name]; !ok {
		return fmt.Errorf("document %s is not one moat runs", name)
	}
	return nil
}

func jsonObject(s string) error {
	_, err := documentParams(s)
	return err
}

// documentParams reads documentParameters: a JSON object whose values are
// strings (numbers and booleans are taken as their text).
func documentParams(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	for k, v := range m {
		switch v := v.(type) {
		case string:
			out[k] = v
		case float64:
			out[k] = strconv.FormatFloat(v, 'f', -1, 64)
		case bool:
			out[k] = strconv.FormatBool(v)
		default:
			return nil, fmt.Errorf("%s: expected a string, found %v", k, v)
		}
	}
	return out, nil
}
