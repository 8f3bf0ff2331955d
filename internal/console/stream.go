package console

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// The page's one Server-Sent Events stream carries these kinds of
// message.
const (
	// KindSnapshot is the whole state (status, map, targets, activities):
	// each one replaces the one before, so only the latest is kept.
	KindSnapshot = "snapshot"
	// KindEvent is one event of the event log: the timeline. The page
	// must not miss one; a resume that would is a reset.
	KindEvent = "event"
	// KindMetrics is one second of metrics; a gap is only a gap.
	KindMetrics = "metrics"
	// KindReset tells the page to forget what it has: a full replay
	// follows. It carries no id.
	KindReset = "reset"
)

// message is one SSE message: its id (the stream's sequence number), its
// kind and its JSON data.
type message struct {
	id   uint64
	kind string
	data []byte
}

// encode writes m as an SSE message: id (epoch-seq), event and one data
// line per line of data.
func (m message) encode(epoch string) []byte {
	var b bytes.Buffer
	if m.id != 0 {
		fmt.Fprintf(&b, "id: %s-%d\n", epoch, m.id)
	}
	fmt.Fprintf(&b, "event: %s\n", m.kind)
	for line := range strings.SplitSeq(string(m.data), "\n") {
		fmt.Fprintf(&b, "data: %s\n", line)
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// ring keeps what a page needs to catch up: the latest snapshot, the last
// caps[KindEvent] events and the last caps[KindMetrics] seconds of
// metrics, in id order. It is not safe for concurrent use (the hub locks).
type ring struct {
	epoch string // per start of the console: ids of another start are unknown
	last  uint64 // the last id given
	msgs  []message
	caps  map[string]int
	// lostEvents is the highest id of an event dropped to keep the cap: a
	// page that has not seen it must start over.
	lostEvents uint64
}

func newRing(epoch string, events, metrics int) *ring {
	return &ring{epoch: epoch, caps: map[string]int{KindSnapshot: 1, KindEvent: events, KindMetrics: metrics}}
}

// add appends a message of kind and returns it; the oldest message of the
// same kind goes when the kind is over its cap.
func (r *ring) add(kind string, data []byte) message {
	r.last++
	m := message{id: r.last, kind: kind, data: data}
	r.msgs = append(r.msgs, m)
	n := 0
	for _, x := range r.msgs {
		if x.kind == kind {
			n++
		}
	}
	if n > r.caps[kind] {
		for i, x := range r.msgs {
			if x.kind == kind {
				if kind == KindEvent {
					r.lostEvents = x.id
				}
				r.msgs = append(r.msgs[:i], r.msgs[i+1:]...)
				break
			}
		}
	}
	return m
}

// since is what a page that has seen lastID (an SSE Last-Event-ID, empty
// for a new page) needs: the messages after it, or, when it cannot
// catch up (a new page, an id of another start or from the future, or
// events it missed are gone), reset and everything kept.
func (r *ring) since(lastID string) (reset bool, msgs []message) {
	seq, ok := r.parseID(lastID)
	if !ok || seq > r.last || seq < r.lostEvents {
		return true, append([]message(nil), r.msgs...)
	}
	for i, m := range r.msgs {
		if m.id > seq {
			return false, append([]message(nil), r.msgs[i:]...)
		}
	}
	return false, nil
}

// id is the SSE id of sequence number seq.
func (r *ring) id(seq uint64) string { return fmt.Sprintf("%s-%d", r.epoch, seq) }

// parseID reads an id this ring gave: "<epoch>-<seq>".
func (r *ring) parseID(id string) (uint64, bool) {
	epoch, n, ok := strings.Cut(id, "-")
	if !ok || epoch != r.epoch {
		return 0, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	return seq, err == nil
}
