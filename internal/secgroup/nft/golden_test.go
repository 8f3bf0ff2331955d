package nft

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/google/nftables/xt"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
	"github.com/moat-dev/moat/internal/spec"
)

var update = flag.Bool("update", false, "rewrite the golden rule sets in testdata/")

// recorder is a Conn that writes down what the compiler asks of nftables,
// without a kernel (and without root).
type recorder struct {
	ops []op
}

// op is one call on the Conn, rendered for humans.
type op struct {
	Op      string   `json:"op"`
	Name    string   `json:"name,omitempty"`
	Chain   string   `json:"chain,omitempty"`
	Hook    string   `json:"hook,omitempty"`
	Policy  string   `json:"policy,omitempty"`
	Exprs   []string `json:"exprs,omitempty"`
	Comment string   `json:"comment,omitempty"`
	Items   []string `json:"elements,omitempty"`
}

var _ Conn = (*recorder)(nil)

func (r *recorder) AddTable(t *nftables.Table) *nftables.Table {
	r.ops = append(r.ops, op{Op: "add table", Name: family(t.Family) + " " + t.Name})
	return t
}

func (r *recorder) DelTable(t *nftables.Table) {
	r.ops = append(r.ops, op{Op: "delete table", Name: family(t.Family) + " " + t.Name})
}

func (r *recorder) AddChain(c *nftables.Chain) *nftables.Chain {
	o := op{Op: "add chain", Name: c.Name, Hook: hook(c.Hooknum)}
	if c.Policy != nil {
		o.Policy = map[nftables.ChainPolicy]string{nftables.ChainPolicyDrop: "drop", nftables.ChainPolicyAccept: "accept"}[*c.Policy]
	}
	r.ops = append(r.ops, o)
	return c
}

func (r *recorder) AddRule(rule *nftables.Rule) *nftables.Rule {
	o := op{Op: "add rule", Chain: rule.Chain.Name}
	for _, e := range rule.Exprs {
		o.Exprs = append(o.Exprs, render(e))
	}
	o.Comment, _ = userdata.GetString(rule.UserData, userdata.TypeComment)
	r.ops = append(r.ops, o)
	return rule
}

func (r *recorder) AddSet(s *nftables.Set, els []nftables.SetElement) error {
	r.ops = append(r.ops, op{Op: "add set", Name: s.Name, Items: addrs(els)})
	return nil
}

func (r *recorder) FlushSet(s *nftables.Set) {
	r.ops = append(r.ops, op{Op: "flush set", Name: s.Name})
}

func (r *recorder) SetAddElements(s *nftables.Set, els []nftables.SetElement) error {
	r.ops = append(r.ops, op{Op: "add elements", Name: s.Name, Items: addrs(els)})
	return nil
}

func (r *recorder) Flush() error {
	r.ops = append(r.ops, op{Op: "commit"})
	return nil
}

func family(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	}
	return fmt.Sprint(f)
}

func hook(h *nftables.ChainHook) string {
	switch {
	case h == nil:
		return ""
	case *h == *nftables.ChainHookInput:
		return "input"
	case *h == *nftables.ChainHookOutput:
		return "output"
	case *h == *nftables.ChainHookForward:
		return "forward"
	}
	return fmt.Sprint(*h)
}

func addrs(els []nftables.SetElement) []string {
	var out []string
	for _, e := range els {
		if a, ok := netip.AddrFromSlice(e.Key); ok {
			out = append(out, a.String())
		} else {
			out = append(out, fmt.Sprintf("%x", e.Key))
		}
	}
	return out
}

