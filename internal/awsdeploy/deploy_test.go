package awsdeploy_test

// These tests drive the real aws-sdk-go-v2 clients against cfnstandin, a
// LOCAL STAND-IN for the CloudFormation, S3 and STS APIs on loopback. They
// prove moat's side of the conversation (the calls, their order, how
// responses are read); they do not prove what AWS itself would do.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/moat-dev/moat/internal/awscfn"
	"github.com/moat-dev/moat/internal/awsdeploy"
	"github.com/moat-dev/moat/internal/awsdeploy/cfnstandin"
	"github.com/moat-dev/moat/internal/testutil"
)

// testTemplate is a small template shaped like moat's: a VPC, a subnet, an
// instance role (so IAM capabilities are needed), an auto scaling group
// with a desired capacity, a load balancer, and outputs.
func testTemplate(desired int, extra string) []byte {
	return fmt.Appendf(nil, `{
  "AWSTemplateFormatVersion": "2010-09-09",
  "Parameters": {"ImageId": {"Type": "String", "Default": "ami-standin"}},
  "Resources": {
    "VPC": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
    "PrivateSubnetA": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "VPC"}, "CidrBlock": "10.0.128.0/24"}},
    "InstanceRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
    "LoadBalancer": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {"Subnets": [{"Ref": "PrivateSubnetA"}]}},
    "WebAutoScalingGroup": {"Type": "AWS::AutoScaling::AutoScalingGroup", "Properties": {"MinSize": "1", "MaxSize": "6", "DesiredCapacity": "%d", "VPCZoneIdentifier": [{"Ref": "PrivateSubnetA"}]}},
    "WebScalingPolicy": {"Type": "AWS::AutoScaling::ScalingPolicy", "Properties": {"AutoScalingGroupName": {"Ref": "WebAutoScalingGroup"}}}%s
  },
  "Outputs": {
    "LoadBalancerDNSWeb": {"Description": "load balancer DNS name", "Value": {"Fn::GetAtt": ["LoadBalancer", "DNSName"]}},
    "URLWeb": {"Value": {"Fn::Sub": "http://${LoadBalancer.DNSName}/"}}
  }
}`, desired, extra)
}

// standin starts the stand-in and points a fake AWS environment at it.
func standin(t *testing.T) *cfnstandin.Server {
	t.Helper()
	s := cfnstandin.New()
	t.Cleanup(s.Close)
	testutil.FakeAWS(t, s.URL)
	return s
}

