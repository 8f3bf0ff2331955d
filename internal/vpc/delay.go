package vpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A delayer holds the packets an NFQUEUE queue gets for a latency, then
// lets them go: network-latency without netem (kernels built without
// sch_netem, as this machine's, have no other way to delay packets).
// It speaks nfnetlink_queue itself (subsystem NFNL_SUBSYS_QUEUE).
type delayer struct {
	conn            *netlink.Conn
	queue           uint16
	latency, jitter time.Duration

	verdicts chan uint32
	done     chan struct{}
	wg       sync.WaitGroup
	inflight atomic.Int64 // packets held
	mu       sync.Mutex
	closed   bool
}

// nfnetlink_queue's message types and attributes (linux/netfilter/nfnetlink_queue.h).
const (
	nfnlSubsysQueue    = 3
	nfqnlMsgPacket     = 0
	nfqnlMsgVerdict    = 1
	nfqnlMsgConfig     = 2
	nfqaPacketHdr      = 1
	nfqaVerdictHdr     = 2
	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxlen = 3
	nfqaCfgMask        = 4
	nfqaCfgFlags       = 5
	nfqnlCfgCmdBind    = 1
	nfqnlCopyMeta      = 1
	nfqaCfgFFailOpen   = 1
	nfAccept           = 1
)

// startDelayer binds queue in the namespace at nsPath and delays every
// packet it gets by latency ± jitter.
func startDelayer(nsPath string, queue uint16, latency, jitter time.Duration) (*delayer, error) {
	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("network latency: open %s: %w", nsPath, err)
	}
	defer h.Close()
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(h)})
	if err != nil {
		return nil, fmt.Errorf("network latency: nfnetlink in %s: %w", nsPath, err)
	}
	_ = conn.SetReadBuffer(4 << 20)
	d := &delayer{conn: conn, queue: queue, latency: latency, jitter: jitter,
		verdicts: make(chan uint32, 4096), done: make(chan struct{})}
	be16 := func(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	for _, attrs := range [][]netlink.Attribute{
		{{Type: nfqaCfgCmd, Data: append([]byte{nfqnlCfgCmdBind, 0}, be16(unix.AF_UNSPEC)...)}},
		{
			{Type: nfqaCfgParams, Data: append(be32(0), nfqnlCopyMeta)},
			{Type: nfqaCfgQueueMaxlen, Data: be32(16384)},
			{Type: nfqaCfgMask, Data: be32(nfqaCfgFFailOpen)},
			{Type: nfqaCfgFlags, Data: be32(nfqaCfgFFailOpen)},
		},
	} {
		if _, err := conn.Execute(d.message(nfqnlMsgConfig, netlink.Request|netlink.Acknowledge, attrs)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("network latency: bind queue %d in %s: %w", queue, nsPath, err)
		}
	}
	d.wg.Add(2)
	go d.receive()
	go d.send()
	return d, nil
}

// message is an nfnetlink message of the queue subsystem for d's queue.
func (d *delayer) message(typ uint16, flags netlink.HeaderFlags, attrs []netlink.Attribute) netlink.Message {
	b, _ := netlink.MarshalAttributes(attrs)
	// struct nfgenmsg: family, version, resource id (the queue, big-endian).
	hdr := append([]byte{unix.AF_UNSPEC, 0}, binary.BigEndian.AppendUint16(nil, d.queue)...)
	return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysQueue<<8 | typ), Flags: flags},
		Data: append(hdr, b...)}
}

// receive takes each queued packet and lets it go after the latency.
func (d *delayer) receive() {
	defer d.wg.Done()
	for {
		msgs, err := d.conn.Receive()
		if err != nil {
			select {
			case <-d.done:
				return
			default:
			}
			var oe *netlink.OpError
			if errors.As(err, &oe) && errors.Is(oe.Err, unix.ENOBUFS) {
				continue // the kernel dropped messages; the queue fails open
			}
			return
		}
		for _, m := range msgs {
			if m.Header.Type != netlink.HeaderType(nfnlSubsysQueue<<8|nfqnlMsgPacket) || len(m.Data) < 4 {
				continue
			}
			ad, err := netlink.NewAttributeDecoder(m.Data[4:])
			if err != nil {
				continue
			}
			for ad.Next() {
				if ad.Type() != nfqaPacketHdr {
					continue
				}
				b := ad.Bytes()
				if len(b) < 4 {
					continue
				}
				id := binary.BigEndian.Uint32(b[:4])
				wait := d.latency
				if d.jitter > 0 {
					wait += time.Duration(rand.Int64N(int64(2*d.jitter))) - d.jitter
				}
				d.inflight.Add(1)
				time.AfterFunc(max(0, wait), func() {
					defer d.inflight.Add(-1)
					select {
					case d.verdicts <- id:
					case <-d.done:
					}
				})
			}
		}
	}
}

// send gives the verdicts (accept) in the order their delays end.
func (d *delayer) send() {
	defer d.wg.Done()
	for {
		select {
		case id := <-d.verdicts:
			hdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, nfAccept), id)
			_, _ = d.conn.Send(d.message(nfqnlMsgVerdict, netlink.Request, []netlink.Attribute{{Type: nfqaVerdictHdr, Data: hdr}}))
		case <-d.done:
			return
		}
	}
}

// close lets the packets it holds go (after their delay, at most a
// second more), then unbinds the queue. Remove the rule that queues
// packets first.
func (d *delayer) close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	deadline := time.Now().Add(d.latency + d.jitter + time.Second)
	for (d.inflight.Load() > 0 || len(d.verdicts) > 0) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(d.done)
	err := d.conn.Close()
	d.wg.Wait()
	return err
}