// render writes an expression as `nft --debug=netlink` does, more or less.
func render(e expr.Any) string {
	switch e := e.(type) {
	case *expr.Meta:
		key := map[expr.MetaKey]string{expr.MetaKeyNFPROTO: "nfproto", expr.MetaKeyL4PROTO: "l4proto", expr.MetaKeyIIF: "iif", expr.MetaKeyOIF: "oif",
			expr.MetaKeyIIFNAME: "iifname", expr.MetaKeyOIFNAME: "oifname"}[e.Key]
		return fmt.Sprintf("meta load %s => reg %d", key, e.Register)
	case *expr.Ct:
		return fmt.Sprintf("ct load %s => reg %d", map[expr.CtKey]string{expr.CtKeySTATE: "state"}[e.Key], e.Register)
	case *expr.Cmp:
		return fmt.Sprintf("cmp %s reg %d 0x%x", cmpOp(e.Op), e.Register, e.Data)
	case *expr.Range:
		return fmt.Sprintf("range %s reg %d 0x%x 0x%x", cmpOp(e.Op), e.Register, e.FromData, e.ToData)
	case *expr.Bitwise:
		return fmt.Sprintf("bitwise reg %d = (reg %d & 0x%x) ^ 0x%x", e.DestRegister, e.SourceRegister, e.Mask, e.Xor)
	case *expr.Payload:
		base := map[expr.PayloadBase]string{expr.PayloadBaseNetworkHeader: "network", expr.PayloadBaseTransportHeader: "transport"}[e.Base]
		return fmt.Sprintf("payload load %db @ %s header + %d => reg %d", e.Len, base, e.Offset, e.DestRegister)
	case *expr.Lookup:
		return fmt.Sprintf("lookup reg %d set %s", e.SourceRegister, e.SetName)
	case *expr.Numgen:
		return fmt.Sprintf("numgen reg %d = random %% %d", e.Register, e.Modulus)
	case *expr.Byteorder:
		return fmt.Sprintf("byteorder reg %d = hton(reg %d, %d, %d)", e.DestRegister, e.SourceRegister, e.Size, e.Len)
	case *expr.Target:
		var info []byte
		if u, ok := e.Info.(*xt.Unknown); ok {
			info = *u
		}
		return fmt.Sprintf("target name %s rev %d 0x%x", e.Name, e.Rev, info)
	case *expr.Verdict:
		if e.Kind == expr.VerdictJump {
			return "jump " + e.Chain
		}
		return map[expr.VerdictKind]string{expr.VerdictAccept: "accept", expr.VerdictDrop: "drop", expr.VerdictReturn: "return"}[e.Kind]
	}
	return fmt.Sprintf("%T %+v", e, e)
}

func cmpOp(o expr.CmpOp) string {
	return map[expr.CmpOp]string{expr.CmpOpEq: "eq", expr.CmpOpNeq: "neq", expr.CmpOpLt: "lt"}[o]
}

// testMembership is the test stack's plan and the offline membership,
// plus a second app instance and an instance of the "locked" group.
func testMembership(t *testing.T) (*plan.Plan, secgroup.Membership) {
	t.Helper()
	f, err := spec.LoadFile("../testdata/stack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, problems := plan.Build(f)
	if p == nil {
		t.Fatalf("build plan: %v", problems)
	}
	m := secgroup.OfflineMembership(p)
	m.Members = append(m.Members,
		secgroup.Member{Name: "i-app2", Kind: secgroup.KindInstance, Owner: "web", Subnet: "private-b", Addr: netip.MustParseAddr("10.42.129.10"), Groups: []string{"app"}},
		secgroup.Member{Name: "i-locked", Kind: secgroup.KindInstance, Subnet: "private-b", Addr: netip.MustParseAddr("10.42.129.11"), Groups: []string{"locked"}},
	)
	return p, m
}

// TestGoldenRuleSets compiles every node's rule set into nftables
// operations, without root, and compares them with testdata/<node>.json
// (after parsing both). Run with -update to accept a change.
func TestGoldenRuleSets(t *testing.T) {
	p, m := testMembership(t)
	for _, n := range m.Members {
		t.Run(n.Name, func(t *testing.T) {
			rs, err := secgroup.Compile(p, n.Name, n.Groups, m)
			if err != nil {
				t.Fatal(err)
			}
			var r recorder
			if err := Apply(&r, rs); err != nil {
				t.Fatal(err)
			}
			goldenOps(t, n.Name, r.ops)
		})
	}
}

// goldenOps compares recorded operations with testdata/<name>.json (after
// parsing both), or rewrites it with -update.
func goldenOps(t *testing.T, name string, ops []op) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(ops); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	var want []op
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if !reflect.DeepEqual(ops, want) {
		t.Errorf("nftables operations differ from %s (run with -update to accept):\n%s", path, got)
	}
}

