package fault

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/api"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  api.FaultRequest
		want Spec
		err  string
	}{
		{"stop until stopped", api.FaultRequest{Kind: "stop-instances", Targets: []string{"i-1"}},
			Spec{Kind: StopInstances, Targets: []string{"i-1"}}, ""},
		{"stop with start after", api.FaultRequest{Kind: "stop-instances", Targets: []string{"i-1"}, Params: map[string]string{"startAfterSeconds": "30"}, DurationSeconds: 60},
			Spec{Kind: StopInstances, Targets: []string{"i-1"}, StartAfter: 30 * time.Second, Duration: 30 * time.Second}, ""},
		{"stop with a shorter duration", api.FaultRequest{Kind: "stop-instances", Targets: []string{"i-1"}, Params: map[string]string{"startAfterSeconds": "30"}, DurationSeconds: 10},
			Spec{Kind: StopInstances, Targets: []string{"i-1"}, StartAfter: 30 * time.Second, Duration: 10 * time.Second}, ""},
		{"reboot is one-shot", api.FaultRequest{Kind: "reboot-instances", Targets: []string{"i-1", "i-2"}, DurationSeconds: 5},
			Spec{Kind: RebootInstances, Targets: []string{"i-1", "i-2"}}, ""},
		{"disrupt default scope", api.FaultRequest{Kind: "disrupt-connectivity", Targets: []string{"private-a"}, DurationSeconds: 2.5},
			Spec{Kind: DisruptConnectivity, Targets: []string{"private-a"}, Scope: ScopeAll, Duration: 2500 * time.Millisecond}, ""},
		{"disrupt zone", api.FaultRequest{Kind: "disrupt-connectivity", Targets: []string{"private-a"}, Params: map[string]string{"scope": "availability-zone"}},
			Spec{Kind: DisruptConnectivity, Targets: []string{"private-a"}, Scope: ScopeZone}, ""},
		{"disrupt prefix-list", api.FaultRequest{Kind: "disrupt-connectivity", Targets: []string{"private-a"}, Params: map[string]string{"scope": "prefix-list"}},
			Spec{}, `fault disrupt-connectivity: params.scope "prefix-list" is not supported: give all or availability-zone`},
		{"capacity", api.FaultRequest{Kind: "insufficient-capacity", Targets: []string{"web"}, Params: map[string]string{"zones": " a, us-east-1b,a"}},
			Spec{Kind: InsufficientCapacity, Targets: []string{"web"}, Zones: []string{"a", "us-east-1b"}, Percentage: 100}, ""},
		{"capacity without zones", api.FaultRequest{Kind: "insufficient-capacity", Targets: []string{"web"}},
			Spec{}, "fault insufficient-capacity: params.zones is missing"},
		{"capacity 0 percent", api.FaultRequest{Kind: "insufficient-capacity", Targets: []string{"web"}, Params: map[string]string{"zones": "a", "percentage": "0"}},
			Spec{}, "params.percentage 0 is out of range: give a percentage from 1 to 100"},
		{"latency defaults", api.FaultRequest{Kind: "network-latency", Targets: []string{"i-1"}, DurationSeconds: 60},
			Spec{Kind: NetworkLatency, Targets: []string{"i-1"}, Delay: 200 * time.Millisecond, Jitter: 10 * time.Millisecond, Duration: time.Minute}, ""},
		{"latency not a number", api.FaultRequest{Kind: "network-latency", Targets: []string{"i-1"}, Params: map[string]string{"delayMilliseconds": "200ms"}},
			Spec{}, `fault network-latency: params.delayMilliseconds "200ms" is not a number: give milliseconds from 1 to 60000`},
		{"loss", api.FaultRequest{Kind: "packet-loss", Targets: []string{"i-1"}, Params: map[string]string{"lossPercent": "50"}},
			Spec{Kind: PacketLoss, Targets: []string{"i-1"}, LossPercent: 50}, ""},
		{"loss over 100", api.FaultRequest{Kind: "packet-loss", Targets: []string{"i-1"}, Params: map[string]string{"lossPercent": "101"}},
			Spec{}, "params.lossPercent 101 is out of range"},
		{"cpu", api.FaultRequest{Kind: "cpu-stress", Targets: []string{"i-1"}, Params: map[string]string{"cpu": "1", "loadPercent": "50"}},
			Spec{Kind: CPUStress, Targets: []string{"i-1"}, Workers: 1, LoadPercent: 50}, ""},
		{"cpu fraction", api.FaultRequest{Kind: "cpu-stress", Targets: []string{"i-1"}, Params: map[string]string{"cpu": "1.5"}},
			Spec{}, "params.cpu 1.5 is not a whole number"},
		{"memory", api.FaultRequest{Kind: "memory-stress", Targets: []string{"i-1"}, Params: map[string]string{"percent": "50"}},
			Spec{Kind: MemoryStress, Targets: []string{"i-1"}, MemoryPercent: 50}, ""},
		{"kill", api.FaultRequest{Kind: "kill-process", Targets: []string{"i-1"}, Params: map[string]string{"processName": "python3", "signal": "term"}},
			Spec{Kind: KillProcess, Targets: []string{"i-1"}, ProcessName: "python3", Signal: 15, SignalName: "SIGTERM"}, ""},
		{"kill default signal", api.FaultRequest{Kind: "kill-process", Targets: []string{"i-1"}, Params: map[string]string{"processName": "python3"}},
			Spec{Kind: KillProcess, Targets: []string{"i-1"}, ProcessName: "python3", Signal: 9, SignalName: "SIGKILL"}, ""},
		{"kill without name", api.FaultRequest{Kind: "kill-process", Targets: []string{"i-1"}},
			Spec{}, "params.processName is missing"},
		{"kill bad signal", api.FaultRequest{Kind: "kill-process", Targets: []string{"i-1"}, Params: map[string]string{"processName": "x", "signal": "SIGFOO"}},
			Spec{}, `params.signal: signal "SIGFOO" is unknown: give one of SIGHUP, SIGINT`},
		{"unknown kind", api.FaultRequest{Kind: "terminate-instances", Targets: []string{"i-1"}},
			Spec{}, `fault: kind "terminate-instances" is unknown: give one of stop-instances, reboot-instances`},
		{"no kind", api.FaultRequest{Targets: []string{"i-1"}}, Spec{}, "fault: kind is missing"},
		{"no targets", api.FaultRequest{Kind: "stop-instances"}, Spec{}, "fault stop-instances: targets are missing: give one or more instance names"},
		{"twice", api.FaultRequest{Kind: "stop-instances", Targets: []string{"i-1", "i-1"}}, Spec{}, "target i-1 is given twice"},
		{"negative duration", api.FaultRequest{Kind: "packet-loss", Targets: []string{"i-1"}, DurationSeconds: -1}, Spec{}, "durationSeconds -1 is not a duration"},
		{"unknown param", api.FaultRequest{Kind: "network-latency", Targets: []string{"i-1"}, Params: map[string]string{"delay": "1"}},
			Spec{}, "fault network-latency: parameter delay is unknown: network-latency takes delayMilliseconds, jitterMilliseconds"},
		{"param of a kind without", api.FaultRequest{Kind: "reboot-instances", Targets: []string{"i-1"}, Params: map[string]string{"x": "1"}},
			Spec{}, "parameter x is unknown: reboot-instances takes no parameters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.req)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse: err %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse = %+v\nwant   %+v", got, tc.want)
			}
		})
	}
}

