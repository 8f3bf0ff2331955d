package fis

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/events"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"PT30M", 30 * time.Minute, ""}, {"PT1H30M", 90 * time.Minute, ""}, {"PT90S", 90 * time.Second, ""},
		{"PT0.5S", 500 * time.Millisecond, ""}, {"P1D", 24 * time.Hour, ""}, {"P1DT2H", 26 * time.Hour, ""},
		{"pt2m", 2 * time.Minute, ""}, {"PT1,5S", 1500 * time.Millisecond, ""},
		{"30m", 0, "not an ISO 8601 duration"}, {"P", 0, "not an ISO 8601"}, {"PT", 0, "not an ISO 8601"},
		{"P5M", 0, "years, months and weeks"}, {"P1H", 0, "come after T"}, {"PT5M3H", 0, "out of place"},
		{"PTM", 0, "not an ISO 8601"}, {"P1W", 0, "years, months and weeks"},
	} {
		got, err := ParseDuration(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseDuration(%q) = %v, %v; want error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if back, err := ParseDuration(FormatDuration(got)); err != nil || back != got {
			t.Errorf("FormatDuration(%v) = %q does not read back (%v, %v)", got, FormatDuration(got), back, err)
		}
	}
}

func TestParseSelectionMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind string
		n    int
		ok   bool
	}{
		{"ALL", "ALL", 0, true}, {"COUNT(1)", "COUNT", 1, true}, {"PERCENT(25)", "PERCENT", 25, true},
		{"COUNT(0)", "", 0, false}, {"PERCENT(101)", "", 0, false}, {"all", "", 0, false}, {"COUNT(x)", "", 0, false},
		{"PERCENT(100)", "PERCENT", 100, true},
	} {
		kind, n, err := ParseSelectionMode(tc.in)
		if (err == nil) != tc.ok || kind != tc.kind || n != tc.n {
			t.Errorf("ParseSelectionMode(%q) = %q, %d, %v", tc.in, kind, n, err)
		}
	}
}

// good is a valid template touching every action moat runs.
const good = `{
  "description": "zone a loses power",
  "roleArn": "arn:aws:iam::123456789012:role/fis",
  "targets": {
    "zone-a-instances": {
      "resourceType": "aws:ec2:instance",
      "resourceTags": {"moat:group": "web"},
      "filters": [{"path": "Placement.AvailabilityZone", "values": ["us-east-1a"]},
                  {"path": "State.Name", "values": ["running"]}],
      "selectionMode": "ALL"
    },
    "one": {"resourceType": "aws:ec2:instance", "resourceArns": ["arn:aws:ec2:us-east-1:123456789012:instance/i-b1"], "selectionMode": "COUNT(1)"},
    "subnets-a": {"resourceType": "aws:ec2:subnet", "resourceTags": {"aws:cloudformation:stack-name": "realtime"},
      "filters": [{"path": "AvailabilityZone", "values": ["a"]}], "selectionMode": "ALL"},
    "groups": {"resourceType": "aws:ec2:autoscaling-group", "resourceTags": {"moat:group": "web"}, "selectionMode": "ALL"}
  },
  "actions": {
    "Stop-Instances": {"actionId": "aws:ec2:stop-instances", "parameters": {"startInstancesAfterDuration": "PT30M"},
      "targets": {"Instances": "zone-a-instances"}},
    "Pause-ASG": {"actionId": "aws:ec2:asg-insufficient-instance-capacity-error",
      "parameters": {"duration": "PT30M", "availabilityZoneIdentifiers": "us-east-1a", "percentage": "100"},
      "targets": {"AutoScalingGroups": "groups"}},
    "Pause-Network": {"actionId": "aws:network:disrupt-connectivity", "parameters": {"duration": "PT2M", "scope": "availability-zone"},
      "targets": {"Subnets": "subnets-a"}},
    "Wait": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1M"}, "startAfter": ["Pause-Network"]},
    "Latency": {"actionId": "aws:ssm:send-command", "startAfter": ["Wait"],
      "parameters": {"documentArn": "arn:aws:ssm:us-east-1::document/AWSFIS-Run-Network-Latency",
        "documentParameters": "{\"DurationSeconds\": \"60\", \"DelayMilliseconds\": \"200\"}", "duration": "PT2M"},
      "targets": {"Instances": "one"}},
    "Kill": {"actionId": "aws:ec2:terminate-instances", "targets": {"Instances": "one"}, "startAfter": ["Latency", "Wait"]}
  },
  "stopConditions": [{"source": "aws:cloudwatch:alarm", "value": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:healthy-hosts(web) < 1 for 5s"}],
  "experimentOptions": {"emptyTargetResolutionMode": "fail", "accountTargeting": "single-account"}
}`

