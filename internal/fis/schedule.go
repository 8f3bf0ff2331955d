package fis

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Step is one action of an experiment, resolved and timed.
type Step struct {
	Name        string   `json:"name"`
	ActionID    string   `json:"actionId"`
	Description string   `json:"description,omitempty"`
	StartAfter  []string `json:"startAfter,omitempty"`
	// Kind is the fault kind of the daemon's fault API, or terminate, or wait.
	Kind string `json:"kind"`
	// Target is the template's target name; Targets what it resolved to
	// (instance ids, subnet names, group names).
	Target  string   `json:"target,omitempty"`
	Targets []string `json:"targets,omitempty"`
	// Params are the fault's parameters (package fault's names; those the
	// template leaves out take the fault's defaults, which are FIS's).
	Params map[string]string `json:"params,omitempty"`
	// Duration is how long the action runs: the next actions wait for it.
	// Zero for actions that complete at once (terminate, reboot, a stop
	// without startInstancesAfterDuration).
	Duration time.Duration `json:"duration"`
	// UntilEnd says the fault lasts until the experiment ends (a stop
	// without startInstancesAfterDuration: FIS would leave the instances
	// stopped; moat starts them again when the experiment ends).
	UntilEnd bool `json:"untilEnd,omitempty"`
	// Start is when the action starts if every action before it takes
	// its duration.
	Start time.Duration `json:"start"`
	// Skip says why the action will not run (its target resolved to
	// nothing and emptyTargetResolutionMode is skip).
	Skip string `json:"skip,omitempty"`
}

// End is when the step ends on the planned schedule.
func (s Step) End() time.Duration { return s.Start + s.Duration }

// Schedule turns a valid template and its resolution into steps, ordered
// by planned start (then file order). Durations are divided by timeScale
// (1 = real time; 60 runs a 30-minute action in 30 seconds).
func Schedule(f *File, res Resolution, timeScale float64) ([]Step, error) {
	if timeScale <= 0 {
		return nil, fmt.Errorf("time scale %v: must be more than 0", timeScale)
	}
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) / timeScale) }
	byName := map[string]*Step{}
	var steps []*Step
	for _, name := range f.ActionNames() {
		a := f.Template.Actions[name]
		st, err := step(name, a, f, res)
		if err != nil {
			return nil, err
		}
		st.Duration = scale(st.Duration)
		byName[name] = st
		steps = append(steps, st)
	}
	// Planned starts: an action starts when every action it starts after
	// has ended. Validate rejected loops; a depth bound guards anyway.
	var start func(s *Step, depth int) time.Duration
	done := map[string]bool{}
	start = func(s *Step, depth int) time.Duration {
		if done[s.Name] || depth > len(steps) {
			return s.Start
		}
		var t time.Duration
		for _, d := range s.StartAfter {
			if p := byName[d]; p != nil {
				t = max(t, start(p, depth+1)+p.Duration)
			}
		}
		s.Start, done[s.Name] = t, true
		return t
	}
	for _, s := range steps {
		start(s, 0)
	}
	out := make([]Step, 0, len(steps))
	for _, s := range steps {
		out = append(out, *s)
	}
	slices.SortStableFunc(out, func(a, b Step) int { return int(a.Start - b.Start) })
	return out, nil
}

// Length is when the last step ends on the planned schedule.
func Length(steps []Step) time.Duration {
	var end time.Duration
	for _, s := range steps {
		end = max(end, s.End())
	}
	return end
}

func step(name string, a Action, f *File, res Resolution) (*Step, error) {
	sp, ok := actions[a.ActionID]
	if !ok {
		return nil, fmt.Errorf("action %s: %q is not an action moat runs", name, a.ActionID)
	}
	st := &Step{Name: name, ActionID: a.ActionID, Description: a.Description, StartAfter: a.StartAfter, Params: map[string]string{}}
	if sp.targetKey != "" {
		st.Target = a.Targets[sp.targetKey]
		st.Targets = res.Selected[st.Target]
		if len(st.Targets) == 0 {
			st.Skip = fmt.Sprintf("target %s resolved to no resources (emptyTargetResolutionMode skip)", st.Target)
		}
	}
	p := a.Parameters
	dur := func(k string) time.Duration {
		d, _ := ParseDuration(p[k])
		return d
	}
	switch a.ActionID {
	case ActionWait:
		st.Kind, st.Duration = KindWait, dur("duration")
	case ActionTerminate:
		st.Kind = KindTerminate
	case ActionReboot:
		st.Kind = KindReboot
	case ActionStop:
		st.Kind = KindStop
		if p["startInstancesAfterDuration"] != "" {
			st.Duration = dur("startInstancesAfterDuration")
		} else {
			st.UntilEnd = true
		}
	case ActionDisruptConnectivity:
		st.Kind, st.Duration = KindDisruptConnectivity, dur("duration")
		setIf(st.Params, "scope", p["scope"])
	case ActionInsufficientCapacity:
		st.Kind, st.Duration = KindInsufficientCapacity, dur("duration")
		st.Params["zones"] = p["availabilityZoneIdentifiers"]
		setIf(st.Params, "percentage", p["percentage"])
	case ActionSendCommand:
		doc := documentName(p["documentArn"])
		dp, err := documentParams(p["documentParameters"])
		if err != nil {
			return nil, fmt.Errorf("action %s: documentParameters: %w", name, err)
		}
		st.Kind = documents[doc].kind
		st.Duration = dur("duration")
		if s, err := strconv.Atoi(dp["DurationSeconds"]); err == nil && s > 0 {
			st.Duration = min(st.Duration, time.Duration(s)*time.Second)
		}
		switch st.Kind {
		case KindCPUStress:
			setIf(st.Params, "cpu", dp["CPU"])
			setIf(st.Params, "loadPercent", dp["LoadPercent"])
		case KindMemoryStress:
			setIf(st.Params, "percent", dp["Percent"])
		case KindNetworkLatency:
			setIf(st.Params, "delayMilliseconds", dp["DelayMilliseconds"])
			setIf(st.Params, "jitterMilliseconds", dp["JitterMilliseconds"])
		case KindPacketLoss:
			setIf(st.Params, "lossPercent", dp["LossPercent"])
		case KindKillProcess:
			st.Params["processName"] = dp["ProcessName"]
			setIf(st.Params, "signal", dp["Signal"])
			st.Duration = 0 // the kill is at once
		}
	}
	if len(st.Params) == 0 {
		st.Params = nil
	}
	return st, nil
}

func setIf(m map[string]string, k, v string) {
	if v != "" {
		m[k] = v
	}
}
