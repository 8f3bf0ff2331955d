package awscfn

import (
	"slices"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/plan"
)

// imageOf returns the parameter a resource's ImageId refers to.
func imageOf(t *testing.T, tpl *Template, imageID any) Parameter {
	t.Helper()
	name := refTarget(imageID)
	for _, p := range tpl.Parameters {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("ImageId %v refers to no parameter", imageID)
	return Parameter{}
}

// TestImageFollowsArchitecture (issue 12, defects 1 and 10): a Graviton
// type gets the arm64 image, an x86 type the x86_64 one, and neither is an
// SSM-typed parameter that CloudFormation would resolve again on every
// update.
func TestImageFollowsArchitecture(t *testing.T) {
	p := loadPlan(t, stacks[0].file)
	p.LaunchTemplates[0].AWSInstanceType = "t4g.small"
	tpl, err := Render(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if fs := Validate(tpl); len(fs) > 0 {
		t.Fatalf("findings:\n%s", findings(fs))
	}
	data := props(t, tpl, "LaunchTemplateApp")["LaunchTemplateData"].(map[string]any)
	app := imageOf(t, tpl, data["ImageId"])
	bastion := imageOf(t, tpl, props(t, tpl, IDBastion)["ImageId"])
	for _, c := range []struct {
		who  string
		prm  Parameter
		arch string
	}{{"launch template (t4g.small)", app, "arm64"}, {"bastion (t3.micro)", bastion, "x86_64"}} {
		if c.prm.Type != "AWS::EC2::Image::Id" {
			t.Errorf("%s: image parameter %s has type %s, want AWS::EC2::Image::Id (an SSM type re-resolves on every deploy)", c.who, c.prm.Name, c.prm.Type)
		}
		if want := "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-" + c.arch; !strings.Contains(c.prm.Description, want) {
			t.Errorf("%s: image parameter %s does not say to resolve %s: %q", c.who, c.prm.Name, want, c.prm.Description)
		}
	}
	if app.Name == bastion.Name {
		t.Errorf("the arm64 launch template and the x86_64 bastion share image parameter %s", app.Name)
	}
}

func TestImageParameters(t *testing.T) {
	al := func(arch string) string {
		return "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-" + arch
	}
	for _, c := range []struct {
		name    string
		ami     string
		bastion string // "" = no bastion
		lts     []string
		want    []ImageParameter
	}{
		{"x86 only", "amazon-linux-2023", "t3.micro", []string{"t3.small"},
			[]ImageParameter{{Name: "ImageIdX8664", Arch: "x86_64", SSMPath: al("x86_64")}}},
		{"arm only", "amazon-linux-2023", "t4g.nano", []string{"m7g.large", "c6gn.large"},
			[]ImageParameter{{Name: "ImageIdArm64", Arch: "arm64", SSMPath: al("arm64")}}},
		{"both, x86_64 first", "amazon-linux-2023", "t4g.nano", []string{"m5.large"},
			[]ImageParameter{{Name: "ImageIdX8664", Arch: "x86_64", SSMPath: al("x86_64")}, {Name: "ImageIdArm64", Arch: "arm64", SSMPath: al("arm64")}}},
		{"no bastion", "amazon-linux-2023", "", []string{"t4g.micro"},
			[]ImageParameter{{Name: "ImageIdArm64", Arch: "arm64", SSMPath: al("arm64")}}},
		{"empty ami is the default", "", "t3.micro", nil,
			[]ImageParameter{{Name: "ImageIdX8664", Arch: "x86_64", SSMPath: al("x86_64")}}},
		{"ssm path", "/my/images/app", "", []string{"t4g.micro"},
			[]ImageParameter{{Name: "ImageIdArm64", Arch: "arm64", SSMPath: "/my/images/app"}}},
		{"resolve:ssm path", "resolve:ssm:/my/images/app", "", []string{"t3.micro"},
			[]ImageParameter{{Name: "ImageIdX8664", Arch: "x86_64", SSMPath: "/my/images/app"}}},
		{"image id", "ami-0123456789abcdef0", "t3.micro", []string{"t3.micro"},
			[]ImageParameter{{Name: "ImageIdX8664", Arch: "x86_64", ImageID: "ami-0123456789abcdef0"}}},
		{"nothing to run", "amazon-linux-2023", "", nil, nil},
	} {
		p := &plan.Plan{AWS: plan.AWS{AMI: c.ami}}
		if c.bastion != "" {
			p.Bastion = &plan.Bastion{InstanceType: c.bastion}
		}
		for _, typ := range c.lts {
			p.LaunchTemplates = append(p.LaunchTemplates, plan.LaunchTemplate{AWSInstanceType: typ})
		}
		if got := ImageParameters(p); !slices.Equal(got, c.want) {
			t.Errorf("%s: ImageParameters = %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestValidateImageArchitecture: the offline check refuses an instance
// type with the other architecture's image (a hand-edited template), as
// EC2 would.
func TestValidateImageArchitecture(t *testing.T) {
	tpl := renderFile(t, stacks[0].file, Options{})
	data := props(t, tpl, "LaunchTemplateApp")["LaunchTemplateData"].(map[string]any)
	data["InstanceType"] = "m7g.large"
	props(t, tpl, IDBastion)["InstanceType"] = "huge"
	got := findings(Validate(tpl))
	for _, want := range []string{
		"LaunchTemplateApp.Properties.LaunchTemplateData.ImageId: instance type m7g.large is arm64, but its image is ImageIdX8664, the x86_64 image",
		`BastionInstance.Properties.InstanceType: instance type "huge" is not of EC2's form family.size`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("findings lack %q:\n%s", want, got)
		}
	}
}
