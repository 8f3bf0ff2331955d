package daemon

// The stack's network: the VPC and its opt-in egress.

import (
	"context"
	"fmt"

	"github.com/moat-dev/moat/internal/egress"
	"github.com/moat-dev/moat/internal/metadata"
	"github.com/moat-dev/moat/internal/vpc"
)

// startNetwork reclaims a crashed run's leftovers, then builds the VPC.
func (s *stack) startNetwork(ctx context.Context) error {
	if n, err := reclaim(ctx, s.plan.Stack, s.dir); err != nil {
		return fmt.Errorf("reclaim a previous run's leftovers: %w", err)
	} else if n > 0 {
		s.event("vpc", "vpc.reclaim", "Reclaimed %d leftover namespace(s) of a previous run", n)
	}
	v, err := vpc.Up(ctx, s.plan, vpc.Options{StateDir: string(s.dir), Log: s.log.With("component", "vpc")})
	if err != nil {
		return err
	}
	s.onStop(func(ctx context.Context) error { return v.Down(ctx) })
	s.partsMu.Lock()
	s.net = v
	s.partsMu.Unlock()
	s.metadata = metadata.New(s.metadataInfo, nil)
	s.event("vpc", "vpc.up", "VPC %s up: %d subnets in %d zones", s.plan.VPC.CIDR, len(s.plan.Subnets), len(s.plan.Zones))
	if s.plan.Local.Egress {
		return s.startEgress(v)
	}
	return nil
}

// startEgress serves the VPC's opt-in egress (local.egress): TCP and DNS
// leaving through the internet gateway are carried on from the host
// namespace by an egress.Proxy listening in the internet namespace.
func (s *stack) startEgress(v *vpc.VPC) error {
	l, err := vpc.ListenIn(v.InternetPath(), "tcp4", fmt.Sprintf(":%d", vpc.EgressPort))
	if err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	pc, err := vpc.ListenPacketIn(v.InternetPath(), "udp4", fmt.Sprintf(":%d", vpc.EgressDNSPort))
	if err != nil {
		l.Close()
		return fmt.Errorf("egress: %w", err)
	}
	p := &egress.Proxy{VPC: s.plan.VPC.CIDR, Log: s.log.With("component", "egress")}
	p.Start(l, pc)
	s.onStop(func(context.Context) error { return p.Close() })
	s.event("vpc", "vpc.egress", "Egress on: TCP and DNS from the VPC reach the host's network from the host namespace; %s is the host's loopback", egress.HostAddr)
	return nil
}