func deployer(t *testing.T, s *cfnstandin.Server, out *bytes.Buffer) *awsdeploy.Deployer {
	t.Helper()
	c, err := awsdeploy.Connect(context.Background(), awsdeploy.ClientOptions{EndpointURL: s.URL})
	if err != nil {
		t.Fatal(err)
	}
	return &awsdeploy.Deployer{
		CloudFormation: c.CloudFormation, S3: c.S3, STS: c.STS, Region: c.Region,
		Out: out, Poll: time.Millisecond,
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestCreateUpdateNoChangesDestroy(t *testing.T) {
	s := standin(t)
	var out bytes.Buffer
	d := deployer(t, s, &out)

	// Create.
	res, err := d.Deploy(ctx(t), awsdeploy.Spec{StackName: "realtime", Template: testTemplate(2, "")})
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out.String())
	}
	if res.Action != "CREATE" || res.Status != "CREATE_COMPLETE" {
		t.Fatalf("create: action %s status %s", res.Action, res.Status)
	}
	if len(res.Changes) != 6 {
		t.Errorf("create change set has %d changes, want 6: %+v", len(res.Changes), res.Changes)
	}
	for _, c := range res.Changes {
		if c.Action != "Add" {
			t.Errorf("create change %s: action %s, want Add", c.LogicalID, c.Action)
		}
	}
	want := []awsdeploy.Output{
		{Key: "LoadBalancerDNSWeb", Value: "loadbalancer.dnsname.standin.invalid", Description: "load balancer DNS name"},
		{Key: "URLWeb", Value: "http://loadbalancer.dnsname.standin.invalid/"},
	}
	if !slices.Equal(res.Outputs, want) {
		t.Errorf("outputs = %+v, want %+v", res.Outputs, want)
	}
	completes := 0
	for _, e := range res.Events {
		if e.Status == "CREATE_COMPLETE" && e.LogicalID != "realtime" {
			completes++
		}
	}
	if completes != 6 {
		t.Errorf("saw %d resource CREATE_COMPLETE events, want 6", completes)
	}
	if got := s.StackStatus("realtime"); got != "CREATE_COMPLETE" {
		t.Errorf("stand-in stack status %s", got)
	}
	for _, want := range []string{"change set for stack realtime (CREATE): 6 to add", "Add     WebAutoScalingGroup", "WebAutoScalingGroup", "CREATE_COMPLETE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if keys := s.AccessKeys(); !slices.Equal(keys, []string{testutil.FakeAWSAccessKey}) {
		t.Errorf("requests signed with %v", keys)
	}

	// Update: only the desired capacity changes.
	out.Reset()
	res, err = d.Deploy(ctx(t), awsdeploy.Spec{StackName: "realtime", Template: testTemplate(3, "")})
	if err != nil {
		t.Fatalf("update: %v\n%s", err, out.String())
	}
	wantChanges := []awsdeploy.Change{{Action: "Modify", LogicalID: "WebAutoScalingGroup", PhysicalID: res.Changes[0].PhysicalID, Type: "AWS::AutoScaling::AutoScalingGroup", Replacement: "False"}}
	if res.Action != "UPDATE" || !slices.Equal(res.Changes, wantChanges) {
		t.Fatalf("update: action %s changes %+v, want exactly %+v", res.Action, res.Changes, wantChanges)
	}
	if res.Changes[0].PhysicalID == "" {
		t.Error("modified resource has no physical id")
	}
	if res.Status != "UPDATE_COMPLETE" {
		t.Errorf("update status %s", res.Status)
	}
	if got := s.ResourceProperty("realtime", "WebAutoScalingGroup", "DesiredCapacity"); got != `"3"` {
		t.Errorf("deployed DesiredCapacity = %s, want \"3\"", got)
	}
	if !strings.Contains(out.String(), "1 to modify") {
		t.Errorf("update summary missing:\n%s", out.String())
	}
	for _, e := range res.Events {
		if e.LogicalID != "realtime" && e.LogicalID != "WebAutoScalingGroup" {
			t.Errorf("update touched %s: %s", e.LogicalID, e.Status)
		}
	}

	// The same template again: no changes, not an error.
	out.Reset()
	res, err = d.Deploy(ctx(t), awsdeploy.Spec{StackName: "realtime", Template: testTemplate(3, "")})
	if err != nil {
		t.Fatalf("redeploy: %v", err)
	}
	if !res.NoChanges || len(res.Outputs) != 2 {
		t.Errorf("redeploy: NoChanges=%v outputs=%v", res.NoChanges, res.Outputs)
	}
	if !strings.Contains(out.String(), "no changes") {
		t.Errorf("redeploy output: %s", out.String())
	}

	// Outputs.
	outs, err := d.Outputs(ctx(t), "realtime")
	if err != nil || len(outs) != 2 {
		t.Fatalf("outputs: %v %v", outs, err)
	}

	// Destroy.
	out.Reset()
	res, err = d.Destroy(ctx(t), "realtime")
	if err != nil {
		t.Fatalf("destroy: %v\n%s", err, out.String())
	}
	if res.Status != "DELETE_COMPLETE" {
		t.Errorf("destroy status %s", res.Status)
	}
	deletes := 0
	for _, e := range res.Events {
		if e.Status == "DELETE_COMPLETE" && e.LogicalID != "realtime" {
			deletes++
		}
	}
	if deletes != 6 {
		t.Errorf("saw %d DELETE_COMPLETE resource events, want 6", deletes)
	}
	if got := s.StackStatus("realtime"); got != "" {
		t.Errorf("stack still there: %s", got)
	}
	if _, err := d.Destroy(ctx(t), "realtime"); !errors.Is(err, awsdeploy.ErrStackNotFound) {
		t.Errorf("second destroy: %v, want ErrStackNotFound", err)
	}
	if _, err := d.Outputs(ctx(t), "realtime"); !errors.Is(err, awsdeploy.ErrStackNotFound) {
		t.Errorf("outputs after destroy: %v, want ErrStackNotFound", err)
	}
}

