// Package fault is the pure part of moat's fault injection: the kinds of
// fault the local data plane takes (the counterparts of AWS FIS actions),
// their parameters checked with clear errors, the plan of what each does
// and undoes, and the undo record a daemon persists in the stack's state
// directory so that a crashed daemon's faults are undone by the next moat
// up or moat down. The effects live next to the parts they touch: the
// freeze, reboot and burners in package instance, the subnet blackhole and
// the degradation of an instance's traffic (netem's latency and loss, in
// nftables and an NFQUEUE queue) in package vpc (compiled by package
// secgroup/nft); the daemon wires them (internal/daemon).
package fault

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/api"
)

// Kind is a kind of fault.
type Kind string

// The kinds, with the FIS action each stands for.
const (
	// StopInstances freezes the instances' processes (SIGSTOP), address
	// kept (aws:ec2:stop-instances).
	StopInstances Kind = "stop-instances"
	// RebootInstances stops the instances' processes and starts the
	// command again, without user data (aws:ec2:reboot-instances).
	RebootInstances Kind = "reboot-instances"
	// DisruptConnectivity drops traffic of subnets in the VPC router
	// (aws:network:disrupt-connectivity).
	DisruptConnectivity Kind = "disrupt-connectivity"
	// InsufficientCapacity fails the groups' launches in zones
	// (aws:ec2:asg-insufficient-instance-capacity-error).
	InsufficientCapacity Kind = "insufficient-capacity"
	// NetworkLatency delays the instances' outgoing packets
	// (AWSFIS-Run-Network-Latency).
	NetworkLatency Kind = "network-latency"
	// PacketLoss drops a share of the instances' outgoing packets
	// (AWSFIS-Run-Network-Packet-Loss).
	PacketLoss Kind = "packet-loss"
	// CPUStress runs CPU burners inside the instances' limits
	// (AWSFIS-Run-CPU-Stress).
	CPUStress Kind = "cpu-stress"
	// MemoryStress holds memory inside the instances' limits
	// (AWSFIS-Run-Memory-Stress).
	MemoryStress Kind = "memory-stress"
	// KillProcess signals the instances' processes of a name
	// (AWSFIS-Run-Kill-Process).
	KillProcess Kind = "kill-process"
)

// Target is what a kind's targets name.
type Target string

// Targets.
const (
	TargetInstance Target = "instance"
	TargetSubnet   Target = "subnet"
	TargetGroup    Target = "auto scaling group"
)

// Param is one parameter of a kind.
type Param struct {
	Name    string
	Default string // "" : required, or none
	Doc     string
}

// Info describes a kind.
type Info struct {
	Kind   Kind
	Target Target
	// OneShot kinds act once and are over (nothing to undo).
	OneShot bool
	Params  []Param
	Doc     string
}

