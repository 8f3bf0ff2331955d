package fault

import (
	"encoding/json"
	"fmt"

	"github.com/moat-dev/moat/internal/api"
)

// Op is one kind of undo step.
type Op string

// Undo operations.
const (
	// OpContinue sends SIGCONT to PIDs that still live in NetNS (a
	// stop-instances freeze).
	OpContinue Op = "continue"
	// OpDeleteTable deletes nftables table inet Table in NetNS (a
	// disrupt-connectivity blackhole in the router; a network-latency or
	// packet-loss degradation in an instance's namespace).
	OpDeleteTable Op = "delete-table"
	// OpKill SIGKILLs PIDs that still live in NetNS, then removes
	// Cgroups (burners).
	OpKill Op = "kill"
	// OpForget drops an in-memory fault (insufficient-capacity): nothing
	// outside the daemon to undo.
	OpForget Op = "forget"
)

// Step is one undo step. Every step is idempotent and safe when what it
// undoes is gone already (the instance terminated, the namespace deleted).
type Step struct {
	Op       Op       `json:"op"`
	Target   string   `json:"target"`
	NetNS    string   `json:"netns,omitempty"`
	Table    string   `json:"table,omitempty"`
	PIDs     []int    `json:"pids,omitempty"`
	Cgroups  []string `json:"cgroups,omitempty"`
	Instance string   `json:"instance,omitempty"`
}

// Record is what the daemon persists for an active fault, one file each
// in the stack's state directory: the fault and how to undo it. Undo
// steps are listed in the order done; they are undone in reverse.
type Record struct {
	Version int       `json:"version"`
	Fault   api.Fault `json:"fault"`
	Undo    []Step    `json:"undo"`
}

// RecordVersion is the format's version.
const RecordVersion = 1

// Encode is the record as JSON.
func (r Record) Encode() ([]byte, error) {
	r.Version = RecordVersion
	return json.MarshalIndent(r, "", "  ")
}

// DecodeRecord reads a record; a record of another version is refused.
func DecodeRecord(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("read fault record: %w", err)
	}
	if r.Version != RecordVersion {
		return Record{}, fmt.Errorf("read fault record %s: version %d, this moat reads %d", r.Fault.ID, r.Version, RecordVersion)
	}
	for i, s := range r.Undo {
		switch s.Op {
		case OpContinue, OpDeleteTable, OpKill, OpForget:
		default:
			return Record{}, fmt.Errorf("read fault record %s: undo step %d: operation %q is unknown", r.Fault.ID, i, s.Op)
		}
	}
	return r, nil
}

// UndoOrder is the steps in the order to undo them: the reverse of the
// order done.
func UndoOrder(steps []Step) []Step {
	out := make([]Step, len(steps))
	for i, s := range steps {
		out[len(steps)-1-i] = s
	}
	return out
}
