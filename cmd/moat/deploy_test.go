package main

// moat deploy, destroy and outputs, end to end, against cfnstandin: a LOCAL
// STAND-IN for the CloudFormation, S3 and STS APIs on loopback (not AWS).
// The CLI reaches it through the hidden --endpoint-url flag or through
// AWS_ENDPOINT_URL, as any AWS SDK client would. These are the cases moto
// (moto_test.go) cannot show: outputs with values (moto drops them), a
// destroy that completes (moto's answers DependencyViolation), failures
// and rollbacks, an interrupted prompt. The stand-in has no ELBv2, so the
// post-deploy verification is off (--verify-timeout=0).

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/awsdeploy"
	"github.com/moat-dev/moat/internal/awsdeploy/cfnstandin"
	"github.com/moat-dev/moat/internal/testutil"
)

// standinCreds starts the CloudFormation stand-in and points a fake AWS
// environment at it.
func standinCreds(t *testing.T) *cfnstandin.Server {
	t.Helper()
	s := cfnstandin.New()
	t.Cleanup(s.Close)
	testutil.FakeAWS(t, s.URL)
	return s
}

func TestDeployUpdateDestroyAgainstStandIn(t *testing.T) {
	s := standinCreds(t)
	path := copyExample(t)
	ep := "--endpoint-url=" + s.URL
	fast := "--poll-interval=1ms"
	noVerify := "--verify-timeout=0"

	// Create.
	stdout, stderr, code := run(t, "deploy", "-f", path, "-y", ep, fast, noVerify)
	if code != 0 {
		t.Fatalf("deploy: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"deploying stack realtime to us-east-1", "change set for stack realtime (CREATE)", "Add", "AutoScalingGroupWeb", "CREATE_COMPLETE", "stack realtime: CREATE_COMPLETE"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("deploy stderr lacks %q:\n%s", want, stderr)
		}
	}
	for _, want := range []string{"OUTPUT", "LoadBalancerWebURL", "http://loadbalancerweb.dnsname.standin.invalid/", "SSHCommand"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("deploy stdout lacks %q:\n%s", want, stdout)
		}
	}
	if st := s.StackStatus("realtime"); st != "CREATE_COMPLETE" {
		t.Fatalf("stand-in stack: %s", st)
	}
	t.Logf("deploy stderr (first lines):\n%s", head(stderr, 12))

	// Update: the desired capacity goes from 2 to 3, and that is the one change.
	edited, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte(strings.Replace(string(edited), "desiredCapacity: 2", "desiredCapacity: 3", 1)), 0o644)
	_, stderr, code = run(t, "deploy", "-f", path, "-y", ep, fast, noVerify)
	if code != 0 {
		t.Fatalf("update: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "change set for stack realtime (UPDATE): 1 to modify\n") {
		t.Errorf("update summary:\n%s", stderr)
	}
	if n := strings.Count(stderr, "  Modify  "); n != 1 {
		t.Errorf("%d Modify rows, want 1:\n%s", n, stderr)
	}
	if !strings.Contains(stderr, "Modify  AutoScalingGroupWeb  AWS::AutoScaling::AutoScalingGroup  False") {
		t.Errorf("update change row:\n%s", stderr)
	}
	if got := s.ResourceProperty("realtime", "AutoScalingGroupWeb", "DesiredCapacity"); got != `"3"` {
		t.Errorf("deployed DesiredCapacity %s", got)
	}

	// Again: nothing to do.
	stdout, stderr, code = run(t, "deploy", "-f", path, "-y", ep, fast, noVerify)
	if code != 0 || !strings.Contains(stderr, "no changes") || !strings.Contains(stdout, "LoadBalancerWebURL") {
		t.Errorf("redeploy: exit %d\n%s\n%s", code, stderr, stdout)
	}

	// Outputs as JSON.
	stdout, stderr, code = run(t, "outputs", "-f", path, "-o", "json", ep, fast)
	if code != 0 {
		t.Fatalf("outputs: exit %d %s", code, stderr)
	}
	var outs []awsdeploy.Output
	if err := json.Unmarshal([]byte(stdout), &outs); err != nil {
		t.Fatalf("outputs json: %v\n%s", err, stdout)
	}
	got := map[string]string{}
	for _, o := range outs {
		got[o.Key] = o.Value
	}
	if got["BastionPublicIP"] != "192.0.2.10" || !strings.Contains(got["SSHCommand"], "ec2-user@192.0.2.10") {
		t.Errorf("outputs: %v", got)
	}

	// Destroy without -y and without an answer: refused, nothing deleted.
	_, stderr, code = run(t, "destroy", "-f", path, ep, fast)
	if code != exitUsage || !strings.Contains(stderr, "pass -y") || s.StackStatus("realtime") == "" {
		t.Errorf("unanswered destroy: exit %d\n%s", code, stderr)
	}
	// Destroy by stack name alone, from a directory without a stack file.
	t.Chdir(t.TempDir())
	_, stderr, code = run(t, "destroy", "--stack-name", "realtime", "--region", "us-east-1", "-y", ep, fast)
	if code != 0 {
		t.Fatalf("destroy: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "DELETE_COMPLETE") || !strings.Contains(stderr, "stack realtime deleted") {
		t.Errorf("destroy stderr:\n%s", stderr)
	}
	if st := s.StackStatus("realtime"); st != "" {
		t.Errorf("stack left in %s", st)
	}
	_, stderr, code = run(t, "outputs", "--stack-name", "realtime", "--region", "us-east-1", ep, fast)
	if code != exitNotFound || !strings.Contains(stderr, "no stack realtime in us-east-1") {
		t.Errorf("outputs after destroy: exit %d\n%s", code, stderr)
	}
}

// TestDeployFailureExitCode runs the built binary, reaching the stand-in
// through AWS_ENDPOINT_URL, with the auto scaling group set to fail.
func TestDeployFailureExitCode(t *testing.T) {
	s := standinCreds(t)
	s.Fail["AutoScalingGroupWeb"] = "You have requested more vCPU capacity than your current vCPU limit of 0 allows for the instance bucket that the specified instance type belongs to."
	path := copyExample(t)
	_, stderr, code := runBin(t, "deploy", "-f", path, "-y", "--poll-interval=1ms")
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\n%s", code, exitFailure, stderr)
	}
	for _, want := range []string{
		"moat: create of stack realtime failed: ROLLBACK_COMPLETE",
		"first failure: AutoScalingGroupWeb (AWS::AutoScaling::AutoScalingGroup) CREATE_FAILED: You have requested more vCPU capacity",
		"rolled back",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	// The plain (non-TTY) progress view has no escape sequences.
	if strings.Contains(stderr, "\x1b[") {
		t.Error("escape sequences in non-TTY output")
	}
	t.Logf("stderr tail:\n%s", tail(stderr, 8))
}

func TestDeployWithoutCredentials(t *testing.T) {
	testutil.IsolateAWS(t)
	path := copyExample(t)
	_, stderr, code := run(t, "deploy", "-f", path, "-y")
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\n%s", code, exitFailure, stderr)
	}
	for _, want := range []string{"no usable AWS credentials", "failed to refresh cached credentials", "aws configure", "AWS_PROFILE", "aws sso login"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	// destroy by name with no region anywhere: the region error.
	t.Chdir(t.TempDir())
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIASTANDINCLI")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "x")
	_, stderr, code = run(t, "destroy", "--stack-name", "x", "-y")
	if code != exitFailure || !strings.Contains(stderr, "no AWS region: pass --region, set AWS_REGION") {
		t.Errorf("no region: exit %d\n%s", code, stderr)
	}
	// A profile that does not exist.
	_, stderr, _ = run(t, "outputs", "--stack-name", "x", "--region", "us-east-1", "--profile", "nosuch")
	if !strings.Contains(stderr, `AWS profile "nosuch" is not in`) {
		t.Errorf("missing profile:\n%s", stderr)
	}
}

func TestDeployRegionMismatch(t *testing.T) {
	testutil.IsolateAWS(t)
	path := copyExample(t)
	_, stderr, code := run(t, "deploy", "-f", path, "--region", "eu-west-1")
	if code != exitUsage || !strings.Contains(stderr, "aws.region") {
		t.Errorf("exit %d\n%s", code, stderr)
	}
}

func head(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	return strings.Join(lines[:min(n, len(lines))], "")
}

func tail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "")
}