func TestCreateFailureReportsFirstFailingResource(t *testing.T) {
	s := standin(t)
	const reason = "You have requested more vCPU capacity than your current vCPU limit of 0 allows (Service: AutoScaling, Status Code: 400)"
	s.Fail["WebAutoScalingGroup"] = reason
	var out bytes.Buffer
	d := deployer(t, s, &out)

	res, err := d.Deploy(ctx(t), awsdeploy.Spec{StackName: "realtime", Template: testTemplate(2, "")})
	var fe *awsdeploy.StackFailedError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v, want StackFailedError\n%s", err, out.String())
	}
	if fe.First == nil || fe.First.LogicalID != "WebAutoScalingGroup" || fe.First.Reason != reason || fe.First.Status != "CREATE_FAILED" {
		t.Errorf("first failure = %+v", fe.First)
	}
	if fe.Status != "ROLLBACK_COMPLETE" || !fe.RolledBack() {
		t.Errorf("status %s rolled back %v", fe.Status, fe.RolledBack())
	}
	// The resource started with it was cancelled, and that is not the cause.
	cancelled := false
	for _, e := range res.Events {
		if e.LogicalID == "WebScalingPolicy" && e.Status == "CREATE_FAILED" && e.Reason == "Resource creation cancelled" {
			cancelled = true
		}
	}
	if !cancelled {
		t.Error("the stand-in did not cancel the resource started alongside")
	}
	msg := err.Error()
	for _, want := range []string{"create of stack realtime failed: ROLLBACK_COMPLETE", "first failure: WebAutoScalingGroup (AWS::AutoScaling::AutoScalingGroup) CREATE_FAILED: " + reason, "rolled back", "moat destroy"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	t.Logf("error:\n%s", msg)

	// The rolled-back stack can only be deleted: deploy says so.
	_, err = d.Deploy(ctx(t), awsdeploy.Spec{StackName: "realtime", Template: testTemplate(2, "")})
	var se *awsdeploy.StackStateError
	if !errors.As(err, &se) || se.Status != "ROLLBACK_COMPLETE" || !strings.Contains(err.Error(), "moat destroy") {
		t.Errorf("deploy over a rolled-back stack: %v", err)
	}
	if _, err := d.Destroy(ctx(t), "realtime"); err != nil {
		t.Fatalf("destroy rolled-back stack: %v", err)
	}
	delete(s.Fail, "WebAutoScalingGroup")
	if _, err := d.Deploy(ctx(t), awsdeploy.Spec{StackName: "realtime", Template: testTemplate(2, "")}); err != nil {
		t.Fatalf("deploy after fixing: %v", err)
	}
}

func TestUpdateFailureRollsBack(t *testing.T) {
	s := standin(t)
	var out bytes.Buffer
	d := deployer(t, s, &out)
	if _, err := d.Deploy(ctx(t), awsdeploy.Spec{StackName: "web", Template: testTemplate(2, "")}); err != nil {
		t.Fatal(err)
	}
	const reason = "Resource handler returned message: \"Invalid IAM Instance Profile name\""
	s.Fail["WebAutoScalingGroup"] = reason
	_, err := d.Deploy(ctx(t), awsdeploy.Spec{StackName: "web", Template: testTemplate(4, "")})
	var fe *awsdeploy.StackFailedError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v", err)
	}
	if fe.Status != "UPDATE_ROLLBACK_COMPLETE" || !fe.RolledBack() || fe.First == nil || fe.First.Status != "UPDATE_FAILED" || fe.First.Reason != reason {
		t.Errorf("failure = %+v first %+v", fe, fe.First)
	}
	if !strings.Contains(err.Error(), "previous version") {
		t.Errorf("error: %v", err)
	}
	if got := s.ResourceProperty("web", "WebAutoScalingGroup", "DesiredCapacity"); got != `"2"` {
		t.Errorf("after rollback DesiredCapacity = %s, want \"2\"", got)
	}
	// The stack is usable again.
	delete(s.Fail, "WebAutoScalingGroup")
	res, err := d.Deploy(ctx(t), awsdeploy.Spec{StackName: "web", Template: testTemplate(4, "")})
	if err != nil || res.Status != "UPDATE_COMPLETE" {
		t.Fatalf("retry: %v %+v", err, res)
	}
}

