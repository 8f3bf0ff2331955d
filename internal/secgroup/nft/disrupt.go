package nft

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// DisruptTablePrefix starts the name of every nftables table (family
// inet) a disrupt-connectivity fault makes in the VPC router's namespace,
// one table per fault: moat-fis-<fault id>.
const DisruptTablePrefix = "moat-fis-"

// disruptPriority puts a disruption before the network ACLs (and the
// router's forward chain): it drops packets of established connections
// too, as the network ACL FIS puts on the subnet does.
var disruptPriority = nftables.ChainPriorityRef(*nftables.ChainPriorityFilter - 20)

// Disruption is one subnet's traffic to drop, by bridge: packets leaving
// Bridge for Peers (bridges; none: any other interface) and entering it
// from them. Traffic inside the subnet is bridged and never crosses the
// router's forward hook, so it stays.
type Disruption struct {
	Subnet string
	Bridge string
	Peers  []string // subnet names, parallel to PeerBridges
	// PeerBridges are the peers' bridges.
	PeerBridges []string
}

// AddDisruption creates table inet <table> (DisruptTablePrefix and a
// fault id) dropping the disruptions' traffic in the forward hook, in one
// transaction. The table must not exist.
func AddDisruption(c Conn, table string, ds []Disruption) error {
	if !strings.HasPrefix(table, DisruptTablePrefix) {
		return fmt.Errorf("disrupt connectivity: table %q is not one of moat's (%s…)", table, DisruptTablePrefix)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: table})
	accept := nftables.ChainPolicyAccept
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: disruptPriority, Policy: &accept})
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	for _, d := range ds {
		if len(d.PeerBridges) == 0 {
			for _, dir := range []struct {
				key, other expr.MetaKey
				what       string
			}{{expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME, "leaving"}, {expr.MetaKeyOIFNAME, expr.MetaKeyIIFNAME, "entering"}} {
				c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
					&expr.Meta{Key: dir.key, Register: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(d.Bridge)},
					&expr.Meta{Key: dir.other, Register: 1},
					&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(d.Bridge)},
					drop,
				}, UserData: comment(fmt.Sprintf("fis disrupt-connectivity: all traffic %s subnet %s", dir.what, d.Subnet))})
			}
			continue
		}
		for i, peer := range d.PeerBridges {
			for _, dir := range []struct{ from, to, fromName, toName string }{
				{d.Bridge, peer, d.Subnet, d.Peers[i]}, {peer, d.Bridge, d.Peers[i], d.Subnet},
			} {
				c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
					&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(dir.from)},
					&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(dir.to)},
					drop,
				}, UserData: comment(fmt.Sprintf("fis disrupt-connectivity: subnet %s to subnet %s (another zone)", dir.fromName, dir.toName))})
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("disrupt connectivity: %w", err)
	}
	return nil
}

// DeleteDisruption deletes table inet <table> and table ip <table> (a
// degradation's) in one transaction; a missing table is no error.
func DeleteDisruption(c Conn, table string) error {
	if !strings.HasPrefix(table, DisruptTablePrefix) {
		return fmt.Errorf("restore connectivity: table %q is not one of moat's (%s…)", table, DisruptTablePrefix)
	}
	for _, f := range []nftables.TableFamily{nftables.TableFamilyINet, nftables.TableFamilyIPv4} {
		t := &nftables.Table{Family: f, Name: table}
		c.AddTable(t) // so that the delete cannot fail on a missing table
		c.DelTable(t)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("restore connectivity: %w", err)
	}
	return nil
}

// Degradation is what a network-latency or packet-loss fault does to the
// packets a node sends out of Device: drop LossPerMyriad of every 10000
// (kernel random numbers), and hand the rest to NFQUEUE queue Queue
// (when Delay), where moat holds each for the latency. The queue is
// bypassed when no one listens (a crashed daemon): packets then pass
// undelayed.
type Degradation struct {
	Device        string
	LossPerMyriad uint32
	Delay         bool
	Queue         uint16
}

// AddDegradation creates table ip <table> (DisruptTablePrefix and a
// fault id) in a node's namespace, with a chain on the output hook that
// degrades what leaves d.Device, in one transaction. The table's family
// is ip (the VPC is IPv4), where xtables targets work through nft_compat.
func AddDegradation(c Conn, table string, d Degradation) error {
	if !strings.HasPrefix(table, DisruptTablePrefix) {
		return fmt.Errorf("degrade network: table %q is not one of moat's (%s…)", table, DisruptTablePrefix)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: table})
	accept := nftables.ChainPolicyAccept
	out := c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: disruptPriority, Policy: &accept})
	dev := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(d.Device)},
	}
	if d.LossPerMyriad > 0 {
		// numgen gives a host-order number; cmp < compares bytes, so
		// turn it big-endian first.
		e := append(append([]expr.Any{}, dev...),
			&expr.Numgen{Register: 1, Modulus: 10000, Type: unix.NFT_NG_RANDOM},
			&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
			&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: binary.BigEndian.AppendUint32(nil, d.LossPerMyriad)},
			&expr.Verdict{Kind: expr.VerdictDrop})
		c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: e,
			UserData: comment(fmt.Sprintf("fis packet-loss: %.2f%% of what leaves %s", float64(d.LossPerMyriad)/100, d.Device))})
	}
	if d.Delay {
		// xtables' NFQUEUE target (revision 3: queue, total, flags
		// bypass), through nft_compat: kernels without nft_queue have it.
		info := binary.NativeEndian.AppendUint16(nil, d.Queue)
		info = binary.NativeEndian.AppendUint16(info, 1)
		info = binary.NativeEndian.AppendUint16(info, 1)
		info = append(info, 0, 0) // XT_ALIGN
		xinfo := xt.Unknown(info)
		e := append(append([]expr.Any{}, dev...), &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &xinfo})
		c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: e,
			UserData: comment(fmt.Sprintf("fis network-latency: what leaves %s waits in queue %d", d.Device, d.Queue))})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("degrade network: %w", err)
	}
	return nil
}
