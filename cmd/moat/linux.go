//go:build linux && !portable

package main

import (
	"context"

	"github.com/moat-dev/moat/internal/client"
	"github.com/moat-dev/moat/internal/daemon"
	"github.com/moat-dev/moat/internal/secgroup"
)

// linuxCommands says whether this build has the commands that need Linux.
const linuxCommands = true

// liveMembership is the security group membership of the stack running
// on this machine, if it runs.
func liveMembership(ctx context.Context, stack string) (secgroup.Membership, bool) {
	m, err := client.New(daemon.StackDir(stack).Socket()).Membership(ctx)
	return m, err == nil
}

// stackClient is the client of the stack running (or not) on this machine.
func stackClient(stack string) *client.Client { return client.New(daemon.StackDir(stack).Socket()) }