func TestDeclinedChangeSetLeavesNothing(t *testing.T) {
	s := standin(t)
	var out bytes.Buffer
	d := deployer(t, s, &out)
	var asked string
	d.Confirm = func(_ context.Context, q string) (bool, error) { asked = q; return false, nil }
	res, err := d.Deploy(ctx(t), awsdeploy.Spec{StackName: "web", Template: testTemplate(2, "")})
	if err != nil || !res.Cancelled {
		t.Fatalf("declined: %v %+v", err, res)
	}
	if !strings.Contains(asked, "Create stack web with these 6 changes in us-east-1?") {
		t.Errorf("question: %q", asked)
	}
	if st := s.StackStatus("web"); st != "" {
		t.Errorf("declined create left a stack in %s", st)
	}
	if slices.Contains(s.Calls(), "ExecuteChangeSet") {
		t.Error("declined change set was executed")
	}

	// Deploy, then decline an update and a destroy: the stack stays as is.
	d.Confirm = nil
	if _, err := d.Deploy(ctx(t), awsdeploy.Spec{StackName: "web", Template: testTemplate(2, "")}); err != nil {
		t.Fatal(err)
	}
	d.Confirm = func(context.Context, string) (bool, error) { return false, nil }
	if res, err := d.Deploy(ctx(t), awsdeploy.Spec{StackName: "web", Template: testTemplate(5, "")}); err != nil || !res.Cancelled {
		t.Fatalf("declined update: %v", err)
	}
	if res, err := d.Destroy(ctx(t), "web"); err != nil || !res.Cancelled {
		t.Fatalf("declined destroy: %v", err)
	}
	if got := s.ResourceProperty("web", "WebAutoScalingGroup", "DesiredCapacity"); got != `"2"` || s.StackStatus("web") != "CREATE_COMPLETE" {
		t.Errorf("after declining: capacity %s status %s", got, s.StackStatus("web"))
	}
	// A later deploy is not confused by the discarded change set.
	d.Confirm = func(context.Context, string) (bool, error) { return true, nil }
	if res, err := d.Deploy(ctx(t), awsdeploy.Spec{StackName: "web", Template: testTemplate(5, "")}); err != nil || res.Status != "UPDATE_COMPLETE" {
		t.Fatalf("accepted update: %v %+v", err, res)
	}
}

