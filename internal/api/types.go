package api

import (
	"time"

	"github.com/moat-dev/moat/internal/plan"
)

// Phases of a running stack (Status.Phase).
const (
	PhaseStarting = "starting"
	PhaseRunning  = "running"
	PhaseStopping = "stopping"
	PhaseFailed   = "failed"
)

// Status is what GetStatus returns.
type Status struct {
	Stack     string          `json:"stack"`
	PID       int             `json:"pid"`
	Phase     string          `json:"phase"`
	Error     string          `json:"error,omitempty"`
	Started   time.Time       `json:"started"`
	StateDir  string          `json:"stateDir"`
	File      string          `json:"file"`
	Endpoints []plan.Endpoint `json:"endpoints"`
	Groups    []GroupStatus   `json:"groups,omitempty"`
	// Egress says whether local.egress is on (the VPC reaches the
	// host's network through moat's egress proxy).
	Egress bool `json:"egress"`
}

// GroupStatus summarises an auto scaling group.
type GroupStatus struct {
	Name      string `json:"name"`
	Desired   int    `json:"desired"`
	Min       int    `json:"min"`
	Max       int    `json:"max"`
	InService int    `json:"inService"`
	Healthy   int    `json:"healthy"`
}

// Instance is one instance as GetInstances lists it.
type Instance struct {
	ID             string `json:"id"`
	Group          string `json:"group"`
	LaunchTemplate string `json:"launchTemplate"`
	Version        string `json:"version"`
	Zone           string `json:"zone"`
	Subnet         string `json:"subnet"`
	IP             string `json:"ip"`
	State          string `json:"state"`
	// Lifecycle is the Auto Scaling lifecycle state (Pending, InService,
	// Terminating).
	Lifecycle   string    `json:"lifecycle,omitempty"`
	Health      string    `json:"health"`
	StateReason string    `json:"stateReason,omitempty"`
	CPUPercent  float64   `json:"cpuPercent"`
	MemoryBytes int64     `json:"memoryBytes"`
	Launched    time.Time `json:"launched"`
	// Terminated is when a terminated instance was gone (moat ps -a).
	Terminated time.Time `json:"terminated,omitzero"`
	Protected  bool      `json:"protectedFromScaleIn,omitempty"`
}

// ScaleRequest is the body of PostScale (and its answer).
type ScaleRequest struct {
	Desired int `json:"desired"`
}

// TerminateRequest is the body of PostTerminate.
type TerminateRequest struct {
	// DecrementDesired lowers the group's desired capacity instead of
	// replacing the instance (AWS's ShouldDecrementDesiredCapacity).
	DecrementDesired bool `json:"decrementDesired"`
}

// ProtectionRequest is the body of PostProtection (and its answer).
type ProtectionRequest struct {
	ProtectedFromScaleIn bool `json:"protectedFromScaleIn"`
}

// Target is one target of a target group, as GetTargets lists it.
type Target struct {
	TargetGroup string `json:"targetGroup"`
	ID          string `json:"id"`
	Address     string `json:"address"`
	State       string `json:"state"`
	Reason      string `json:"reason,omitempty"`
	Description string `json:"description,omitempty"`
	// Checks are the target's last health checks, newest first.
	Checks []HealthCheck `json:"checks,omitempty"`
}

// HealthCheck is one health check of a target: when, whether it passed,
// the reason code and words of a failure, and how long it took.
type HealthCheck struct {
	Time      time.Time `json:"time"`
	OK        bool      `json:"ok"`
	Reason    string    `json:"reason,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	LatencyMS float64   `json:"latencyMs"`
}

// Activity is one scaling activity of a group, as
// GetActivities lists them (newest first), in AWS's wording.
type Activity struct {
	Time        time.Time `json:"time"`
	Group       string    `json:"group"`
	Description string    `json:"description"`
	Cause       string    `json:"cause,omitempty"`
	Status      string    `json:"status"`
	// StatusMessage says why a failed activity failed, in EC2's words
	// (AWS's StatusMessage).
	StatusMessage string `json:"statusMessage,omitempty"`
	InstanceID    string `json:"instanceId,omitempty"`
}

// ApplyResult says what PostApply (a re-run of moat up) changed.
type ApplyResult struct {
	// Changes are the live changes made, one line each.
	Changes []string `json:"changes"`
}

// Accepted is the answer of requests that start something:
// PostShutdown, PostRefresh, PostTerminate.
type Accepted struct {
	// Status is what started: stopping, refreshing, terminating.
	Status string `json:"status"`
}

// Error is the body of every answer with a status of 300 or more.
type Error struct {
	Error string `json:"error"`
}

// ProbeRequest is the body of PostProbe: From and To are node names (as
// GetMembership lists them) or "internet"; only TCP is probed.
type ProbeRequest struct {
	From string `json:"from"`
	To   string `json:"to"`
	Port int    `json:"port"`
	// TimeoutMillis bounds the wait for an answer (default 1000, at most
	// 10000).
	TimeoutMillis int `json:"timeoutMillis,omitempty"`
}

// ProbeResult is what the kernel did with the probe's connection.
type ProbeResult struct {
	// Reached: the destination answered (a connection, or a reset because
	// nothing listens on the port).
	Reached bool   `json:"reached"`
	Outcome string `json:"outcome"`
}
