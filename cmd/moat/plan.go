package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/plan"
)

func init() { register(newPlanCommand) }

func newPlanCommand() *cobra.Command {
	var file, output string
	c := &cobra.Command{
		Use:   "plan",
		Short: "Show the resolved plan: subnets, addresses, security group rules, endpoints",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := loadPlan(file, c.ErrOrStderr())
			if err != nil {
				return err
			}
			switch output {
			case "json":
				return writeJSON(c.OutOrStdout(), p)
			case "text", "":
				return writePlanText(c.OutOrStdout(), p)
			default:
				return withCode(exitUsage, fmt.Errorf("unknown output format %q: use text or json", output))
			}
		},
	}
	fileFlag(c, &file)
	outputFlag(c, &output)
	return c
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writePlanText prints the plan as tables for humans.
func writePlanText(w io.Writer, p *plan.Plan) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	egress := ""
	if p.Local.Egress {
		egress = "  LOCAL EGRESS on (the internet gateway reaches the host's network)"
	}
	fmt.Fprintf(tw, "STACK %s  VPC %s  ZONES %d%s\n\n", p.Stack, p.VPC.CIDR, len(p.Zones), egress)
	fmt.Fprintln(tw, "SUBNET\tZONE\tTYPE\tCIDR\tGATEWAY\tROUTE TABLE\tSTATIC")
	for _, s := range p.Subnets {
		typ := "private"
		if s.Public {
			typ = "public"
		}
		var st []string
		for _, a := range s.Static {
			st = append(st, fmt.Sprintf("%s=%s", a.Node, a.Addr))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Zone, typ, s.CIDR, s.Gateway, s.RouteTable, dash(strings.Join(st, " ")))
	}
	fmt.Fprintln(tw, "\nROUTE TABLE\tDESTINATION\tTARGET\tSUBNETS")
	for _, rt := range p.RouteTables {
		for _, r := range rt.Routes {
			target := r.Target
			if r.NAT != "" {
				target = "nat:" + r.NAT
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rt.Name, r.Destination, target, strings.Join(rt.Subnets, ","))
		}
	}
	fmt.Fprintln(tw, "\nSECURITY GROUP\tDIRECTION\tPROTOCOL\tPORTS\tPEER\tDESCRIPTION")
	for _, g := range p.SecurityGroups {
		for _, dir := range []struct {
			name  string
			rules []plan.Rule
		}{{"ingress", g.Ingress}, {"egress", g.Egress}} {
			for _, r := range dir.rules {
				ports := fmt.Sprintf("%d-%d", r.FromPort, r.ToPort)
				if r.FromPort == r.ToPort {
					ports = fmt.Sprint(r.FromPort)
				}
				if r.Protocol == plan.ProtoAll || (r.FromPort == 0 && r.ToPort == 65535) {
					ports = "all"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", g.Name, dir.name, r.Protocol, ports, r.Peer(), dash(r.Description))
			}
		}
	}
	if len(p.NetworkACLs) > 0 {
		fmt.Fprintln(tw, "\nNETWORK ACL\tDIRECTION\tRULE\tSUBNETS")
		for _, a := range p.NetworkACLs {
			for _, dir := range []struct {
				name    string
				entries []plan.ACLEntry
			}{{"inbound", a.Inbound}, {"outbound", a.Outbound}} {
				for _, e := range dir.entries {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Name, dir.name, e, strings.Join(a.Subnets, ","))
				}
				fmt.Fprintf(tw, "%s\t%s\t* deny all\t%s\n", a.Name, dir.name, strings.Join(a.Subnets, ","))
			}
		}
	}
	fmt.Fprintln(tw, "\nAUTO SCALING GROUP\tLAUNCH TEMPLATE\tSUBNETS\tMIN\tDESIRED\tMAX\tHEALTH\tTARGET GROUPS")
	for _, g := range p.AutoScalingGroups {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", g.Name, g.LaunchTemplate, strings.Join(g.Subnets, ","),
			g.MinSize, g.DesiredCapacity, g.MaxSize, g.HealthCheckType, dash(strings.Join(g.TargetGroups, ",")))
	}
	fmt.Fprintln(tw, "\nLOAD BALANCER\tNODES\tLISTENERS")
	for _, lb := range p.LoadBalancers {
		var nodes, ls []string
		for _, n := range lb.Nodes {
			nodes = append(nodes, fmt.Sprintf("%s(%s)", n.Address, n.Subnet))
		}
		for _, l := range lb.Listeners {
			ls = append(ls, fmt.Sprintf("%s:%d", l.Protocol, l.Port))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", lb.Name, strings.Join(nodes, " "), strings.Join(ls, " "))
	}
	fmt.Fprintln(tw, "\nENDPOINT\tKIND\tPUBLISHED ON\tTARGET")
	for _, e := range p.Endpoints {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, e.Kind, e.Publish, e.Target)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