// Ctrl-C at the [y/N] prompt ends moat deploy at once, deletes the change
// set and the empty stack it made, and says that nothing was changed. The
// built binary runs with its standard input held open (an operator who has
// not answered) and gets a real SIGINT.
func TestDeployInterruptAtPrompt(t *testing.T) {
	s := standinCreds(t)
	t.Setenv("AWS_ENDPOINT_URL", s.URL)
	path := copyExample(t)
	cmd := exec.Command(moatBin, "deploy", "-f", path, "--poll-interval=1ms")
	cmd.Env = append(os.Environ(), "MOAT_FILE=")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var stderr testutil.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if err := testutil.Poll(30*time.Second, func() error {
		if !strings.Contains(stderr.String(), "[y/N]") {
			return errors.New("no prompt")
		}
		return nil
	}); err != nil {
		cmd.Process.Kill()
		<-done
		t.Fatalf("no prompt within 30s:\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("moat deploy ignored SIGINT at the prompt for 10s:\n%s", stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailure {
		t.Errorf("exit: %v, want code %d", err, exitFailure)
	}
	if !strings.Contains(stderr.String(), "interrupted at the prompt") || !strings.Contains(stderr.String(), "nothing was changed") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	// The monthly cost is shown before the question.
	if i, j := strings.Index(stderr.String(), "estimated cost: ~$"), strings.Index(stderr.String(), "[y/N]"); i < 0 || i > j {
		t.Errorf("no cost estimate before the question:\n%s", stderr.String())
	}
	if st := s.StackStatus("realtime"); st != "" {
		t.Errorf("interrupted deploy left a stack in %s", st)
	}
	if slices.Contains(s.Calls(), "ExecuteChangeSet") {
		t.Error("the change set was executed")
	}
}

// Rotating an imported key is a replacement of the key pair (every
// property of AWS::EC2::KeyPair is create-only), and moat names key pairs
// after their key, so the new one has a new name and the update goes
// through; the stand-in refuses the same replacement under an unchanged
// name, as CloudFormation does (internal/awsdeploy TestStandInReplacement).
func TestKeyRotationDeploysAgainstStandIn(t *testing.T) {
	s := standinCreds(t)
	dir := t.TempDir()
	for _, k := range []string{"a", "b"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	path := copyExample(t, "  - name: ops            # generated by moat up when missing", "  - name: ops\n    publicKeyFile: "+filepath.Join(dir, "a.pub"))
	args := []string{"deploy", "-f", path, "-y", "--endpoint-url=" + s.URL, "--poll-interval=1ms", "--verify-timeout=0"}
	if _, stderr, code := run(t, args...); code != 0 {
		t.Fatalf("deploy: exit %d\n%s", code, stderr)
	}
	b, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(b), "a.pub", "b.pub", 1)), 0o644)
	_, stderr, code := run(t, args...)
	if code != 0 || !strings.Contains(stderr, "stack realtime: UPDATE_COMPLETE") {
		t.Fatalf("rotated key: exit %d\n%s", code, stderr)
	}
	if !regexp.MustCompile(`Modify +KeyPairOps +AWS::EC2::KeyPair +True`).MatchString(stderr) {
		t.Errorf("the change set does not replace the key pair:\n%s", stderr)
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "b.pub"))
	if got := s.ResourceProperty("realtime", "KeyPairOps", "PublicKeyMaterial"); got != strconv.Quote(strings.TrimSpace(string(pub))) {
		t.Errorf("deployed key %s, want b.pub", got)
	}
}
