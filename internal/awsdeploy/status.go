package awsdeploy

import (
	"fmt"
	"strings"
	"time"
)

// Event is one stack event.
type Event struct {
	ID         string    `json:"id"`
	LogicalID  string    `json:"logicalId"`
	PhysicalID string    `json:"physicalId,omitempty"`
	Type       string    `json:"type"`
	Status     string    `json:"status"`
	Reason     string    `json:"reason,omitempty"`
	Time       time.Time `json:"time"`
}

func (e Event) String() string {
	s := fmt.Sprintf("%s (%s) %s", e.LogicalID, e.Type, e.Status)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Action is what deploy does with a stack.
type Action int

const (
	// Create makes a new stack with a CREATE change set.
	Create Action = iota
	// Update changes an existing stack with an UPDATE change set.
	Update
)

func (a Action) String() string {
	if a == Create {
		return "CREATE"
	}
	return "UPDATE"
}

// StackStateError says the stack is in a status deploy cannot act on.
type StackStateError struct {
	Stack, Status, Fix string
}

func (e *StackStateError) Error() string {
	return fmt.Sprintf("stack %s is %s: %s", e.Stack, e.Status, e.Fix)
}

// StackAction decides between a CREATE and an UPDATE change set from the
// stack's status ("" when the stack does not exist).
func StackAction(stack, status string) (Action, error) {
	switch {
	case status == "", status == "REVIEW_IN_PROGRESS", status == "DELETE_COMPLETE":
		// REVIEW_IN_PROGRESS: a change set was created and never
		// executed; the stack holds nothing yet and takes a CREATE.
		return Create, nil
	case status == "ROLLBACK_COMPLETE", status == "ROLLBACK_FAILED":
		return 0, &StackStateError{stack, status,
			"its first deployment failed and was rolled back, and CloudFormation can only delete it now; run `moat destroy`, fix the cause, then `moat deploy`"}
	case status == "DELETE_FAILED":
		return 0, &StackStateError{stack, status, "a previous delete failed; run `moat destroy` again (see the events for the resource that could not be deleted)"}
	case status == "UPDATE_ROLLBACK_FAILED":
		return 0, &StackStateError{stack, status, "an update failed and so did its rollback; continue the rollback in the CloudFormation console (or `aws cloudformation continue-update-rollback`), then deploy again"}
	case strings.HasSuffix(status, "_IN_PROGRESS"):
		return 0, &StackStateError{stack, status, "another operation is running; wait for it to finish, then deploy again"}
	}
	return Update, nil
}

// Terminal reports whether a stack status ends an operation.
func Terminal(status string) bool {
	return status != "" && !strings.HasSuffix(status, "_IN_PROGRESS")
}

// Succeeded reports whether a terminal stack status is a success.
func Succeeded(status string) bool {
	switch status {
	case "CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE", "IMPORT_COMPLETE":
		return true
	}
	return false
}

// RolledBack reports whether CloudFormation rolled the operation back.
func RolledBack(status string) bool {
	return Terminal(status) && strings.Contains(status, "ROLLBACK_COMPLETE")
}

// NoChanges reports whether a FAILED change set only means that the
// template and parameters match what is deployed.
func NoChanges(reason string) bool {
	return strings.Contains(reason, "didn't contain changes") ||
		strings.Contains(reason, "No updates are to be performed")
}

// cancelled are the reasons CloudFormation gives resources it stopped
// because another one failed; they are never the cause.
var cancelled = []string{"Resource creation cancelled", "Resource update cancelled", "Resource deletion cancelled"}

// FirstFailure returns the event that caused a failed operation: the first
// *_FAILED event of a resource (events oldest first) whose reason is not a
// cancellation, or, when no resource failed, the stack's own first failed
// event. It returns nil when nothing failed.
func FirstFailure(events []Event, stackName string) *Event {
	var stackFail *Event
	for i := range events {
		e := &events[i]
		if !strings.HasSuffix(e.Status, "_FAILED") {
			continue
		}
		if isCancelled(e.Reason) {
			continue
		}
		if e.LogicalID == stackName {
			if stackFail == nil {
				stackFail = e
			}
			continue
		}
		return e
	}
	return stackFail
}

func isCancelled(reason string) bool {
	for _, c := range cancelled {
		if strings.Contains(reason, c) {
			return true
		}
	}
	return false
}

// StackFailedError reports an operation that ended in failure.
type StackFailedError struct {
	Stack        string
	Operation    string // "create", "update", "delete"
	Status       string // the terminal status
	StatusReason string
	// First is the event that caused the failure (nil if none was seen).
	First *Event
}

// RolledBack reports whether CloudFormation rolled the stack back.
func (e *StackFailedError) RolledBack() bool { return RolledBack(e.Status) }

func (e *StackFailedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s of stack %s failed: %s", e.Operation, e.Stack, e.Status)
	if e.First != nil {
		fmt.Fprintf(&b, "\n  first failure: %s (%s) %s: %s", e.First.LogicalID, e.First.Type, e.First.Status, e.First.Reason)
	} else if e.StatusReason != "" {
		fmt.Fprintf(&b, "\n  reason: %s", e.StatusReason)
	}
	switch e.Status {
	case "ROLLBACK_COMPLETE":
		b.WriteString("\n  rolled back: CloudFormation deleted what it had created; the empty stack can only be deleted now —\n  fix the cause, run `moat destroy`, then `moat deploy` again")
	case "UPDATE_ROLLBACK_COMPLETE":
		b.WriteString("\n  rolled back: the stack is back on its previous version, which keeps running; fix the cause and deploy again")
	case "ROLLBACK_FAILED", "UPDATE_ROLLBACK_FAILED":
		b.WriteString("\n  the rollback failed too: see the events in the CloudFormation console; `moat destroy` deletes what is left")
	case "DELETE_FAILED":
		b.WriteString("\n  the stack was not fully deleted: remove what blocks the resource above (for example a non-empty bucket), then run `moat destroy` again")
	}
	return b.String()
}
