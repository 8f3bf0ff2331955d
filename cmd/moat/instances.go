//go:build linux && !portable

package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/client"
)

func init() {
	register(newPsCommand)
	register(newScaleCommand)
	register(newTerminateCommand)
	register(newRefreshCommand)
	register(newProtectCommand)
	register(newLogsCommand)
}

func newPsCommand() *cobra.Command {
	var file, stack, output string
	var all bool
	c := &cobra.Command{
		Use:   "ps",
		Short: "List the stack's instances",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, _, err := connect(c.Context(), stack, file)
			if err != nil {
				return err
			}
			list, err := cl.Instances(c.Context(), all)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(c.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			// INDEX is what ssh, terminate and logs accept in place of
			// an id; terminated instances have none.
			fmt.Fprintln(tw, "INDEX\tID\tGROUP\tZONE\tSUBNET\tIP\tSTATE\tHEALTH\tCPU\tMEM\tAGE")
			n := 0
			for _, i := range list {
				index, health, cpu := "-", i.Health, fmt.Sprintf("%.1f%%", i.CPUPercent)
				if i.State == "terminated" {
					health, cpu = "-", "-"
				} else {
					n++
					index = strconv.Itoa(n)
				}
				if health == "" {
					health = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", index, i.ID, i.Group, i.Zone, i.Subnet, i.IP,
					i.State, health, cpu, humanBytes(i.MemoryBytes), time.Since(i.Launched).Round(time.Second))
			}
			if all {
				for _, i := range list {
					if i.State == "terminated" && i.StateReason != "" {
						fmt.Fprintf(c.ErrOrStderr(), "%s: %s\n", i.ID, i.StateReason)
					}
				}
			}
			return tw.Flush()
		},
	}
	stackFlags(c, &file, &stack)
	outputFlag(c, &output)
	c.Flags().BoolVarP(&all, "all", "a", false, "also list recently terminated instances (the last 50 per group), with why")
	return c
}

func humanBytes(n int64) string {
	switch {
	case n <= 0:
		return "-"
	case n < 1<<20:
		return fmt.Sprintf("%dK", n>>10)
	default:
		return fmt.Sprintf("%dM", n>>20)
	}
}

func newScaleCommand() *cobra.Command {
	var file, stack string
	c := &cobra.Command{
		Use:   "scale GROUP N",
		Short: "Set an auto scaling group's desired capacity",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 {
				return withCode(exitUsage, fmt.Errorf("desired capacity %q is not a whole number ≥ 0", args[1]))
			}
			cl, _, err := connect(c.Context(), stack, file)
			if err != nil {
				return err
			}
			if err := cl.Scale(c.Context(), args[0], n); err != nil {
				return apiErr(err)
			}
			fmt.Fprintf(c.ErrOrStderr(), "group %s: desired capacity set to %d\n", args[0], n)
			return nil
		},
	}
	stackFlags(c, &file, &stack)
	return c
}

func newTerminateCommand() *cobra.Command {
	var file, stack string
	var decrement, yes bool
	c := &cobra.Command{
		Use:   "terminate ID|INDEX",
		Short: "Terminate an instance; its group replaces it unless --decrement-desired",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, _, err := connect(c.Context(), stack, file)
			if err != nil {
				return err
			}
			id, err := instanceID(c, cl, args[0])
			if err != nil {
				return err
			}
			if err := cl.Terminate(c.Context(), id, decrement); err != nil {
				return apiErr(err)
			}
			fmt.Fprintf(c.ErrOrStderr(), "terminating %s\n", id)
			return nil
		},
	}
	stackFlags(c, &file, &stack)
	c.Flags().BoolVar(&decrement, "decrement-desired", false, "lower the group's desired capacity instead of replacing the instance")
	c.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask (terminate never asks; accepted for scripts)")
	return c
}