// Kinds are all the kinds, in the order docs list them.
var Kinds = []Info{
	{Kind: StopInstances, Target: TargetInstance, Params: []Param{
		{"startAfterSeconds", "0", "start the instances again after this many seconds (0: at the fault's end)"}},
		Doc: "freeze every process of the instances (address kept); the instance's state is stopped"},
	{Kind: RebootInstances, Target: TargetInstance, OneShot: true,
		Doc: "stop every process of the instances and start the command again (user data does not run again)"},
	{Kind: DisruptConnectivity, Target: TargetSubnet, Params: []Param{
		{"scope", "all", "all: deny all traffic entering or leaving the subnets; availability-zone: deny traffic to and from subnets in other zones"}},
		Doc: "drop the subnets' traffic in the VPC router"},
	{Kind: InsufficientCapacity, Target: TargetGroup, Params: []Param{
		{"zones", "", "comma-separated availability zones (names or AWS names) whose launches fail"},
		{"percentage", "100", "share of the launches in those zones that fail"}},
		Doc: "the groups' launches in the zones fail with InsufficientInstanceCapacity"},
	{Kind: NetworkLatency, Target: TargetInstance, Params: []Param{
		{"delayMilliseconds", "200", "delay added to every packet the instance sends"},
		{"jitterMilliseconds", "10", "random variation of the delay"}},
		Doc: "delay the instances' outgoing packets (as netem would, on the instance's interface)"},
	{Kind: PacketLoss, Target: TargetInstance, Params: []Param{
		{"lossPercent", "7", "share of the packets the instance sends that are dropped"}},
		Doc: "drop a share of the instances' outgoing packets (as netem would, on the instance's interface)"},
	{Kind: CPUStress, Target: TargetInstance, Params: []Param{
		{"cpu", "0", "number of burners (0: one per vCPU of the instance type)"},
		{"loadPercent", "100", "load of each burner, in percent of a CPU"}},
		Doc: "CPU burners inside the instance's cgroup, so within its limits"},
	{Kind: MemoryStress, Target: TargetInstance, Params: []Param{
		{"percent", "80", "memory to hold, in percent of the instance's memory limit"}},
		Doc: "a burner holding memory inside the instance's cgroup, so within its limit"},
	{Kind: KillProcess, Target: TargetInstance, OneShot: true, Params: []Param{
		{"processName", "", "the process name to signal (as /proc/PID/comm or the program's base name)"},
		{"signal", "SIGKILL", "the signal, by name (SIGKILL, SIGTERM, ...) or number"}},
		Doc: "signal the instances' processes of that name"},
}

// Lookup is the description of a kind.
func Lookup(k Kind) (Info, bool) {
	for _, in := range Kinds {
		if in.Kind == k {
			return in, true
		}
	}
	return Info{}, false
}

func kindNames() string {
	var names []string
	for _, in := range Kinds {
		names = append(names, string(in.Kind))
	}
	return strings.Join(names, ", ")
}

// Scopes of DisruptConnectivity.
const (
	ScopeAll  = "all"
	ScopeZone = "availability-zone"
)

// Spec is a checked fault request.
type Spec struct {
	Kind       Kind
	Targets    []string
	Experiment string
	// Duration is the fault's length; 0: until stopped. For
	// StopInstances with StartAfter it is StartAfter.
	Duration time.Duration

	// StopInstances.
	StartAfter time.Duration
	// DisruptConnectivity.
	Scope string
	// InsufficientCapacity.
	Zones      []string
	Percentage float64
	// NetworkLatency.
	Delay, Jitter time.Duration
	// PacketLoss.
	LossPercent float64
	// CPUStress: Workers 0 means one per vCPU.
	Workers     int
	LoadPercent float64
	// MemoryStress.
	MemoryPercent float64
	// KillProcess.
	ProcessName string
	Signal      int
	SignalName  string
}

// Info is the description of the spec's kind.
func (s Spec) Info() Info { in, _ := Lookup(s.Kind); return in }

