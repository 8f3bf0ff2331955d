package awsdeploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/testutil"
)

func TestStackAction(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   Action
		err    string
	}{
		{"", Create, ""},
		{"REVIEW_IN_PROGRESS", Create, ""},
		{"CREATE_COMPLETE", Update, ""},
		{"UPDATE_COMPLETE", Update, ""},
		{"UPDATE_ROLLBACK_COMPLETE", Update, ""},
		{"IMPORT_COMPLETE", Update, ""},
		{"ROLLBACK_COMPLETE", 0, "moat destroy"},
		{"ROLLBACK_FAILED", 0, "moat destroy"},
		{"DELETE_FAILED", 0, "moat destroy"},
		{"UPDATE_ROLLBACK_FAILED", 0, "continue-update-rollback"},
		{"UPDATE_IN_PROGRESS", 0, "another operation is running"},
		{"CREATE_IN_PROGRESS", 0, "another operation is running"},
		{"DELETE_IN_PROGRESS", 0, "another operation is running"},
		{"UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", 0, "another operation is running"},
	} {
		got, err := StackAction("web", tc.status)
		if tc.err != "" {
			var se *StackStateError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "stack web is "+tc.status) {
				t.Errorf("%q: err %v, want one mentioning %q", tc.status, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %v %v, want %v", tc.status, got, err, tc.want)
		}
	}
}

func TestStatusClasses(t *testing.T) {
	for _, tc := range []struct {
		status                          string
		terminal, succeeded, rolledBack bool
	}{
		{"CREATE_IN_PROGRESS", false, false, false},
		{"CREATE_COMPLETE", true, true, false},
		{"ROLLBACK_IN_PROGRESS", false, false, false},
		{"ROLLBACK_COMPLETE", true, false, true},
		{"UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", false, false, false},
		{"UPDATE_COMPLETE", true, true, false},
		{"UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", false, false, false},
		{"UPDATE_ROLLBACK_COMPLETE", true, false, true},
		{"UPDATE_ROLLBACK_FAILED", true, false, false},
		{"UPDATE_FAILED", true, false, false},
		{"DELETE_COMPLETE", true, true, false},
		{"DELETE_FAILED", true, false, false},
	} {
		if Terminal(tc.status) != tc.terminal || Succeeded(tc.status) != tc.succeeded || RolledBack(tc.status) != tc.rolledBack {
			t.Errorf("%s: terminal %v succeeded %v rolledBack %v", tc.status, Terminal(tc.status), Succeeded(tc.status), RolledBack(tc.status))
		}
	}
}

func TestNoChanges(t *testing.T) {
	for reason, want := range map[string]bool{
		"The submitted information didn't contain changes. Submit different information to create a change set.": true,
		"No updates are to be performed.": true,
		"Template format error: Unresolved resource dependencies [Foo] in the Resources block of the template": false,
		"": false,
	} {
		if NoChanges(reason) != want {
			t.Errorf("NoChanges(%q) = %v", reason, !want)
		}
	}
}

func TestFirstFailure(t *testing.T) {
	ev := func(id, status, reason string) Event {
		typ := "AWS::EC2::Subnet"
		if id == "web" {
			typ = "AWS::CloudFormation::Stack"
		}
		return Event{LogicalID: id, Type: typ, Status: status, Reason: reason}
	}
	for _, tc := range []struct {
		name   string
		events []Event
		want   string // logical id, "" for nil
		reason string
	}{
		{"none", []Event{ev("web", "CREATE_IN_PROGRESS", ""), ev("A", "CREATE_COMPLETE", "")}, "", ""},
		{"first of two", []Event{ev("A", "CREATE_FAILED", "boom"), ev("B", "CREATE_FAILED", "later")}, "A", "boom"},
		{"cancelled skipped even when earlier", []Event{
			ev("B", "CREATE_FAILED", "Resource creation cancelled"), ev("A", "CREATE_FAILED", "quota"),
		}, "A", "quota"},
		{"update cancelled skipped", []Event{ev("B", "UPDATE_FAILED", "Resource update cancelled"), ev("A", "UPDATE_FAILED", "bad")}, "A", "bad"},
		{"resource before stack summary", []Event{
			ev("web", "CREATE_FAILED", "The following resource(s) failed to create: [A]."), ev("A", "CREATE_FAILED", "quota"),
		}, "A", "quota"},
		{"stack only", []Event{ev("web", "UPDATE_FAILED", "Parameter validation failed")}, "web", "Parameter validation failed"},
		{"only cancellations", []Event{ev("B", "CREATE_FAILED", "Resource creation cancelled")}, "", ""},
		{"delete failed", []Event{ev("A", "DELETE_COMPLETE", ""), ev("Bucket", "DELETE_FAILED", "The bucket you tried to delete is not empty")}, "Bucket", "The bucket you tried to delete is not empty"},
	} {
		got := FirstFailure(tc.events, "web")
		switch {
		case tc.want == "" && got != nil:
			t.Errorf("%s: got %v, want none", tc.name, got)
		case tc.want != "" && (got == nil || got.LogicalID != tc.want || got.Reason != tc.reason):
			t.Errorf("%s: got %v, want %s: %s", tc.name, got, tc.want, tc.reason)
		}
	}
}

