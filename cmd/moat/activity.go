//go:build linux && !portable

package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func init() { register(newActivityCommand) }

// newActivityCommand is describe-scaling-activities: a group's history,
// newest first, each step with its cause in AWS's wording.
func newActivityCommand() *cobra.Command {
	var file, stack, output string
	c := &cobra.Command{
		Use:   "activity GROUP",
		Short: "Show an auto scaling group's scaling activities (newest first) with their causes",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, _, err := connect(c.Context(), stack, file)
			if err != nil {
				return err
			}
			list, err := cl.Activities(c.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			if output == "json" {
				return writeJSON(c.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tSTATUS\tDESCRIPTION\tCAUSE")
			for _, a := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Time.UTC().Format(time.RFC3339), a.Status, a.Description, a.Cause)
			}
			return tw.Flush()
		},
	}
	stackFlags(c, &file, &stack)
	outputFlag(c, &output)
	return c
}
