package console

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/client"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
)

// Source is the running stack as the console sees it: the control API,
// through the same calls as the CLI. *client.Client is the real one.
type Source interface {
	Status(ctx context.Context) (api.Status, error)
	Instances(ctx context.Context, all bool) ([]api.Instance, error)
	Targets(ctx context.Context) ([]api.Target, error)
	Activities(ctx context.Context, group string) ([]api.Activity, error)
	Membership(ctx context.Context) (secgroup.Membership, error)
	EventsAfter(ctx context.Context, after uint64, follow bool, fn func(events.Event)) error
	Scale(ctx context.Context, group string, desired int) error
	Terminate(ctx context.Context, id string, decrementDesired bool) error
	Refresh(ctx context.Context, group string) error
	SetProtection(ctx context.Context, id string, protected bool) error
	Metrics(ctx context.Context, since time.Time) (api.Metrics, error)
}

var _ Source = (*client.Client)(nil)

// Snapshot is the state a page draws, sent whole whenever it changes.
type Snapshot struct {
	Status  api.Status   `json:"status"`
	Map     Map          `json:"map"`
	Targets []api.Target `json:"targets"`
	// Activities are each group's latest scaling activities, newest first.
	Activities map[string][]api.Activity `json:"activities"`
	// Error says what could not be read, when something could not.
	Error string `json:"error,omitempty"`
}

// What a snapshot carries and the ring keeps: activities per group,
// events (the timeline), seconds of metrics.
const (
	maxActivities = 30
	maxEvents     = 2000
	maxSamples    = 120
)

// hub follows the stack and fans its changes out to the pages' streams.
type hub struct {
	plan *plan.Plan
	src  Source
	log  *slog.Logger
	tick time.Duration

	mu   sync.Mutex
	ring *ring
	subs map[chan struct{}]struct{}
	last []byte // the last snapshot's JSON
	// sampled is the time of the last metrics sample published.
	sampled time.Time
	kick    chan struct{}
}

func newHub(p *plan.Plan, src Source, log *slog.Logger, epoch string) *hub {
	return &hub{plan: p, src: src, log: log, tick: time.Second, ring: newRing(epoch, maxEvents, maxSamples),
		subs: map[chan struct{}]struct{}{}, kick: make(chan struct{}, 1)}
}

// run follows the event log and refreshes the snapshot every tick and
// after every event, until ctx is done.
func (h *hub) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.followEvents(ctx)
	}()
	t := time.NewTicker(h.tick)
	defer t.Stop()
	for {
		h.refresh(ctx)
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		case <-h.kick:
			// Let a burst of events settle into one refresh.
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// followEvents streams the event log (history, then live) into the ring;
// every event also asks for a refresh, so the map follows at once. When
// the stream breaks it resumes after the last event's Seq: each event
// reaches the ring once.
func (h *hub) followEvents(ctx context.Context) {
	var last uint64
	for ctx.Err() == nil {
		err := h.src.EventsAfter(ctx, last, true, func(e events.Event) {
			if e.Seq != 0 && e.Seq <= last {
				return
			}
			last = e.Seq
			b, err := json.Marshal(e)
			if err != nil {
				return
			}
			h.publish(KindEvent, b)
			h.poke()
		})
		if ctx.Err() != nil {
			return
		}
		h.log.Debug("event stream ended; following again", "after", last, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (h *hub) poke() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// refresh reads the state through the control API and publishes it when
// it changed.
func (h *hub) refresh(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			h.log.Error("console refresh panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	if !h.wanted() {
		return
	}
	snap := h.snapshot(ctx)
	b, err := json.Marshal(snap)
	if err != nil {
		h.log.Warn("encode snapshot", "err", err)
		return
	}
	h.mu.Lock()
	same := bytes.Equal(b, h.last)
	if !same {
		h.last = b
	}
	h.mu.Unlock()
	if !same {
		h.publish(KindSnapshot, b)
	}
	h.refreshMetrics(ctx)
}

// refreshMetrics publishes the metrics samples taken since the last one
// published (at most the ring's worth on the first call).
func (h *hub) refreshMetrics(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := h.src.Metrics(ctx, h.sampled)
	if err != nil {
		return // a stack without metrics yet
	}
	samples := m.Samples
	if len(samples) > maxSamples {
		samples = samples[len(samples)-maxSamples:]
	}
	for _, smp := range samples {
		if !smp.Time.After(h.sampled) {
			continue
		}
		b, err := json.Marshal(smp)
		if err != nil {
			continue
		}
		h.sampled = smp.Time
		h.publish(KindMetrics, b)
	}
}

// wanted reports whether a page is watching, or no snapshot was taken yet.
func (h *hub) wanted() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0 || h.last == nil
}

// snapshot reads the stack's state; what cannot be read stays empty and
// the error says why.
func (h *hub) snapshot(ctx context.Context) Snapshot {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var s Snapshot
	var err error
	note := func(e error) {
		if e != nil && err == nil {
			err = e
		}
	}
	s.Status, err = h.src.Status(ctx)
	inst, e := h.src.Instances(ctx, false)
	note(e)
	tgs, e := h.src.Targets(ctx)
	note(e)
	mem, e := h.src.Membership(ctx)
	if e != nil {
		mem = secgroup.Membership{} // the VPC is not up yet
	}
	s.Targets = tgs
	if s.Targets == nil {
		s.Targets = []api.Target{}
	}
	// Usage changes every second and comes with the metrics: leaving it
	// out, a snapshot changes only when the stack does.
	for i := range inst {
		inst[i].CPUPercent, inst[i].MemoryBytes = 0, 0
	}
	s.Map = BuildMap(h.plan, mem, inst, tgs)
	s.Activities = map[string][]api.Activity{}
	for _, g := range h.plan.AutoScalingGroups {
		acts, e := h.src.Activities(ctx, g.Name)
		if e != nil {
			continue // the group is not made yet
		}
		if len(acts) > maxActivities {
			acts = acts[:maxActivities]
		}
		s.Activities[g.Name] = acts
	}
	if err != nil {
		s.Error = err.Error()
	}
	return s
}

// publish adds a message to the ring and wakes every stream.
func (h *hub) publish(kind string, data []byte) {
	h.mu.Lock()
	h.ring.add(kind, data)
	for ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	h.mu.Unlock()
}

// subscribe registers a stream; it is woken (without blocking the hub)
// whenever a message is added.
func (h *hub) subscribe() (ch chan struct{}, cancel func()) {
	ch = make(chan struct{}, 1)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	h.poke()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}

// since is the ring's catch-up for lastID, the epoch to encode ids with,
// and the id a stream has seen once it has sent msgs.
func (h *hub) since(lastID string) (epoch string, reset bool, msgs []message, head string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	reset, msgs = h.ring.since(lastID)
	return h.ring.epoch, reset, msgs, h.ring.id(h.ring.last)
}
