package awscfn

import (
	"slices"
	"testing"

	"github.com/moat-dev/moat/internal/plan"
)

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
