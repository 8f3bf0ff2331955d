package awscfn

import (
	"github.com/moat-dev/moat/internal/ec2facts"
)

// Image rules: an instance's image is of its instance type's architecture.

// imageArchitectures checks that every instance and launch template takes
// the image parameter of its instance type's CPU architecture (EC2 refuses
// an arm64 type with an x86_64 image, and the other way round).
func (v *validator) imageArchitectures() {
	check := func(path string, props map[string]any) {
		typ := str(props["InstanceType"])
		arch, err := ec2facts.Arch(typ)
		if typ == "" {
			return // a Ref or no type: nothing to tell
		}
		if err != nil {
			v.addf(path+".InstanceType", "%v", err)
			return
		}
		param := refTarget(props["ImageId"])
		for _, other := range []string{ec2facts.X8664, ec2facts.Arm64} {
			if other != arch && param == ImageParameterName(other) {
				v.addf(path+".ImageId", "instance type %s is %s, but its image is %s, the %s image", typ, arch, param, other)
			}
		}
	}
	for _, r := range v.ofType("AWS::EC2::Instance") {
		check(r.ID+".Properties", r.Properties)
	}
	for _, r := range v.ofType("AWS::EC2::LaunchTemplate") {
		if data, ok := r.Properties["LaunchTemplateData"].(map[string]any); ok {
			check(r.ID+".Properties.LaunchTemplateData", data)
		}
	}
}