func TestAssetsAndLargeTemplateGoThroughS3(t *testing.T) {
	s := standin(t)
	var out bytes.Buffer
	d := deployer(t, s, &out)
	app := t.TempDir()
	os.WriteFile(filepath.Join(app, "app.py"), []byte("print('hi')\n"), 0o644)
	os.WriteFile(filepath.Join(app, "run.sh"), []byte("#!/bin/sh\n"), 0o755)
	// The asset parameters, and a padded resource that pushes the template
	// over the 51,200-byte TemplateBody limit.
	params := `, "AppLaunchTemplate": {"Type": "AWS::EC2::LaunchTemplate", "Properties": {"LaunchTemplateData": {"UserData": {"Fn::Base64": {"Fn::Join": ["", ["aws s3 cp s3://", {"Ref": "AppBucket"}, "/", {"Ref": "AppKey"}, " -"]]}}}}}`
	pad := `, "Padding": {"Type": "AWS::SSM::Parameter", "Properties": {"Value": "` + strings.Repeat("x", 60000) + `"}}`
	tmpl := bytes.Replace(testTemplate(2, params+pad), []byte(`"ImageId": {"Type": "String", "Default": "ami-standin"}`),
		[]byte(`"ImageId": {"Type": "String", "Default": "ami-standin"}, "AppBucket": {"Type": "String"}, "AppKey": {"Type": "String"}`), 1)
	spec := awsdeploy.Spec{StackName: "big", Template: tmpl,
		Assets: []awsdeploy.Asset{{Name: "app", Dir: app, ParamBucket: "AppBucket", ParamKey: "AppKey"}}}
	if _, err := d.Deploy(ctx(t), spec); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out.String())
	}
	bucket := awsdeploy.ManagedBucket(cfnstandin.Account, "us-east-1")
	bundle, err := awscfn.Bundle(app)
	if err != nil {
		t.Fatal(err)
	}
	key := awsdeploy.BundleKey("big", "app", bundle)
	got, ok := s.Object(bucket, key)
	if !ok || !bytes.Equal(got, bundle) {
		t.Fatalf("bundle not uploaded to s3://%s/%s; objects: %v", bucket, key, s.Objects())
	}
	objs := s.Objects()
	if len(objs) != 2 || !strings.HasPrefix(objs[1], bucket+"/big/template-") {
		t.Errorf("objects = %v, want the bundle and the template", objs)
	}
	for _, want := range []string{"created bucket " + bucket, "uploaded " + app} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// Same files, new modification times: same bundle, so no changes.
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(app, "app.py"), later, later)
	res, err := d.Deploy(ctx(t), spec)
	if err != nil || !res.NoChanges {
		t.Fatalf("redeploy with touched files: %v %+v", err, res)
	}
	calls := strings.Join(s.Calls(), " ")
	if strings.Count(calls, "s3:CreateBucket") != 1 {
		t.Errorf("bucket created more than once: %s", calls)
	}

	// A changed file is a new key, so the template's parameters change.
	os.WriteFile(filepath.Join(app, "app.py"), []byte("print('hello')\n"), 0o644)
	res, err = d.Deploy(ctx(t), spec)
	if err != nil {
		t.Fatalf("redeploy with a changed file: %v", err)
	}
	if len(res.Changes) != 1 || res.Changes[0].LogicalID != "AppLaunchTemplate" || res.Changes[0].Action != "Modify" {
		t.Errorf("changed app: changes %+v, want one Modify of AppLaunchTemplate", res.Changes)
	}
	if n := len(s.Objects()); n != 3 {
		t.Errorf("%d objects after the second upload, want 3 (two bundles, one unchanged template): %v", n, s.Objects())
	}
}

func TestBundleIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "static"), 0o755)
	os.WriteFile(filepath.Join(dir, "app.py"), []byte("print(1)\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "static", "index.html"), []byte("<p>hi</p>\n"), 0o640)
	os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
	os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("ref\n"), 0o644)
	a, err := awscfn.Bundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(48 * time.Hour)
	os.Chtimes(filepath.Join(dir, "app.py"), later, later)
	os.Chmod(filepath.Join(dir, "app.py"), 0o644)
	b, _ := awscfn.Bundle(dir)
	if !bytes.Equal(a, b) {
		t.Error("bundle changed with mtime/permission bits that do not matter")
	}
	os.Chmod(filepath.Join(dir, "app.py"), 0o755)
	c, _ := awscfn.Bundle(dir)
	if bytes.Equal(a, c) {
		t.Error("bundle ignored the executable bit")
	}
	names := tarNames(t, a)
	if want := []string{"app.py", "static/", "static/index.html"}; !slices.Equal(names, want) {
		t.Errorf("entries %v, want %v", names, want)
	}
	if k := awsdeploy.BundleKey("realtime", "app", a); !strings.HasPrefix(k, "realtime/app-") || !strings.HasSuffix(k, ".tar.gz") || len(k) != len("realtime/app-")+32+len(".tar.gz") {
		t.Errorf("key %s", k)
	}
}

