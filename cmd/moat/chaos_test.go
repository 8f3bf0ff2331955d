//go:build linux && !portable

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/client"
	"github.com/moat-dev/moat/internal/fis"
	"github.com/moat-dev/moat/internal/testutil"
	"github.com/moat-dev/moat/internal/vpc"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
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

// chaos runs moat chaos (args: its subcommand, then the rest) through
// moatSplit and decodes its -o json report.
func (s *e2eStack) chaos(timeout time.Duration, args ...string) (fis.Report, string, int) {
	s.t.Helper()
	stdout, stderr, code := s.moatSplit(timeout, 2, append(append([]string{"chaos"}, args...), "-o", "json")...)
	var r fis.Report
	if stdout != "" && !slices.Contains(args, "--dry-run") {
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			s.t.Fatalf("moat chaos %v -o json: %v\n%s\n%s", args, err, stdout, stderr)
		}
	}
	return r, stdout + stderr, code
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
		// For humans: the targets, the schedule, the stop conditions.
		stdout, stderr, code := s.moatSplit(30*time.Second, 2, "chaos", "run", terminateA, "--dry-run")
		for _, want := range []string{"zone-a", "COUNT(1)", zoneA, "aws:fis:wait", "planned length: 5s", "dry run: nothing injected"} {
			if code != 0 || !strings.Contains(stdout+stderr, want) {
				t.Errorf("dry run text lacks %q (exit %d):\n%s%s", want, code, stdout, stderr)
			}
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

// injected counts what faults leave in the kernel and the process table:
// the stack's namespaces, the qdiscs in them (this kernel has no netem:
// latency and loss are nftables tables and a queue), moat's fault tables
// and the lines of their nftables rule sets, and stopped (frozen)
// processes of the stack: those in a network namespace the stack has had
// (other packages' tests, running at the same time, freeze their own).
type injected struct{ namespaces, qdiscs, faultTables, nftLines, frozen int }

// stackNetns remembers, per stack, the inodes of every network namespace
// countInjected saw it have, so that a frozen process still counts once
// its namespace's name is gone.
var stackNetns = struct {
	sync.Mutex
	inodes map[string]map[uint64]bool
}{inodes: map[string]map[uint64]bool{}}

func countInjected(t *testing.T, stack string) injected {
	t.Helper()
	var c injected
	stackNetns.Lock()
	defer stackNetns.Unlock()
	seen := stackNetns.inodes[stack]
	if seen == nil {
		seen = map[uint64]bool{}
		stackNetns.inodes[stack] = seen
	}
	for _, ns := range stackNamespaces(stack) {
		c.namespaces++
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(vpc.NetnsDir, ns), &st); err == nil {
			seen[st.Ino] = true
		}
		tables, err := vpc.FaultTables(filepath.Join(vpc.NetnsDir, ns))
		if err != nil {
			t.Fatal(err)
		}
		c.faultTables += len(tables)
		c.qdiscs += qdiscs(t, filepath.Join(vpc.NetnsDir, ns))
		out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "ruleset").Output()
		if err != nil {
			t.Fatalf("nft list ruleset in %s: %v", ns, err)
		}
		c.nftLines += strings.Count(string(out), "\n")
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) != nil || !seen[st.Ino] {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) S ...: the state follows the last ')'.
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'T' {
			c.frozen++
		}
	}
	return c
}

// qdiscs counts the qdiscs of every link in the namespace at path.
func qdiscs(t *testing.T, path string) int {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	qs, err := h.QdiscList(nil)
	if err != nil {
		t.Fatalf("qdiscs in %s: %v", path, err)
	}
	return len(qs)
}

// chaosOnceInjected starts moat chaos on a template that freezes an
// instance and adds a fault table, and returns once both are in place.
func (s *e2eStack) chaosOnceInjected(t *testing.T, tpl string, before injected, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := s.command(context.Background(), 2, append([]string{"chaos", "run", tpl}, args...)...)
	stdout := &strings.Builder{}
	cmd.Stdout = stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	perr := testutil.Poll(30*time.Second, func() error {
		if c := countInjected(t, s.name); c.frozen > before.frozen && c.faultTables > before.faultTables {
			return nil
		}
		return errors.New("faults not in place")
	})
	if perr != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(perr)
	}
	return cmd, stdout
}

