package lb

import (
	"sync/atomic"
	"time"

	"github.com/moat-dev/moat/internal/telemetry"
)

// The engine counts every response once, in a cell: one per target (in
// its pool), one per target group for requests that found no target, and
// one for requests that reached no target group. The cells are the one
// source of truth: the Prometheus counters (metrics.go) and the
// per-second telemetry (Stats) are both read from them.

// maxCode bounds the status codes counted one by one; others count as 0.
const maxCode = 600

// cell counts responses by status code and source, and the target
// response time of the responses a target sent. It is safe for
// concurrent use: each count is one atomic add.
type cell struct {
	// epoch tells two cells apart: a target registered again gets a new
	// cell whose counts start at zero.
	epoch  uint64
	target [maxCode]atomic.Uint64 // responses the target sent
	elb    [maxCode]atomic.Uint64 // responses the load balancer made
	// ttfb is the target response time: from the request head read to
	// the target's response head (CloudWatch's TargetResponseTime).
	ttfb telemetry.Histogram
}

var epochs atomic.Uint64

func newCell() *cell { return &cell{epoch: epochs.Add(1)} }

func codeIndex(code int) int {
	if code < 0 || code >= maxCode {
		return 0
	}
	return code
}

// fromTarget counts a response the target sent after ttfb.
func (c *cell) fromTarget(code int, ttfb time.Duration) {
	c.target[codeIndex(code)].Add(1)
	c.ttfb.Observe(ttfb)
}

// refuse counts a request the load balancer refused as malformed (before
// any routing).
func (e *Engine) refuse(code int) {
	e.other.fromELB(code)
	e.malformed.Add(1)
}

// fromELB counts a response the load balancer made.
func (c *cell) fromELB(code int) { c.elb[codeIndex(code)].Add(1) }

// totals are a cell's counts read at one moment (or several cells'
// summed).
type totals struct {
	target, elb [maxCode]uint64
	ttfb        telemetry.Snapshot
}

// addTo adds the cell's counts to t.
func (c *cell) addTo(t *totals) {
	for i := range c.target {
		t.target[i] += c.target[i].Load()
		t.elb[i] += c.elb[i].Load()
	}
	c.ttfb.AddTo(&t.ttfb)
}

func classesOf(codes *[maxCode]uint64) telemetry.Classes {
	var c telemetry.Classes
	for code, n := range codes {
		c[code/100] += n
	}
	return c
}

func (t *totals) counts() telemetry.Counts {
	return telemetry.Counts{Target: classesOf(&t.target), ELB: classesOf(&t.elb), TargetResponseTime: t.ttfb}
}

// Stats reads every count of the engine. The counts of a target that is
// no longer registered move to its group's Gone, so that the sum over a
// load balancer (Total) never goes down.
func (e *Engine) Stats() telemetry.LBStats {
	var other totals
	e.other.addTo(&other)
	st := telemetry.LBStats{ActiveConnections: e.metrics.activeConns.Load(), Other: other.counts(), Malformed: e.malformed.Load()}
	for _, g := range e.sortedGroups() {
		gs := telemetry.GroupStats{Name: g.name}
		var none totals
		g.none.addTo(&none)
		gs.NoTarget = none.counts()
		targets := g.tg.Targets()
		byID := make(map[string]int, len(targets))
		for i, t := range targets {
			byID[t.ID] = i
			gs.Targets = append(gs.Targets, telemetry.TargetStats{ID: t.ID, Addr: t.Addr, State: string(t.State)})
		}
		olderCells := make([]*cell, len(targets))
		g.mu.Lock()
		gone := g.gone
		for t, p := range g.pools {
			i, ok := byID[t.ID]
			if !ok {
				p.cell.addTo(&gone) // expired, not yet folded by the drain loop
				continue
			}
			ts := &gs.Targets[i]
			if ts.Epoch > p.cell.epoch {
				p.cell.addTo(&gone) // an expired registration of the same id
				continue
			}
			if ts.Epoch != 0 {
				prev := olderCells[i]
				prev.addTo(&gone)
			}
			var tt totals
			p.cell.addTo(&tt)
			ts.Epoch, ts.Counts = p.cell.epoch, tt.counts()
			olderCells[i] = p.cell
		}
		g.mu.Unlock()
		gs.Gone = gone.counts()
		st.Groups = append(st.Groups, gs)
	}
	return st
}
