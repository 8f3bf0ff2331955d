//go:build linux && !portable

package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/api"
)

func init() { register(newTopCommand) }

func newTopCommand() *cobra.Command {
	var file, stack, output string
	var follow bool
	c := &cobra.Command{
		Use:   "top",
		Short: "Show the last second of the stack: requests, errors and latency per load balancer and target, CPU and memory per instance (-w: every second)",
		Long: `Show the last second of the running stack, from GET /v1/metrics: per load
balancer its requests, status classes by source (the targets' and its own),
target response time p50/p99 and open connections, each target group's
healthy and unhealthy hosts and each target's requests, 5XX and latency;
per instance its CPUUtilization and memory; the bastion's sessions and the
NAT gateways' egress. Names are CloudWatch's. -w prints every new second
until interrupted; -o json prints the samples as JSON lines.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, _, err := connect(c.Context(), stack, file)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			w := c.OutOrStdout()
			var since time.Time
			for first := true; ; first = false {
				m, err := cl.Metrics(ctx, since)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return apiErr(err)
				}
				samples := m.Samples
				if first && len(samples) > 0 {
					samples = samples[len(samples)-1:] // the last second
				}
				if first && len(samples) == 0 && !follow {
					return fmt.Errorf("no metrics yet: the stack samples once a second, try again")
				}
				for _, s := range samples {
					if output == "json" {
						if err := writeJSONLine(w, s); err != nil {
							return err
						}
					} else if err := renderTop(w, s); err != nil {
						return err
					}
					since = s.Time
				}
				if !follow {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Second):
				}
			}
		},
	}
	stackFlags(c, &file, &stack)
	outputFlag(c, &output)
	c.Flags().BoolVarP(&follow, "watch", "w", false, "print every new second until interrupted")
	return c
}

// renderTop writes one second of the stack as text.
func renderTop(w io.Writer, s api.MetricsSample) error {
	fmt.Fprintf(w, "%s\n", s.Time.Local().Format("15:04:05"))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, l := range s.LoadBalancers {
		fmt.Fprintf(tw, "load balancer %s: %d requests, target 2XX %d 3XX %d 4XX %d 5XX %d, ELB 3XX %d 4XX %d 5XX %d, TargetResponseTime p50 %s p99 %s, %d connections\n",
			l.Name, l.RequestCount, l.HTTPCode_Target_2XX_Count, l.HTTPCode_Target_3XX_Count, l.HTTPCode_Target_4XX_Count,
			l.HTTPCode_Target_5XX_Count, l.HTTPCode_ELB_3XX_Count, l.HTTPCode_ELB_4XX_Count, l.HTTPCode_ELB_5XX_Count,
			seconds(l.TargetResponseTimeP50), seconds(l.TargetResponseTimeP99), l.ActiveConnectionCount)
		for _, g := range l.TargetGroups {
			fmt.Fprintf(tw, "  target group %s: %d healthy, %d unhealthy\n", g.Name, g.HealthyHostCount, g.UnHealthyHostCount)
		}
		if len(l.Targets) > 0 {
			fmt.Fprintln(tw, "  TARGET GROUP\tTARGET\tADDRESS\tSTATE\tREQUESTS\t5XX\tP50\tP99")
			for _, t := range l.Targets {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", t.TargetGroup, t.ID, t.Addr, t.State, t.RequestCount, t.Errors5XX,
					seconds(t.P50), seconds(t.P99))
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) // columns of their own
	if len(s.Instances) > 0 {
		fmt.Fprintln(tw, "INSTANCE\tGROUP\tCPU\tMEMORY")
		for _, in := range s.Instances {
			mem := humanBytes(in.MemoryUsedBytes)
			if in.MemoryLimitBytes > 0 {
				mem += " / " + humanBytes(in.MemoryLimitBytes)
			}
			fmt.Fprintf(tw, "%s\t%s\t%.1f%%\t%s\n", in.ID, in.Group, in.CPUUtilization, mem)
		}
	}
	var fwd []string
	for _, f := range s.Bastion.Forwards {
		to := f.Destination
		if f.ID != "" {
			to = f.ID + " " + to
		}
		fwd = append(fwd, fmt.Sprintf("%s: %d", to, f.Count))
	}
	fmt.Fprintf(tw, "bastion: %d sessions", s.Bastion.ActiveSessions)
	if len(fwd) > 0 {
		fmt.Fprintf(tw, ", forwarding to %s", strings.Join(fwd, ", "))
	}
	fmt.Fprintln(tw)
	for _, n := range s.NAT {
		fmt.Fprintf(tw, "NAT gateway %s: %d bytes, %d packets out\n", n.Name, n.BytesOutToDestination, n.PacketsOutToDestination)
	}
	return tw.Flush()
}

// seconds shows a duration given in seconds, in ms ("-" for none).
func seconds(s float64) string {
	if s <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", s*1000)
}
