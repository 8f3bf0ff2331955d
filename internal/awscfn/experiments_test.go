package awscfn

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/plan"
)

func resource(t *testing.T, tpl *Template, id string) Resource {
	t.Helper()
	for _, r := range tpl.Resources {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no resource %s", id)
	return Resource{}
}

// TestExperimentsAgainstSchema: the rendered experiments are valid against
// AWS::FIS::ExperimentTemplate's schema, and the schema check is real: a
// broken experiment is found.
func TestExperimentsAgainstSchema(t *testing.T) {
	p := loadPlan(t, "testdata/three-zones/moat.yaml")
	tpl, err := Render(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if fs := Validate(tpl); len(fs) > 0 {
		t.Fatalf("findings: %v", fs)
	}
	e := resource(t, tpl, "ExperimentAzAPower")
	if e.Type != "AWS::FIS::ExperimentTemplate" || resource(t, tpl, IDFISRole).Type != "AWS::IAM::Role" {
		t.Fatalf("experiment %s, role %s", e.Type, resource(t, tpl, IDFISRole).Type)
	}
	// An experiment sends SSM commands: the instances' role lets the SSM
	// agent take them.
	role := resource(t, tpl, "LaunchTemplateAppRole")
	if arns := fmt.Sprint(role.Properties["ManagedPolicyArns"]); !strings.Contains(arns, "AmazonSSMManagedInstanceCore") {
		t.Errorf("instance role policies %s", arns)
	}
	if lt := resource(t, tpl, "LaunchTemplateApp"); lt.Properties["LaunchTemplateData"].(map[string]any)["IamInstanceProfile"] == nil {
		t.Error("the launch template has no instance profile")
	}
	// The zone letter of the local template is the region's zone on AWS.
	acts := e.Properties["Actions"].(map[string]any)
	if z := acts["Pause-ASG-Scaling"].(map[string]any)["Parameters"].(map[string]any)["availabilityZoneIdentifiers"]; z != "eu-west-1a" {
		t.Errorf("zone %v", z)
	}
	for _, tc := range []struct {
		name   string
		break_ func(props map[string]any)
		want   string
	}{
		{"no role", func(p map[string]any) { delete(p, "RoleArn") }, "ExperimentAzAPower.Properties.RoleArn: required property is missing"},
		{"bad options", func(p map[string]any) {
			p["ExperimentOptions"] = map[string]any{"EmptyTargetResolutionMode": "ignore"}
		}, "ExperimentAzAPower.Properties.ExperimentOptions.EmptyTargetResolutionMode"},
		{"unknown property", func(p map[string]any) { p["StopCondition"] = []any{} }, "ExperimentAzAPower.Properties.StopCondition"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tpl, _ := Render(p, Options{})
			for i := range tpl.Resources {
				if tpl.Resources[i].ID == "ExperimentAzAPower" {
					tc.break_(tpl.Resources[i].Properties)
				}
			}
			var got []string
			for _, f := range Validate(tpl) {
				got = append(got, f.String())
			}
			if !strings.Contains(strings.Join(got, "\n"), tc.want) {
				t.Errorf("findings %v, want one with %q", got, tc.want)
			}
		})
	}
}

// TestExperimentRenderErrors: a template moat cannot render for AWS is
// refused with why.
func TestExperimentRenderErrors(t *testing.T) {
	p := loadPlan(t, "testdata/three-zones/moat.yaml")
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct{ name, text, want string }{
		{"instance arn", `{"targets": {"t": {"resourceType": "aws:ec2:instance", "resourceArns": ["arn:aws:ec2:eu-west-1:1:instance/i-0123456789abcdef0"], "selectionMode": "ALL"}},
			"actions": {"a": {"actionId": "aws:ec2:reboot-instances", "targets": {"Instances": "t"}}}, "stopConditions": [{"source": "none"}]}`,
			"render experiment x: targets.t: arn:aws:ec2:eu-west-1:1:instance/i-0123456789abcdef0 names a resource the stack creates"},
		{"invalid", `{"actions": {"a": {"actionId": "aws:fis:wiat"}}, "stopConditions": [{"source": "none"}]}`,
			`actions.a.actionId: "aws:fis:wiat" is not an AWS FIS action moat runs`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := *p
			q.Experiments = []plan.Experiment{{Name: "x", Template: write(tc.name+".json", tc.text)}}
			_, err := Render(&q, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
