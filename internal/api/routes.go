// Package api is the control API of a running stack: its routes and the
// JSON bodies they take and return. The daemon (package daemon) serves
// exactly these routes on the stack's unix socket; the typed client
// (package client) calls them. Nothing here touches the kernel, so the
// client builds on every platform.
package api

import (
	"fmt"
	"net/url"
	"strings"
)

// Route is one route of the control API: a method and a path pattern
// whose {wildcards} (net/http.ServeMux syntax) are filled in order.
type Route struct {
	Method  string
	Pattern string
}

// The routes. Each says what it takes and returns.
var (
	// GetStatus: GET, returns Status.
	GetStatus = Route{"GET", "/v1/status"}
	// PostShutdown: POST, no body; tears the stack down; returns Accepted.
	PostShutdown = Route{"POST", "/v1/shutdown"}
	// GetEvents: GET, returns the event log as JSON lines of events.Event
	// in Seq order (?after=SEQ: only those after that Seq); with
	// ?follow=1, then new events as they happen.
	GetEvents = Route{"GET", "/v1/events"}
	// GetInstances: GET, returns []Instance; ?all=1 adds recently
	// terminated ones.
	GetInstances = Route{"GET", "/v1/instances"}
	// GetTargets: GET, returns []Target.
	GetTargets = Route{"GET", "/v1/targets"}
	// PostScale: POST ScaleRequest, returns ScaleRequest (the new desired
	// capacity).
	PostScale = Route{"POST", "/v1/groups/{name}/scale"}
	// PostRefresh: POST, no body; starts an instance refresh; returns Accepted.
	PostRefresh = Route{"POST", "/v1/groups/{name}/refresh"}
	// GetActivities: GET, returns []Activity, newest first.
	GetActivities = Route{"GET", "/v1/groups/{name}/activities"}
	// PostTerminate: POST TerminateRequest, returns Accepted.
	PostTerminate = Route{"POST", "/v1/instances/{id}/terminate"}
	// PostProtection: POST ProtectionRequest, sets an instance's scale-in
	// protection (SetInstanceProtection); returns ProtectionRequest.
	PostProtection = Route{"POST", "/v1/instances/{id}/protection"}
	// GetLogs: GET, returns the instance's console output as text; with
	// ?follow=1 it keeps streaming.
	GetLogs = Route{"GET", "/v1/instances/{id}/logs"}
	// PostApply: POST plan.Plan (a changed stack file, resolved), returns
	// ApplyResult.
	PostApply = Route{"POST", "/v1/apply"}
	// GetMembership: GET, returns secgroup.Membership: which node holds
	// which address, in which security groups.
	GetMembership = Route{"GET", "/v1/membership"}
	// GetSSHAccess: GET, returns sshconfig.Access: what OpenSSH needs to reach
	// the instances through the bastion.
	GetSSHAccess = Route{"GET", "/v1/ssh"}
	// PostProbe: POST ProbeRequest, returns ProbeResult: a real TCP
	// connection from a node's namespace (or the internet's) to another
	// node (or the internet), for moat reach --probe.
	PostProbe = Route{"POST", "/v1/probe"}
	// PostFault: POST FaultRequest, injects a fault in the local data
	// plane; returns 201 and the Fault.
	PostFault = Route{"POST", "/v1/faults"}
	// GetFaults: GET, returns []Fault, active and recently ended, oldest
	// first.
	GetFaults = Route{"GET", "/v1/faults"}
	// DeleteFault: DELETE, undoes the fault now (again is a no-op); returns
	// the Fault.
	DeleteFault = Route{"DELETE", "/v1/faults/{id}"}
	// GetMetrics: GET, returns Metrics: the per-second samples of the
	// last ten minutes; with ?since=UNIX_MS only those after that time.
	GetMetrics = Route{"GET", "/v1/metrics"}
)

// Routes are all the routes, in the order above.
var Routes = []Route{GetStatus, PostShutdown, GetEvents, GetInstances, GetTargets, PostScale, PostRefresh,
	GetActivities, PostTerminate, PostProtection, GetLogs, PostApply, GetMembership, GetSSHAccess, PostProbe, PostFault, GetFaults, DeleteFault, GetMetrics}

// ServeMuxPattern is the route as a net/http.ServeMux pattern.
func (r Route) ServeMuxPattern() string { return r.Method + " " + r.Pattern }

// Path is the route's path with its wildcards replaced by args, in order,
// each escaped as one path segment. It panics when the number of args
// differs from the number of wildcards (a programming error).
func (r Route) Path(args ...string) string {
	var b strings.Builder
	rest, n := r.Pattern, 0
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if n >= len(args) {
			panic(fmt.Sprintf("api: %s needs more than %d argument(s)", r.Pattern, len(args)))
		}
		b.WriteString(rest[:i])
		b.WriteString(url.PathEscape(args[n]))
		rest, n = rest[i+j+1:], n+1
	}
	if n != len(args) {
		panic(fmt.Sprintf("api: %s takes %d argument(s), got %d", r.Pattern, n, len(args)))
	}
	b.WriteString(rest)
	return b.String()
}

// Follow is the query that makes GetEvents and GetLogs keep streaming.
const Follow = "follow=1"

// After is the query parameter of GetEvents: the Seq of the last event
// seen.
const After = "after"

// Since is the query parameter of GetMetrics: a time in Unix
// milliseconds.
const Since = "since"

// All is the query that makes GetInstances list recently terminated ones too.
const All = "all=1"