func TestEnds(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := (Spec{}).Ends(t0); !got.IsZero() {
		t.Errorf("no duration ends at %v, want never", got)
	}
	if got := (Spec{Duration: time.Minute}).Ends(t0); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("ends at %v", got)
	}
}

func TestConflict(t *testing.T) {
	spec := func(k Kind, targets ...string) Spec { return Spec{Kind: k, Targets: targets} }
	for _, tc := range []struct {
		name   string
		active map[string]Spec
		new    Spec
		err    string
	}{
		{"none", nil, spec(StopInstances, "i-1"), ""},
		{"latency then loss on one instance", map[string]Spec{"f-1": spec(NetworkLatency, "i-1")}, spec(PacketLoss, "i-1"),
			"fault packet-loss: i-1 already has fault f-1 (network-latency): stop that fault first (DELETE /v1/faults/f-1)"},
		{"latency on another instance", map[string]Spec{"f-1": spec(NetworkLatency, "i-1")}, spec(PacketLoss, "i-2"), ""},
		{"cpu and memory stress", map[string]Spec{"f-1": spec(CPUStress, "i-1")}, spec(MemoryStress, "i-1"), ""},
		{"two cpu stresses", map[string]Spec{"f-1": spec(CPUStress, "i-1")}, spec(CPUStress, "i-2", "i-1"), "i-1 already has fault f-1"},
		{"reboot a stopped instance", map[string]Spec{"f-1": spec(StopInstances, "i-1")}, spec(RebootInstances, "i-1"),
			"fault reboot-instances: i-1 is stopped by fault f-1"},
		{"stress a stopped instance", map[string]Spec{"f-1": spec(StopInstances, "i-1")}, spec(CPUStress, "i-1"), "is stopped by fault f-1"},
		{"stop a stressed instance", map[string]Spec{"f-1": spec(CPUStress, "i-1")}, spec(StopInstances, "i-1"), ""},
		{"two disruptions of a subnet", map[string]Spec{"f-1": spec(DisruptConnectivity, "a")}, spec(DisruptConnectivity, "a"), "a already has fault f-1"},
		{"capacity twice", map[string]Spec{"f-1": spec(InsufficientCapacity, "web")}, spec(InsufficientCapacity, "web"), "web already has fault f-1"},
		{"reboots are over at once", map[string]Spec{"f-1": spec(RebootInstances, "i-1")}, spec(RebootInstances, "i-1"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Conflict(tc.active, tc.new)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Conflict = %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Conflict = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestBlocks(t *testing.T) {
	subnets := []Subnet{{"public-a", "a"}, {"public-b", "b"}, {"private-a", "a"}, {"private-b", "b"}, {"private-c", "c"}}
	for _, tc := range []struct {
		name  string
		spec  Spec
		nets  []Subnet
		want  []Block
		error string
	}{
		{"all", Spec{Kind: DisruptConnectivity, Scope: ScopeAll, Targets: []string{"private-a", "public-a"}}, subnets,
			[]Block{{Subnet: "private-a"}, {Subnet: "public-a"}}, ""},
		{"zone", Spec{Kind: DisruptConnectivity, Scope: ScopeZone, Targets: []string{"private-a"}}, subnets,
			[]Block{{Subnet: "private-a", Peers: []string{"public-b", "private-b", "private-c"}}}, ""},
		{"zone with one zone", Spec{Kind: DisruptConnectivity, Scope: ScopeZone, Targets: []string{"x"}}, []Subnet{{"x", "a"}, {"y", "a"}}, nil, ""},
		{"unknown subnet", Spec{Kind: DisruptConnectivity, Scope: ScopeAll, Targets: []string{"nope"}}, subnets, nil,
			`fault disrupt-connectivity: subnet "nope" does not exist: the stack's subnets are public-a, public-b, private-a, private-b, private-c`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Blocks(tc.spec, tc.nets)
			if tc.error != "" {
				if err == nil || err.Error() != tc.error {
					t.Fatalf("Blocks err = %v, want %q", err, tc.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Blocks = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBurnOf(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spec  Spec
		vcpus float64
		mem   int64
		want  Burn
		err   string
	}{
		{"all vcpus at full load", Spec{Kind: CPUStress, LoadPercent: 100}, 2, 0, Burn{Workers: 2, CPUs: 2}, ""},
		{"one at half", Spec{Kind: CPUStress, Workers: 1, LoadPercent: 50}, 2, 0, Burn{Workers: 1, CPUs: 0.5}, ""},
		{"unknown vcpus", Spec{Kind: CPUStress, LoadPercent: 80}, 0, 0, Burn{Workers: 1, CPUs: 0.8}, ""},
		{"half a core rounds up", Spec{Kind: CPUStress, LoadPercent: 100}, 0.5, 0, Burn{Workers: 1, CPUs: 1}, ""},
		{"memory", Spec{Kind: MemoryStress, MemoryPercent: 50}, 2, 1 << 30, Burn{MemoryBytes: 1 << 29}, ""},
		{"memory without a limit", Spec{Kind: MemoryStress, MemoryPercent: 50}, 2, 0, Burn{}, "the instance has no memory limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := BurnOf(tc.spec, tc.vcpus, tc.mem)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("BurnOf = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestCapacityFails(t *testing.T) {
	spec := Spec{Kind: InsufficientCapacity, Zones: []string{"a", "us-east-1c"}, Percentage: 30}
	for _, tc := range []struct {
		zone, aws string
		roll      float64
		want      bool
	}{
		{"a", "us-east-1a", 0, true},
		{"a", "us-east-1a", 0.29, true},
		{"a", "us-east-1a", 0.30, false},
		{"b", "us-east-1b", 0, false},
		{"c", "us-east-1c", 0.1, true},
	} {
		if got := CapacityFails(spec, tc.zone, tc.aws, tc.roll); got != tc.want {
			t.Errorf("CapacityFails(%s, %s, %v) = %v, want %v", tc.zone, tc.aws, tc.roll, got, tc.want)
		}
	}
	got := InsufficientCapacityMessage("t3.micro", "us-east-1a", []string{"us-east-1b", "us-east-1c"})
	want := "We currently do not have sufficient t3.micro capacity in the Availability Zone you requested (us-east-1a). Our system will be working on provisioning additional capacity. You can currently get t3.micro capacity by not specifying an Availability Zone in your request or choosing us-east-1b, us-east-1c."
	if got != want {
		t.Errorf("message:\n%s\nwant\n%s", got, want)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	end := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	r := Record{Fault: api.Fault{ID: "f-01", Kind: "stop-instances", Targets: []string{"i-1"}, State: api.FaultActive,
		Started: end.Add(-time.Minute), Ends: end},
		Undo: []Step{{Op: OpContinue, Target: "i-1", Instance: "i-1", NetNS: "/run/netns/x", PIDs: []int{3, 4}},
			{Op: OpDeleteTable, Target: "i-1", NetNS: "/run/netns/x", Table: "moat-fis-f-01"}}}
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	r.Version = RecordVersion
	if !reflect.DeepEqual(got, r) {
		t.Errorf("round trip:\n%+v\nwant\n%+v", got, r)
	}
	if order := UndoOrder(r.Undo); order[0].Op != OpDeleteTable || order[1].Op != OpContinue {
		t.Errorf("undo order = %+v, want the reverse of the order done", order)
	}
	for _, bad := range []struct{ text, err string }{
		{`{"version":2,"fault":{"id":"f-1"}}`, "read fault record f-1: version 2, this moat reads 1"},
		{`{"version":1,"fault":{"id":"f-1"},"undo":[{"op":"reformat"}]}`, `read fault record f-1: undo step 0: operation "reformat" is unknown`},
		{`{`, "read fault record: unexpected end of JSON input"},
	} {
		if _, err := DecodeRecord([]byte(bad.text)); err == nil || err.Error() != bad.err {
			t.Errorf("DecodeRecord(%s) = %v, want %q", bad.text, err, bad.err)
		}
	}
}

func TestEveryKindIsDescribed(t *testing.T) {
	for _, in := range Kinds {
		if in.Doc == "" || in.Target == "" {
			t.Errorf("%s: no doc or target", in.Kind)
		}
		req := api.FaultRequest{Kind: string(in.Kind), Targets: []string{"x"}, Params: map[string]string{}}
		for _, p := range in.Params {
			if p.Default == "" {
				req.Params[p.Name] = map[string]string{"zones": "a", "processName": "p"}[p.Name]
			}
		}
		if _, err := Parse(req); err != nil {
			t.Errorf("%s with its defaults: %v", in.Kind, err)
		}
	}
}
