package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
)

func init() { register(newReachCommand) }

func newReachCommand() *cobra.Command {
	var file, proto, output string
	var offline, probe, exposed bool
	c := &cobra.Command{
		Use:   "reach FROM TO PORT | FROM lb:NAME:PORT | --exposed",
		Short: "Say whether FROM can open a connection to TO on PORT, and why",
		Long: `Reach reasons over the stack file's route tables, network ACLs and security
groups, the same rules the kernel enforces in the local VPC, and follows the
request and its reply (network ACLs are stateless). FROM and TO are an
instance id, a security group, an auto scaling group, "bastion", a load
balancer name, "internet", or an address. A bare name is tried as a node, a
load balancer, an auto scaling group, then a security group; say which with
lb:NAME, asg:NAME or sg:NAME. When denied, every blocker is listed, with
AWS's explanation code and a fix.

TO lb:NAME:PORT goes through the load balancer: the source to each of its
nodes on the listener's port, the listener's rules to their target groups,
and each node to each target (and its health check port), with each
target's health.

With the stack running, it uses the live membership and target health;
otherwise the load balancer nodes, the bastion and one hypothetical
instance of each auto scaling group. --probe (a running stack) also opens a
real connection for each hop from the source's namespace and says whether
the kernel agreed. --exposed lists everything the internet can reach.
Exit code 0 when allowed, 1 when denied (or when a probe disagreed).`,
		Example: "  moat reach internet lb:web:80\n  moat reach lb:web sg:app 8000\n  moat reach bastion asg:web 22 --probe\n  moat reach internet i-0123456789abcdef0 22\n  moat reach --exposed",
		Args: func(c *cobra.Command, args []string) error {
			switch {
			case exposed && len(args) != 0:
				return fmt.Errorf("--exposed takes no arguments, got %d", len(args))
			case exposed:
				return nil
			case len(args) == 2 && isLBPort(args[1]):
				return nil
			case len(args) != 3:
				return fmt.Errorf("accepts FROM TO PORT (or FROM lb:NAME:PORT, or --exposed), received %d arg(s)", len(args))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			switch proto {
			case plan.ProtoTCP, plan.ProtoUDP, plan.ProtoICMP:
			default:
				return withCode(exitUsage, fmt.Errorf("protocol %q: use tcp, udp or icmp", proto))
			}
			if probe && proto != plan.ProtoTCP {
				return withCode(exitUsage, fmt.Errorf("--probe tries TCP connections only, not %s", proto))
			}
			if probe && offline {
				return withCode(exitUsage, errors.New("--probe needs the running stack; drop --offline"))
			}
			p, err := loadPlan(file, c.ErrOrStderr())
			if err != nil {
				return err
			}
			r := reacher{ctx: c.Context(), p: p, m: secgroup.OfflineMembership(p)}
			if !offline {
				if lm, ok := liveMembership(c.Context(), p.Stack); ok {
					r.m, r.live = lm, true
				}
			}
			if probe && !r.live {
				return withCode(exitNotFound, fmt.Errorf("--probe: stack %s is not running on this machine: start it with moat up", p.Stack))
			}
			w := c.OutOrStdout()
			if exposed {
				return r.exposed(w, output)
			}
			from, err := secgroup.ResolveEndpoint(p, r.m, args[0])
			if err != nil {
				if isLBPort(args[0]) {
					return withCode(exitUsage, fmt.Errorf("%s: a load balancer's listener is a destination only; as a source, name its nodes with lb:NAME", args[0]))
				}
				return withCode(exitNotFound, err)
			}
			if len(args) == 2 {
				name, port, _ := parseLBPort(args[1])
				return r.throughLB(w, output, from, name, port, probe, proto)
			}
			port, err := strconv.Atoi(args[2])
			if err != nil || port < 0 || port > 65535 {
				return withCode(exitUsage, fmt.Errorf("port %q: want a number from 0 to 65535", args[2]))
			}
			if name, lbPort, ok := parseLBPort(args[1]); ok {
				if lbPort != port {
					return withCode(exitUsage, fmt.Errorf("%s names port %d, but PORT is %d: give one", args[1], lbPort, port))
				}
				return r.throughLB(w, output, from, name, port, probe, proto)
			}
			to, err := secgroup.ResolveEndpoint(p, r.m, args[1])
			if err != nil {
				return withCode(exitNotFound, err)
			}
			v := secgroup.Reach(p, r.m, from, to, proto, port)
			if probe {
				if err := r.probe(&v); err != nil {
					return err
				}
			}
			err = writeAnswer(w, output, struct {
				secgroup.Verdict
				Live bool `json:"live"`
			}{v, r.live}, func() {
				writeVerdict(w, v, r.live)
				if to.Kind == secgroup.EndpointNode && to.Node.Kind == secgroup.KindLoadBalancer && proto == plan.ProtoTCP {
					fmt.Fprintf(w, "  note:    this is one node of load balancer %s; lb:%s:%d follows its listener to the targets\n", to.Node.Owner, to.Node.Owner, port)
				}
			})
			if err != nil {
				return err
			}
			return verdictExit(v.Allowed, []secgroup.Verdict{v})
		},
	}
	fileFlag(c, &file)
	c.Flags().StringVar(&proto, "proto", "tcp", "protocol: tcp, udp or icmp")
	c.Flags().BoolVar(&offline, "offline", false, "ignore a running stack; reason from the stack file alone")
	c.Flags().BoolVar(&probe, "probe", false, "on a running stack, also try each connection for real from the source's namespace")
	c.Flags().BoolVar(&exposed, "exposed", false, "list everything reachable from the internet (node, protocol, ports, the rules that allow it)")
	outputFlag(c, &output)
	return c
}

// isLBPort says whether s is lb:NAME:PORT.
func isLBPort(s string) bool { _, _, ok := parseLBPort(s); return ok }

// parseLBPort splits lb:NAME:PORT.
func parseLBPort(s string) (name string, port int, ok bool) {
	rest, found := strings.CutPrefix(s, "lb:")
	if !found {
		return "", 0, false
	}
	name, ps, found := strings.Cut(rest, ":")
	if !found || name == "" {
		return "", 0, false
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, false
	}
	return name, port, true
}

// writeAnswer writes v as JSON with -o json, else calls text.
func writeAnswer(w io.Writer, output string, v any, text func()) error {
	if output == "json" {
		return writeJSON(w, v)
	}
	text()
	return nil
}

// verdictExit is exit 1 when denied or when a probe disagreed with its
// prediction.
func verdictExit(allowed bool, hops []secgroup.Verdict) error {
	for _, h := range hops {
		if h.Probe != nil && !h.Probe.Agrees {
			return withCode(exitFailure, fmt.Errorf("the kernel disagreed with the prediction for %s -> %s %s/%d: %s", h.From, h.To, h.Protocol, h.Port, h.Probe.Outcome))
		}
	}
	if !allowed {
		return withCode(exitFailure, errors.New("denied"))
	}
	return nil
}

// reacher answers moat reach over one plan and membership.
type reacher struct {
	ctx  context.Context
	p    *plan.Plan
	m    secgroup.Membership
	live bool
}

// throughLB answers FROM lb:NAME:PORT.
func (r reacher) throughLB(w io.Writer, output string, from secgroup.Endpoint, name string, port int, probe bool, proto string) error {
	if _, ok := r.p.LoadBalancer(name); !ok {
		return withCode(exitNotFound, fmt.Errorf("resolve %q: no load balancer named %s", fmt.Sprintf("lb:%s:%d", name, port), name))
	}
	if proto != plan.ProtoTCP {
		return withCode(exitUsage, fmt.Errorf("a load balancer's listener takes tcp, not %s", proto))
	}
	targets := secgroup.OfflineTargets(r.p, r.m)
	if r.live {
		live, err := liveTargets(r.ctx, r.p.Stack)
		if err != nil {
			return withCode(exitFailure, fmt.Errorf("target health of stack %s: %w", r.p.Stack, err))
		}
		targets = live
	}
	v := secgroup.ReachLB(r.p, r.m, from, name, port, targets)
	hops := lbHops(&v)
	if probe {
		var wg sync.WaitGroup
		errs := make([]error, len(hops))
		for i, h := range hops {
			wg.Go(func() { errs[i] = r.probe(h) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	err := writeAnswer(w, output, struct {
		secgroup.LBVerdict
		Live bool `json:"live"`
	}{v, r.live}, func() { writeLBVerdict(w, v, r.live) })
	if err != nil {
		return err
	}
	var all []secgroup.Verdict
	for _, h := range hops {
		all = append(all, *h)
	}
	return verdictExit(v.Allowed, all)
}

// lbHops are pointers to every hop of an answer through a load balancer.
func lbHops(v *secgroup.LBVerdict) []*secgroup.Verdict {
	var out []*secgroup.Verdict
	for i := range v.Front {
		out = append(out, &v.Front[i])
	}
	for i := range v.Targets {
		for j := range v.Targets[i].Hops {
			out = append(out, &v.Targets[i].Hops[j])
		}
	}
	return out
}

// probe tries the verdict's connection for real on the running stack and
// records what the kernel did.
func (r reacher) probe(v *secgroup.Verdict) error {
	if v.FromNode == "" || v.ToNode == "" {
		return withCode(exitUsage, fmt.Errorf("--probe: %s -> %s: both ends must be nodes of the running stack or the internet (198.18.0.2), not a bare address", v.From, v.To))
	}
	cl := stackClient(r.p.Stack)
	if cl == nil {
		return withCode(exitFailure, errors.New("--probe needs Linux: the stack runs on this machine"))
	}
	res, err := cl.Probe(r.ctx, api.ProbeRequest{From: v.FromNode, To: v.ToNode, Port: v.Port})
	if err != nil {
		return withCode(exitFailure, fmt.Errorf("probe %s -> %s tcp/%d: %w", v.FromNode, v.ToNode, v.Port, err))
	}
	v.Probe = &secgroup.Probe{Reached: res.Reached, Outcome: res.Outcome, Agrees: res.Reached == v.Allowed}
	return nil
}

// liveTargets are the running stack's registered targets with their
// health.
func liveTargets(ctx context.Context, stack string) ([]secgroup.LBTarget, error) {
	cl := stackClient(stack)
	if cl == nil {
		return nil, errors.New("no stack runs on this platform")
	}
	ts, err := cl.Targets(ctx)
	if err != nil {
		return nil, err
	}
	return lbTargets(ts), nil
}

// lbTargets converts the daemon's target list.
func lbTargets(ts []api.Target) []secgroup.LBTarget {
	var out []secgroup.LBTarget
	for _, t := range ts {
		ap, err := netip.ParseAddrPort(t.Address)
		if err != nil {
			continue
		}
		out = append(out, secgroup.LBTarget{TargetGroup: t.TargetGroup, ID: t.ID, Addr: ap.Addr(), Port: int(ap.Port()),
			State: t.State, Reason: t.Reason, Description: t.Description})
	}
	return out
}

// exposed lists everything reachable from the internet.
func (r reacher) exposed(w io.Writer, output string) error {
	es := secgroup.Exposed(r.p, r.m)
	if output == "json" {
		if es == nil {
			es = []secgroup.Exposure{}
		}
		return writeJSON(w, es)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tPORTS\tFROM\tLISTENER\tNODES\tALLOWED BY")
	for _, e := range es {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Target, e.Ports(), e.From, dash(e.Listener), strings.Join(e.Nodes, ","), strings.Join(e.AllowedBy, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "(%s; the load balancer counts only its listeners' ports)\n", membershipSource(r.live))
	return nil
}

func membershipSource(live bool) string {
	if live {
		return "running stack (live membership)"
	}
	return "stack file (offline: LB nodes, bastion, one hypothetical instance per auto scaling group)"
}

func verdictWord(allowed bool) string {
	if allowed {
		return "ALLOWED"
	}
	return "DENIED"
}

// probeLine renders a probe's outcome.
func probeLine(p *secgroup.Probe) string {
	if p.Agrees {
		return p.Outcome + "; the kernel agrees"
	}
	return p.Outcome + "; the kernel DISAGREES with the prediction"
}

func writeVerdict(w io.Writer, v secgroup.Verdict, live bool) {
	what := fmt.Sprintf("%s/%d", v.Protocol, v.Port)
	fmt.Fprintf(w, "%s  %s -> %s %s\n", verdictWord(v.Allowed), v.From, v.To, what)
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
	if v.Probe != nil {
		fmt.Fprintf(w, "  probe:   %s\n", probeLine(v.Probe))
	}
	if !v.Allowed {
		writeBlockers(w, v.Reason, v.Fix, v.Blockers)
	}
	fmt.Fprintf(w, "  from:    %s\n", membershipSource(live))
}

// writeBlockers prints every blocker, in the order the packets meet
// them, with AWS's explanation code (or the reason alone when there is
// no blocker to list).
func writeBlockers(w io.Writer, reason, fix string, bs []secgroup.Blocker) {
	if len(bs) == 0 {
		fmt.Fprintf(w, "  why:     %s\n", reason)
		if fix != "" {
			fmt.Fprintf(w, "  fix:     %s\n", fix)
		}
		return
	}
	for i, b := range bs {
		code := ""
		if b.Code != "" {
			code = " [" + b.Code + "]"
		}
		fmt.Fprintf(w, "  blocker %d/%d: %s%s\n", i+1, len(bs), b.Message, code)
		if b.Fix != "" {
			fmt.Fprintf(w, "    fix: %s\n", b.Fix)
		}
	}
}

func writeLBVerdict(w io.Writer, v secgroup.LBVerdict, live bool) {
	listener := "no listener"
	if v.Listener != "" {
		listener = "listener " + v.Listener
	}
	fmt.Fprintf(w, "%s  %s -> lb:%s:%d (%s)\n", verdictWord(v.Allowed), v.From, v.LoadBalancer, v.Port, listener)
	hop := func(label string, h secgroup.Verdict) {
		fmt.Fprintf(w, "  %-8s %s -> %s %s/%d: %s\n", label, h.From, h.To, h.Protocol, h.Port, strings.ToLower(verdictWord(h.Allowed)))
		if h.Probe != nil {
			fmt.Fprintf(w, "           probe: %s\n", probeLine(h.Probe))
		}
	}
	for i, h := range v.Front {
		label := ""
		if i == 0 {
			label = "front:"
		}
		hop(label, h)
	}
	for _, r := range v.Routes {
		fmt.Fprintf(w, "  rule:    %s: %s\n", r.Rule, r.Action)
	}
	for _, t := range v.Targets {
		fmt.Fprintf(w, "  target:  %s (%s) in target group %s, health: %s\n", t.ID, netip.AddrPortFrom(t.Addr, uint16(t.Port)), t.TargetGroup, t.Health)
		for _, h := range t.Hops {
			hop("", h)
		}
	}
	if !v.Allowed {
		writeBlockers(w, v.Reason, v.Fix, v.Blockers)
	}
	src := membershipSource(live)
	if live {
		src = "running stack (live membership and target health)"
	}
	fmt.Fprintf(w, "  from:    %s\n", src)
}
