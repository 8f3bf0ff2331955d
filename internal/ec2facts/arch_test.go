package ec2facts

import "testing"

func TestArch(t *testing.T) {
	for _, tc := range []struct{ typ, want string }{
		{"t3.micro", X8664},
		{"t3a.nano", X8664},
		{"t2.micro", X8664},
		{"m5.large", X8664},
		{"m5dn.xlarge", X8664},
		{"m5zn.large", X8664},
		{"c5.xlarge", X8664},
		{"c7i-flex.large", X8664},
		{"m7i-flex.2xlarge", X8664},
		{"r7iz.large", X8664},
		{"g4dn.xlarge", X8664}, // the g series (GPU) is not Graviton
		{"g5.xlarge", X8664},
		{"p5e.48xlarge", X8664},
		{"u-6tb1.metal", ""}, // not of the family.size form this package reads
		{"t4g.micro", Arm64},
		{"t4g.small", Arm64},
		{"m6g.medium", Arm64},
		{"m6gd.large", Arm64},
		{"m7g.large", Arm64},
		{"m8g.xlarge", Arm64},
		{"c6gn.large", Arm64},
		{"c7gd.medium", Arm64},
		{"r6gd.large", Arm64},
		{"x2gd.medium", Arm64},
		{"im4gn.large", Arm64},
		{"is4gen.medium", Arm64},
		{"i4g.large", Arm64},
		{"g5g.xlarge", Arm64},
		{"hpc7g.4xlarge", Arm64},
		{"a1.medium", Arm64},
		{"a1.metal", Arm64},
		{"t3", ""},
		{"", ""},
		{"T3.micro", ""},
		{"t3.", ""},
		{"micro", ""},
	} {
		got, err := Arch(tc.typ)
		if tc.want == "" {
			if err == nil {
				t.Errorf("Arch(%q) = %q, want an error", tc.typ, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Arch(%q) = %q, %v; want %q", tc.typ, got, err, tc.want)
		}
	}
}
