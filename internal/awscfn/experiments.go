package awscfn

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moat-dev/moat/internal/fis"
	"github.com/moat-dev/moat/internal/plan"
)

// IDFISRole is the role AWS FIS acts with in the stack's experiments.
const IDFISRole = "FISExperimentRole"

func experimentID(name string) string { return "Experiment" + camel(name) }

// experiments renders the stack's AWS FIS experiment templates, with the
// role FIS assumes to run them. A template is the one moat chaos runs
// locally: its targets select by the tags the stack's resources carry
// here and there, zone letters become the region's zone names, and a
// subnet ARN naming a subnet of the stack becomes that subnet's ARN.
func (r *renderer) experiments() error {
	if len(r.p.Experiments) == 0 {
		return nil
	}
	r.add(Resource{ID: IDFISRole, Type: "AWS::IAM::Role", Properties: map[string]any{
		"Description": "Assumed by AWS FIS to run the stack's experiments",
		"AssumeRolePolicyDocument": map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
			"Effect": "Allow", "Principal": map[string]any{"Service": "fis.amazonaws.com"}, "Action": "sts:AssumeRole",
		}}},
		// AWS's managed policies for FIS's EC2, network and SSM actions.
		"ManagedPolicyArns": []any{
			sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AWSFaultInjectionSimulatorEC2Access"),
			sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AWSFaultInjectionSimulatorNetworkAccess"),
			sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AWSFaultInjectionSimulatorSSMAccess"),
		},
		// aws:ec2:asg-insufficient-instance-capacity-error, and resolving
		// targets by tag.
		"Policies": []any{map[string]any{"PolicyName": "fis-targets-and-capacity-errors", "PolicyDocument": map[string]any{
			"Version": "2012-10-17", "Statement": []any{map[string]any{
				"Effect": "Allow",
				"Action": []any{"autoscaling:DescribeAutoScalingGroups", "ec2:InjectApiError", "ec2:DescribeInstances",
					"ec2:DescribeSubnets", "tag:GetResources"},
				"Resource": "*",
			}},
		}}},
		"Tags": tags("fis"),
	}})
	for i, e := range r.p.Experiments {
		if err := r.experiment(e.Name, r.experimentFiles[i]); err != nil {
			return fmt.Errorf("render experiment %s: %w", e.Name, err)
		}
	}
	return nil
}

// loadExperiments reads and checks the experiment templates, before
// anything is rendered: the launch templates need to know whether one
// sends SSM commands.
func (r *renderer) loadExperiments() error {
	for _, e := range r.p.Experiments {
		f, err := fis.LoadFile(e.Template)
		if err != nil {
			return fmt.Errorf("render experiment %s: %w", e.Name, err)
		}
		if ps := fis.Validate(f).Errors(); len(ps) > 0 {
			return fmt.Errorf("render experiment %s: %w", e.Name, ps)
		}
		for _, a := range f.Template.Actions {
			r.ssm = r.ssm || a.ActionID == fis.ActionSendCommand
		}
		r.experimentFiles = append(r.experimentFiles, f)
	}
	return nil
}