func newProtectCommand() *cobra.Command {
	var file, stack string
	var off bool
	c := &cobra.Command{
		Use:   "protect ID|INDEX",
		Short: "Protect an instance from scale-in (--off removes the protection)",
		Long: `Set an instance's scale-in protection, as AWS's SetInstanceProtection: a
protected instance is never chosen when its group scales in or rebalances
its zones, and an instance refresh skips it (AWS's default); it is still
replaced when unhealthy and terminated by moat terminate. --off removes it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, _, err := connect(c.Context(), stack, file)
			if err != nil {
				return err
			}
			id, err := instanceID(c, cl, args[0])
			if err != nil {
				return err
			}
			if err := cl.SetProtection(c.Context(), id, !off); err != nil {
				return apiErr(err)
			}
			word := "protected from scale-in"
			if off {
				word = "no longer protected from scale-in"
			}
			fmt.Fprintf(c.ErrOrStderr(), "%s is %s\n", id, word)
			return nil
		},
	}
	stackFlags(c, &file, &stack)
	c.Flags().BoolVar(&off, "off", false, "remove the protection")
	return c
}

func newRefreshCommand() *cobra.Command {
	var file, stack string
	c := &cobra.Command{
		Use:   "refresh GROUP",
		Short: "Start an instance refresh: replace every instance, keeping the minimum healthy percentage",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, _, err := connect(c.Context(), stack, file)
			if err != nil {
				return err
			}
			if err := cl.Refresh(c.Context(), args[0]); err != nil {
				return apiErr(err)
			}
			fmt.Fprintf(c.ErrOrStderr(), "instance refresh of group %s started; follow it with moat events -f\n", args[0])
			return nil
		},
	}
	stackFlags(c, &file, &stack)
	return c
}

func newLogsCommand() *cobra.Command {
	var file, stack string
	var follow bool
	c := &cobra.Command{
		Use:   "logs ID|INDEX",
		Short: "Print an instance's output (user data and app); -f to follow",
		Args:  followArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, _, err := connect(c.Context(), stack, file)
			if err != nil {
				return err
			}
			id, err := instanceID(c, cl, args[0])
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			w := c.OutOrStdout()
			return apiErr(cl.Logs(ctx, id, follow, func(line []byte) {
				w.Write(line)
				w.Write([]byte{'\n'})
			}))
		},
	}
	c.Flags().StringVar(&file, "file", "", "stack file (default $MOAT_FILE, then ./moat.yaml)")
	c.Flags().StringVar(&stack, "stack", "", "stack name (default: the stack file's name)")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output")
	return c
}

// instanceID resolves an instance id, or an index counted from 1 in moat
// ps order (as moat ssh takes), to an instance id.
func instanceID(c *cobra.Command, cl *client.Client, arg string) (string, error) {
	n, err := strconv.Atoi(arg)
	if err != nil {
		return arg, nil
	}
	list, err := cl.Instances(c.Context(), false)
	if err != nil {
		return "", apiErr(err)
	}
	if n < 1 || n > len(list) {
		return "", withCode(exitNotFound, fmt.Errorf("no instance with index %d: the stack has %d instance(s), numbered from 1 in moat ps order", n, len(list)))
	}
	return list[n-1].ID, nil
}

// followArgs is cobra.ExactArgs(n) for commands where -f means --follow
// (logs, events): a stray stack file path gets a hint, since elsewhere
// -f names the stack file.
func followArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		for _, a := range args {
			if strings.HasSuffix(a, ".yaml") || strings.HasSuffix(a, ".yml") {
				return fmt.Errorf("here -f means --follow; give the stack file with --file %s", a)
			}
		}
		return cobra.ExactArgs(n)(c, args)
	}
}

// apiErr maps the daemon's 404 to exitNotFound.
func apiErr(err error) error {
	if err == nil {
		return nil
	}
	if isNotFound(err) {
		return withCode(exitNotFound, err)
	}
	return err
}
