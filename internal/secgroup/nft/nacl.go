package nft

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"

	"github.com/moat-dev/moat/internal/secgroup"
)

// NACLTableName is the nftables table (family inet) moat owns in the VPC
// router's namespace for the network ACLs.
const NACLTableName = "moat-nacl"

// naclPriority puts the network ACLs before the router's own forward
// chain (priority filter), whose first rule accepts established traffic:
// network ACLs are stateless and see every packet.
var naclPriority = nftables.ChainPriorityRef(*nftables.ChainPriorityFilter - 10)

// ReplaceNACLs swaps table inet moat-nacl for one enforcing rs, in one
// transaction: a base chain forward (policy accept) that jumps, for each
// subnet with a custom network ACL, packets leaving its bridge (to another
// interface) to chain out-<subnet> and packets entering it to
// in-<subnet>. There an allowing entry returns (the packet goes on to the
// other subnet's check), a denying one drops, and a last rule drops what
// no entry matched (AWS's rule *). bridge names each subnet's bridge.
// Without subnets the table is only removed.
func ReplaceNACLs(c Conn, rs secgroup.NACLRuleSet, bridge func(subnet string) (string, error)) error {
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: NACLTableName}
	c.AddTable(t) // so that the delete cannot fail on a missing table
	c.DelTable(t)
	if len(rs.Subnets) > 0 {
		t = c.AddTable(t)
		accept := nftables.ChainPolicyAccept
		fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: naclPriority, Policy: &accept})
		var jumps [][]expr.Any
		var comments []string
		for _, s := range rs.Subnets {
			br, err := bridge(s.Subnet)
			if err != nil {
				return fmt.Errorf("apply network ACLs: %w", err)
			}
			for _, d := range []struct {
				name, dir   string
				from, other expr.MetaKey
				rules       []secgroup.NACLRule
			}{
				{"out-" + s.Subnet, "out", expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME, s.Outbound},
				{"in-" + s.Subnet, "in", expr.MetaKeyOIFNAME, expr.MetaKeyIIFNAME, s.Inbound},
			} {
				ch := c.AddChain(&nftables.Chain{Name: d.name, Table: t})
				for _, r := range d.rules {
					e, err := matchExprs(r.NftRule, nil)
					if err != nil {
						return fmt.Errorf("apply network ACLs: %w", err)
					}
					v := expr.VerdictDrop
					if r.Allow {
						v = expr.VerdictReturn
					}
					c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(e, &expr.Verdict{Kind: v}), UserData: comment(r.Comment)})
				}
				c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}},
					UserData: comment(fmt.Sprintf("nacl %s %s rule *: deny", s.ACL, d.dir))})
				jumps = append(jumps, []expr.Any{
					&expr.Meta{Key: d.from, Register: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(br)},
					&expr.Meta{Key: d.other, Register: 1},
					&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(br)},
					&expr.Verdict{Kind: expr.VerdictJump, Chain: d.name},
				})
				comments = append(comments, fmt.Sprintf("%s subnet %s: network ACL %s", map[string]string{"in": "entering", "out": "leaving"}[d.dir], s.Subnet, s.ACL))
			}
		}
		for i, j := range jumps {
			c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: j, UserData: comment(comments[i])})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("apply network ACLs: %w", err)
	}
	return nil
}

func comment(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }

func ifname(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}