func mustParse(t *testing.T, src string) *File {
	t.Helper()
	f, err := Parse("t.json", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return f
}

func TestValidateGood(t *testing.T) {
	f := mustParse(t, good)
	if ps := Validate(f); len(ps) > 0 {
		t.Fatalf("problems in a good template:\n%v", ps)
	}
	if got := strings.Join(f.ActionNames(), ","); got != "Stop-Instances,Pause-ASG,Pause-Network,Wait,Latency,Kill" {
		t.Errorf("actions in file order = %s", got)
	}
}

// edit replaces old by new in the good template (once; it must be there).
func edit(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(good, old) {
		t.Fatalf("test bug: %q not in the template", old)
	}
	return strings.Replace(good, old, new, 1)
}

func TestValidateErrors(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string
		path, msg      string // the problem expected: its path, part of its message
		hint           string // part of its fix
		line           int
	}{
		{"unknown action", `"aws:fis:wait"`, `"aws:fis:wiat"`, "actions.Wait.actionId", "not an AWS FIS action", `did you mean "aws:fis:wait"`, 25},
		{"action moat does not run", `"aws:fis:wait"`, `"aws:rds:failover-db-cluster"`, "actions.Wait.actionId", "does not run locally", "moat runs", 25},
		{"bad duration", `"PT2M", "scope"`, `"2 minutes", "scope"`, "actions.Pause-Network.parameters.duration", "not an ISO 8601 duration", "PT5M", 23},
		{"missing duration", `"parameters": {"duration": "PT1M"}`, `"parameters": {}`, "actions.Wait.parameters", "needs duration", `add "duration"`, 25},
		{"unknown parameter", `"percentage": "100"`, `"percentag": "100"`, "actions.Pause-ASG.parameters.percentag", "unknown parameter", `did you mean "percentage"`, 21},
		{"percentage out of range", `"percentage": "100"`, `"percentage": "150"`, "actions.Pause-ASG.parameters.percentage", "outside 1-100", "1 to 100", 21},
		{"bad scope", `"availability-zone"`, `"prefix-list"`, "actions.Pause-Network.parameters.scope", "does not run locally", "availability-zone", 23},
		{"unknown target", `{"Subnets": "subnets-a"}`, `{"Subnets": "subnet-a"}`, "actions.Pause-Network.targets.Subnets", `no target named "subnet-a"`, `did you mean "subnets-a"`, 24},
		{"wrong target key", `{"Subnets": "subnets-a"}`, `{"Instances": "subnets-a"}`, "actions.Pause-Network.targets.Instances", `does not take targets "Instances"`, "target key is Subnets", 24},
		{"wrong resource type", `"targets": {"Instances": "zone-a-instances"}`, `"targets": {"Instances": "groups"}`, "actions.Stop-Instances.targets.Instances", "acts on aws:ec2:instance", "resourceType aws:ec2:instance", 19},
		{"unknown startAfter", `"startAfter": ["Pause-Network"]`, `"startAfter": ["Pause-Netwrk"]`, "actions.Wait.startAfter[0]", `no action named "Pause-Netwrk"`, `did you mean "Pause-Network"`, 25},
		{"loop", `"startAfter": ["Pause-Network"]`, `"startAfter": ["Kill"]`, "actions.Wait.startAfter", "loop: Wait -> Kill -> Latency -> Wait", "remove one", 25},
		{"selection mode", `"COUNT(1)"`, `"COUNT(one)"`, "targets.one.selectionMode", `not ALL, COUNT(n) or PERCENT(n)`, "COUNT(n)", 12},
		{"filter path", `"path": "State.Name"`, `"path": "State.name"`, "targets.zone-a-instances.filters[1].path", `does not filter aws:ec2:instance by "State.name"`, `did you mean "State.Name"`, 9},
		{"resource type", `"aws:ec2:autoscaling-group"`, `"aws:ec2:autoscalinggroup"`, "targets.groups.resourceType", "does not target", `did you mean "aws:ec2:autoscaling-group"`, 15},
		{"arns and tags", `"resourceArns": [`, `"resourceTags": {"a": "b"}, "resourceArns": [`, "targets.one.resourceArns", "not both", "keep one", 12},
		{"arn type", `instance/i-b1`, `subnet/private-a`, "targets.one.resourceArns[0]", "is an ARN of aws:ec2:subnet", "only resources", 12},
		{"no stop conditions", `"stopConditions": [{"source": "aws:cloudwatch:alarm", "value": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:healthy-hosts(web) < 1 for 5s"}]`, `"stopConditions": []`, "stopConditions", "requires at least one", `"source": "none"`, 32},
		{"stop condition source", `"source": "aws:cloudwatch:alarm"`, `"source": "nONE"`, "stopConditions[0].source", "not a stop condition source", `did you mean "none"`, 32},
		{"empty mode", `"emptyTargetResolutionMode": "fail"`, `"emptyTargetResolutionMode": "ignore"`, "experimentOptions.emptyTargetResolutionMode", "not an empty target resolution mode", `"skip"`, 33},
		{"document", `AWSFIS-Run-Network-Latency`, `AWSFIS-Run-Disk-Fill`, "actions.Latency.parameters.documentArn", "not one moat runs", "AWSFIS-Run-CPU-Stress", 27},
		{"document parameter", `\"DelayMilliseconds\"`, `\"DelayMiliseconds\"`, "actions.Latency.parameters.documentParameters.DelayMiliseconds", "unknown parameter of document", `did you mean "DelayMilliseconds"`, 28},
		{"document parameters json", `"{\"DurationSeconds\": \"60\", `, `"{\"DurationSeconds\": 60, oops `, "actions.Latency.parameters.documentParameters", "not a JSON object", "JSON object in a string", 28},
		{"unknown field", `"selectionMode": "ALL"
    },`, `"selectionMod": "ALL"
    },`, "targets.zone-a-instances.selectionMod", `unknown field "selectionMod"`, `did you mean "selectionMode"`, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := edit(t, tc.old, tc.new)
			f, err := Parse("t.json", []byte(src))
			var ps Problems
			if err != nil {
				var ok bool
				if ps, ok = err.(Problems); !ok {
					t.Fatalf("parse: %v", err)
				}
			} else {
				ps = Validate(f).Errors()
			}
			for _, p := range ps {
				if p.Path == tc.path && strings.Contains(p.Message, tc.msg) {
					if !strings.Contains(p.Hint, tc.hint) {
						t.Errorf("fix = %q, want it to contain %q", p.Hint, tc.hint)
					}
					if p.Pos.Line != tc.line || p.Pos.File != "t.json" {
						t.Errorf("position = %v, want line %d", p.Pos, tc.line)
					}
					return
				}
			}
			t.Errorf("no problem at %s with %q; got:\n%v", tc.path, tc.msg, ps)
		})
	}
}