func TestProgressPlain(t *testing.T) {
	var b strings.Builder
	p := NewProgress(&b, "web", false, true)
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	p.Add(Event{LogicalID: "web", Type: "AWS::CloudFormation::Stack", Status: "CREATE_IN_PROGRESS", Time: t0})
	p.Add(Event{LogicalID: "VPC", Type: "AWS::EC2::VPC", Status: "CREATE_IN_PROGRESS", Time: t0.Add(time.Second)})
	// The same status again (CloudFormation's "Resource creation Initiated"
	// repeats it with a reason) is a change: it shows.
	p.Add(Event{LogicalID: "VPC", Type: "AWS::EC2::VPC", Status: "CREATE_IN_PROGRESS", Reason: "Resource creation Initiated", Time: t0.Add(2 * time.Second)})
	p.Add(Event{LogicalID: "VPC", Type: "AWS::EC2::VPC", Status: "CREATE_COMPLETE", Time: t0.Add(14 * time.Second)})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 || strings.Contains(b.String(), "\x1b") {
		t.Fatalf("plain view:\n%s", b.String())
	}
	if !strings.HasPrefix(lines[3], "12:00:14  VPC") || !strings.Contains(lines[3], " CREATE_COMPLETE ") || !strings.HasSuffix(lines[3], "AWS::EC2::VPC") {
		t.Errorf("line %q", lines[3])
	}
	want := []string{
		"- stack web                            CREATE_IN_PROGRESS             AWS::CloudFormation::Stack",
		"  ✔ VPC                                CREATE_COMPLETE 13s            AWS::EC2::VPC",
	}
	if got := p.Lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestProgressTTYRedrawsInPlace(t *testing.T) {
	var b strings.Builder
	p := NewProgress(&b, "web", true, false)
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	p.Add(Event{LogicalID: "web", Type: "AWS::CloudFormation::Stack", Status: "CREATE_IN_PROGRESS", Time: t0})
	p.Add(Event{LogicalID: "VPC", Type: "AWS::EC2::VPC", Status: "CREATE_IN_PROGRESS", Time: t0})
	b.Reset()
	p.Add(Event{LogicalID: "VPC", Type: "AWS::EC2::VPC", Status: "CREATE_FAILED", Reason: "quota", Time: t0.Add(time.Second)})
	frame := b.String()
	// Back up over the two live lines and clear them; the failed VPC
	// settles into the scrollback with its reason; the stack stays live.
	want := "\x1b[2F\x1b[J" +
		"  ✘ VPC                                CREATE_FAILED 1s               AWS::EC2::VPC\n" +
		"      quota\n" +
		"- stack web                            CREATE_IN_PROGRESS             AWS::CloudFormation::Stack\n"
	if frame != want {
		t.Errorf("frame\n%q\nwant\n%q", frame, want)
	}
	b.Reset()
	p.Add(Event{LogicalID: "web", Type: "AWS::CloudFormation::Stack", Status: "ROLLBACK_IN_PROGRESS", Time: t0.Add(2 * time.Second)})
	if frame := b.String(); !strings.HasPrefix(frame, "\x1b[1F\x1b[J- stack web") || strings.Contains(frame, "VPC") {
		t.Errorf("second frame %q: should redraw only the stack", frame)
	}
	// A rolled-back stack is a failure, marked as one.
	p.Add(Event{LogicalID: "web", Type: "AWS::CloudFormation::Stack", Status: "ROLLBACK_COMPLETE", Time: t0.Add(9 * time.Second)})
	if l := p.Lines()[0]; !strings.HasPrefix(l, "✘ stack web") || !strings.Contains(l, "ROLLBACK_COMPLETE 9s ") {
		t.Errorf("rolled-back stack line %q", l)
	}
}

func TestProgressTTYFitsTheTerminal(t *testing.T) {
	var b strings.Builder
	p := NewProgress(&b, "web", true, true)
	p.Width, p.Height = 40, 5
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	p.Add(Event{LogicalID: "web", Type: "AWS::CloudFormation::Stack", Status: "CREATE_IN_PROGRESS", Time: t0})
	for i := range 10 {
		p.Add(Event{LogicalID: fmt.Sprintf("Subnet%d", i), Type: "AWS::EC2::Subnet", Status: "CREATE_IN_PROGRESS", Time: t0})
	}
	last := b.String()[strings.LastIndex(b.String(), "\x1b[J")+len("\x1b[J"):]
	lines := strings.Split(strings.TrimSuffix(last, "\n"), "\n")
	if len(lines) != 4 || !strings.Contains(lines[3], "… and 8 more lines in progress") {
		t.Errorf("live part %q: want 3 rows and a summary within 4 lines", lines)
	}
	for _, l := range lines[:3] {
		plain := strings.NewReplacer("\x1b[33m", "", "\x1b[0m", "").Replace(l)
		if n := len([]rune(plain)); n > 39 {
			t.Errorf("line %q is %d runes, over the width", l, n)
		}
		if !strings.HasSuffix(l, "\x1b[0m") {
			t.Errorf("cut line %q lost its colour reset", l)
		}
	}
}

func TestConnectErrors(t *testing.T) {
	ctx := context.Background()

	t.Run("no credentials", func(t *testing.T) {
		testutil.IsolateAWS(t)
		_, err := Connect(ctx, ClientOptions{Region: "us-east-1"})
		var ce *CredentialsError
		if !errors.As(err, &ce) {
			t.Fatalf("err = %v, want CredentialsError", err)
		}
		for _, want := range []string{"no usable AWS credentials", "aws configure", "AWS_PROFILE", "aws sso login"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
	})
	t.Run("no region", func(t *testing.T) {
		testutil.IsolateAWS(t)
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIA")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "x")
		if _, err := Connect(ctx, ClientOptions{}); !errors.Is(err, ErrNoRegion) {
			t.Errorf("err = %v, want ErrNoRegion", err)
		}
	})
	t.Run("region from a profile", func(t *testing.T) {
		testutil.IsolateAWS(t)
		cfg := filepath.Join(t.TempDir(), "config")
		os.WriteFile(cfg, []byte("[profile ops]\nregion = eu-west-1\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = x\n"), 0o600)
		t.Setenv("AWS_CONFIG_FILE", cfg)
		c, err := Connect(ctx, ClientOptions{Profile: "ops"})
		if err != nil || c.Region != "eu-west-1" {
			t.Fatalf("%v %v", c, err)
		}
		// --region wins over the profile.
		c, err = Connect(ctx, ClientOptions{Profile: "ops", Region: "us-west-2"})
		if err != nil || c.Region != "us-west-2" {
			t.Fatalf("%v %v", c, err)
		}
	})
	t.Run("unknown profile", func(t *testing.T) {
		testutil.IsolateAWS(t)
		_, err := Connect(ctx, ClientOptions{Profile: "nosuch", Region: "us-east-1"})
		if err == nil || !strings.Contains(err.Error(), `AWS profile "nosuch"`) || !strings.Contains(err.Error(), "aws configure") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("expired token mid-run", func(t *testing.T) {
		err := credentialsTrouble(errors.New("operation error CloudFormation: DescribeStacks, https response error StatusCode: 403, api error ExpiredToken: The security token included in the request is expired"))
		var ce *CredentialsError
		if !errors.As(err, &ce) {
			t.Errorf("ExpiredToken not recognised: %v", err)
		}
	})
}

func TestWriteChanges(t *testing.T) {
	var b strings.Builder
	WriteChanges(&b, "web", Update, []Change{
		{Action: "Modify", LogicalID: "AutoScalingGroupWeb", Type: "AWS::AutoScaling::AutoScalingGroup", Replacement: "False"},
		{Action: "Modify", LogicalID: "LaunchTemplateApp", Type: "AWS::EC2::LaunchTemplate", Replacement: "Conditional"},
		{Action: "Add", LogicalID: "SubnetPublicC", Type: "AWS::EC2::Subnet"},
		{Action: "Remove", LogicalID: "NatBGateway", Type: "AWS::EC2::NatGateway"},
	})
	want := `change set for stack web (UPDATE): 1 to add, 2 to modify, 1 to remove
  ACTION  LOGICAL ID           TYPE                                REPLACEMENT
  Modify  AutoScalingGroupWeb  AWS::AutoScaling::AutoScalingGroup  False
  Modify  LaunchTemplateApp    AWS::EC2::LaunchTemplate            Conditional
  Add     SubnetPublicC        AWS::EC2::Subnet                    -
  Remove  NatBGateway          AWS::EC2::NatGateway                -
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	WriteChanges(&b, "web", Update, nil)
	if b.String() != "change set for stack web (UPDATE): no resource changes (outputs, parameters or metadata only)\n" {
		t.Errorf("empty: %q", b.String())
	}
}
