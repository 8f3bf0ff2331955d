//go:build !linux || portable

package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/client"
	"github.com/moat-dev/moat/internal/secgroup"
)

// linuxCommands says whether this build has the commands that need Linux.
const linuxCommands = false

// Here the commands that need Linux only say so.
func init() {
	for _, lo := range linuxOnly {
		register(func() *cobra.Command {
			return &cobra.Command{
				Use:                lo.use,
				Short:              lo.short + " (needs Linux)",
				DisableFlagParsing: true,
				RunE: func(c *cobra.Command, _ []string) error {
					return withCode(exitFailure, fmt.Errorf("moat %s needs Linux: it runs the stack on this machine with network namespaces and nftables; here, moat validate, plan, template and deploy (the stack on AWS) work", lo.use))
				},
			}
		})
	}
}

// liveMembership: no stack runs here.
func liveMembership(context.Context, string) (secgroup.Membership, bool) {
	return secgroup.Membership{}, false
}

// localSSHConfig: no stack runs here.
func localSSHConfig(*cobra.Command, string, string, string) (string, error) {
	return "", withCode(exitFailure, errors.New("moat ssh-config needs Linux for a stack on this machine; for the stack deployed on AWS, use moat ssh-config --aws"))
}

// stackClient: no stack runs here.
func stackClient(string) *client.Client { return nil }
