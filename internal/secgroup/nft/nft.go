// Package nft loads security group rule sets (package secgroup compiles
// them, pure) into a node's nftables table, in one transaction each.
package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
)

// TableName is the nftables table (family inet) moat owns in a node's
// namespace.
const TableName = "moat"

// Conn is the part of *nftables.Conn the compiler uses.
type Conn interface {
	AddTable(*nftables.Table) *nftables.Table
	DelTable(*nftables.Table)
	AddChain(*nftables.Chain) *nftables.Chain
	AddRule(*nftables.Rule) *nftables.Rule
	AddSet(*nftables.Set, []nftables.SetElement) error
	FlushSet(*nftables.Set)
	SetAddElements(*nftables.Set, []nftables.SetElement) error
	Flush() error
}

var _ Conn = (*nftables.Conn)(nil)

// Apply creates table inet moat with the rule set in one transaction. The
// table must not exist yet (each node's namespace is new).
func Apply(c Conn, rs secgroup.RuleSet) error {
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: TableName})
	sets := map[string]*nftables.Set{}
	for _, s := range rs.Sets {
		ns := &nftables.Set{Table: t, Name: s.Name, KeyType: nftables.TypeIPAddr}
		if err := c.AddSet(ns, elements(s.Elements)); err != nil {
			return fmt.Errorf("add set %s: %w", s.Name, err)
		}
		sets[s.Name] = ns
	}
	drop := nftables.ChainPolicyDrop
	in := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &drop})
	addPrologue(c, t, in, expr.MetaKeyIIF)
	for _, r := range rs.Input {
		e, err := ruleExprs(r, sets)
		if err != nil {
			return err
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: e, UserData: userdata.AppendString(nil, userdata.TypeComment, r.Comment)})
	}
	if rs.EgressRestricted {
		out := c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &drop})
		addPrologue(c, t, out, expr.MetaKeyOIF)
		for _, r := range rs.Output {
			e, err := ruleExprs(r, sets)
			if err != nil {
				return err
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: e, UserData: userdata.AppendString(nil, userdata.TypeComment, r.Comment)})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("apply rules of %s: %w", rs.Node, err)
	}
	return nil
}

// Replace swaps a node's table inet moat for one with the rule set, in
// one transaction (a changed security group): no packet ever sees a
// half-built table, and connections already established stay allowed
// (conntrack keeps their state; the new table accepts them as the old
// one did).
func Replace(c Conn, rs secgroup.RuleSet) error {
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
	c.AddTable(t) // so that the delete cannot fail on a missing table
	c.DelTable(t)
	return Apply(c, rs)
}

// ReplaceSet atomically replaces a group set's members in table inet moat.
func ReplaceSet(c Conn, group string, addrs []netip.Addr) error {
	s := &nftables.Set{Table: &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}, Name: secgroup.SetName(group), KeyType: nftables.TypeIPAddr}
	c.FlushSet(s)
	if len(addrs) > 0 {
		if err := c.SetAddElements(s, elements(addrs)); err != nil {
			return fmt.Errorf("update set %s: %w", s.Name, err)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("update set %s: %w", s.Name, err)
	}
	return nil
}

func elements(addrs []netip.Addr) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, len(addrs))
	for _, a := range addrs {
		b := a.Unmap().As4()
		out = append(out, nftables.SetElement{Key: b[:]})
	}
	return out
}

// addPrologue adds `ct state established,related accept` and
// `iif/oif lo accept`.
func addPrologue(c Conn, t *nftables.Table, ch *nftables.Chain, ifKey expr.MetaKey) {
	est := binary.NativeEndian.AppendUint32(nil, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: est, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}, UserData: userdata.AppendString(nil, userdata.TypeComment, "stateful: replies of allowed connections")})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: ifKey, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, 1)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}, UserData: userdata.AppendString(nil, userdata.TypeComment, "loopback")})
}

// ruleExprs compiles one accept rule: IPv4, peer address (block or set),
// protocol, destination ports.
func ruleExprs(r secgroup.NftRule, sets map[string]*nftables.Set) ([]expr.Any, error) {
	e, err := matchExprs(r, sets)
	if err != nil {
		return nil, err
	}
	return append(e, &expr.Verdict{Kind: expr.VerdictAccept}), nil
}

// matchExprs compiles a rule's match: IPv4, peer address (block or set),
// protocol, destination ports.
func matchExprs(r secgroup.NftRule, sets map[string]*nftables.Set) ([]expr.Any, error) {
	off := uint32(12) // saddr
	if r.Peer == secgroup.PeerDestination {
		off = 16
	}
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
	switch {
	case r.Set != "":
		s, ok := sets[r.Set]
		if !ok {
			return nil, fmt.Errorf("compile rule %q: set %s not declared", r.Comment, r.Set)
		}
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID})
	case r.CIDR.Bits() > 0:
		if !r.CIDR.Addr().Is4() {
			return nil, fmt.Errorf("compile rule %q: only IPv4 blocks are supported", r.Comment)
		}
		m := prefixMask(r.CIDR.Bits())
		n := r.CIDR.Masked().Addr().As4()
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m[:], Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: n[:]})
	}
	switch r.Protocol {
	case plan.ProtoAll:
	case plan.ProtoICMP:
		e = append(e, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMP}})
	case plan.ProtoTCP, plan.ProtoUDP:
		p := byte(unix.IPPROTO_TCP)
		if r.Protocol == plan.ProtoUDP {
			p = unix.IPPROTO_UDP
		}
		e = append(e, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}})
		if !(r.FromPort == 0 && r.ToPort == 65535) {
			e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
			if r.FromPort == r.ToPort {
				e = append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(r.FromPort)})
			} else {
				e = append(e, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: be16(r.FromPort), ToData: be16(r.ToPort)})
			}
		}
	default:
		return nil, fmt.Errorf("compile rule %q: unknown protocol %q", r.Comment, r.Protocol)
	}
	return e, nil
}

func prefixMask(bits int) [4]byte {
	m := uint32(0xffffffff) << (32 - bits)
	if bits == 0 {
		m = 0
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], m)
	return b
}

func be16(v int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