func TestParseSyntax(t *testing.T) {
	_, err := Parse("t.json", []byte("{\n  \"actions\": {\n    \"a\": {\"actionId\": \"aws:fis:wait\",}\n  }\n}"))
	ps, ok := err.(Problems)
	if !ok || len(ps) != 1 || ps[0].Pos.Line != 3 || !strings.Contains(ps[0].Message, "invalid JSON") {
		t.Fatalf("err = %v, want one invalid JSON problem on line 3", err)
	}
	if _, err := Parse("t.json", []byte(`[1]`)); err == nil || !strings.Contains(err.Error(), "is a JSON object") {
		t.Errorf("a list: err = %v", err)
	}
	if _, err := Parse("t.json", []byte(``)); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty: err = %v", err)
	}
}

func testInventory() Inventory {
	tags := func(group string) map[string]string {
		return map[string]string{"moat:group": group, "aws:cloudformation:stack-name": "realtime", "Name": "realtime-app"}
	}
	st := map[string]string{"aws:cloudformation:stack-name": "realtime"}
	return Inventory{Region: "us-east-1", Zones: map[string]string{"a": "us-east-1a", "b": "us-east-1b", "us-east-1a": "us-east-1a", "us-east-1b": "us-east-1b"},
		Instances: []Instance{
			{ID: "i-a1", Zone: "us-east-1a", Subnet: "private-a", State: "running", Group: "web", Tags: tags("web")},
			{ID: "i-a2", Zone: "us-east-1a", Subnet: "private-a", State: "pending", Group: "web", Tags: tags("web")},
			{ID: "i-a3", Zone: "us-east-1a", Subnet: "private-a", State: "running", Group: "web", Tags: tags("web")},
			{ID: "i-b1", Zone: "us-east-1b", Subnet: "private-b", State: "running", Group: "web", Tags: tags("web")},
			{ID: "i-b2", Zone: "us-east-1b", Subnet: "private-b", State: "running", Group: "api", Tags: tags("api")},
		},
		Subnets: []Subnet{{Name: "public-a", Zone: "us-east-1a", Public: true, Tags: st}, {Name: "public-b", Zone: "us-east-1b", Public: true, Tags: st},
			{Name: "private-a", Zone: "us-east-1a", Tags: st}, {Name: "private-b", Zone: "us-east-1b", Tags: st}},
		Groups: []Group{{Name: "web", Zones: []string{"us-east-1a", "us-east-1b"}, Tags: tags("web")}, {Name: "api", Zones: []string{"us-east-1b"}, Tags: tags("api")}},
	}
}

