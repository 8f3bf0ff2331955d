package awsdeploy_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/awscfn"
	"github.com/moat-dev/moat/internal/awsdeploy"
)

func TestCheckZones(t *testing.T) {
	tokyo := []string{"ap-northeast-1d", "ap-northeast-1a", "ap-northeast-1c"}
	for _, tc := range []struct {
		want []string
		err  string
	}{
		{want: []string{"ap-northeast-1a", "ap-northeast-1c"}},
		{want: []string{"ap-northeast-1a", "ap-northeast-1b"}, err: "zone ap-northeast-1b is not available to this account in ap-northeast-1: it has ap-northeast-1a, ap-northeast-1c, ap-northeast-1d; set vpc.zones in the stack file to letters among [a c d]"},
		{want: []string{"ap-northeast-1b", "ap-northeast-1b", "ap-northeast-1e"}, err: "zone ap-northeast-1b, ap-northeast-1e is not available"},
	} {
		err := awsdeploy.CheckZones("ap-northeast-1", tc.want, tokyo)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%v: %v", tc.want, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: %v, want %q", tc.want, err, tc.err)
		}
		var ze *awsdeploy.ZoneError
		if tc.err != "" && !errors.As(err, &ze) {
			t.Errorf("%v: not a ZoneError", tc.want)
		}
	}
}

func TestCheckCertificateARN(t *testing.T) {
	c := awsdeploy.CertificateParam{Parameter: "LoadBalancerWebListener443CertificateArn", Listener: "LoadBalancerWebListener443 (port 443)"}
	for _, tc := range []struct{ value, err string }{
		{"arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c", ""},
		{"", "HTTPS listener LoadBalancerWebListener443 (port 443) has no certificate: pass --parameter LoadBalancerWebListener443CertificateArn=arn:aws:acm:us-east-1:ACCOUNT:certificate/ID, or set certificate.arn"},
		{"x", "is not an ACM certificate ARN"},
		{"arn:aws:iam::123456789012:server-certificate/x", "is not an ACM certificate ARN"},
		{"arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c", "is in eu-west-1, but a load balancer in us-east-1 needs a certificate from ACM in us-east-1"},
	} {
		err := awsdeploy.CheckCertificateARN(c, tc.value, "us-east-1")
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.value, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: %v, want %q", tc.value, err, tc.err)
		}
	}
}

func TestCertificateParams(t *testing.T) {
	tmpl := &awscfn.Template{
		Parameters: []awscfn.Parameter{{Name: "L443CertificateArn", Default: "arn:aws:acm:us-east-1:1:certificate/a"}, {Name: "L8443CertificateArn"}},
		Resources: []awscfn.Resource{
			{ID: "L80", Type: "AWS::ElasticLoadBalancingV2::Listener", Properties: map[string]any{"Port": 80}},
			{ID: "L443", Type: "AWS::ElasticLoadBalancingV2::Listener", Properties: map[string]any{"Port": 443,
				"Certificates": []any{map[string]any{"CertificateArn": map[string]any{"Ref": "L443CertificateArn"}}}}},
			{ID: "L8443", Type: "AWS::ElasticLoadBalancingV2::Listener", Properties: map[string]any{"Port": 8443,
				"Certificates": []any{map[string]any{"CertificateArn": map[string]any{"Ref": "L8443CertificateArn"}}}}},
			{ID: "Fixed", Type: "AWS::ElasticLoadBalancingV2::Listener", Properties: map[string]any{"Port": 9443,
				"Certificates": []any{map[string]any{"CertificateArn": "arn:aws:acm:us-east-1:1:certificate/b"}}}},
		},
	}
	got := awsdeploy.CertificateParams(tmpl)
	want := []awsdeploy.CertificateParam{
		{Parameter: "L443CertificateArn", Listener: "L443 (port 443)", Default: "arn:aws:acm:us-east-1:1:certificate/a"},
		{Parameter: "L8443CertificateArn", Listener: "L8443 (port 8443)"},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestKeepImage(t *testing.T) {
	const al = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
	latest := awscfn.ImageParameter{Name: "ImageIdX8664", Arch: "x86_64", SSMPath: al}
	fixed := awscfn.ImageParameter{Name: "ImageIdX8664", Arch: "x86_64", ImageID: "ami-0123456789abcdef0"}
	deployed := map[string]string{"ImageIdX8664": "ami-0aaaaaaaaaaaaaaaa"}
	desc := "Image (AMI id) of the x86_64 instances. moat deploy resolves the SSM parameter " + al + " once, when it creates the stack"
	for _, tc := range []struct {
		name     string
		ip       awscfn.ImageParameter
		previous map[string]string
		desc     string
		update   bool
		keep     bool
	}{
		{"create resolves", latest, nil, "", false, false},
		{"update keeps", latest, deployed, desc, false, true},
		{"--update-image resolves", latest, deployed, desc, true, false},
		{"a new architecture resolves", latest, map[string]string{"ImageIdArm64": "ami-1"}, "", false, false},
		{"a fixed image is passed as given", fixed, deployed, desc, false, false},
		{"another SSM path resolves", awscfn.ImageParameter{Name: "ImageIdX8664", Arch: "x86_64", SSMPath: "/my/images/app"}, deployed, desc, false, false},
		{"a longer path is another path", awscfn.ImageParameter{Name: "ImageIdX8664", Arch: "x86_64", SSMPath: "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default"}, deployed, desc, false, false},
		{"a stack from before the image parameters resolves", latest, deployed, "", false, false},
	} {
		if got := awsdeploy.KeepImage(tc.ip, tc.previous, tc.desc, tc.update); got != tc.keep {
			t.Errorf("%s: keep %v, want %v", tc.name, got, tc.keep)
		}
	}
}
