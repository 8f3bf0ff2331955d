package vpc

import (
	"fmt"
	"net/netip"

	"github.com/moat-dev/moat/internal/plan"
)

// Allocator hands out a subnet's instance addresses: from FirstHost to
// LastHost (AWS reserves the network address, the router, DNS, one for
// future use and the broadcast address), skipping the plan's static
// addresses unless asked for by name, lowest free first. It is pure and
// not safe for concurrent use (VPC serialises it).
type Allocator struct {
	subnet plan.Subnet
	static map[netip.Addr]string
	used   map[netip.Addr]bool
}

// NewAllocator returns an allocator for a subnet.
func NewAllocator(sn plan.Subnet) *Allocator {
	a := &Allocator{subnet: sn, static: map[netip.Addr]string{}, used: map[netip.Addr]bool{}}
	for _, s := range sn.Static {
		a.static[s.Addr] = s.Node
	}
	return a
}

// Allocate returns the lowest free, non-static, non-reserved address.
func (a *Allocator) Allocate() (netip.Addr, error) {
	sn := a.subnet
	for ip := sn.FirstHost; ip.IsValid() && ip.Compare(sn.LastHost) <= 0; ip = ip.Next() {
		if _, static := a.static[ip]; static || a.used[ip] {
			continue
		}
		a.used[ip] = true
		return ip, nil
	}
	return netip.Addr{}, fmt.Errorf("allocate an address in subnet %s (%s): no free address left", sn.Name, sn.CIDR)
}

// Reserve takes a specific address: a static one from the plan, or any
// free assignable one.
func (a *Allocator) Reserve(ip netip.Addr) error {
	sn := a.subnet
	switch {
	case !sn.CIDR.Contains(ip):
		return fmt.Errorf("reserve %s: not in subnet %s (%s)", ip, sn.Name, sn.CIDR)
	case ip.Compare(sn.FirstHost) < 0 || ip.Compare(sn.LastHost) > 0:
		return fmt.Errorf("reserve %s: reserved by AWS in subnet %s (assignable %s-%s)", ip, sn.Name, sn.FirstHost, sn.LastHost)
	case a.used[ip]:
		return fmt.Errorf("reserve %s: already in use in subnet %s", ip, sn.Name)
	}
	a.used[ip] = true
	return nil
}

// Release frees an address.
func (a *Allocator) Release(ip netip.Addr) { delete(a.used, ip) }
