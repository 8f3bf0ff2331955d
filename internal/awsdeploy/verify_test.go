package awsdeploy_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/moat-dev/moat/internal/awsdeploy"
)

func TestTargetsReady(t *testing.T) {
	th := func(g, id, state, reason string) awsdeploy.TargetHealth {
		return awsdeploy.TargetHealth{TargetGroup: g, ID: id, State: state, Reason: reason}
	}
	for _, tc := range []struct {
		name     string
		groups   []string
		targets  []awsdeploy.TargetHealth
		ready    bool
		notReady string
	}{
		{"all healthy", []string{"A", "B"}, []awsdeploy.TargetHealth{th("A", "i-1", "healthy", ""), th("B", "i-2", "healthy", "")}, true, ""},
		{"nothing registered", []string{"A"}, nil, false, "A: no targets registered yet"},
		{"one still initial", []string{"A"}, []awsdeploy.TargetHealth{th("A", "i-1", "healthy", ""), th("A", "i-2", "initial", "Elb.RegistrationInProgress")}, false, "A: 1 of 2 healthy; i-2 initial (Elb.RegistrationInProgress)"},
		{"failing checks", []string{"A"}, []awsdeploy.TargetHealth{{TargetGroup: "A", ID: "i-1", State: "unhealthy", Reason: "Target.FailedHealthChecks", Description: "Health checks failed"}}, false, "A: 0 of 1 healthy; i-1 unhealthy (Target.FailedHealthChecks: Health checks failed)"},
		{"draining ones do not count", []string{"A"}, []awsdeploy.TargetHealth{th("A", "i-1", "healthy", ""), th("A", "i-0", "draining", "Target.DeregistrationInProgress")}, true, ""},
		{"only draining", []string{"A"}, []awsdeploy.TargetHealth{th("A", "i-0", "draining", "")}, false, "A: no targets registered yet"},
	} {
		ready, notReady := awsdeploy.TargetsReady(tc.groups, tc.targets)
		if ready != tc.ready || strings.Join(notReady, "; ") != tc.notReady {
			t.Errorf("%s: ready %v %q, want %v %q", tc.name, ready, notReady, tc.ready, tc.notReady)
		}
	}
}

// fakeELB answers DescribeTargetHealth from a script: each call takes the
// next answer, the last one repeats.
type fakeELB struct {
	mu      sync.Mutex
	answers [][]elbtypes.TargetHealthDescription
	arns    []string
}

func (f *fakeELB) DescribeTargetHealth(_ context.Context, in *elbv2.DescribeTargetHealthInput, _ ...func(*elbv2.Options)) (*elbv2.DescribeTargetHealthOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.arns = append(f.arns, aws.ToString(in.TargetGroupArn))
	a := f.answers[0]
	if len(f.answers) > 1 {
		f.answers = f.answers[1:]
	}
	return &elbv2.DescribeTargetHealthOutput{TargetHealthDescriptions: a}, nil
}

var _ awsdeploy.ELBv2 = (*fakeELB)(nil)

func target(id string, state elbtypes.TargetHealthStateEnum, reason elbtypes.TargetHealthReasonEnum, desc string) elbtypes.TargetHealthDescription {
	h := &elbtypes.TargetHealth{State: state, Reason: reason}
	if desc != "" {
		h.Description = aws.String(desc)
	}
	return elbtypes.TargetHealthDescription{Target: &elbtypes.TargetDescription{Id: aws.String(id), Port: aws.Int32(8000)}, TargetHealth: h}
}

// WaitHealthy reads the stack's target groups (ListStackResources on the
// stand-in) and polls their health until every target is healthy, printing
// each change; a target that stays unhealthy is an error naming its reason
// once the time is up.
func TestWaitHealthy(t *testing.T) {
	s := standin(t)
	var out bytes.Buffer
	d := deployer(t, s, &out)
	tmpl := testTemplate(2, `, "TargetGroupWeb": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": {"Port": 8000, "Protocol": "HTTP"}}`)
	if _, err := d.Deploy(ctx(t), awsdeploy.Spec{StackName: "web", Template: tmpl}); err != nil {
		t.Fatal(err)
	}
	elb := &fakeELB{answers: [][]elbtypes.TargetHealthDescription{
		nil,
		{target("i-1", "initial", "Elb.RegistrationInProgress", "Target registration is in progress"), target("i-2", "initial", "Elb.RegistrationInProgress", "Target registration is in progress")},
		{target("i-1", "healthy", "", ""), target("i-2", "unhealthy", "Target.FailedHealthChecks", "Health checks failed")},
		{target("i-1", "healthy", "", ""), target("i-2", "healthy", "", "")},
	}}
	d.ELBv2 = elb
	out.Reset()
	targets, err := d.WaitHealthy(ctx(t), "web", nil, 10*time.Second)
	if err != nil || len(targets) != 2 {
		t.Fatalf("wait: %v %+v", err, targets)
	}
	want := "targets: TargetGroupWeb: no targets registered yet\n" +
		"targets: TargetGroupWeb: 0 of 2 healthy; i-1 initial (Elb.RegistrationInProgress: Target registration is in progress), i-2 initial (Elb.RegistrationInProgress: Target registration is in progress)\n" +
		"targets: TargetGroupWeb: 1 of 2 healthy; i-2 unhealthy (Target.FailedHealthChecks: Health checks failed)\n" +
		"targets: TargetGroupWeb 2 healthy\n"
	if out.String() != want {
		t.Errorf("progress:\n%s\nwant:\n%s", out.String(), want)
	}
	if !strings.HasPrefix(elb.arns[0], "targetgroupweb-standin-") {
		t.Errorf("asked about %v, want the stack's target group", elb.arns)
	}

	// Unhealthy for good: an error after the timeout, with the reason.
	elb.answers = [][]elbtypes.TargetHealthDescription{{target("i-1", "unhealthy", "Target.Timeout", "Request timed out")}}
	_, err = d.WaitHealthy(ctx(t), "web", nil, 50*time.Millisecond)
	var nh *awsdeploy.NotHealthyError
	if !errors.As(err, &nh) || !strings.Contains(err.Error(), "TargetGroupWeb: 0 of 1 healthy; i-1 unhealthy (Target.Timeout: Request timed out)") {
		t.Errorf("unhealthy: %v", err)
	}

	// A target group no group registers in is not waited for.
	out.Reset()
	if _, err := d.WaitHealthy(ctx(t), "web", func(string) bool { return false }, 50*time.Millisecond); err != nil || out.Len() != 0 {
		t.Errorf("nothing to wait for: %v %q", err, out.String())
	}
}

// Request makes one GET to the load balancer URL (here an httptest server
// on loopback), fails on a 5xx, and makes none when the calls go to an
// emulator.
func TestRequest(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	d := &awsdeploy.Deployer{}
	got, err := d.Request(context.Background(), srv.URL+"/")
	if err != nil || !strings.HasPrefix(got, "GET "+srv.URL+"/: 200 OK in ") {
		t.Errorf("200: %q %v", got, err)
	}
	status = http.StatusBadGateway
	if _, err := d.Request(context.Background(), srv.URL+"/"); err == nil || !strings.Contains(err.Error(), "502 Bad Gateway") {
		t.Errorf("502: %v", err)
	}
	d.Emulated = true
	if _, err := d.Request(context.Background(), srv.URL+"/"); !errors.Is(err, awsdeploy.ErrEmulated) {
		t.Errorf("emulated: %v", err)
	}
}