// killChaosOnceInjected kills moat chaos with SIGKILL (it undoes nothing)
// once its faults are in place.
func (s *e2eStack) killChaosOnceInjected(t *testing.T, tpl string, before injected) {
	t.Helper()
	cmd, _ := s.chaosOnceInjected(t, tpl, before)
	cmd.Process.Kill()
	cmd.Wait()
}

// stackClient is a client of the e2e stack's control API.
func (s *e2eStack) client() *client.Client {
	return client.New(filepath.Join(s.home, s.name, "moat.sock"))
}

// TestChaosFaults runs experiments that inject faults into the example
// stack: FIS's AZ power interruption of zone a under load (served and
// failed requests, recovery), 200 ms of network latency on one instance
// seen in its target's p50 and gone after, moat chaos killed with faults in place (the
// daemon ends them with their durations), and a stop condition halting
// an experiment with everything rolled back.
func TestChaosFaults(t *testing.T) {
	s := newE2EStack(t, "fault", nil)
	s.mustMoat(120*time.Second, "up", "-d", "--wait")
	testutil.Eventually(t, 60*time.Second, s.healthy(2))
	clean := countInjected(t, s.name)
	t.Logf("before: %+v", clean)

	t.Run("az power interruption of zone a", func(t *testing.T) {
		s := s.with(t)
		l := startLoad(s.web, 20000, 240*time.Second)
		// Recovery: the group's grace period (30 s from launch) before it
		// replaces the stopped instance, plus one launch in zone b and
		// its health checks.
		r, out, code := s.chaos(300*time.Second, "scenario", "az-power-interruption", "--zone", "a", "--time-scale", "60",
			"--expect", "failed-requests==0", "--expect", "recovery<50s", "--recovery-timeout", "2m")
		ok, failed, errs := l.finish()
		t.Logf("exit %d; load: %d ok, %d failed %v\n%s", code, ok, failed, errs, out)
		if r.Experiment.State != fis.StateCompleted {
			t.Fatalf("experiment %s: %s", r.Experiment.State, r.Experiment.Reason)
		}
		if len(r.LoadBalancers) != 1 || r.LoadBalancers[0].Requests < 100 {
			t.Errorf("load balancers %+v, want web's requests counted", r.LoadBalancers)
		}
		if !r.CapacityLost || r.Recovery == nil {
			t.Errorf("capacity lost %v, recovery %s: zone a's instance stopped", r.CapacityLost, r.RecoveryText)
		}
		kinds := map[string]bool{}
		for _, e := range r.Timeline {
			if e.Component == "fis" && e.Type == "fault.start" {
				for _, k := range []string{fis.KindStop, fis.KindInsufficientCapacity, fis.KindDisruptConnectivity} {
					if strings.Contains(e.Message, k) {
						kinds[k] = true
					}
				}
			}
		}
		if len(kinds) != 3 {
			t.Errorf("the timeline shows faults %v started, want the three of the scenario", kinds)
		}
		// Capacity is restored in the other zone while zone a has none.
		inB := false
		for _, e := range r.Timeline {
			if e.Type == "instance.running" && strings.Contains(e.Message, "in private-b") && e.Offset < 30*time.Second {
				inB = true
			}
		}
		if !inB {
			t.Errorf("no instance launched in zone b during the interruption")
		}
		// The goal is 0 failed GETs. A stopped instance's target is unused
		// at once (Target.InvalidState), so no request is sent to it after
		// the stop; only the one GET of this sequential load that the
		// instance may be answering at the instant it stops can fail, as
		// on a powered-off instance.
		if failed > 1 {
			t.Errorf("%d of %d GETs failed through the load balancer: %v", failed, ok+failed, errs)
		} else if failed > 0 {
			t.Logf("goal of 0 failed GETs missed: %d of %d failed (in flight on the instance when it stopped): %v", failed, ok+failed, errs)
		}
		if code != 0 || !r.Pass {
			t.Errorf("exit %d, hypotheses %+v", code, r.Hypotheses)
		}
		testutil.Eventually(t, 90*time.Second, s.healthy(2))
		if got := countInjected(t, s.name); got != clean {
			t.Errorf("after the experiment: %+v, before: %+v", got, clean)
		}
	})

	t.Run("200 ms of latency on one instance", func(t *testing.T) {
		s := s.with(t)
		testutil.Eventually(t, 90*time.Second, s.healthy(2))
		tpl := chaosTemplate(t, "latency.json", `{
  "targets": {"one": {"resourceType": "aws:ec2:instance", "resourceTags": {"moat:group": "web"},
    "filters": [{"path": "State.Name", "values": ["running"]}], "selectionMode": "COUNT(1)"}},
  "actions": {"latency": {"actionId": "aws:ssm:send-command", "targets": {"Instances": "one"},
    "parameters": {"documentArn": "arn:aws:ssm:us-east-1::document/AWSFIS-Run-Network-Latency",
      "documentParameters": "{\"DurationSeconds\": \"12\", \"DelayMilliseconds\": \"200\", \"JitterMilliseconds\": \"0\"}", "duration": "PT1M"}}},
  "stopConditions": [{"source": "none"}]
}`)
		l := startLoad(s.web, 5000, 60*time.Second)
		r, out, code := s.chaos(90*time.Second, "run", tpl)
		time.Sleep(6 * time.Second) // seconds of load after the fault
		ok, failed, _ := l.finish()
		if code != 0 || len(r.Experiment.Actions) != 1 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		a := r.Experiment.Actions[0]
		if len(a.Targets) != 1 {
			t.Fatalf("targets %v", a.Targets)
		}
		m, err := s.client().Metrics(context.Background(), r.Experiment.Start.Add(-5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var during, after []float64
		for _, smp := range m.Samples {
			for _, lb := range smp.LoadBalancers {
				for _, tg := range lb.Targets {
					if tg.ID != a.Targets[0] || tg.RequestCount == 0 {
						continue
					}
					switch {
					case smp.Time.After(a.Started.Add(1500*time.Millisecond)) && smp.Time.Before(a.Ended.Add(-time.Second)):
						during = append(during, tg.P50)
					case smp.Time.After(a.Ended.Add(1500 * time.Millisecond)):
						after = append(after, tg.P50)
					}
				}
			}
		}
		t.Logf("load %d ok %d failed; %s p50 during %v, after %v", ok, failed, a.Targets[0], during, after)
		if len(during) < 5 || len(after) < 2 {
			t.Fatalf("too few seconds with requests to the target: %d during, %d after", len(during), len(after))
		}
		for _, p := range during {
			if p < 0.19 {
				t.Errorf("p50 %v s during the latency fault, want >= 0.2 s", p)
			}
		}
		for _, p := range after {
			if p > 0.1 {
				t.Errorf("p50 %v s after the fault ended, want it gone", p)
			}
		}
		if got := countInjected(t, s.name); got != clean {
			t.Errorf("after the experiment: %+v, before: %+v", got, clean)
		}
	})

	t.Run("kill -9 of moat chaos: the faults end with their durations", func(t *testing.T) {
		s := s.with(t)
		testutil.Eventually(t, 90*time.Second, s.healthy(2))
		before := countInjected(t, s.name)
		tpl := chaosTemplate(t, "killed.json", `{
  "targets": {"one": {"resourceType": "aws:ec2:instance", "resourceTags": {"moat:group": "web"}, "selectionMode": "COUNT(1)"},
    "private-a": {"resourceType": "aws:ec2:subnet", "resourceArns": ["arn:aws:ec2:us-east-1:123456789012:subnet/private-a"], "selectionMode": "ALL"}},
  "actions": {
    "freeze": {"actionId": "aws:ec2:stop-instances", "targets": {"Instances": "one"}, "parameters": {"startInstancesAfterDuration": "PT6S"}},
    "cut-off": {"actionId": "aws:network:disrupt-connectivity", "targets": {"Subnets": "private-a"},
      "parameters": {"duration": "PT6S", "scope": "availability-zone"}},
    "then": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1M"}, "startAfter": ["freeze"]}
  },
  "stopConditions": [{"source": "none"}]
}`)
		s.killChaosOnceInjected(t, tpl, before)
		killed := time.Now()
		testutil.Eventually(t, 20*time.Second, func() error {
			if c := countInjected(t, s.name); c != before {
				return fmt.Errorf("%+v, before %+v", c, before)
			}
			return nil
		})
		t.Logf("the daemon undid the faults %v after moat chaos was killed", time.Since(killed).Round(100*time.Millisecond))
	})

	t.Run("Ctrl-C rolls everything back", func(t *testing.T) {
		s := s.with(t)
		testutil.Eventually(t, 90*time.Second, s.healthy(2))
		before := countInjected(t, s.name)
		tpl := chaosTemplate(t, "interrupted.json", `{
  "targets": {"one": {"resourceType": "aws:ec2:instance", "resourceTags": {"moat:group": "web"}, "selectionMode": "COUNT(1)"},
    "private-b": {"resourceType": "aws:ec2:subnet", "resourceArns": ["arn:aws:ec2:us-east-1:123456789012:subnet/private-b"], "selectionMode": "ALL"}},
  "actions": {
    "freeze": {"actionId": "aws:ec2:stop-instances", "targets": {"Instances": "one"}, "parameters": {"startInstancesAfterDuration": "PT10M"}},
    "cut-off": {"actionId": "aws:network:disrupt-connectivity", "targets": {"Subnets": "private-b"}, "parameters": {"duration": "PT10M", "scope": "availability-zone"}}
  },
  "stopConditions": [{"source": "none"}]
}`)
		cmd, stdout := s.chaosOnceInjected(t, tpl, before, "-o", "json")
		cmd.Process.Signal(os.Interrupt)
		err := cmd.Wait()
		var r fis.Report
		if jerr := json.Unmarshal([]byte(stdout.String()), &r); jerr != nil {
			t.Fatalf("report: %v\n%s", jerr, stdout.String())
		}
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitFailure || r.Experiment.State != fis.StateCancelled || len(r.Experiment.RolledBack) != 2 {
			t.Errorf("exit %v, state %s, rolled back %v", err, r.Experiment.State, r.Experiment.RolledBack)
		}
		// Undone before moat chaos exited.
		if c := countInjected(t, s.name); c.frozen != before.frozen || c.faultTables != before.faultTables || c.nftLines != before.nftLines {
			t.Errorf("after Ctrl-C: %+v, before: %+v", c, before)
		}
	})

	t.Run("a stop condition rolls everything back", func(t *testing.T) {
		s := s.with(t)
		testutil.Eventually(t, 90*time.Second, s.healthy(2))
		before := countInjected(t, s.name)
		// Everything starts at once. The group replaces the frozen
		// instances at once (their EC2 status is stopped), and the
		// alarm trips while the replacements pass their health checks.
		tpl := chaosTemplate(t, "rollback.json", `{
  "targets": {
    "one": {"resourceType": "aws:ec2:instance", "resourceTags": {"moat:group": "web"}, "selectionMode": "ALL",
      "filters": [{"path": "State.Name", "values": ["running"]}]},
    "private-a": {"resourceType": "aws:ec2:subnet", "resourceArns": ["arn:aws:ec2:us-east-1:123456789012:subnet/private-a"], "selectionMode": "ALL"}
  },
  "actions": {
    "cut-off": {"actionId": "aws:network:disrupt-connectivity", "targets": {"Subnets": "private-a"},
      "parameters": {"duration": "PT10M", "scope": "availability-zone"}},
    "freeze": {"actionId": "aws:ec2:stop-instances", "targets": {"Instances": "one"},
      "parameters": {"startInstancesAfterDuration": "PT10M"}},
    "hold": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT10M"}}
  },
  "stopConditions": [{"source": "aws:cloudwatch:alarm", "value": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:healthy-hosts(web) < 2 for 2s"}]
}`)
		ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
		defer cancel()
		cmd := s.command(ctx, 2, "chaos", "run", tpl, "-o", "json")
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// While it runs: more nftables rules, frozen processes.
		var during injected
		perr := testutil.Poll(60*time.Second, func() error {
			during = countInjected(t, s.name)
			if during.faultTables > before.faultTables && during.nftLines > before.nftLines && during.frozen > before.frozen {
				return nil
			}
			return fmt.Errorf("during: %+v, before: %+v", during, before)
		})
		err := cmd.Wait()
		t.Logf("during: %+v\n%s", during, stderr.String())
		if perr != nil {
			t.Errorf("the faults were never all in place: %v", perr)
		}
		var r fis.Report
		if jerr := json.Unmarshal([]byte(stdout.String()), &r); jerr != nil {
			t.Fatalf("report: %v\n%s", jerr, stdout.String())
		}
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitFailure {
			t.Errorf("exit %v, want %d", err, exitFailure)
		}
		if r.Experiment.State != fis.StateStopped || !strings.Contains(r.Experiment.Reason, "healthy-hosts(web) < 2") {
			t.Errorf("state %s: %s", r.Experiment.State, r.Experiment.Reason)
		}
		if len(r.Experiment.RolledBack) != 2 {
			t.Errorf("rolled back %v, want the 2 faults", r.Experiment.RolledBack)
		}
		if d := r.Experiment.End.Sub(r.Experiment.Start); d > 60*time.Second {
			t.Errorf("stopped after %v of a 10-minute experiment", d)
		}
		// Nothing injected is left; the group replaces what it took out
		// (a namespace more or less while it does).
		testutil.Eventually(t, 90*time.Second, func() error {
			if after := countInjected(t, s.name); after != before {
				return fmt.Errorf("after the stop: %+v, before: %+v", after, before)
			}
			return nil
		})
		fs, err := s.client().ListFaults(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if f.State == "active" {
				t.Errorf("fault %s (%s) still active", f.ID, f.Kind)
			}
		}
		testutil.Eventually(t, 90*time.Second, s.healthy(2))
	})

	t.Run("a 5xx-ratio stop condition over the load balancer's metrics", func(t *testing.T) {
		s := s.with(t)
		testutil.Eventually(t, 90*time.Second, s.healthy(2))
		// The app dies on every instance (AWSFIS-Run-Kill-Process): the
		// load balancer answers 502 until the group has replaced them.
		tpl := chaosTemplate(t, "5xx.json", `{
  "targets": {"all": {"resourceType": "aws:ec2:instance", "resourceTags": {"moat:group": "web"}, "selectionMode": "ALL"}},
  "actions": {
    "kill-app": {"actionId": "aws:ssm:send-command", "targets": {"Instances": "all"},
      "parameters": {"documentArn": "arn:aws:ssm:us-east-1::document/AWSFIS-Run-Kill-Process",
        "documentParameters": "{\"ProcessName\": \"python3\", \"Signal\": \"SIGKILL\"}", "duration": "PT1M"}},
    "watch": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT5M"}, "startAfter": ["kill-app"]}
  },
  "stopConditions": [{"source": "aws:cloudwatch:alarm", "value": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-5xx"}]
}`)
		l := startLoad(s.web, 5000, 90*time.Second)
		r, out, code := s.chaos(120*time.Second, "run", tpl, "--alarm", "web-5xx=5xx-ratio(web) > 0.5 for 3s")
		ok, failed, _ := l.finish()
		t.Logf("load %d ok, %d failed", ok, failed)
		if code != exitFailure || r.Experiment.State != fis.StateStopped || !strings.Contains(r.Experiment.Reason, "5xx-ratio(web) > 0.5") {
			t.Fatalf("exit %d, state %s (%s)\n%s", code, r.Experiment.State, r.Experiment.Reason, out)
		}
		if d := r.Experiment.End.Sub(r.Experiment.Start); d > 60*time.Second {
			t.Errorf("stopped after %v", d)
		}
		if len(r.LoadBalancers) != 1 || r.LoadBalancers[0].Failed == 0 {
			t.Errorf("load balancers %+v: the 5xx are not in the report", r.LoadBalancers)
		}
		testutil.Eventually(t, 90*time.Second, s.healthy(2))
	})

	t.Run("kill -9 of moat chaos, then moat down: nothing left", func(t *testing.T) {
		s := s.with(t)
		testutil.Eventually(t, 90*time.Second, s.healthy(2))
		before := countInjected(t, s.name)
		tpl := chaosTemplate(t, "down.json", `{
  "targets": {"one": {"resourceType": "aws:ec2:instance", "resourceTags": {"moat:group": "web"}, "selectionMode": "COUNT(1)"},
    "private-b": {"resourceType": "aws:ec2:subnet", "resourceArns": ["arn:aws:ec2:us-east-1:123456789012:subnet/private-b"], "selectionMode": "ALL"}},
  "actions": {
    "freeze": {"actionId": "aws:ec2:stop-instances", "targets": {"Instances": "one"}, "parameters": {"startInstancesAfterDuration": "PT10M"}},
    "cut-off": {"actionId": "aws:network:disrupt-connectivity", "targets": {"Subnets": "private-b"}, "parameters": {"duration": "PT10M"}}
  },
  "stopConditions": [{"source": "none"}]
}`)
		s.killChaosOnceInjected(t, tpl, before)
		s.mustMoat(90*time.Second, "down")
		assertNoLeftovers(t, s.name)
		if c := countInjected(t, s.name); c.frozen != before.frozen {
			t.Errorf("frozen processes after moat down: %d, before: %d", c.frozen, before.frozen)
		}
	})
}