// TestGoldenNACLs: the router's network ACL table for
// ../testdata/stack.yaml with ../testdata/nacl.yaml, without root, against
// testdata/router-nacl.json; and without network ACLs the table is only
// removed.
func TestGoldenNACLs(t *testing.T) {
	src, err := os.ReadFile("../testdata/stack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	acls, err := os.ReadFile("../testdata/nacl.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := spec.Parse("stack.yaml", append(append(src, '\n'), acls...))
	if err != nil {
		t.Fatal(err)
	}
	p, problems := plan.Build(f)
	if p == nil {
		t.Fatalf("build plan: %v", problems)
	}
	bridge := func(s string) (string, error) { return "br-" + s, nil }
	var r recorder
	if err := ReplaceNACLs(&r, secgroup.CompileNACLs(p), bridge); err != nil {
		t.Fatal(err)
	}
	goldenOps(t, "router-nacl", r.ops)

	r = recorder{}
	if err := ReplaceNACLs(&r, secgroup.NACLRuleSet{}, bridge); err != nil {
		t.Fatal(err)
	}
	want := []op{{Op: "add table", Name: "inet moat-nacl"}, {Op: "delete table", Name: "inet moat-nacl"}, {Op: "commit"}}
	if !reflect.DeepEqual(r.ops, want) {
		t.Errorf("without network ACLs: %+v, want %+v", r.ops, want)
	}
}

// TestReplaceOperations: Replace deletes and rebuilds the table in one
// commit, ReplaceSet swaps a set's members in one commit (an empty group
// leaves the set flushed).
func TestReplaceOperations(t *testing.T) {
	p, m := testMembership(t)
	rs, err := secgroup.Compile(p, "i-app2", []string{"app"}, m)
	if err != nil {
		t.Fatal(err)
	}
	var r recorder
	if err := Replace(&r, rs); err != nil {
		t.Fatal(err)
	}
	commits := 0
	for _, o := range r.ops {
		if o.Op == "commit" {
			commits++
		}
	}
	if len(r.ops) < 4 || r.ops[0].Op != "add table" || r.ops[1].Op != "delete table" || r.ops[2].Op != "add table" || commits != 1 || r.ops[len(r.ops)-1].Op != "commit" {
		t.Errorf("Replace: %+v, want add, delete, the table rebuilt and one commit", r.ops)
	}

	r = recorder{}
	if err := ReplaceSet(&r, "lb", []netip.Addr{netip.MustParseAddr("10.42.0.7")}); err != nil {
		t.Fatal(err)
	}
	want := []op{{Op: "flush set", Name: "sg_lb"}, {Op: "add elements", Name: "sg_lb", Items: []string{"10.42.0.7"}}, {Op: "commit"}}
	if !reflect.DeepEqual(r.ops, want) {
		t.Errorf("ReplaceSet: %+v, want %+v", r.ops, want)
	}
	r = recorder{}
	if err := ReplaceSet(&r, "lb", nil); err != nil {
		t.Fatal(err)
	}
	if want := []op{{Op: "flush set", Name: "sg_lb"}, {Op: "commit"}}; !reflect.DeepEqual(r.ops, want) {
		t.Errorf("ReplaceSet of an empty group: %+v, want %+v", r.ops, want)
	}
}
