package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/moat-dev/moat/internal/awscost"
)

func TestTemplateYAMLAndJSON(t *testing.T) {
	stdout, stderr, code := run(t, "template", "-f", exampleFile)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var y map[string]any
	if err := yaml.Unmarshal([]byte(stdout), &y); err != nil {
		t.Fatalf("default output is not YAML: %v", err)
	}
	if !strings.HasPrefix(stdout, "AWSTemplateFormatVersion: \"2010-09-09\"\n") {
		t.Errorf("YAML starts %q", stdout[:min(60, len(stdout))])
	}
	jout, stderr, code := run(t, "template", "-f", exampleFile, "-o", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var j map[string]any
	if err := json.Unmarshal([]byte(jout), &j); err != nil {
		t.Fatalf("-o json is not JSON: %v", err)
	}
	res := j["Resources"].(map[string]any)
	for _, id := range []string{"VPC", "SubnetPrivateB", "NatAGateway", "SecurityGroupAppIngressFromLbTcp8000", "KeyPairOps",
		"BastionInstance", "LaunchTemplateApp", "AutoScalingGroupWeb", "LoadBalancerWeb", "LoadBalancerWebListener80",
		"TargetGroupWeb", "AutoScalingGroupWebPolicyRequestsPerTarget"} {
		if _, ok := res[id]; !ok {
			t.Errorf("template lacks %s", id)
		}
	}
	if len(res) != len(y["Resources"].(map[string]any)) {
		t.Errorf("YAML and JSON have different resources")
	}
}

func TestTemplateValidate(t *testing.T) {
	for _, args := range [][]string{
		{"template", "--validate", "-f", exampleFile},
		{"template", "validate", "-f", exampleFile},
		{"template", "validate", "-f", "../../internal/awscfn/testdata/three-zones/moat.yaml"},
	} {
		stdout, stderr, code := run(t, args...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s%s", args, code, stdout, stderr)
		}
		if stdout != "" || !strings.Contains(stderr, "template valid offline") {
			t.Errorf("%v: stdout %q stderr %q", args, stdout, stderr)
		}
	}
}

// TestTemplateValidateFindings breaks a rendered template by hand and
// checks the real binary prints the finding and exits 1.
func TestTemplateValidateFindings(t *testing.T) {
	jout, stderr, code := run(t, "template", "-f", exampleFile, "-o", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	broken := strings.Replace(jout, `"CidrBlock": "10.0.129.0/24"`, `"CidrBlock": "10.9.129.0/24"`, 1)
	broken = strings.Replace(broken, `"HealthCheckPath": "/health"`, `"HealthCheckPaht": "/health"`, 1)
	path := filepath.Join(t.TempDir(), "broken.json")
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runBin(t, "template", "validate", "--template", path)
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"SubnetPrivateB.Properties.CidrBlock: subnet 10.9.129.0/24 is not inside VPC VPC's 10.0.0.0/16",
		"TargetGroupWeb.Properties.HealthCheckPaht: unknown property (did you mean HealthCheckPath?)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("findings lack %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "the template has 2 finding(s)") {
		t.Errorf("stderr: %s", stderr)
	}
	jf, _, code := runBin(t, "template", "validate", "--template", path, "-o", "json")
	var fs []map[string]string
	if err := json.Unmarshal([]byte(jf), &fs); err != nil || code != 1 || len(fs) != 2 {
		t.Errorf("-o json: exit %d, %d findings, %v: %s", code, len(fs), err, jf)
	}
}

func TestTemplateUsageErrors(t *testing.T) {
	if _, _, code := run(t, "template", "-f", exampleFile, "-o", "xml"); code != exitUsage {
		t.Errorf("-o xml: exit %d, want %d", code, exitUsage)
	}
	if _, _, code := run(t, "template", "-f", "/nonexistent/moat.yaml"); code != exitInvalid {
		t.Errorf("missing file: exit %d, want %d", code, exitInvalid)
	}
}

func TestTemplateAssetBucket(t *testing.T) {
	stdout, stderr, code := run(t, "template", "-f", exampleFile, "-o", "json", "--asset-bucket", "my-bucket")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{`"AppAssetBucket"`, `"Default": "my-bucket"`, `"AWS::IAM::InstanceProfile"`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("template lacks %s", want)
		}
	}
}

// Without --asset-bucket, the file's aws.assetBucket applies, so moat
// template shows what moat deploy sends.
func TestTemplateAssetBucketFromFile(t *testing.T) {
	src, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(src), "\naws:\n", "\naws:\n  assetBucket: file-bucket\n", 1)
	if text == string(src) {
		t.Fatal("could not add aws.assetBucket")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "moat.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "app"), os.DirFS(filepath.Join(filepath.Dir(exampleFile), "app"))); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, "template", "-f", path, "-o", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, `"Default": "file-bucket"`) {
		t.Error("template ignores the file's aws.assetBucket")
	}
	stdout, _, _ = run(t, "template", "-f", path, "-o", "json", "--asset-bucket", "flag-bucket")
	if !strings.Contains(stdout, `"Default": "flag-bucket"`) {
		t.Error("--asset-bucket does not override aws.assetBucket")
	}
}

// TestTemplateCost: moat template --cost prints the stack's monthly cost
// line by line, with the price table's date; -o json gives the same.
func TestTemplateCost(t *testing.T) {
	stdout, stderr, code := run(t, "template", "--cost", "-f", exampleFile)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"EC2 t3.micro (bastion)", "EC2 t3.micro (group web)", "NAT gateway", "application load balancer",
		"public IPv4 address", "~$87/month in us-east-1 (prices of " + awscost.PricesOf + ", on-demand, 730 h; excludes data transfer"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--cost output lacks %q:\n%s", want, stdout)
		}
	}
	jout, stderr, code := run(t, "template", "--cost", "-o", "json", "-f", exampleFile)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var e awscost.Estimate
	if err := json.Unmarshal([]byte(jout), &e); err != nil || len(e.Lines) != 5 || e.Monthly < 86 || e.Monthly > 87 {
		t.Errorf("-o json: %v %+v", err, e)
	}
}
