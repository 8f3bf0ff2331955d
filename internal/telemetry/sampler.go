package telemetry

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/moat-dev/moat/internal/api"
)

// Sampler reads the stack once a second and keeps each second's sample in
// a Ring.
type Sampler struct {
	// Read reads the stack's cumulative counts (the daemon's parts).
	Read func(now time.Time) Reading
	// OnSample, if set, gets every new sample (the daemon turns 5xx into
	// events with Errors5XXEvents).
	OnSample func(api.MetricsSample)
	Log      *slog.Logger

	ring *Ring
	prev *Reading
}

// NewSampler returns a sampler keeping Keep samples.
func NewSampler(read func(now time.Time) Reading) *Sampler {
	return &Sampler{Read: read, ring: NewRing(Keep), Log: slog.New(slog.DiscardHandler)}
}

// Run samples every interval until ctx is done.
func (s *Sampler) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.Step(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Step takes one reading; from the second one on, it stores the sample
// of the interval since the previous one.
func (s *Sampler) Step(now time.Time) {
	defer func() {
		if r := recover(); r != nil {
			s.Log.Error("telemetry sampler panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	cur := s.Read(now)
	cur.Time = now.UTC()
	if s.prev != nil {
		smp := Diff(s.prev, &cur)
		s.ring.Add(smp)
		if s.OnSample != nil {
			s.OnSample(smp)
		}
	}
	s.prev = &cur
}

// Since returns the samples after t, oldest first.
func (s *Sampler) Since(t time.Time) []api.MetricsSample { return s.ring.Since(t) }
