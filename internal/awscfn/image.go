package awscfn

import (
	"fmt"
	"strings"

	"github.com/moat-dev/moat/internal/ec2facts"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
)

// AmazonLinux2023Parameter is the SSM public parameter of the latest Amazon
// Linux 2023 image for an architecture (x86_64 or arm64).
func AmazonLinux2023Parameter(arch string) string {
	return "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-" + arch
}

// ImageParameter is a template parameter holding the image (AMI id) of the
// instances of one CPU architecture. The template takes a plain image id,
// not an SSM-typed parameter, so an unchanged file keeps its image: moat
// deploy resolves SSMPath once when it creates the stack and passes the
// previous value on every update until moat deploy --update-image.
type ImageParameter struct {
	// Name is the parameter's name: ImageIdX8664 or ImageIdArm64.
	Name string
	// Arch is the architecture of the instance types that use it:
	// "x86_64" or "arm64".
	Arch string
	// SSMPath is the SSM parameter to resolve (GetParameter) for the image:
	// Amazon Linux 2023 of the architecture by default, or the path the
	// file gives in aws.ami. Empty when the file names an image id.
	SSMPath string
	// ImageID is the image id the file names in aws.ami (ami-…), also the
	// parameter's default; empty when SSMPath is set.
	ImageID string
}

// ImageParameterName names the image parameter of an architecture.
func ImageParameterName(arch string) string {
	return "ImageId" + camel(strings.ReplaceAll(arch, "_", "-"))
}

// ImageParameters lists the image parameters a plan's template takes: one
// per CPU architecture of the instance types it uses (the bastion's and each
// launch template's AWS type), x86_64 first. A type whose architecture
// cannot be told counts as x86_64; validation reports it.
func ImageParameters(p *plan.Plan) []ImageParameter {
	used := map[string]bool{}
	if p.Bastion != nil {
		used[archOf(p.Bastion.InstanceType)] = true
	}
	for _, lt := range p.LaunchTemplates {
		used[archOf(lt.AWSInstanceType)] = true
	}
	var out []ImageParameter
	for _, arch := range []string{ec2facts.X8664, ec2facts.Arm64} {
		if !used[arch] {
			continue
		}
		ip := ImageParameter{Name: ImageParameterName(arch), Arch: arch}
		switch ami := strings.TrimPrefix(p.AWS.AMI, "resolve:ssm:"); {
		case ami == "" || ami == spec.DefaultAMI:
			ip.SSMPath = AmazonLinux2023Parameter(arch)
		case strings.HasPrefix(ami, "/"):
			ip.SSMPath = ami
		default:
			ip.ImageID = ami
		}
		out = append(out, ip)
	}
	return out
}

// archOf is the architecture of an instance type, x86_64 when unknown.
func archOf(instanceType string) string {
	if a, err := ec2facts.Arch(instanceType); err == nil {
		return a
	}
	return ec2facts.X8664
}

// imageRef refers to the image parameter of an instance type's architecture.
func imageRef(instanceType string) map[string]any {
	return ref(ImageParameterName(archOf(instanceType)))
}

// images declares the image parameters.
func (r *renderer) images() {
	for _, ip := range ImageParameters(r.p) {
		var users []string
		if b := r.p.Bastion; b != nil && archOf(b.InstanceType) == ip.Arch {
			users = append(users, "the bastion")
		}
		for _, lt := range r.p.LaunchTemplates {
			if archOf(lt.AWSInstanceType) == ip.Arch {
				users = append(users, "launch template "+lt.Name)
			}
		}
		prm := Parameter{Name: ip.Name, Type: "AWS::EC2::Image::Id", Default: ip.ImageID}
		if ip.ImageID != "" {
			prm.Description = fmt.Sprintf("Image (AMI id) of the %s instances (%s): aws.ami of the stack file.",
				ip.Arch, strings.Join(users, ", "))
		} else {
			prm.Description = fmt.Sprintf("Image (AMI id) of the %s instances (%s). moat deploy resolves the SSM parameter %s once, "+
				"when it creates the stack, and keeps that image until moat deploy --update-image. "+
				"With this template alone, pass the image id of your region: "+
				"aws ssm get-parameter --name %s --query Parameter.Value --output text",
				ip.Arch, strings.Join(users, ", "), ip.SSMPath, ip.SSMPath)
		}
		r.t.Parameters = append(r.t.Parameters, prm)
	}
}
