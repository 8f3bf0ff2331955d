package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
)

func init() { register(newReachCommand) }

func newReachCommand() *cobra.Command {
	var file, proto, output string
	var offline bool
	c := &cobra.Command{
		Use:   "reach FROM TO PORT",
		Short: "Say whether FROM can open a connection to TO on PORT, and why",
		Long: `Reach reasons over the stack file's route tables and security groups, the
same rules the kernel enforces in the local VPC. FROM and TO are an instance
id, a security group, an auto scaling group, "bastion", a load balancer name,
"internet", or an address. A bare name is tried as a node, a load balancer,
an auto scaling group, then a security group; say which with lb:NAME,
asg:NAME or sg:NAME. With the stack running, it uses the live
membership; otherwise the load balancer nodes, the bastion and one
hypothetical instance of each auto scaling group.
Exit code 0 when allowed, 1 when denied.`,
		Example: "  moat reach lb:web sg:app 8000\n  moat reach internet lb:web 80\n  moat reach bastion asg:web 22\n  moat reach internet i-0123456789abcdef0 22",
		Args:    cobra.ExactArgs(3),
		RunE: func(c *cobra.Command, args []string) error {
			port, err := strconv.Atoi(args[2])
			if err != nil || port < 0 || port > 65535 {
				return withCode(exitUsage, fmt.Errorf("port %q: want a number from 0 to 65535", args[2]))
			}
			switch proto {
			case plan.ProtoTCP, plan.ProtoUDP, plan.ProtoICMP:
			default:
				return withCode(exitUsage, fmt.Errorf("protocol %q: use tcp, udp or icmp", proto))
			}
			p, err := loadPlan(file, c.ErrOrStderr())
			if err != nil {
				return err
			}
			m, live := secgroup.OfflineMembership(p), false
			if !offline {
				if lm, ok := liveMembership(c.Context(), p.Stack); ok {
					m, live = lm, true
				}
			}
			from, err := secgroup.ResolveEndpoint(p, m, args[0])
			if err != nil {
				return withCode(exitNotFound, err)
			}
			to, err := secgroup.ResolveEndpoint(p, m, args[1])
			if err != nil {
				return withCode(exitNotFound, err)
			}
			v := secgroup.Reach(p, m, from, to, proto, port)
			switch output {
			case "json":
				if err := writeJSON(c.OutOrStdout(), struct {
					secgroup.Verdict
					Live bool `json:"live"`
				}{v, live}); err != nil {
					return err
				}
			case "text", "":
				writeVerdict(c.OutOrStdout(), v, proto, port, live)
			default:
				return withCode(exitUsage, fmt.Errorf("unknown output format %q: use text or json", output))
			}
			if !v.Allowed {
				return withCode(exitFailure, errors.New("denied"))
			}
			return nil
		},
	}
	fileFlag(c, &file)
	c.Flags().StringVar(&proto, "proto", "tcp", "protocol: tcp, udp or icmp")
	c.Flags().BoolVar(&offline, "offline", false, "ignore a running stack; reason from the stack file alone")
	outputFlag(c, &output)
	return c
}

func writeVerdict(w io.Writer, v secgroup.Verdict, proto string, port int, live bool) {
	word := "DENIED"
	if v.Allowed {
		word = "ALLOWED"
	}
	src := "stack file (offline: LB nodes, bastion, one hypothetical instance per auto scaling group)"
	if live {
		src = "running stack (live membership)"
	}
	fmt.Fprintf(w, "%s  %s -> %s %s/%d\n", word, v.From, v.To, proto, port)
	fmt.Fprintf(w, "  route:   %s\n", dash(v.Route))
	for _, n := range v.NetworkACLs {
		fmt.Fprintf(w, "  nacl:    %s\n", n)
	}
	if v.Egress != "" {
		fmt.Fprintf(w, "  egress:  %s\n", v.Egress)
	}
	if v.Ingress != "" {
		fmt.Fprintf(w, "  ingress: %s\n", v.Ingress)
	}
	switch {
	case !v.Allowed && len(v.Blockers) == 0:
		fmt.Fprintf(w, "  why:     %s\n", v.Reason)
		if v.Fix != "" {
			fmt.Fprintf(w, "  fix:     %s\n", v.Fix)
		}
	case !v.Allowed:
		// Every blocker, in the order the packets meet them, with AWS's
		// explanation code.
		for i, b := range v.Blockers {
			fmt.Fprintf(w, "  blocker %d/%d: %s [%s]\n", i+1, len(v.Blockers), b.Message, b.Code)
			if b.Fix != "" {
				fmt.Fprintf(w, "    fix: %s\n", b.Fix)
			}
		}
	}
	fmt.Fprintf(w, "  from:    %s\n", src)
}