func TestResolve(t *testing.T) {
	f := mustParse(t, good)
	res, err := Resolve(f, testInventory(), rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"zone-a-instances": "i-a1,i-a3",          // zone a, running, group web: i-a2 is pending
		"one":              "i-b1",               // by ARN
		"subnets-a":        "private-a,public-a", // zone "a" stands for us-east-1a
		"groups":           "web",
	}
	for k, w := range want {
		if got := strings.Join(res.Selected[k], ","); got != w {
			t.Errorf("target %s = %s, want %s", k, got, w)
		}
	}
	// Selection modes.
	for _, tc := range []struct {
		mode string
		n    int
	}{{"ALL", 4}, {"COUNT(1)", 1}, {"COUNT(9)", 4}, {"PERCENT(50)", 2}, {"PERCENT(30)", 1}, {"PERCENT(20)", 0}} {
		src := `{"targets": {"t": {"resourceType": "aws:ec2:instance", "resourceTags": {"aws:cloudformation:stack-name": "realtime"},
			"filters": [{"path": "State.Name", "values": ["running"]}], "selectionMode": "` + tc.mode + `"}},
			"experimentOptions": {"emptyTargetResolutionMode": "skip"},
			"actions": {"a": {"actionId": "aws:ec2:terminate-instances", "targets": {"Instances": "t"}}}, "stopConditions": [{"source": "none"}]}`
		seen := map[string]bool{}
		for seed := range uint64(20) {
			res, err := Resolve(mustParse(t, src), testInventory(), rand.New(rand.NewPCG(seed, 0)))
			if err != nil {
				t.Fatal(err)
			}
			if got := len(res.Selected["t"]); got != tc.n {
				t.Errorf("%s selected %d, want %d", tc.mode, got, tc.n)
			}
			seen[strings.Join(res.Selected["t"], ",")] = true
		}
		if tc.mode == "COUNT(1)" && len(seen) < 2 {
			t.Errorf("COUNT(1) chose the same instance with 20 seeds: %v", seen)
		}
	}
	// An empty target fails unless the mode is skip.
	src := edit(t, `"values": ["us-east-1a"]`, `"values": ["us-east-1c"]`)
	if _, err := Resolve(mustParse(t, src), testInventory(), rand.New(rand.NewPCG(1, 2))); err == nil ||
		!strings.Contains(err.Error(), "target zone-a-instances (aws:ec2:instance) resolved to no resources") {
		t.Errorf("empty target: err = %v", err)
	}
	src = strings.Replace(src, `"emptyTargetResolutionMode": "fail"`, `"emptyTargetResolutionMode": "skip"`, 1)
	f = mustParse(t, src)
	res, err = Resolve(f, testInventory(), rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := Schedule(f, res, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if (s.Name == "Stop-Instances") != (s.Skip != "") {
			t.Errorf("step %s skip = %q", s.Name, s.Skip)
		}
	}
}

func TestSchedule(t *testing.T) {
	f := mustParse(t, good)
	res, err := Resolve(f, testInventory(), rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := Schedule(f, res, 60)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		got = append(got, s.Name+"@"+s.Start.String()+"+"+s.Duration.String()+":"+s.Kind)
	}
	want := []string{
		"Stop-Instances@0s+30s:stop-instances", "Pause-ASG@0s+30s:insufficient-capacity", "Pause-Network@0s+2s:disrupt-connectivity",
		"Wait@2s+1s:wait", "Latency@3s+1s:network-latency", "Kill@4s+0s:terminate",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("schedule:\n got %v\nwant %v", got, want)
	}
	if l := Length(steps); l != 30*time.Second {
		t.Errorf("length = %v", l)
	}
	for _, s := range steps {
		switch s.Name {
		case "Latency":
			if s.Params["delayMilliseconds"] != "200" || strings.Join(s.Targets, ",") != "i-b1" {
				t.Errorf("latency step = %+v", s)
			}
		case "Pause-ASG":
			if s.Params["zones"] != "us-east-1a" || s.Params["percentage"] != "100" {
				t.Errorf("asg step = %+v", s)
			}
		case "Pause-Network":
			if s.Params["scope"] != "availability-zone" {
				t.Errorf("network step = %+v", s)
			}
		}
	}
	if _, err := Schedule(f, res, 0); err == nil {
		t.Error("time scale 0 accepted")
	}
}

func TestAlarm(t *testing.T) {
	for _, tc := range []struct {
		expr string
		err  string
	}{
		{"healthy-hosts(web) < 1", ""}, {"5xx-ratio(web) > 0.05 for 30s", ""}, {"5xx-count(web) >= 3 for PT1M", ""},
		{"cpu(web) > 1", "unknown metric"}, {"healthy-hosts web < 1", "not METRIC(NAME)"}, {"healthy-hosts(web) < 1 for ever", "not a duration"},
	} {
		_, err := ParseAlarm(tc.expr)
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseAlarm(%q) = %v, want %q", tc.expr, err, tc.err)
		}
	}
	t0 := time.Unix(1000, 0)
	a, _ := ParseAlarm("healthy-hosts(web) < 2 for 3s")
	s := &AlarmState{Alarm: a}
	for i, tc := range []struct {
		v    float64
		want bool
	}{{2, false}, {1, false}, {1, false}, {2, false}, {1, false}, {1, false}, {0, false}, {1, true}, {3, false}} {
		if got, _ := s.Observe(Observation{Time: t0.Add(time.Duration(i) * time.Second), Value: tc.v}); got != tc.want {
			t.Errorf("gauge second %d value %v: breached %v, want %v", i, tc.v, got, tc.want)
		}
	}
	a, _ = ParseAlarm("5xx-ratio(web) > 0.1 for 3s")
	s = &AlarmState{Alarm: a}
	for i, tc := range []struct {
		errs, reqs float64
		want       bool
	}{{0, 10, false}, {1, 10, false}, {2, 10, false}, {2, 10, true}, {0, 10, true}, {0, 10, false}, {0, 0, false}} {
		if got, v := s.Observe(Observation{Time: t0.Add(time.Duration(i) * time.Second), Errors: tc.errs, Requests: tc.reqs}); got != tc.want {
			t.Errorf("ratio second %d: breached %v (ratio %v), want %v", i, got, v, tc.want)
		}
	}
}

