package vpc

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/moat-dev/moat/internal/fault"
	"github.com/moat-dev/moat/internal/secgroup/nft"
)

// This file holds the network effects of fault injection (package
// fault): a subnet's traffic dropped in the router (disrupt-connectivity)
// and netem on a node's interface (network-latency, packet-loss). Each
// undo works from a namespace path and a name alone, so a crashed
// daemon's faults are undone from their records.

// NodeDevice is the name of every node's interface in its namespace.
const NodeDevice = "eth0"

// DisruptTable is the router's nftables table of a disrupt-connectivity
// fault.
func DisruptTable(faultID string) string { return nft.DisruptTablePrefix + faultID }

// Subnets are the VPC's subnets and their zones, for fault.Blocks.
func (v *VPC) Subnets() []fault.Subnet {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]fault.Subnet, 0, len(v.plan.Subnets))
	for _, sn := range v.plan.Subnets {
		out = append(out, fault.Subnet{Name: sn.Name, Zone: sn.Zone})
	}
	return out
}

// Disrupt drops the blocks' traffic in the router, in table
// DisruptTable(faultID) of its own (priority before the network ACLs),
// added in one transaction. Undo with RemoveTable(RouterPath(), table).
func (v *VPC) Disrupt(faultID string, blocks []fault.Block) (table string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.down {
		return "", errors.New("disrupt connectivity: the vpc is down")
	}
	var ds []nft.Disruption
	for _, b := range blocks {
		br, err := v.bridgeName(b.Subnet)
		if err != nil {
			return "", fmt.Errorf("disrupt connectivity: %w", err)
		}
		d := nft.Disruption{Subnet: b.Subnet, Bridge: br}
		for _, p := range b.Peers {
			pb, err := v.bridgeName(p)
			if err != nil {
				return "", fmt.Errorf("disrupt connectivity: %w", err)
			}
			d.Peers = append(d.Peers, p)
			d.PeerBridges = append(d.PeerBridges, pb)
		}
		ds = append(ds, d)
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(v.router)))
	if err != nil {
		return "", fmt.Errorf("disrupt connectivity: nftables in router namespace: %w", err)
	}
	table = DisruptTable(faultID)
	if err := nft.AddDisruption(c, table, ds); err != nil {
		return "", err
	}
	return table, nil
}

// RemoveTable deletes a disruption's table in the namespace at nsPath; a
// missing namespace or table is no error.
func RemoveTable(nsPath, table string) error {
	h, err := netns.GetFromPath(nsPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore connectivity: open %s: %w", nsPath, err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		return fmt.Errorf("restore connectivity: nftables in %s: %w", nsPath, err)
	}
	return nft.DeleteDisruption(c, table)
}

// SetNetem makes netem the root qdisc of the node's interface in the
// namespace at nsPath: every packet it sends is delayed by latency (±
// jitter) and lost with lossPercent. It fails if the interface has a
// root qdisc other than the kernel's default already (another fault).
func SetNetem(nsPath string, n fault.Netem) error {
	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("netem: open %s: %w", nsPath, err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return fmt.Errorf("netem: netlink in %s: %w", nsPath, err)
	}
	defer nh.Close()
	link, err := nh.LinkByName(NodeDevice)
	if err != nil {
		return fmt.Errorf("netem: %s in %s: %w", NodeDevice, nsPath, err)
	}
	q := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		netlink.NetemQdiscAttrs{Latency: us(n.Latency), Jitter: us(n.Jitter), Loss: float32(n.LossPercent)})
	if err := nh.QdiscAdd(q); err != nil {
		return fmt.Errorf("netem on %s in %s: %w", NodeDevice, nsPath, err)
	}
	return nil
}

func us(d time.Duration) uint32 { return uint32(d / time.Microsecond) }

// ClearNetem deletes the root netem qdisc of the node's interface in the
// namespace at nsPath (the kernel's default comes back); a missing
// namespace, interface or qdisc is no error.
func ClearNetem(nsPath string) error {
	h, err := netns.GetFromPath(nsPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clear netem: open %s: %w", nsPath, err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return fmt.Errorf("clear netem: netlink in %s: %w", nsPath, err)
	}
	defer nh.Close()
	link, err := nh.LinkByName(NodeDevice)
	if err != nil {
		return nil // the node is gone
	}
	qs, err := nh.QdiscList(link)
	if err != nil {
		return fmt.Errorf("clear netem: list qdiscs in %s: %w", nsPath, err)
	}
	for _, q := range qs {
		if q.Type() == "netem" && q.Attrs().Parent == netlink.HANDLE_ROOT {
			if err := nh.QdiscDel(q); err != nil {
				return fmt.Errorf("clear netem in %s: %w", nsPath, err)
			}
		}
	}
	return nil
}

// Netems counts the netem qdiscs in the namespace at nsPath (tests and
// leftovers checks).
func Netems(nsPath string) (int, error) {
	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return 0, err
	}
	defer nh.Close()
	qs, err := nh.QdiscList(nil)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, q := range qs {
		if q.Type() == "netem" {
			n++
		}
	}
	return n, nil
}
