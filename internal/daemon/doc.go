// Package daemon is the control plane of one running stack: it holds the
// lock and state directory, builds the stack from the plan, serves an HTTP
// API on a unix socket for the CLI, and tears everything down on exit.
//
// A walk through the files:
//
//   - daemon.go: Run — locks, the event log, the control API, start, wait,
//     teardown (whatever happened, in reverse).
//   - stack.go: the running stack and its start steps (key pairs, network,
//     audit log, load balancers, bastion, auto scaling groups); every step
//     registers its own undo, so a failed start undoes exactly what it made.
//   - network.go: the VPC (package vpc) and, with local.egress, its egress
//     proxy (package egress).
//   - balancers.go: the load balancers (package lb) on their published
//     loopback addresses, dialing from their nodes' private addresses, and
//     the target group calls the groups make on them; lbconfig.go
//     translates the plan into the engine's config.
//   - publish.go: endpoints on the host's loopback, served until stop.
//   - groupstart.go: start-up of the auto scaling groups, until each has
//     its desired capacity in service (or its launches fail) and the
//     targets are healthy.
//   - group.go: one auto scaling group. The autoscale controller decides
//     (pure code); the runtime reports facts to it each tick (exited
//     processes, target health, CPU and request metrics) and applies its
//     launches and terminations (terminations drain through the load
//     balancer first).
//   - launch.go: one instance — an address and a namespace, the metadata
//     and SSH endpoints inside it, then the processes (package instance).
//   - bastion.go: the bastion, whose forwarding policy is moat reach's
//     reasoning over the live membership.
//   - apply.go: moat up on a running stack — what changed, applied live
//     (security group rules, listeners, target groups, groups, launch
//     templates) or refused.
//   - routes.go: the stack's handlers of the control API (routes and
//     wire types: package api; daemon.go serves exactly those).
//   - faults.go: injected faults (package fault; routes /v1/faults): each
//     effect records its undo step in the state directory before going on,
//     and is undone when its duration passes, on DELETE, at teardown, or,
//     after a crash, by reclaim.
//   - reclaim.go: a crashed daemon's leftovers (its faults' undo records,
//     processes in the stack's namespaces, then the namespaces).
//   - state.go: the state directory, the per-directory lock and the
//     machine-wide lock per stack name.
package daemon
