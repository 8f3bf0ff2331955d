package vpc

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

func TestNATEgressSumsCountersByGateway(t *testing.T) {
	a, b, c := netip.MustParsePrefix("10.0.128.0/24"), netip.MustParsePrefix("10.0.129.0/24"), netip.MustParsePrefix("10.0.130.0/24")
	rule := func(comm string, bytes, packets uint64) *nftables.Rule {
		return &nftables.Rule{UserData: comment(comm), Exprs: []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME}, &expr.Counter{Bytes: bytes, Packets: packets}}}
	}
	rules := []*nftables.Rule{
		rule("stateful", 999, 9),
		rule(natCounterComment("nat-b", c), 100, 2),
		rule(natCounterComment("nat-a", a), 1000, 10),
		rule(natCounterComment("nat-a", b), 500, 5),
		{Exprs: []expr.Any{&expr.Counter{Bytes: 7, Packets: 7}}}, // no comment
	}
	want := []NATEgress{
		{Name: "nat-a", Bytes: 1500, Packets: 15, Subnets: []netip.Prefix{a, b}},
		{Name: "nat-b", Bytes: 100, Packets: 2, Subnets: []netip.Prefix{c}},
	}
	if got := natEgress(rules); !reflect.DeepEqual(got, want) {
		t.Fatalf("natEgress = %+v, want %+v", got, want)
	}
	if got := natEgress(nil); len(got) != 0 {
		t.Fatalf("no rules: %+v", got)
	}
}
