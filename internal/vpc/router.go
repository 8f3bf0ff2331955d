package vpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/moat-dev/moat/internal/plan"
)

// Uplink addressing: the router's side of the "internet gateway" and the
// internet namespace's side (secgroup.InternetAddr). RFC 2544 space, never
// routed anywhere real.
var (
	uplinkRouter = netip.MustParsePrefix("198.18.0.1/30")
	uplinkNet    = netip.MustParsePrefix("198.18.0.0/30")
)

// MetadataAddr is the instance metadata address, on the router
// namespace's loopback; instances reach it through their gateway.
var MetadataAddr = netip.MustParseAddr("169.254.169.254")

// routerPolicy is what the router namespace's nftables enforce, derived
// from the plan's route tables.
type routerPolicy struct {
	Uplink string
	// Private subnets: the internet never opens connections to them.
	Private []netip.Prefix
	// NoRoute subnets have no route to 0.0.0.0/0: nothing leaves through
	// the uplink.
	NoRoute []netip.Prefix
	// Masquerade subnets reach the internet through a NAT gateway.
	Masquerade []netip.Prefix
	// NAT names the gateway of each Masquerade subnet.
	NAT map[netip.Prefix]string
}

// policyOf derives the router policy from the plan (pure).
func policyOf(p *plan.Plan, uplink string) routerPolicy {
	rp := routerPolicy{Uplink: uplink, NAT: map[netip.Prefix]string{}}
	for _, sn := range p.Subnets {
		target, nat := "", ""
		for _, rt := range p.RouteTables {
			if rt.Name != sn.RouteTable {
				continue
			}
			for _, r := range rt.Routes {
				if r.Destination.Bits() == 0 {
					target, nat = r.Target, r.NAT
				}
			}
		}
		if !sn.Public {
			rp.Private = append(rp.Private, sn.CIDR)
		}
		switch target {
		case plan.TargetNAT:
			rp.Masquerade = append(rp.Masquerade, sn.CIDR)
			rp.NAT[sn.CIDR] = nat
		case plan.TargetInternetGateway:
		default:
			rp.NoRoute = append(rp.NoRoute, sn.CIDR)
		}
	}
	return rp
}

func comment(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }

func ifname(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}

func matchIf(key expr.MetaKey, name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(name)},
	}
}

func matchNet(off uint32, p netip.Prefix) []expr.Any {
	bits := p.Bits()
	m := uint32(0xffffffff) << (32 - bits)
	if bits == 0 {
		m = 0
	}
	mask := []byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
	n := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: n[:]},
	}
}

func established() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var (
	accept = []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
	drop   = []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
)

// applyRouter installs table inet moat in the router namespace: forward
// (nothing new from the internet to private subnets; nothing out of
// subnets without a route), input (nothing new from the internet to the
// router itself, e.g. metadata) and postrouting (masquerade for subnets
// behind NAT).
func applyRouter(c *nftables.Conn, rp routerPolicy) error {
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "moat"})
	acceptPolicy := nftables.ChainPolicyAccept
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &acceptPolicy})
	// Every packet a NAT gateway sends out is counted here, before the
	// stateful accept (the nat chain below sees only each connection's
	// first packet).
	for _, p := range rp.Masquerade {
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(matchIf(expr.MetaKeyOIFNAME, rp.Uplink), matchNet(12, p), []expr.Any{&expr.Counter{}}),
			UserData: comment(natCounterComment(rp.NAT[p], p))})
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(established(), accept), UserData: comment("stateful")})
	for _, p := range rp.Private {
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(matchIf(expr.MetaKeyIIFNAME, rp.Uplink), matchNet(16, p), drop),
			UserData: comment("internet to private subnet " + p.String())})
	}
	for _, p := range rp.NoRoute {
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(matchIf(expr.MetaKeyOIFNAME, rp.Uplink), matchNet(12, p), drop),
			UserData: comment("no route to 0.0.0.0/0 from " + p.String())})
	}
	in := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &acceptPolicy})
	c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: cat(established(), accept), UserData: comment("stateful")})
	c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: cat(matchIf(expr.MetaKeyIIFNAME, rp.Uplink), drop),
		UserData: comment("internet to the router itself")})
	if len(rp.Masquerade) > 0 {
		post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &acceptPolicy})
		for _, p := range rp.Masquerade {
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: cat(matchIf(expr.MetaKeyOIFNAME, rp.Uplink), matchNet(12, p), []expr.Any{&expr.Masq{}}),
				UserData: comment("NAT gateway for " + p.String())})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("apply router rules: %w", err)
	}
	return nil
}