func TestScenario(t *testing.T) {
	src, err := Scenario("az-power-interruption", "realtime", "us-east-1a")
	if err != nil {
		t.Fatal(err)
	}
	f := mustParse(t, string(src))
	if ps := Validate(f).Errors(); len(ps) > 0 {
		t.Fatalf("the scenario's template is invalid:\n%v", ps)
	}
	res, err := Resolve(f, testInventory(), rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := Schedule(f, res, 60)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range steps {
		got[s.Name] = fmt.Sprintf("%s %s %v", s.Kind, strings.Join(s.Targets, ","), s.Duration)
	}
	want := map[string]string{
		"Stop-Instances":             "stop-instances i-a1,i-a3 30s",
		"Pause-ASG-Scaling":          "insufficient-capacity api,web 30s",
		"Pause-network-connectivity": "disrupt-connectivity private-a,public-a 2s",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("scenario steps = %v, want %v", got, want)
	}
	if _, err := Scenario("az-gone", "realtime", "us-east-1a"); err == nil {
		t.Error("unknown scenario accepted")
	}
	if z, err := ScenarioZone(testInventory(), "b"); err != nil || z != "us-east-1b" {
		t.Errorf("zone b = %q, %v", z, err)
	}
	if _, err := ScenarioZone(testInventory(), "c"); err == nil || !strings.Contains(err.Error(), "use one of a, b, us-east-1a") {
		t.Errorf("zone c: %v", err)
	}
}

func TestReport(t *testing.T) {
	t0 := time.Unix(1000, 0)
	sample := func(sec, healthy, desired int) CapacitySample {
		return CapacitySample{Time: t0.Add(time.Duration(sec) * time.Second), Groups: map[string][2]int{"web": {healthy, desired}, "api": {1, 1}}}
	}
	caps := []CapacitySample{sample(0, 2, 2), sample(5, 1, 2), sample(10, 0, 2), sample(30, 1, 2), sample(42, 2, 2), sample(50, 2, 2)}
	if lost, took, ok := Recovery(t0, caps); !lost || !ok || took != 42*time.Second {
		t.Errorf("Recovery = %v, %v, %v", lost, took, ok)
	}
	if lost, _, ok := Recovery(t0, caps[:4]); !lost || ok {
		t.Errorf("not recovered: %v %v", lost, ok)
	}
	if lost, took, ok := Recovery(t0, caps[:1]); lost || !ok || took != 0 {
		t.Errorf("no loss: %v %v %v", lost, took, ok)
	}
	res := Result{ID: "EXP1", State: StateCompleted, Start: t0, End: t0.Add(30 * time.Second)}
	log := []events.Event{{Time: t0.Add(-time.Minute), Component: "autoscale", Message: "before"},
		{Time: t0.Add(time.Second), Component: "fis", Type: "fault.start", Message: "fault f1 started"},
		{Time: t0.Add(40 * time.Second), Component: "autoscale", Message: "launched i-x"}}
	lbs := []LBReport{{Name: "web", Requests: 100, Served: 100}}
	r := BuildReport(res, log, lbs, nil, caps, []string{"failed-requests==0", "recovery<60s", "recovery<30s", "served-requests>=100", "state==completed"})
	var holds []bool
	for _, h := range r.Hypotheses {
		holds = append(holds, h.Holds)
	}
	if fmt.Sprint(holds) != "[true true false true true]" || r.Pass {
		t.Errorf("hypotheses %+v, pass %v", r.Hypotheses, r.Pass)
	}
	if len(r.Timeline) != 2 || r.Timeline[0].At != "+1s" {
		t.Errorf("timeline %+v", r.Timeline)
	}
	r = BuildReport(res, nil, nil, errors.New("no metrics"), caps, []string{"failed-requests==0"})
	if r.Pass || !strings.Contains(r.Hypotheses[0].Value, "unknown: no metrics") {
		t.Errorf("without metrics: %+v", r.Hypotheses)
	}
	for _, bad := range []string{"failed==0", "recovery<soon", "state<completed", "failed-requests=0"} {
		if CheckHypothesis(bad) == nil {
			t.Errorf("hypothesis %q accepted", bad)
		}
	}
	if !strings.Contains(r.Text(), "verdict: FAIL") {
		t.Errorf("text:\n%s", r.Text())
	}
}

func TestSumLoadBalancers(t *testing.T) {
	t0 := time.Unix(1000, 0)
	lb := func(name string, req, elb5, tg5 uint64) api.LBMetrics {
		return api.LBMetrics{Name: name, RequestCount: req, HTTPCode_ELB_5XX_Count: elb5, HTTPCode_Target_5XX_Count: tg5}
	}
	samples := []api.MetricsSample{
		{Time: t0, LoadBalancers: []api.LBMetrics{lb("web", 100, 0, 0)}},
		{Time: t0.Add(time.Second), LoadBalancers: []api.LBMetrics{lb("web", 10, 2, 1), lb("api", 5, 0, 0)}},
		{Time: t0.Add(2 * time.Second), LoadBalancers: []api.LBMetrics{lb("web", 10, 0, 0), lb("api", 0, 0, 0)}},
	}
	sums, last := SumLoadBalancers(samples, t0) // the first second ended at since: left out
	if want := (LBReport{Name: "web", Requests: 20, Served: 17, Failed: 3}); sums["web"] != want {
		t.Errorf("web %+v, want %+v", sums["web"], want)
	}
	if want := (LBReport{Name: "api", Requests: 5, Served: 5}); sums["api"] != want {
		t.Errorf("api %+v", sums["api"])
	}
	if !last.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("last %v", last)
	}
	if sums, last := SumLoadBalancers(samples, last); len(sums) != 0 || !last.Equal(t0.Add(2*time.Second)) {
		t.Errorf("nothing new: %v %v", sums, last)
	}
	r := LBReport{Name: "web", Requests: 1, Served: 1}
	r.Add(sums["web"])
	if want := (LBReport{Name: "web", Requests: 21, Served: 18, Failed: 3}); r != want {
		t.Errorf("add: %+v, want %+v", r, want)
	}
}
