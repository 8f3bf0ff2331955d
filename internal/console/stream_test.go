package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/testutil"
)

func TestMessageEncode(t *testing.T) {
	for _, c := range []struct {
		m    message
		want string
	}{
		{message{id: 7, kind: KindEvent, data: []byte(`{"a":1}`)}, "id: e1-7\nevent: event\ndata: {\"a\":1}\n\n"},
		{message{kind: KindReset, data: []byte(`{}`)}, "event: reset\ndata: {}\n\n"},
		// A line break in data must not end the message or forge a field.
		{message{id: 1, kind: KindSnapshot, data: []byte("a\nid: 99\n\nevent: x")},
			"id: e1-1\nevent: snapshot\ndata: a\ndata: id: 99\ndata: \ndata: event: x\n\n"},
	} {
		if got := string(c.m.encode("e1")); got != c.want {
			t.Errorf("encode(%+v) = %q, want %q", c.m, got, c.want)
		}
	}
}

// ids lists the ids of msgs as kind:id.
func ids(msgs []message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%s:%d", m.kind[:1], m.id))
	}
	return out
}

func TestRingSince(t *testing.T) {
	// 3 events, 2 metrics kept; one snapshot.
	r := newRing("e1", 3, 2)
	r.add(KindEvent, nil)    // 1
	r.add(KindSnapshot, nil) // 2
	r.add(KindEvent, nil)    // 3
	r.add(KindMetrics, nil)  // 4
	r.add(KindSnapshot, nil) // 5 supersedes 2
	r.add(KindMetrics, nil)  // 6
	r.add(KindMetrics, nil)  // 7: 4 goes (a gap in metrics is only a gap)
	r.add(KindEvent, nil)    // 8
	if got, want := ids(r.msgs), []string{"e:1", "e:3", "s:5", "m:6", "m:7", "e:8"}; !slices.Equal(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
	for _, c := range []struct {
		last  string
		reset bool
		want  []string
	}{
		{"", true, []string{"e:1", "e:3", "s:5", "m:6", "m:7", "e:8"}}, // a new page: everything
		{"e1-0", false, []string{"e:1", "e:3", "s:5", "m:6", "m:7", "e:8"}},
		{"e1-2", false, []string{"e:3", "s:5", "m:6", "m:7", "e:8"}}, // saw snapshot 2: gets 5
		{"e1-5", false, []string{"m:6", "m:7", "e:8"}},
		{"e1-8", false, nil}, // up to date
		{"e1-9", true, []string{"e:1", "e:3", "s:5", "m:6", "m:7", "e:8"}}, // from the future: another start
		{"e0-3", true, []string{"e:1", "e:3", "s:5", "m:6", "m:7", "e:8"}}, // another start's id
		{"e1-x", true, []string{"e:1", "e:3", "s:5", "m:6", "m:7", "e:8"}},
		{"garbage", true, []string{"e:1", "e:3", "s:5", "m:6", "m:7", "e:8"}},
	} {
		reset, msgs := r.since(c.last)
		if reset != c.reset || !slices.Equal(ids(msgs), c.want) {
			t.Errorf("since(%q) = %v %v, want %v %v", c.last, reset, ids(msgs), c.reset, c.want)
		}
	}
	// A fourth event drops event 1: a page that had not seen it must
	// start over; one that had, catches up.
	r.add(KindEvent, nil) // 9
	if reset, _ := r.since("e1-0"); !reset {
		t.Error("since(e1-0) after event 1 was dropped: want a reset")
	}
	if reset, msgs := r.since("e1-1"); reset || !slices.Equal(ids(msgs), []string{"e:3", "s:5", "m:6", "m:7", "e:8", "e:9"}) {
		t.Errorf("since(e1-1) = %v %v", reset, ids(msgs))
	}
	if got := r.id(9); got != "e1-9" {
		t.Errorf("id(9) = %q", got)
	}
}

// breakingStream is a stack whose event stream breaks once after two
// events; the second stream (asked after Seq 2) repeats event 2.
type breakingStream struct {
	*fakeStack
	mu     sync.Mutex
	afters []uint64
}

func (b *breakingStream) EventsAfter(ctx context.Context, after uint64, follow bool, fn func(events.Event)) error {
	b.mu.Lock()
	b.afters = append(b.afters, after)
	n := len(b.afters)
	b.mu.Unlock()
	if n == 1 {
		fn(events.Event{Seq: 1, Message: "one"})
		fn(events.Event{Seq: 2, Message: "two"})
		return errors.New("connection reset")
	}
	fn(events.Event{Seq: 2, Message: "two"})
	fn(events.Event{Seq: 3, Message: "three"})
	<-ctx.Done()
	return ctx.Err()
}

func TestFollowEventsResumesAfterSeq(t *testing.T) {
	src := &breakingStream{fakeStack: newFakeStack(examplePlan(t), 0)}
	h := newHub(examplePlan(t), src, slog.New(slog.DiscardHandler), "e1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.followEvents(ctx) }()
	testutil.Eventually(t, 5*time.Second, func() error {
		_, _, msgs, _ := h.since("")
		var got []string
		for _, m := range msgs {
			var e events.Event
			_ = json.Unmarshal(m.data, &e)
			got = append(got, e.Message)
		}
		if !slices.Equal(got, []string{"one", "two", "three"}) {
			return fmt.Errorf("timeline %q, want one two three, each once", got)
		}
		return nil
	})
	cancel()
	<-done
	if !slices.Equal(src.afters, []uint64{0, 2}) {
		t.Errorf("streams asked after %v, want [0 2]", src.afters)
	}
}
