package ec2facts

import (
	"fmt"
	"regexp"
	"strings"
)

// CPU architectures, as EC2 and the Amazon Linux image parameters name them.
const (
	X8664 = "x86_64"
	Arm64 = "arm64"
)

// instanceFamily splits a family such as "m7gd" or "im4gn" into its series
// letters ("m", "im"), generation ("7", "4") and attribute letters ("gd",
// "gn"), as EC2's naming convention reads it
// (https://docs.aws.amazon.com/ec2/latest/instancetypes/instance-type-names.html).
var instanceFamily = regexp.MustCompile(`^([a-z]+)([0-9]+)([a-z-]*)$`)

var instanceSize = regexp.MustCompile(`^[a-z0-9-]+$`)

// Arch is the CPU architecture of an EC2 instance type: arm64 for the AWS
// Graviton types, whose family carries the attribute letter g after the
// generation (t4g, m7g, c6gn, r6gd, im4gn, x2gd, g5g, hpc7g) and for a1;
// x86_64 for every other type. It fails on a name that is not of EC2's form
// family.size.
func Arch(instanceType string) (string, error) {
	family, size, ok := strings.Cut(instanceType, ".")
	m := instanceFamily.FindStringSubmatch(family)
	if !ok || m == nil || !instanceSize.MatchString(size) {
		return "", fmt.Errorf("instance type %q is not of EC2's form family.size, e.g. t3.micro or t4g.small", instanceType)
	}
	series, attrs := m[1], m[3]
	attrs, _, _ = strings.Cut(attrs, "-") // c7i-flex: the suffix is not an attribute
	if strings.Contains(attrs, "g") || series == "a" {
		return Arm64, nil
	}
	return X8664, nil
}
