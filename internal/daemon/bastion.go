package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
	"github.com/moat-dev/moat/internal/sshpolicy"
	"github.com/moat-dev/moat/internal/vpc"

	"github.com/moat-dev/moat/internal/bastion"
	"github.com/moat-dev/moat/internal/keypair"
)

// startBastion places the bastion in its public subnet and serves SSH on
// its published loopback address; forwarded connections leave from the
// bastion's own namespace, so the destinations' security groups decide.
func (s *stack) startBastion(ctx context.Context) error {
	b := s.plan.Bastion
	if b == nil {
		return nil
	}
	n, err := s.network().AddNode(ctx, vpc.NodeSpec{Name: "bastion", Kind: secgroup.KindBastion, Owner: "bastion",
		Subnet: b.Subnet, Addr: b.Address, Groups: b.SecurityGroups})
	if err != nil {
		return err
	}
	s.onStop(func(ctx context.Context) error { return s.network().RemoveNode(ctx, "bastion") })
	keys, err := s.keys.PublicKeys(b.KeyPair)
	if err != nil {
		return fmt.Errorf("bastion key pair: %w", err)
	}
	hk, err := keypair.LoadOrCreateHostKey(s.hostKeyPath("bastion"))
	if err != nil {
		return err
	}
	srv, err := bastion.New(bastion.Config{
		HostKey: hk, AuthorizedKeys: sshpolicy.NewKeySet(keys...), User: b.User,
		Dial: n.Dial(), Policy: s.bastionPolicy, Audit: s.audit, Logger: s.log.With("component", "bastion"),
	})
	if err != nil {
		return err
	}
	ln, err := listenLoopback(b.Publish.String())
	if err != nil {
		return fmt.Errorf("publish bastion: %w", err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(sctx, ln); err != nil && sctx.Err() == nil {
			s.log.Error("bastion stopped", "err", err)
		}
	}()
	s.onStop(func(context.Context) error {
		cancel()
		ln.Close()
		<-done
		return nil
	})
	s.mu.Lock()
	s.bastionHostKey = sshpolicy.KnownHostsLine(b.Publish.String(), hk.PublicKey())
	s.mu.Unlock()
	s.partsMu.Lock()
	s.bastionSrv = srv
	s.partsMu.Unlock()
	s.event("bastion", "bastion.start", "Bastion %s listening on %s (ssh -p %d %s@%s)", b.Address, b.Publish, b.Publish.Port(), b.User, b.Publish.Addr())
	return nil
}

// bastionPolicy refuses forwards that the destination's security groups
// would drop, with the reason and the fix, instead of letting the client
// hang: the same reasoning as moat reach, over the live membership.
func (s *stack) bastionPolicy(dst netip.AddrPort) error {
	p := s.current() // security groups change live
	if !p.VPC.CIDR.Contains(dst.Addr()) {
		return fmt.Errorf("%s is outside the VPC %s: the bastion forwards only into the VPC", dst.Addr(), p.VPC.CIDR)
	}
	m := s.network().Membership()
	from, err := secgroup.ResolveEndpoint(p, m, "bastion")
	if err != nil {
		return err
	}
	to, err := secgroup.ResolveEndpoint(p, m, dst.Addr().String())
	if err != nil {
		return err
	}
	if to.Kind != secgroup.EndpointNode {
		return fmt.Errorf("nothing in the VPC has the address %s", dst.Addr())
	}
	v := secgroup.Reach(p, m, from, to, plan.ProtoTCP, int(dst.Port()))
	if v.Allowed {
		return nil
	}
	msg := v.Reason
	if v.Fix != "" {
		msg += "; fix: " + v.Fix
	}
	return errors.New(msg)
}