// A stack left in REVIEW_IN_PROGRESS (a CREATE change set that was never
// executed, e.g. from an interrupted deploy) takes a CREATE change set.
func TestDeployOverReviewInProgress(t *testing.T) {
	s := standin(t)
	var out bytes.Buffer
	d := deployer(t, s, &out)
	c, err := awsdeploy.Connect(context.Background(), awsdeploy.ClientOptions{EndpointURL: s.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CloudFormation.CreateChangeSet(ctx(t), &cloudformation.CreateChangeSetInput{
		StackName: aws.String("web"), ChangeSetName: aws.String("abandoned"), ChangeSetType: cfntypes.ChangeSetTypeCreate,
		TemplateBody: aws.String(string(testTemplate(2, ""))), Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityIam},
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := s.StackStatus("web"); st != "REVIEW_IN_PROGRESS" {
		t.Fatalf("stand-in stack %s", st)
	}
	res, err := d.Deploy(ctx(t), awsdeploy.Spec{StackName: "web", Template: testTemplate(2, "")})
	if err != nil || res.Action != "CREATE" || res.Status != "CREATE_COMPLETE" {
		t.Fatalf("deploy over REVIEW_IN_PROGRESS: %v %+v", err, res)
	}
}

// Interrupting the wait (Ctrl-C) says that CloudFormation carries on.
func TestInterruptedWaitSaysTheOperationGoesOn(t *testing.T) {
	s := standin(t)
	var out bytes.Buffer
	d := deployer(t, s, &out)
	c, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Interrupt as soon as the progress view shows the stack being created.
	d.Out = &cancelOn{w: &out, text: "CREATE_IN_PROGRESS", cancel: cancel}
	_, err := d.Deploy(c, awsdeploy.Spec{StackName: "web", Template: testTemplate(2, "")})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stopped waiting for stack web (the operation goes on in CloudFormation)") {
		t.Errorf("err = %v", err)
	}
	if st := s.StackStatus("web"); st != "CREATE_IN_PROGRESS" {
		t.Errorf("stand-in stack %s, want CREATE_IN_PROGRESS", st)
	}
}

type cancelOn struct {
	w      io.Writer
	text   string
	cancel func()
}

func (c *cancelOn) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte(c.text)) {
		c.cancel()
	}
	return c.w.Write(b)
}

// A change to outputs only is a change set without resource changes, and
// deploys (CloudFormation executes such change sets).
func TestOutputsOnlyChange(t *testing.T) {
	s := standin(t)
	var out bytes.Buffer
	d := deployer(t, s, &out)
	if _, err := d.Deploy(ctx(t), awsdeploy.Spec{StackName: "web", Template: testTemplate(2, "")}); err != nil {
		t.Fatal(err)
	}
	tmpl := bytes.Replace(testTemplate(2, ""), []byte("load balancer DNS name"), []byte("DNS name of the load balancer"), 1)
	out.Reset()
	res, err := d.Deploy(ctx(t), awsdeploy.Spec{StackName: "web", Template: tmpl})
	if err != nil || res.NoChanges || len(res.Changes) != 0 || res.Status != "UPDATE_COMPLETE" {
		t.Fatalf("outputs-only change: %v %+v", err, res)
	}
	if res.Outputs[0].Description != "DNS name of the load balancer" {
		t.Errorf("outputs %+v", res.Outputs)
	}
	if !strings.Contains(out.String(), "no resource changes (outputs, parameters or metadata only)") {
		t.Errorf("output:\n%s", out.String())
	}
}

// Ctrl-C at the prompt: Confirm returns the context's error; the change
// set (and the empty stack a CREATE change set made) is deleted and
// nothing is executed.
func TestInterruptAtThePromptChangesNothing(t *testing.T) {
	s := standin(t)
	var out bytes.Buffer
	d := deployer(t, s, &out)
	c, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.Confirm = func(ctx context.Context, _ string) (bool, error) {
		cancel() // the signal arrives while the question waits for an answer
		<-ctx.Done()
		return false, ctx.Err()
	}
	res, err := d.Deploy(c, awsdeploy.Spec{StackName: "web", Template: testTemplate(2, "")})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "nothing was changed") || res == nil || !res.Cancelled {
		t.Fatalf("interrupted deploy: %v %+v", err, res)
	}
	if st := s.StackStatus("web"); st != "" {
		t.Errorf("interrupted create left a stack in %s", st)
	}
	if slices.Contains(s.Calls(), "ExecuteChangeSet") {
		t.Error("interrupted change set was executed")
	}
}