// natCounterPrefix starts the comment of a NAT gateway's egress counter.
const natCounterPrefix = "NAT gateway egress: "

func natCounterComment(nat string, p netip.Prefix) string {
	return natCounterPrefix + nat + " from " + p.String()
}

// NATEgress is what a NAT gateway sent toward the internet since the VPC
// came up.
type NATEgress struct {
	Name           string
	Bytes, Packets uint64
	Subnets        []netip.Prefix
}

// natEgress sums the router's NAT egress counters by gateway, in name
// order (pure).
func natEgress(rules []*nftables.Rule) []NATEgress {
	by := map[string]*NATEgress{}
	var names []string
	for _, r := range rules {
		c, ok := userdata.GetString(r.UserData, userdata.TypeComment)
		rest, found := strings.CutPrefix(c, natCounterPrefix)
		if !ok || !found {
			continue
		}
		name, cidr, _ := strings.Cut(rest, " from ")
		e := by[name]
		if e == nil {
			e = &NATEgress{Name: name}
			by[name] = e
			names = append(names, name)
		}
		if p, err := netip.ParsePrefix(cidr); err == nil {
			e.Subnets = append(e.Subnets, p)
		}
		for _, x := range r.Exprs {
			if cnt, ok := x.(*expr.Counter); ok {
				e.Bytes += cnt.Bytes
				e.Packets += cnt.Packets
			}
		}
	}
	sort.Strings(names)
	out := make([]NATEgress, 0, len(names))
	for _, n := range names {
		out = append(out, *by[n])
	}
	return out
}

// NATEgress reads every NAT gateway's egress counters in the router.
func (v *VPC) NATEgress() ([]NATEgress, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.down {
		return nil, errors.New("read nat counters: the vpc is down")
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(v.router)))
	if err != nil {
		return nil, fmt.Errorf("read nat counters: nftables in router namespace: %w", err)
	}
	rules, err := c.GetRules(&nftables.Table{Family: nftables.TableFamilyINet, Name: "moat"}, &nftables.Chain{Name: "forward"})
	if err != nil {
		return nil, fmt.Errorf("read nat counters: %w", err)
	}
	return natEgress(rules), nil
}

// Ports in the internet namespace where moat's egress proxy listens when
// the stack file sets local.egress: every TCP connection and every DNS
// query (UDP port 53) arriving from the VPC through the internet gateway
// is redirected there (package egress takes it on to the host namespace).
const (
	EgressPort    = 15001
	EgressDNSPort = 15053
)

// applyEgress installs table ip moat-egress in the internet namespace:
// the redirects to the egress proxy's ports.
func applyEgress(c *nftables.Conn) error {
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "moat-egress"})
	acceptPolicy := nftables.ChainPolicyAccept
	pre := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &acceptPolicy})
	redirect := func(proto byte, dport uint16, to uint16) []expr.Any {
		e := cat(matchIf(expr.MetaKeyIIFNAME, "eth0"), []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		})
		if dport != 0 {
			e = append(e,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, dport)})
		}
		return append(e,
			&expr.Immediate{Register: 1, Data: binary.BigEndian.AppendUint16(nil, to)},
			&expr.Redir{RegisterProtoMin: 1})
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: redirect(unix.IPPROTO_UDP, 53, EgressDNSPort),
		UserData: comment("DNS from the VPC to moat's egress resolver")})
	c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: redirect(unix.IPPROTO_TCP, 0, EgressPort),
		UserData: comment("TCP from the VPC to moat's egress proxy")})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("apply egress redirects: %w", err)
	}
	return nil
}
