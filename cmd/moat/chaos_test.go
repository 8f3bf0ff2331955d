//go:build linux && !portable

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/fis"
	"github.com/moat-dev/moat/internal/testutil"
)

// TestChaosTemplateErrors: a bad template is refused before anything
// runs (no stack needed), with file:line:column, the JSON path and a fix.
func TestChaosTemplateErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{
  "targets": {"web": {"resourceType": "aws:ec2:instance", "resourceTags": {"moat:group": "web"}, "selectionMode": "COUNT(1)"}},
  "actions": {
    "stop": {"actionId": "aws:ec2:stop-instance", "targets": {"Instances": "web"}},
    "pause": {"actionId": "aws:fis:wait", "parameters": {"duration": "5 minutes"}}
  },
  "stopConditions": [{"source": "none"}]
}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, "chaos", "run", bad, "--stack", "nosuchstack")
	if code != exitInvalid {
		t.Fatalf("exit %d, want %d\n%s", code, exitInvalid, stderr)
	}
	for _, want := range []string{
		bad + `:4:26: actions.stop.actionId: "aws:ec2:stop-instance" is not an AWS FIS action moat runs`,
		`fix: did you mean "aws:ec2:stop-instances"?`,
		bad + `:5:58: actions.pause.parameters.duration: "5 minutes" is not an ISO 8601 duration`,
		"the experiment template has 2 error(s)",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	_, stderr, code = run(t, "chaos", "run", bad, "--expect", "failed==0", "--stack", "x")
	if code != exitInvalid { // the template is checked first
		t.Errorf("exit %d\n%s", code, stderr)
	}
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"actions": {"w": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1S"}}}, "stopConditions": [{"source": "none"}]}`), 0o644)
	if _, stderr, code = run(t, "chaos", "run", good, "--expect", "failed==0", "--stack", "x"); code != exitUsage || !strings.Contains(stderr, `unknown measure "failed"`) {
		t.Errorf("bad --expect: exit %d\n%s", code, stderr)
	}
	if _, stderr, code = run(t, "chaos", "scenario", "az-gone", "--zone", "a", "--stack", "x"); code != exitUsage || !strings.Contains(stderr, "moat has az-power-interruption") {
		t.Errorf("unknown scenario: exit %d\n%s", code, stderr)
	}
}

// chaosTemplate writes a template into the test's directory.
func chaosTemplate(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// load is a bounded GET loop through the stack's load balancer: at most
// n requests, at most every 20 ms, until stopped.
type load struct {
	ok, failed atomic.Int64
	stop       context.CancelFunc
	wg         sync.WaitGroup
	mu         sync.Mutex
	errs       []string
}

func startLoad(url string, n int, d time.Duration) *load {
	l := &load{}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	l.stop = cancel
	l.wg.Go(func() {
		c := http.Client{Timeout: 10 * time.Second}
		for i := 0; i < n && ctx.Err() == nil; i++ {
			resp, err := c.Get(url + "/whoami")
			if err == nil {
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode != 200 {
				l.failed.Add(1)
				l.mu.Lock()
				if len(l.errs) < 10 {
					l.errs = append(l.errs, fmt.Sprintf("%s: %v %v", time.Now().Format("15:04:05.000"), err, func() any {
						if resp != nil {
							return resp.StatusCode
						}
						return nil
					}()))
				}
				l.mu.Unlock()
			} else {
				l.ok.Add(1)
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	return l
}

func (l *load) finish() (ok, failed int64, errs []string) {
	l.stop()
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load(), l.errs
}

// chaosRun runs moat chaos and decodes its -o json report.
func (s *e2eStack) chaos(timeout time.Duration, args ...string) (fis.Report, string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, moatBin, append(append([]string{"chaos"}, args...), "-f", s.file, "-o", "json")...)
	cmd.Env = append(os.Environ(), "MOAT_HOME="+s.home)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatalf("moat chaos %v: %v\n%s", args, err, stderr.String())
	}
	var r fis.Report
	if out := stdout.String(); out != "" && !strings.Contains(strings.Join(args, " "), "--dry-run") {
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			s.t.Fatalf("moat chaos %v -o json: %v\n%s\n%s", args, err, out, stderr.String())
		}
	}
	return r, stdout.String() + stderr.String(), code
}

// TestChaosExperiments runs FIS templates against the example stack: the
// dry run resolves the targets the stack has, an experiment terminates an
// instance in zone a under load and reports the recovery, and a stop
// condition halts an experiment early.
func TestChaosExperiments(t *testing.T) {
	s := newE2EStack(t, "chaos", nil)
	s.mustMoat(120*time.Second, "up", "-d", "--wait")
	testutil.Eventually(t, 60*time.Second, s.healthy(2))
	var zoneA string
	for _, i := range s.instances() {
		if strings.HasSuffix(i.Zone, "a") {
			zoneA = i.ID
		}
	}
	if zoneA == "" {
		t.Fatalf("no instance in zone a: %+v", s.instances())
	}
	terminateA := chaosTemplate(t, "terminate.json", `{
  "description": "lose the instance in zone a, then watch",
  "targets": {"zone-a": {"resourceType": "aws:ec2:instance", "resourceTags": {"moat:group": "web"},
    "filters": [{"path": "Placement.AvailabilityZone", "values": ["us-east-1a"]}, {"path": "State.Name", "values": ["running"]}],
    "selectionMode": "COUNT(1)"}},
  "actions": {
    "kill": {"actionId": "aws:ec2:terminate-instances", "targets": {"Instances": "zone-a"}},
    "watch": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT5S"}, "startAfter": ["kill"]}
  },
  "stopConditions": [{"source": "none"}],
  "roleArn": "arn:aws:iam::123456789012:role/fis"
}`)

	t.Run("dry run", func(t *testing.T) {
		s := s.with(t)
		_, out, code := s.chaos(30*time.Second, "run", terminateA, "--dry-run")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		var dr dryRun
		if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &dr); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if got := strings.Join(dr.Resolution.Selected["zone-a"], ","); got != zoneA {
			t.Errorf("zone-a resolved to %q, want %s", got, zoneA)
		}
		if len(dr.Steps) != 2 || dr.Steps[1].Name != "watch" || dr.Steps[1].Start != 0 || dr.Steps[1].Duration != 5*time.Second {
			t.Errorf("steps %+v", dr.Steps)
		}
		// Nothing was injected: the instance still runs.
		for _, i := range s.instances() {
			if i.ID == zoneA && i.State != "running" {
				t.Errorf("the dry run touched %s: %s", zoneA, i.State)
			}
		}
	})

	t.Run("terminate in zone a under load, report and recovery", func(t *testing.T) {
		s := s.with(t)
		l := startLoad(s.web, 6000, 150*time.Second)
		r, out, code := s.chaos(200*time.Second, "run", terminateA, "--expect", "recovery<120s", "--expect", "state==completed")
		ok, failed, errs := l.finish()
		t.Logf("load: %d ok, %d failed %v\n%s", ok, failed, errs, out)
		if code != 0 || r.Experiment.State != fis.StateCompleted || !r.Pass {
			t.Fatalf("exit %d, state %s, pass %v", code, r.Experiment.State, r.Pass)
		}
		if !r.CapacityLost || r.Recovery == nil || *r.Recovery <= 0 {
			t.Errorf("capacity lost %v, recovery %v: the group lost an instance", r.CapacityLost, r.RecoveryText)
		}
		if failed != 0 {
			t.Errorf("%d GETs failed through the load balancer: %v", failed, errs)
		}
		terminated := false
		for _, e := range r.Timeline {
			if strings.Contains(e.Message, zoneA) && strings.Contains(strings.ToLower(e.Message), "terminat") {
				terminated = true
			}
		}
		if !terminated {
			t.Errorf("the timeline does not show %s terminated: %+v", zoneA, r.Timeline)
		}
		testutil.Eventually(t, 60*time.Second, s.healthy(2))
	})

	t.Run("a stop condition halts the experiment", func(t *testing.T) {
		s := s.with(t)
		tpl := chaosTemplate(t, "stop.json", `{
  "targets": {"one": {"resourceType": "aws:ec2:instance", "resourceTags": {"moat:group": "web"},
    "filters": [{"path": "State.Name", "values": ["running"]}], "selectionMode": "COUNT(1)"}},
  "actions": {
    "kill": {"actionId": "aws:ec2:terminate-instances", "targets": {"Instances": "one"}},
    "long-wait": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT10M"}, "startAfter": ["kill"]}
  },
  "stopConditions": [{"source": "aws:cloudwatch:alarm", "value": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-down"}]
}`)
		t0 := time.Now()
		r, out, code := s.chaos(120*time.Second, "run", tpl, "--alarm", "web-down=healthy-hosts(web) < 2")
		if code != exitFailure || r.Experiment.State != fis.StateStopped || !strings.Contains(r.Experiment.Reason, "healthy-hosts(web) < 2") {
			t.Fatalf("exit %d, state %s (%s)\n%s", code, r.Experiment.State, r.Experiment.Reason, out)
		}
		if d := time.Since(t0); d > 90*time.Second {
			t.Errorf("stopped after %v; the wait was 10 minutes, the alarm should trip within seconds", d)
		}
		for _, a := range r.Experiment.Actions {
			if a.Name == "long-wait" && a.State != fis.ActionCancelled {
				t.Errorf("long-wait %s", a.State)
			}
		}
		testutil.Eventually(t, 60*time.Second, s.healthy(2))
	})
}

// TestExperimentsInStackFile: moat validate reports the problems of the
// stack file's experiment templates where they are; moat template renders
// them (and --experiment) as AWS::FIS::ExperimentTemplate, valid offline.
func TestExperimentsInStackFile(t *testing.T) {
	good := `{"targets": {"web": {"resourceType": "aws:ec2:instance", "resourceTags": {"moat:group": "web"},
  "filters": [{"path": "Placement.AvailabilityZone", "values": ["a"]}], "selectionMode": "COUNT(1)"}},
 "actions": {"stop": {"actionId": "aws:ec2:stop-instances", "parameters": {"startInstancesAfterDuration": "PT2M"}, "targets": {"Instances": "web"}}},
 "stopConditions": [{"source": "none"}]}`
	path := copyExample(t, "\nlocal:\n", "\nexperiments:\n  - name: stop-one\n    template: stop-one.json\n\nlocal:\n")
	dir := filepath.Dir(path)
	os.WriteFile(filepath.Join(dir, "stop-one.json"), []byte(strings.Replace(good, "PT2M", "2m", 1)), 0o644)
	_, stderr, code := run(t, "validate", "-f", path)
	if code != exitInvalid || !strings.Contains(stderr, filepath.Join(dir, "stop-one.json")+`:3:76: actions.stop.parameters.startInstancesAfterDuration: "2m" is not an ISO 8601 duration`) {
		t.Errorf("validate: exit %d\n%s", code, stderr)
	}
	os.WriteFile(filepath.Join(dir, "stop-one.json"), []byte(good), 0o644)
	if _, stderr, code := run(t, "validate", "-f", path); code != exitOK || strings.Contains(stderr, "roleArn") {
		t.Errorf("validate a good one: exit %d\n%s", code, stderr)
	}
	extra := filepath.Join(t.TempDir(), "wait-a-bit.json")
	os.WriteFile(extra, []byte(`{"actions": {"w": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1M"}}}, "stopConditions": [{"source": "none"}]}`), 0o644)
	out, stderr, code := run(t, "template", "-f", path, "-o", "json", "--experiment", extra)
	if code != exitOK {
		t.Fatalf("template: exit %d\n%s", code, stderr)
	}
	var tpl struct {
		Resources map[string]struct {
			Type       string
			Properties map[string]any
		}
	}
	if err := json.Unmarshal([]byte(out), &tpl); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ExperimentStopOne", "ExperimentWaitABit"} {
		if tpl.Resources[id].Type != "AWS::FIS::ExperimentTemplate" {
			t.Errorf("%s: %+v", id, tpl.Resources[id])
		}
	}
	if tpl.Resources["FISExperimentRole"].Type != "AWS::IAM::Role" {
		t.Errorf("no FIS role")
	}
	if _, stderr, code := run(t, "template", "-f", path, "--validate", "--experiment", extra); code != exitOK {
		t.Errorf("template --validate: exit %d\n%s", code, stderr)
	}
}
