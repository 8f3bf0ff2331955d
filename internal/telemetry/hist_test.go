package telemetry

import (
	"math"
	"sort"
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	prevHi := uint64(0)
	for i := range HistBuckets {
		lo, hi := bucketBounds(i)
		if lo != prevHi {
			t.Fatalf("bucket %d starts at %d, the previous one ended at %d", i, lo, prevHi)
		}
		if i < HistBuckets-1 {
			if got := bucketOf(lo); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", lo, got, i)
			}
			if got := bucketOf(hi - 1); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", hi-1, got, i)
			}
			if lo >= subBuckets && float64(hi-lo)/float64(lo) > 1.0/subBuckets {
				t.Fatalf("bucket %d [%d,%d) is wider than 1/%d of its lower bound", i, lo, hi, subBuckets)
			}
		}
		prevHi = hi
	}
	if got := bucketOf(math.MaxUint64); got != HistBuckets-1 {
		t.Fatalf("bucketOf(max) = %d", got)
	}
}

func TestQuantile(t *testing.T) {
	us := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Microsecond)
		}
		return out
	}
	many := func(n int, d time.Duration) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = d
		}
		return out
	}
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one value", us(7), 0.5, 7 * time.Microsecond},
		{"one value p99", us(7), 0.99, 7 * time.Microsecond},
		{"exact small p50 of 1..10", us(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.5, 5 * time.Microsecond},
		{"exact small p90 of 1..10", us(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.9, 9 * time.Microsecond},
		{"exact small p99 of 1..10", us(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.99, 10 * time.Microsecond},
		{"negative is zero", []time.Duration{-time.Second}, 0.5, 0},
		// 1 ms = 1000 µs is in [992, 1024): its middle is 1008 µs
		{"1ms", us(1000), 0.5, 1008 * time.Microsecond},
		// 99 fast and 1 slow: p99 is still fast, p100 the slow one
		{"p99 of 99 fast 1 slow", append(many(99, time.Millisecond), time.Second), 0.99, 1008 * time.Microsecond},
		{"p100 of 99 fast 1 slow", append(many(99, time.Millisecond), time.Second), 1, 999424 * time.Microsecond},
		// 98 fast and 2 slow: p99 is slow
		{"p99 of 98 fast 2 slow", append(many(98, time.Millisecond), time.Second, time.Second), 0.99, 999424 * time.Microsecond},
		{"p50 of half and half", append(many(50, time.Millisecond), many(50, 200*time.Millisecond)...), 0.5, 1008 * time.Microsecond},
		{"p51 of half and half", append(many(50, time.Millisecond), many(50, 200*time.Millisecond)...), 0.51, 200704 * time.Microsecond},
		{"huge", []time.Duration{100 * time.Hour}, 0.5, time.Duration(31<<27+1<<26) * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tt.values {
				h.Observe(v)
			}
			s := h.Snapshot()
			if got := s.Quantile(tt.q); got != tt.want {
				t.Fatalf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

// TestQuantileError checks the documented bound against the exact
// quantile of a spread of values.
func TestQuantileError(t *testing.T) {
	var h Histogram
	var vals []time.Duration
	for i := 1; i <= 5000; i++ {
		d := time.Duration(i*i) * 37 * time.Nanosecond
		vals = append(vals, d)
		h.Observe(d)
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	s := h.Snapshot()
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1].Truncate(time.Microsecond)
		got := s.Quantile(q)
		if rel := math.Abs(float64(got-exact)) / float64(exact); rel > 0.032 {
			t.Errorf("p%v = %v, exact %v: off by %.1f%%", q*100, got, exact, rel*100)
		}
	}
}

func TestSnapshotSub(t *testing.T) {
	var h Histogram
	h.Observe(time.Millisecond)
	first := h.Snapshot()
	h.Observe(time.Second)
	h.Observe(time.Second)
	second := h.Snapshot()
	d := second.Sub(&first)
	if d.Count() != 2 || d.Quantile(0.5) != 999424*time.Microsecond {
		t.Fatalf("interval: %d values, p50 %v; want 2 values of about 1s", d.Count(), d.Quantile(0.5))
	}
	// a replaced histogram (counter reset): the new counts are the interval's
	var fresh Histogram
	fresh.Observe(time.Microsecond)
	now := fresh.Snapshot()
	if r := now.Sub(&second); r.Count() != 1 {
		t.Fatalf("after a reset the interval has %d values, want 1", r.Count())
	}
}

func BenchmarkObserve(b *testing.B) {
	var h Histogram
	b.RunParallel(func(pb *testing.PB) {
		d := 1500 * time.Microsecond
		for pb.Next() {
			h.Observe(d)
		}
	})
}