// Parse checks a request: a known kind, targets, the kind's parameters
// (unknown ones are refused, with the known ones named) and the duration.
func Parse(req api.FaultRequest) (Spec, error) {
	info, ok := Lookup(Kind(req.Kind))
	if !ok {
		if req.Kind == "" {
			return Spec{}, fmt.Errorf("fault: kind is missing: give one of %s", kindNames())
		}
		return Spec{}, fmt.Errorf("fault: kind %q is unknown: give one of %s", req.Kind, kindNames())
	}
	s := Spec{Kind: info.Kind, Experiment: req.Experiment}
	errf := func(format string, args ...any) error {
		return fmt.Errorf("fault %s: "+format, append([]any{info.Kind}, args...)...)
	}
	if len(req.Targets) == 0 {
		return Spec{}, errf("targets are missing: give one or more %s names", info.Target)
	}
	seen := map[string]bool{}
	for _, t := range req.Targets {
		if strings.TrimSpace(t) == "" {
			return Spec{}, errf("a target is empty: give %s names", info.Target)
		}
		if seen[t] {
			return Spec{}, errf("target %s is given twice: give each once", t)
		}
		seen[t] = true
		s.Targets = append(s.Targets, t)
	}
	if math.IsNaN(req.DurationSeconds) || math.IsInf(req.DurationSeconds, 0) || req.DurationSeconds < 0 {
		return Spec{}, errf("durationSeconds %v is not a duration: give seconds, 0 or more (0: until the fault is stopped)", req.DurationSeconds)
	}
	if !info.OneShot {
		s.Duration = seconds(req.DurationSeconds)
	}
	known := map[string]bool{}
	for _, p := range info.Params {
		known[p.Name] = true
	}
	var unknown []string
	for k := range req.Params {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		var names []string
		for _, p := range info.Params {
			names = append(names, p.Name)
		}
		takes := "takes no parameters"
		if len(names) > 0 {
			takes = "takes " + strings.Join(names, ", ")
		}
		return Spec{}, errf("parameter %s is unknown: %s %s", strings.Join(unknown, ", "), info.Kind, takes)
	}
	get := func(name string) string {
		if v, ok := req.Params[name]; ok {
			return strings.TrimSpace(v)
		}
		for _, p := range info.Params {
			if p.Name == name {
				return p.Default
			}
		}
		return ""
	}
	number := func(name string, lo, hi float64, hint string) (float64, error) {
		v := get(name)
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, errf("params.%s %q is not a number: give %s", name, v, hint)
		}
		if f < lo || f > hi {
			return 0, errf("params.%s %v is out of range: give %s", name, f, hint)
		}
		return f, nil
	}
	var err error
	switch info.Kind {
	case StopInstances:
		var f float64
		if f, err = number("startAfterSeconds", 0, 12*3600, "seconds from 0 to 43200 (0: at the fault's end)"); err == nil && f > 0 {
			s.StartAfter = seconds(f)
			if s.Duration == 0 || s.StartAfter < s.Duration {
				s.Duration = s.StartAfter
			}
		}
	case DisruptConnectivity:
		s.Scope = get("scope")
		if s.Scope != ScopeAll && s.Scope != ScopeZone {
			err = errf("params.scope %q is not supported: give all or availability-zone", s.Scope)
		}
	case InsufficientCapacity:
		for _, z := range strings.Split(get("zones"), ",") {
			if z = strings.TrimSpace(z); z != "" && !slices.Contains(s.Zones, z) {
				s.Zones = append(s.Zones, z)
			}
		}
		if len(s.Zones) == 0 {
			err = errf("params.zones is missing: give the availability zones whose launches fail, comma-separated (e.g. a or us-east-1a)")
		} else {
			s.Percentage, err = number("percentage", 1, 100, "a percentage from 1 to 100")
		}
	case NetworkLatency:
		var d, j float64
		if d, err = number("delayMilliseconds", 1, 60000, "milliseconds from 1 to 60000"); err == nil {
			j, err = number("jitterMilliseconds", 0, 60000, "milliseconds from 0 to 60000")
		}
		s.Delay, s.Jitter = millis(d), millis(j)
	case PacketLoss:
		s.LossPercent, err = number("lossPercent", 0.01, 100, "a percentage above 0, at most 100")
	case CPUStress:
		var w float64
		if w, err = number("cpu", 0, 64, "a whole number of burners from 0 to 64 (0: one per vCPU)"); err == nil {
			if w != math.Trunc(w) {
				err = errf("params.cpu %v is not a whole number: give a number of burners from 0 to 64 (0: one per vCPU)", w)
			}
			s.Workers = int(w)
		}
		if err == nil {
			s.LoadPercent, err = number("loadPercent", 1, 100, "a percentage from 1 to 100")
		}
	case MemoryStress:
		s.MemoryPercent, err = number("percent", 1, 100, "a percentage of the instance's memory from 1 to 100")
	case KillProcess:
		s.ProcessName = get("processName")
		switch {
		case s.ProcessName == "":
			err = errf("params.processName is missing: give the name of the process to signal (e.g. python3)")
		case strings.ContainsAny(s.ProcessName, "/\x00"):
			err = errf("params.processName %q is not a process name: give a name without /, as ps -o comm shows it", s.ProcessName)
		default:
			s.SignalName, s.Signal, err = ParseSignal(get("signal"))
			if err != nil {
				err = errf("params.signal: %w", err)
			}
		}
	}
	if err != nil {
		return Spec{}, err
	}
	return s, nil
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
func millis(f float64) time.Duration  { return time.Duration(f * float64(time.Millisecond)) }