// A change to a create-only property (AWS's provider schema) replaces the
// resource; when the resource is custom-named and keeps its name, the
// stand-in refuses it as CloudFormation does, and the update rolls back.
// A name that follows the key (as moat renders key pairs) replaces cleanly.
func TestStandInReplacement(t *testing.T) {
	s := standin(t)
	var out bytes.Buffer
	d := deployer(t, s, &out)
	key := func(name, material string) []byte {
		return testTemplate(2, fmt.Sprintf(`, "KeyPairOps": {"Type": "AWS::EC2::KeyPair", "Properties": {"KeyName": {"Fn::Sub": "${AWS::StackName}-%s"}, "KeyType": "ed25519", "PublicKeyMaterial": "ssh-ed25519 %s"}}`, name, material))
	}
	if _, err := d.Deploy(ctx(t), awsdeploy.Spec{StackName: "web", Template: key("ops", "AAAAfirst")}); err != nil {
		t.Fatal(err)
	}
	before := s.Resources("web")

	// Rotate the key under the same name: a replacement that must fail.
	out.Reset()
	res, err := d.Deploy(ctx(t), awsdeploy.Spec{StackName: "web", Template: key("ops", "AAAAsecond")})
	var fe *awsdeploy.StackFailedError
	if !errors.As(err, &fe) {
		t.Fatalf("custom-named replacement: %v\n%s", err, out.String())
	}
	wantChange := awsdeploy.Change{Action: "Modify", LogicalID: "KeyPairOps", PhysicalID: res.Changes[0].PhysicalID, Type: "AWS::EC2::KeyPair", Replacement: "True"}
	if len(res.Changes) != 1 || res.Changes[0] != wantChange {
		t.Errorf("change set %+v, want %+v", res.Changes, wantChange)
	}
	const reason = "CloudFormation cannot update a stack when a custom-named resource requires replacing. Rename web-ops and update the stack again."
	if fe.Status != "UPDATE_ROLLBACK_COMPLETE" || fe.First == nil || fe.First.LogicalID != "KeyPairOps" || fe.First.Status != "UPDATE_FAILED" || fe.First.Reason != reason {
		t.Errorf("failure %+v first %+v", fe, fe.First)
	}
	if got := s.ResourceProperty("web", "KeyPairOps", "PublicKeyMaterial"); got != `"ssh-ed25519 AAAAfirst"` {
		t.Errorf("after the rollback the key is %s", got)
	}
	if !strings.Contains(out.String(), "Modify  KeyPairOps  AWS::EC2::KeyPair  True") {
		t.Errorf("the change set does not show the replacement:\n%s", out.String())
	}

	// A name that changes with the key: replaced, the old key deleted in
	// the cleanup.
	out.Reset()
	res, err = d.Deploy(ctx(t), awsdeploy.Spec{StackName: "web", Template: key("ops-5e2b", "AAAAsecond")})
	if err != nil || res.Status != "UPDATE_COMPLETE" {
		t.Fatalf("renamed replacement: %v\n%s", err, out.String())
	}
	oldID := res.Changes[0].PhysicalID
	var replaced, deletedOld bool
	for _, e := range res.Events {
		if e.LogicalID == "KeyPairOps" && e.Reason == "Requested update requires the creation of a new physical resource; hence creating one." && e.PhysicalID != oldID {
			replaced = true
		}
		if e.LogicalID == "KeyPairOps" && e.Status == "DELETE_COMPLETE" && e.PhysicalID == oldID {
			deletedOld = true
		}
	}
	if !replaced || !deletedOld {
		t.Errorf("replacement events: new resource %v, old %s deleted %v\n%s", replaced, oldID, deletedOld, out.String())
	}
	if after := s.Resources("web"); !slices.Equal(before, after) {
		t.Errorf("resources %v, want %v", after, before)
	}

	// A create-only property of an unnamed resource: replaced.
	out.Reset()
	tmpl := bytes.Replace(key("ops-5e2b", "AAAAsecond"), []byte(`"CidrBlock": "10.0.128.0/24"`), []byte(`"CidrBlock": "10.0.130.0/24"`), 1)
	res, err = d.Deploy(ctx(t), awsdeploy.Spec{StackName: "web", Template: tmpl})
	if err != nil || res.Status != "UPDATE_COMPLETE" {
		t.Fatalf("subnet replacement: %v\n%s", err, out.String())
	}
	if len(res.Changes) != 1 || res.Changes[0].LogicalID != "PrivateSubnetA" || res.Changes[0].Replacement != "True" {
		t.Errorf("subnet change %+v", res.Changes)
	}
}
