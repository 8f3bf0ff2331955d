package vpc

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/moat-dev/moat/internal/fault"
	"github.com/moat-dev/moat/internal/secgroup/nft"
)

// This file holds the network effects of fault injection (package
// fault): a subnet's traffic dropped in the router (disrupt-connectivity)
// and a node's outgoing traffic degraded (network-latency, packet-loss).
// Each
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

// latencyQueue is the NFQUEUE queue number a node's latency uses (queues
// are per network namespace; one latency fault per node at a time).
const latencyQueue = 7

// Degrade degrades what a node (the namespace at nsPath) sends out of its
// interface, as netem would: a share lost (kernel random numbers in
// nftables) and the rest delayed by the latency ± jitter (held in an
// NFQUEUE queue by moat). It is table DisruptTable(faultID) in the node's
// namespace; stop ends the delaying. Undo: RemoveTable(nsPath, table),
// then stop. This kernel has no netem qdisc (sch_netem), hence nftables
// and a queue; a crashed daemon's queue is bypassed, so packets pass
// undelayed until reclaim removes the table.
func Degrade(nsPath, faultID string, n fault.Netem) (table string, stop func() error, err error) {
	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		return "", nil, fmt.Errorf("degrade network: open %s: %w", nsPath, err)
	}
	defer h.Close()
	stop = func() error { return nil }
	deg := nft.Degradation{Device: NodeDevice, LossPerMyriad: uint32(n.LossPercent*100 + 0.5), Delay: n.Latency > 0, Queue: latencyQueue}
	if deg.Delay {
		d, err := startDelayer(nsPath, latencyQueue, n.Latency, n.Jitter)
		if err != nil {
			return "", nil, err
		}
		stop = d.close
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err == nil {
		table = DisruptTable(faultID)
		err = nft.AddDegradation(c, table, deg)
	}
	if err != nil {
		_ = stop()
		return "", nil, fmt.Errorf("degrade network in %s: %w", nsPath, err)
	}
	return table, stop, nil
}

// FaultTables lists moat's fault tables in the namespace at nsPath
// (tests, leftover checks).
func FaultTables(nsPath string) ([]string, error) {
	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		return nil, err
	}
	ts, err := c.ListTables()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range ts {
		if strings.HasPrefix(t.Name, nft.DisruptTablePrefix) {
			out = append(out, t.Name)
		}
	}
	return out, nil
}
