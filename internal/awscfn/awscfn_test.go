package awscfn

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/moat-dev/moat/internal/awscfn/awscfntest"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// stacks are the stack files with golden templates.
var stacks = []struct{ name, file string }{
	{"realtime", "../../examples/realtime/moat.yaml"},
	{"three-zones", "testdata/three-zones/moat.yaml"},
}

func loadPlan(t testing.TB, file string) *plan.Plan {
	t.Helper()
	f, err := spec.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, problems := plan.Build(f)
	if p == nil {
		t.Fatalf("%s: %v", file, problems)
	}
	return p
}

func renderFile(t testing.TB, file string, opts Options) *Template {
	t.Helper()
	tpl, err := Render(loadPlan(t, file), opts)
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

func mustJSON(t testing.TB, tpl *Template) []byte {
	t.Helper()
	b, err := tpl.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGolden renders each stack, validates it with zero findings, and
// compares it with its golden file after parsing both.
func TestGolden(t *testing.T) {
	for _, s := range stacks {
		t.Run(s.name, func(t *testing.T) {
			tpl := renderFile(t, s.file, Options{})
			if fs := Validate(tpl); len(fs) > 0 {
				t.Errorf("rendered template has %d findings:\n%s", len(fs), findings(fs))
			}
			got := normaliseGolden(t, mustJSON(t, tpl))
			path := filepath.Join("testdata", s.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/awscfn -run TestGolden -update)", err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(want, &w); err != nil {
				t.Fatalf("golden file is not JSON: %v", err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s differs from the rendered template; if intended, run go test ./internal/awscfn -run TestGolden -update\n%s", path, firstDiff(g, w, ""))
			}
			// The parsed golden file validates too.
			parsed, err := ParseJSON(want)
			if err != nil {
				t.Fatal(err)
			}
			if fs := Validate(parsed); len(fs) > 0 {
				t.Errorf("golden template has findings:\n%s", findings(fs))
			}
		})
	}
}

// normaliseGolden is a rendered template in the golden files' form
// (awscfntest.GoldenForm) without the final newline. TestInlineBundleRoundTrip
// checks the bundle itself.
func normaliseGolden(t *testing.T, b []byte) []byte {
	t.Helper()
	out, err := awscfntest.GoldenForm(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(out, []byte("\n"))
}

// firstDiff describes the first difference between two decoded JSON values.
func firstDiff(g, w any, path string) string {
	switch gv := g.(type) {
	case map[string]any:
		wv, ok := w.(map[string]any)
		if !ok {
			return path + ": type differs"
		}
		for _, k := range sortedKeys(gv) {
			if _, ok := wv[k]; !ok {
				return join2(path, k) + ": only in the rendered template"
			}
			if d := firstDiff(gv[k], wv[k], join2(path, k)); d != "" {
				return d
			}
		}
		for _, k := range sortedKeys(wv) {
			if _, ok := gv[k]; !ok {
				return join2(path, k) + ": only in the golden file"
			}
		}
	case []any:
		wv, ok := w.([]any)
		if !ok || len(wv) != len(gv) {
			return path + ": list differs"
		}
		for i := range gv {
			if d := firstDiff(gv[i], wv[i], path+"["+itoa(i)+"]"); d != "" {
				return d
			}
		}
	default:
		if !reflect.DeepEqual(g, w) {
			b1, _ := json.Marshal(g)
			b2, _ := json.Marshal(w)
			return path + ": got " + string(b1) + ", golden " + string(b2)
		}
	}
	return ""
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func findings(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("  " + f.String() + "\n")
	}
	return b.String()
}

// TestYAMLMatchesJSON checks the YAML rendering decodes to the same
// document as the JSON one.
func TestYAMLMatchesJSON(t *testing.T) {
	for _, s := range stacks {
		tpl := renderFile(t, s.file, Options{})
		y, err := tpl.YAML()
		if err != nil {
			t.Fatal(err)
		}
		var fromYAML, fromJSON any
		if err := yaml.Unmarshal(y, &fromYAML); err != nil {
			t.Fatalf("%s: YAML does not parse: %v", s.name, err)
		}
		if err := json.Unmarshal(mustJSON(t, tpl), &fromJSON); err != nil {
			t.Fatal(err)
		}
		// Round-trip the YAML value through JSON so numbers compare alike.
		b, err := json.Marshal(fromYAML)
		if err != nil {
			t.Fatal(err)
		}
		var norm any
		json.Unmarshal(b, &norm)
		if !reflect.DeepEqual(norm, fromJSON) {
			t.Errorf("%s: YAML and JSON differ: %s", s.name, firstDiff(norm, fromJSON, ""))
		}
		if !bytes.Contains(y, []byte("UserData:\n          Fn::Base64:\n            Fn::Sub: |")) {
			t.Errorf("%s: user data is not a literal block in YAML", s.name)
		}
	}
}

// TestDeterministic renders twice and gets the same bytes.
func TestDeterministic(t *testing.T) {
	for _, s := range stacks {
		a, b := mustJSON(t, renderFile(t, s.file, Options{})), mustJSON(t, renderFile(t, s.file, Options{}))
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two renders differ", s.name)
		}
	}
}

// TestSchemasCoverEmittedTypes: every type the renderer can emit has a
// vendored schema (the validator would report it otherwise, but this
// names the fix).
func TestSchemasCoverEmittedTypes(t *testing.T) {
	have := SchemaTypes()
	for _, s := range stacks {
		for _, opts := range []Options{{}, {AssetBucket: "b", AssetKey: "k"}} {
			for _, r := range renderFile(t, s.file, opts).Resources {
				if !slices.Contains(have, r.Type) {
					t.Errorf("%s: no vendored schema for %s: add it to schemas/refresh.py and run go generate ./internal/awscfn", r.ID, r.Type)
				}
			}
		}
	}
}

// TestAssetMode ships the app through S3: parameters, an instance profile
// that may read exactly that object, and user data that fetches it.
func TestAssetMode(t *testing.T) {
	tpl := renderFile(t, stacks[0].file, Options{AssetBucket: "my-bucket", AssetKey: "apps/realtime.tar.gz"})
	if fs := Validate(tpl); len(fs) > 0 {
		t.Fatalf("findings:\n%s", findings(fs))
	}
	if len(tpl.Assets) != 1 {
		t.Fatalf("assets = %+v, want one", tpl.Assets)
	}
	a := tpl.Assets[0]
	if a.Name != "app" || !strings.HasSuffix(a.Dir, "examples/realtime/app") || a.ParamBucket != "AppAssetBucket" || a.ParamKey != "AppAssetKey" {
		t.Errorf("asset = %+v", a)
	}
	params := map[string]Parameter{}
	for _, p := range tpl.Parameters {
		params[p.Name] = p
	}
	if params["AppAssetBucket"].Default != "my-bucket" || params["AppAssetKey"].Default != "apps/realtime.tar.gz" {
		t.Errorf("asset parameters = %+v", params)
	}
	j := string(mustJSON(t, tpl))
	for _, want := range []string{
		`"Fn::Sub": "arn:${AWS::Partition}:s3:::${AppAssetBucket}/${AppAssetKey}"`,
		`aws s3 cp --region ${AWS::Region} s3://${AppAssetBucket}/${AppAssetKey} /tmp/moat-app.tar.gz`,
		`"AWS::IAM::InstanceProfile"`,
		`"Fn::GetAtt": [`,
		`echo \"booted $(date -u +%FT%TZ)\"`,
	} {
		if !strings.Contains(j, want) && !strings.Contains(strings.ReplaceAll(j, "\n", ""), want) {
			t.Errorf("asset-mode template lacks %s", want)
		}
	}
	// Shell ${...} is escaped for Fn::Sub.
	if strings.Contains(j, "${AWS::StackName}-app.env") {
		t.Error("unexpected substitution")
	}
	// With a NAT gateway, instances reach S3 through it: no endpoint.
	for _, r := range tpl.Resources {
		if r.Type == "AWS::EC2::VPCEndpoint" {
			t.Errorf("unexpected S3 endpoint %s with NAT", r.ID)
		}
	}
	// Without NAT, private subnets get an S3 gateway endpoint.
	p := loadPlan(t, stacks[0].file)
	p.NATGateways = nil
	for i := range p.RouteTables {
		p.RouteTables[i].Routes = slices.DeleteFunc(p.RouteTables[i].Routes, func(r plan.Route) bool { return r.Target == plan.TargetNAT })
	}
	noNAT, err := Render(p, Options{AssetBucket: "my-bucket"})
	if err != nil {
		t.Fatal(err)
	}
	if fs := Validate(noNAT); len(fs) > 0 {
		t.Fatalf("findings:\n%s", findings(fs))
	}
	ep := find(t, noNAT, "S3GatewayEndpoint")
	if got := len(list(ep.Properties["RouteTableIds"])); got != 2 {
		t.Errorf("S3 endpoint in %d route tables, want the 2 private ones", got)
	}
	// Issue 12, defect 12: the instances fetch the bundle through the
	// endpoint, so the group waits for it; and the AWS CLI on an instance
	// has no region configured, so the copy names it (S3 would otherwise
	// answer through us-east-1, outside the endpoint).
	if deps := find(t, noNAT, "AutoScalingGroupWeb").DependsOn; !slices.Contains(deps, "S3GatewayEndpoint") {
		t.Errorf("the group does not wait for the S3 endpoint: DependsOn %v", deps)
	}
	if j := string(mustJSON(t, noNAT)); !strings.Contains(j, "aws s3 cp --region ${AWS::Region} s3://${AppAssetBucket}/${AppAssetKey} /tmp/moat-app.tar.gz") {
		t.Error("the bundle is copied without --region ${AWS::Region}")
	}
	// Without the option the bundle is inline and no role exists.
	inline := renderFile(t, stacks[0].file, Options{})
	for _, r := range inline.Resources {
		if r.Type == "AWS::IAM::Role" {
			t.Errorf("inline template has a role %s", r.ID)
		}
	}
	if len(inline.Assets) != 0 {
		t.Errorf("inline template has assets %+v", inline.Assets)
	}
}

// TestLargeAppShipsAsAsset: an app over the user data limit ships through
// S3 even without the option; the bucket parameter defaults to the file's
// aws.assetBucket, and has no default (moat deploy supplies it) without one.
func TestLargeAppShipsAsAsset(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32()) // incompressible
	}
	if err := os.WriteFile(filepath.Join(dir, "blob.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bucket := range []string{"", "bucket-from-file"} {
		p := loadPlan(t, stacks[0].file)
		p.LaunchTemplates[0].FilesDir = dir
		p.AWS.AssetBucket = bucket
		tpl, err := Render(p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(tpl.Assets) != 1 || tpl.Assets[0].Dir != dir {
			t.Fatalf("assets = %+v", tpl.Assets)
		}
		for _, prm := range tpl.Parameters {
			if prm.Name == tpl.Assets[0].ParamBucket && prm.Default != bucket {
				t.Errorf("bucket parameter default = %q, want %q", prm.Default, bucket)
			}
		}
		if fs := Validate(tpl); len(fs) > 0 {
			t.Fatalf("findings:\n%s", findings(fs))
		}
	}
}

// TestInlineUserDataFits: the example's inline user data is under EC2's
// limit and carries the bundle, the user data and the service.
func TestInlineUserDataFits(t *testing.T) {
	tpl := renderFile(t, stacks[0].file, Options{})
	for _, r := range tpl.Resources {
		if r.Type != "AWS::EC2::LaunchTemplate" {
			continue
		}
		ud := userDataScript(t, tpl, r.ID)
		if len(ud) > MaxUserData {
			t.Errorf("user data is %d bytes, over %d", len(ud), MaxUserData)
		}
		t.Logf("inline user data: %d bytes of %d", len(ud), MaxUserData)
		for _, want := range []string{"#!/bin/bash", "MOAT_BUNDLE", "tar -xzf", "/etc/moat/user-data", "ExecStart=/bin/sh -c 'exec python3 app.py'", "PORT=8000", "systemctl enable --now moat-app.service"} {
			if !strings.Contains(ud, want) {
				t.Errorf("user data lacks %q", want)
			}
		}
	}
}

// TestInlineBundleRoundTrip: the bundle inlined in user data unpacks to
// exactly the app's files.
func TestInlineBundleRoundTrip(t *testing.T) {
	p := loadPlan(t, stacks[0].file)
	tpl, err := Render(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ud := userDataScript(t, tpl, "LaunchTemplateApp")
	m := regexp.MustCompile(`(?s)<<'MOAT_BUNDLE'\n(.*?)\nMOAT_BUNDLE\n`).FindStringSubmatch(ud)
	if m == nil {
		t.Fatal("no inline bundle")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(m[1], "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.ModTime.Unix() > 0 || h.Uid != 0 || h.Uname != "" {
			t.Errorf("%s: header carries time or owner: %v %d %q", h.Name, h.ModTime, h.Uid, h.Uname)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
	dir := p.LaunchTemplates[0].FilesDir
	want, err := os.ReadFile(filepath.Join(dir, "app.py"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(files["app.py"], want) {
		t.Errorf("app.py in the bundle (%d bytes) differs from %s (%d bytes)", len(files["app.py"]), dir, len(want))
	}
}

// TestBundleDeterministic: the bundle does not depend on timestamps.
func TestBundleDeterministic(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.py"), []byte("print(1)\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o700)
	os.WriteFile(filepath.Join(dir, "sub", "run.sh"), []byte("#!/bin/sh\n"), 0o700)
	a, err := Bundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(dir, "a.py"), time.Unix(1, 0), time.Unix(1, 0))
	b, _ := Bundle(dir)
	if !bytes.Equal(a, b) {
		t.Error("bundle depends on modification times")
	}
}

// TestCfnLint runs AWS's own linter, cfn-lint, on the golden templates when
// it is installed: a second, independent check with the same schemas plus
// its semantic rules. W3010 (hard-coded zones) is moat's choice: the file
// names its zones.
func TestCfnLint(t *testing.T) {
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("cfn-lint is not installed (CI=true): scripts/deps.sh test says how to install it (python3 -m pip install 'cfn-lint>=1.51')")
		}
		t.Skip("cfn-lint is not installed (python3 -m pip install 'cfn-lint>=1.51'); the Go validator still ran")
	}
	dir := t.TempDir()
	var all []string
	for _, s := range stacks {
		paths := []string{filepath.Join("testdata", s.name+".golden.json")}
		// The YAML rendering, and the asset mode, too.
		for i, opts := range []Options{{}, {AssetBucket: "my-bucket"}} {
			y, err := renderFile(t, s.file, opts).YAML()
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, fmt.Sprintf("%s-%d.yaml", s.name, i))
			if err := os.WriteFile(p, y, 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
		all = append(all, paths...)
	}
	tpl, err := Render(featurePlan(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	features := filepath.Join(dir, "features.json")
	if err := os.WriteFile(features, mustJSON(t, tpl), 0o644); err != nil {
		t.Fatal(err)
	}
	all = append(all, features)
	// Graviton instances in a VPC without NAT, the app through S3: the arm64
	// image, the S3 endpoint and a group that rolls without signals.
	p := loadPlan(t, stacks[0].file)
	p.LaunchTemplates[0].AWSInstanceType = "t4g.small"
	p.NATGateways = nil
	for i := range p.RouteTables {
		p.RouteTables[i].Routes = slices.DeleteFunc(p.RouteTables[i].Routes, func(r plan.Route) bool { return r.Target == plan.TargetNAT })
	}
	if tpl, err = Render(p, Options{AssetBucket: "my-bucket"}); err != nil {
		t.Fatal(err)
	}
	noNAT := filepath.Join(dir, "arm64-no-nat.json")
	if err := os.WriteFile(noNAT, mustJSON(t, tpl), 0o644); err != nil {
		t.Fatal(err)
	}
	all = append(all, noNAT)
	out, err := exec.Command(bin, append([]string{"--ignore-checks", "W3010", "--"}, all...)...).CombinedOutput()
	if err != nil {
		t.Errorf("cfn-lint %v: %v\n%s", all, err, out)
	}
}

func BenchmarkRender(b *testing.B) {
	p := loadPlan(b, stacks[1].file)
	for b.Loop() {
		if _, err := Render(p, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	tpl := renderFile(b, stacks[1].file, Options{})
	Validate(tpl) // load the schemas once
	for b.Loop() {
		if fs := Validate(tpl); len(fs) > 0 {
			b.Fatal(fs)
		}
	}
}

// changedResources renders two plans and lists the logical ids whose
// rendering differs (what a change set would modify, add or remove).
func changedResources(t *testing.T, a, b *plan.Plan) []string {
	t.Helper()
	ra, err := Render(a, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Render(b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	doc := func(tpl *Template) map[string]any {
		var m map[string]any
		if err := json.Unmarshal(mustJSON(t, tpl), &m); err != nil {
			t.Fatal(err)
		}
		return m["Resources"].(map[string]any)
	}
	da, db := doc(ra), doc(rb)
	var out []string
	for id, v := range da {
		if !reflect.DeepEqual(v, db[id]) {
			out = append(out, id)
		}
	}
	for id := range db {
		if _, ok := da[id]; !ok {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// TestOneChangeOneResource: the edits users make most touch one resource,
// so a change set stays small and reviewable.
func TestOneChangeOneResource(t *testing.T) {
	base := loadPlan(t, stacks[0].file)
	for _, c := range []struct {
		name string
		edit func(p *plan.Plan)
		want []string
	}{
		{"desired capacity", func(p *plan.Plan) { p.AutoScalingGroups[0].DesiredCapacity = 3 }, []string{"AutoScalingGroupWeb"}},
		{"max size", func(p *plan.Plan) { p.AutoScalingGroups[0].MaxSize = 8 }, []string{"AutoScalingGroupWeb"}},
		{"app environment", func(p *plan.Plan) { p.LaunchTemplates[0].Environment = map[string]string{"PORT": "8000", "MODE": "x"} }, []string{"LaunchTemplateApp"}},
		// The instances check the same path before they report ready.
		{"health check path", func(p *plan.Plan) { p.TargetGroups[0].HealthCheck.Path = "/ready" }, []string{"LaunchTemplateApp", "TargetGroupWeb"}},
		{"scaling target", func(p *plan.Plan) { p.AutoScalingGroups[0].ScalingPolicies[0].TargetValue = 500 }, []string{"AutoScalingGroupWebPolicyRequestsPerTarget"}},
	} {
		p := loadPlan(t, stacks[0].file)
		c.edit(p)
		if got := changedResources(t, base, p); !slices.Equal(got, c.want) {
			t.Errorf("%s: changed %v, want %v", c.name, got, c.want)
		}
	}
}
