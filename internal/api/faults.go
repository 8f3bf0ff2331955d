package api

import "time"

// FaultRequest is the body of PostFault: one fault of the local data
// plane, the counterpart of one action of an AWS FIS experiment. Package
// fault says what each kind takes (fault.Kinds) and checks a request
// (fault.Parse).
type FaultRequest struct {
	// Kind is the fault: stop-instances, reboot-instances,
	// disrupt-connectivity, insufficient-capacity, network-latency,
	// packet-loss, cpu-stress, memory-stress, kill-process.
	Kind string `json:"kind"`
	// Targets are instance ids (subnet names for disrupt-connectivity,
	// auto scaling group names for insufficient-capacity).
	Targets []string `json:"targets"`
	// Params are the kind's parameters, as strings (FIS's action
	// parameters are strings too).
	Params map[string]string `json:"params,omitempty"`
	// DurationSeconds is how long the fault lasts; 0 lasts until
	// DeleteFault (or the daemon stops). One-shot kinds (reboot-instances,
	// kill-process) ignore it.
	DurationSeconds float64 `json:"durationSeconds,omitempty"`
	// Experiment is the id of the chaos experiment that injects the fault,
	// carried into the event log.
	Experiment string `json:"experiment,omitempty"`
}

// Fault states.
const (
	FaultActive = "active"
	FaultEnded  = "ended"
	FaultFailed = "failed"
)

// Fault is one injected fault, as PostFault, GetFaults and DeleteFault
// return it.
type Fault struct {
	ID         string            `json:"id"`
	Kind       string            `json:"kind"`
	Targets    []string          `json:"targets"`
	Params     map[string]string `json:"params,omitempty"`
	Experiment string            `json:"experiment,omitempty"`
	Started    time.Time         `json:"started"`
	// Ends is when the fault ends by itself; zero: only on DeleteFault.
	Ends time.Time `json:"ends,omitzero"`
	// Ended is when it was undone (or, one-shot, done).
	Ended *time.Time `json:"ended,omitempty"`
	// State is active, ended or failed.
	State string `json:"state"`
	// Error says why it failed, or what its undo could not do.
	Error string `json:"error,omitempty"`
}
