//go:build linux && !portable

package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func init() { register(newTargetsCommand) }

func newTargetsCommand() *cobra.Command {
	var file, stack, output string
	c := &cobra.Command{
		Use:   "targets",
		Short: "List the load balancer's targets with their health (state and reason)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, _, err := connect(c.Context(), stack, file)
			if err != nil {
				return err
			}
			list, err := cl.Targets(c.Context())
			if err != nil {
				return apiErr(err)
			}
			if output == "json" {
				return writeJSON(c.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TARGET GROUP\tTARGET\tADDRESS\tSTATE\tREASON")
			for _, t := range list {
				reason := t.Reason
				if reason == "" {
					reason = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.TargetGroup, t.ID, t.Address, t.State, reason)
			}
			return tw.Flush()
		},
	}
	stackFlags(c, &file, &stack)
	outputFlag(c, &output)
	return c
}
