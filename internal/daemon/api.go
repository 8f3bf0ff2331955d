package daemon

import (
	"time"

	"github.com/moat-dev/moat/internal/plan"
)

// Phases of a running stack.
const (
	PhaseStarting = "starting"
	PhaseRunning  = "running"
	PhaseStopping = "stopping"
	PhaseFailed   = "failed"
)

// Status is what GET /v1/status returns.
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
