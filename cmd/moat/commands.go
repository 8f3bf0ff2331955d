package main

// The commands that run or talk to a stack on this machine need Linux
// (network namespaces, nftables, the stack's daemon); elsewhere (other.go)
// they are here only to say so. validate, plan,
// schema, init, template, deploy, destroy, outputs, keypair, reach, ssh-config --aws,
// version and completion work anywhere. Files of the Linux-only commands carry
// //go:build linux && !portable; -tags portable builds the CLI of other
// platforms on Linux, for tests.
var linuxOnly = []struct{ use, short string }{
	{"up", "Run the stack on this machine"},
	{"down", "Tear the running stack down"},
	{"status", "Show whether the stack runs"},
	{"events", "Print the stack's event log"},
	{"ps", "List the stack's instances"},
	{"targets", "List the load balancers' targets and their health"},
	{"activity", "Show an auto scaling group's activity"},
	{"scale", "Set an auto scaling group's desired capacity"},
	{"terminate", "Terminate an instance"},
	{"refresh", "Replace a group's instances"},
	{"protect", "Protect an instance from scale-in"},
	{"logs", "Print an instance's output"},
	{"ssh", "SSH to an instance through the bastion"},
	{"lb", "Run the load balancer on its own"},
	{"chaos", "Run AWS FIS experiments against the running stack"},
	{"console", "Print the live web console's URL and open it"},
	{"top", "Show the stack's last second of metrics"},
}
