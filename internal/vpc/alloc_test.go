package vpc

import (
	"net/netip"
	"testing"

	"github.com/moat-dev/moat/internal/plan"
)

func subnet(cidr string, static ...string) plan.Subnet {
	p := netip.MustParsePrefix(cidr)
	n := p.Addr()
	last := n
	for range 1<<(32-p.Bits()) - 1 {
		last = last.Next()
	}
	sn := plan.Subnet{Name: "s", CIDR: p, Gateway: n.Next(), FirstHost: n.Next().Next().Next().Next(), LastHost: last.Prev()}
	for _, s := range static {
		sn.Static = append(sn.Static, plan.StaticAddress{Addr: netip.MustParseAddr(s), Node: "x"})
	}
	return sn
}

func TestAllocator(t *testing.T) {
	type step struct {
		op   string // alloc, reserve, release
		addr string // for reserve/release; expected for alloc ("" = error)
	}
	cases := []struct {
		name   string
		subnet plan.Subnet
		steps  []step
	}{
		{"skips reserved", subnet("10.0.0.0/24"), []step{{"alloc", "10.0.0.4"}, {"alloc", "10.0.0.5"}}},
		{"skips static", subnet("10.0.0.0/24", "10.0.0.4", "10.0.0.5"), []step{{"alloc", "10.0.0.6"}}},
		{"reuses released", subnet("10.0.0.0/24"), []step{{"alloc", "10.0.0.4"}, {"alloc", "10.0.0.5"}, {"release", "10.0.0.4"}, {"alloc", "10.0.0.4"}}},
		{"full /28", subnet("10.0.0.0/28"), []step{
			{"alloc", "10.0.0.4"}, {"alloc", "10.0.0.5"}, {"alloc", "10.0.0.6"}, {"alloc", "10.0.0.7"}, {"alloc", "10.0.0.8"},
			{"alloc", "10.0.0.9"}, {"alloc", "10.0.0.10"}, {"alloc", "10.0.0.11"}, {"alloc", "10.0.0.12"}, {"alloc", "10.0.0.13"},
			{"alloc", "10.0.0.14"}, {"alloc", ""}}},
		{"reserve static", subnet("10.0.0.0/24", "10.0.0.4"), []step{{"reserve", "10.0.0.4"}, {"alloc", "10.0.0.5"}}},
		{"reserve twice", subnet("10.0.0.0/24"), []step{{"reserve", "10.0.0.9"}, {"reserve!", "10.0.0.9"}}},
		{"reserve gateway", subnet("10.0.0.0/24"), []step{{"reserve!", "10.0.0.1"}}},
		{"reserve broadcast", subnet("10.0.0.0/24"), []step{{"reserve!", "10.0.0.255"}}},
		{"reserve outside", subnet("10.0.0.0/24"), []step{{"reserve!", "10.0.1.9"}}},
		{"reserve then alloc skips it", subnet("10.0.0.0/24"), []step{{"reserve", "10.0.0.4"}, {"alloc", "10.0.0.5"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := NewAllocator(c.subnet)
			for i, s := range c.steps {
				switch s.op {
				case "alloc":
					got, err := a.Allocate()
					if s.addr == "" {
						if err == nil {
							t.Fatalf("step %d: got %s, want an error", i, got)
						}
						continue
					}
					if err != nil || got != netip.MustParseAddr(s.addr) {
						t.Fatalf("step %d: got %v, %v; want %s", i, got, err, s.addr)
					}
				case "reserve":
					if err := a.Reserve(netip.MustParseAddr(s.addr)); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				case "reserve!":
					if err := a.Reserve(netip.MustParseAddr(s.addr)); err == nil {
						t.Fatalf("step %d: reserve %s: want an error", i, s.addr)
					}
				case "release":
					a.Release(netip.MustParseAddr(s.addr))
				}
			}
		})
	}
}
