package telemetry

import (
	"sync"
	"time"

	"github.com/moat-dev/moat/internal/api"
)

// Keep is how many samples a Ring holds: ten minutes of seconds.
const Keep = 600

// Ring holds the last samples, oldest first. It is safe for concurrent
// use.
type Ring struct {
	mu   sync.Mutex
	buf  []api.MetricsSample
	next int // where the next sample goes once buf is full
	size int
}

// NewRing returns a ring of n samples.
func NewRing(n int) *Ring { return &Ring{size: max(n, 1)} }

// Add stores a sample, dropping the oldest when full.
func (r *Ring) Add(s api.MetricsSample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) < r.size {
		r.buf = append(r.buf, s)
		return
	}
	r.buf[r.next] = s
	r.next = (r.next + 1) % r.size
}

// Since returns the samples whose Time is after t, oldest first (every
// sample for a zero t).
func (r *Ring) Since(t time.Time) []api.MetricsSample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []api.MetricsSample{}
	for i := range r.buf {
		s := r.buf[(r.next+i)%len(r.buf)]
		if s.Time.After(t) {
			out = append(out, s)
		}
	}
	return out
}
