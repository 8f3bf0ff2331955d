package nft

import (
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netns"

	"github.com/moat-dev/moat/internal/nsenter"
	"github.com/moat-dev/moat/internal/secgroup"
	"github.com/moat-dev/moat/internal/testutil"
)

// throwawayNS creates an unnamed network namespace and returns its handle;
// it disappears when the handle is closed.
func throwawayNS(t *testing.T) netns.NsHandle {
	t.Helper()
	h, err := nsenter.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestApplyInKernel loads every compiled rule set into a throwaway
// namespace and reads it back: the kernel accepts what the compiler makes,
// rule for rule, comments included, and sets can be replaced live.
func TestApplyInKernel(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, nftables")
	p, m := testMembership(t)
	for _, n := range m.Members {
		t.Run(n.Name, func(t *testing.T) {
			rs, err := secgroup.Compile(p, n.Name, n.Groups, m)
			if err != nil {
				t.Fatal(err)
			}
			h := throwawayNS(t)
			c, err := nftables.New(nftables.WithNetNSFd(int(h)))
			if err != nil {
				t.Fatal(err)
			}
			if err := Apply(c, rs); err != nil {
				t.Fatal(err)
			}
			table := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
			check := func(chain string, want []secgroup.NftRule) {
				rules, err := c.GetRules(table, &nftables.Chain{Name: chain, Table: table})
				if err != nil {
					t.Fatalf("list %s: %v", chain, err)
				}
				// Two prologue rules, then one per compiled rule in order.
				if len(rules) != len(want)+2 {
					t.Fatalf("chain %s: %d rules in the kernel, want %d", chain, len(rules), len(want)+2)
				}
				for i, r := range want {
					got, _ := userdata.GetString(rules[i+2].UserData, userdata.TypeComment)
					if got != r.Comment {
						t.Errorf("chain %s rule %d: comment %q, want %q", chain, i, got, r.Comment)
					}
				}
			}
			check("input", rs.Input)
			if rs.EgressRestricted {
				check("output", rs.Output)
			}
			for _, s := range rs.Sets {
				if err := ReplaceSet(c, s.Group, s.Elements[:len(s.Elements)/2]); err != nil {
					t.Fatal(err)
				}
				set, err := c.GetSetByName(table, s.Name)
				if err != nil {
					t.Fatal(err)
				}
				els, err := c.GetSetElements(set)
				if err != nil {
					t.Fatal(err)
				}
				if len(els) != len(s.Elements)/2 {
					t.Errorf("set %s: %d elements after replace, want %d", s.Name, len(els), len(s.Elements)/2)
				}
			}
		})
	}
}
