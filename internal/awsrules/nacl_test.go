package awsrules

import (
	"net/netip"
	"testing"
)

func TestDecideACL(t *testing.T) {
	p := netip.MustParsePrefix
	entries := []ACLEntry{
		{RuleNumber: 100, Protocol: ProtoTCP, FromPort: 22, ToPort: 22, CIDR: p("0.0.0.0/0")},
		{RuleNumber: 110, Protocol: ProtoTCP, FromPort: 1024, ToPort: 40000, CIDR: p("10.0.0.0/16"), Allow: true},
		{RuleNumber: 120, Protocol: ProtoTCP, FromPort: 30000, ToPort: 65535, CIDR: p("10.0.0.0/16"), Allow: true},
		{RuleNumber: 130, Protocol: ProtoUDP, FromPort: 53, ToPort: 53, CIDR: p("10.0.0.0/16"), Allow: true},
		{RuleNumber: 140, Protocol: ProtoICMP, CIDR: p("10.0.1.0/24")},
		{RuleNumber: 200, Protocol: ProtoAll, CIDR: p("10.0.0.0/16"), Allow: true},
	}
	for _, c := range []struct {
		name     string
		proto    string
		peer     string
		lo, hi   int
		allowed  bool
		rule     int
		implicit bool
	}{
		{"deny before allow", ProtoTCP, "10.0.0.5", 22, 22, false, 100, false},
		{"first allow", ProtoTCP, "10.0.0.5", 8000, 8000, true, 110, false},
		{"range over two allows", ProtoTCP, "10.0.0.5", 1024, 65535, true, 120, false},
		{"range with a denied port", ProtoTCP, "10.0.0.5", 1, 1024, false, 100, false},
		{"outside every block", ProtoTCP, "192.0.2.1", 8000, 8000, false, 0, true},
		{"range partly implicit", ProtoTCP, "192.0.2.1", 20, 30, false, 100, false},
		{"udp", ProtoUDP, "10.0.0.5", 53, 53, true, 130, false},
		{"udp falls to all", ProtoUDP, "10.0.0.5", 54, 54, true, 200, false},
		{"icmp denied from one subnet", ProtoICMP, "10.0.1.9", 0, 0, false, 140, false},
		{"icmp allowed from another", ProtoICMP, "10.0.2.9", 0, 0, true, 200, false},
		{"no entries", ProtoTCP, "10.0.0.5", 80, 80, false, 0, true},
	} {
		es := entries
		if c.name == "no entries" {
			es = nil
		}
		d := DecideACL(es, c.proto, netip.MustParseAddr(c.peer), c.lo, c.hi)
		if d.Allowed != c.allowed || d.Entry.RuleNumber != c.rule || d.Implicit != c.implicit {
			t.Errorf("%s: got %+v, want allowed %v rule %d implicit %v", c.name, d, c.allowed, c.rule, c.implicit)
		}
	}
}