func (r *renderer) experiment(name string, f *fis.File) error {
	t := f.Template
	desc := t.Description
	if desc == "" {
		desc = "moat experiment " + name
	}
	targets := map[string]any{}
	for _, tn := range f.TargetNames() {
		tg := t.Targets[tn]
		out := map[string]any{"ResourceType": tg.ResourceType, "SelectionMode": tg.SelectionMode}
		if len(tg.ResourceTags) > 0 {
			out["ResourceTags"] = anyMap(tg.ResourceTags)
		}
		if len(tg.ResourceArns) > 0 {
			var arns []any
			for _, a := range tg.ResourceArns {
				arn, err := r.experimentARN(a)
				if err != nil {
					return fmt.Errorf("targets.%s: %w", tn, err)
				}
				arns = append(arns, arn)
			}
			out["ResourceArns"] = arns
		}
		if len(tg.Filters) > 0 {
			var fs []any
			for _, fl := range tg.Filters {
				vals := make([]any, 0, len(fl.Values))
				for _, v := range fl.Values {
					if strings.Contains(fl.Path, "AvailabilityZone") {
						v = r.zone(v)
					}
					vals = append(vals, v)
				}
				fs = append(fs, map[string]any{"Path": fl.Path, "Values": vals})
			}
			out["Filters"] = fs
		}
		if len(tg.Parameters) > 0 {
			out["Parameters"] = anyMap(tg.Parameters)
		}
		targets[tn] = out
	}
	acts := map[string]any{}
	for _, an := range f.ActionNames() {
		a := t.Actions[an]
		out := map[string]any{"ActionId": a.ActionID}
		if a.Description != "" {
			out["Description"] = a.Description
		}
		if len(a.Parameters) > 0 {
			params := map[string]any{}
			for k, v := range a.Parameters {
				if k == "availabilityZoneIdentifiers" {
					var zs []string
					for _, z := range strings.Split(v, ",") {
						zs = append(zs, r.zone(strings.TrimSpace(z)))
					}
					v = strings.Join(zs, ",")
				}
				params[k] = v
			}
			out["Parameters"] = params
		}
		if len(a.Targets) > 0 {
			out["Targets"] = anyMap(a.Targets)
		}
		if len(a.StartAfter) > 0 {
			out["StartAfter"] = anyList(a.StartAfter)
		}
		acts[an] = out
	}
	var stops []any
	for _, s := range t.StopConditions {
		sc := map[string]any{"Source": s.Source}
		if s.Value != "" {
			sc["Value"] = s.Value
		}
		stops = append(stops, sc)
	}
	props := map[string]any{
		"Description": desc, "RoleArn": getAtt(IDFISRole, "Arn"),
		"Targets": targets, "Actions": acts, "StopConditions": stops,
		"Tags": map[string]any{"Name": sub("${AWS::StackName}-" + name)},
	}
	if o := t.ExperimentOptions; o != nil && (o.AccountTargeting != "" || o.EmptyTargetResolutionMode != "") {
		opts := map[string]any{}
		if o.AccountTargeting != "" {
			opts["AccountTargeting"] = o.AccountTargeting
		}
		if o.EmptyTargetResolutionMode != "" {
			opts["EmptyTargetResolutionMode"] = o.EmptyTargetResolutionMode
		}
		props["ExperimentOptions"] = opts
	}
	r.add(Resource{ID: experimentID(name), Type: "AWS::FIS::ExperimentTemplate", Properties: props})
	return nil
}

// experimentARN renders a target's ARN for AWS: a subnet of the stack
// becomes its ARN there; the stack's instances and groups get other ids
// and ARNs on AWS, so ARNs of them cannot be rendered.
func (r *renderer) experimentARN(arn string) (any, error) {
	id, typ, err := fis.ParseARN(arn)
	if err != nil {
		return nil, err
	}
	local := false
	switch typ {
	case fis.TypeSubnet:
		if slices.ContainsFunc(r.p.Subnets, func(s plan.Subnet) bool { return s.Name == id }) {
			return sub(fmt.Sprintf("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:subnet/${%s}", subnetID(id))), nil
		}
	case fis.TypeInstance:
		local = true // instances are launched by the stack: no id is known before
	case fis.TypeGroup:
		local = slices.ContainsFunc(r.p.AutoScalingGroups, func(g plan.AutoScalingGroup) bool { return g.Name == id })
	}
	if local {
		return nil, fmt.Errorf("%s names a resource the stack creates, whose id on AWS is not known when rendering: select it by resourceTags (moat:group, aws:cloudformation:stack-name) and filters instead", arn)
	}
	return arn, nil
}

func anyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func anyList(l []string) []any {
	out := make([]any, len(l))
	for i, v := range l {
		out[i] = v
	}
	return out
}