// signals are Linux's signal numbers of the names kill-process takes.
var signals = map[string]int{
	"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGABRT": 6, "SIGKILL": 9, "SIGUSR1": 10,
	"SIGSEGV": 11, "SIGUSR2": 12, "SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15,
	"SIGCONT": 18, "SIGSTOP": 19, "SIGTSTP": 20,
}

// ParseSignal reads a signal by name (SIGKILL, KILL, kill) or number.
func ParseSignal(v string) (name string, num int, err error) {
	if n, err := strconv.Atoi(v); err == nil {
		for name, num := range signals {
			if num == n {
				return name, n, nil
			}
		}
		return "", 0, fmt.Errorf("signal %d is not one moat sends: give one of %s", n, signalNames())
	}
	u := strings.ToUpper(v)
	if !strings.HasPrefix(u, "SIG") {
		u = "SIG" + u
	}
	if n, ok := signals[u]; ok {
		return u, n, nil
	}
	return "", 0, fmt.Errorf("signal %q is unknown: give one of %s", v, signalNames())
}

func signalNames() string {
	names := make([]string, 0, len(signals))
	for n := range signals {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return signals[names[i]] < signals[names[j]] })
	return strings.Join(names, ", ")
}

// Ends is when a fault started at started ends by itself (zero: only when
// stopped).
func (s Spec) Ends(started time.Time) time.Time {
	if s.Duration <= 0 {
		return time.Time{}
	}
	return started.Add(s.Duration)
}

// Class is what a fault holds on a target: two active faults of one class
// on one target conflict (two degradations would share one queue, a
// second freeze could not be undone apart). One-shot kinds hold nothing.
func (s Spec) Class() string {
	switch s.Kind {
	case NetworkLatency, PacketLoss:
		return "netem"
	case RebootInstances, KillProcess:
		return ""
	}
	return string(s.Kind)
}

// Conflict says why spec cannot start while the active faults hold their
// targets; nil if it can. active maps fault ids to their specs.
func Conflict(active map[string]Spec, spec Spec) error {
	class := spec.Class()
	ids := make([]string, 0, len(active))
	for id := range active {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		a := active[id]
		if a.Kind == RebootInstances || a.Kind == KillProcess {
			continue
		}
		for _, t := range spec.Targets {
			if !slices.Contains(a.Targets, t) {
				continue
			}
			// A frozen instance can be neither rebooted, stressed nor
			// signalled until it runs again.
			if a.Kind == StopInstances && spec.Info().Target == TargetInstance {
				return fmt.Errorf("fault %s: %s is stopped by fault %s: stop that fault first (DELETE /v1/faults/%s)", spec.Kind, t, id, id)
			}
			if class != "" && a.Class() == class {
				return fmt.Errorf("fault %s: %s already has fault %s (%s): stop that fault first (DELETE /v1/faults/%s)", spec.Kind, t, id, a.Kind, id)
			}
		}
	}
	return nil
}

// ID is a fault id from 8 random bytes: "f-" and 16 hex digits.
func ID(b [8]byte) string { return fmt.Sprintf("f-%x", b[:]) }
