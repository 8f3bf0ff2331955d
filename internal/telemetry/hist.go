// Package telemetry samples what flows through a running stack once a
// second (load balancer responses and latency, instance CPU and memory,
// bastion sessions, NAT egress) and keeps the last ten minutes in memory,
// named as CloudWatch's metrics are. The aggregation is pure (Diff,
// Histogram's quantiles, Ring); the daemon reads the parts and feeds it.
package telemetry

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// A latency histogram, log-linear in microseconds: values below 16 µs
// have a bucket each; above, every power of two is split into 16 equal
// buckets, so a bucket is at most 1/16 (6.25 %) of its lower bound wide
// and a quantile read at a bucket's middle is within 3.2 % of the true
// value. The last bucket holds everything from 31·2^27 µs (69 min) up.
const (
	subBits    = 4
	subBuckets = 1 << subBits // 16
	maxExp     = 28           // octaves above the linear range
	// HistBuckets is the number of buckets.
	HistBuckets = subBuckets + maxExp*subBuckets
)

// bucketOf is the bucket of a value in microseconds.
func bucketOf(us uint64) int {
	if us < subBuckets {
		return int(us)
	}
	e := bits.Len64(us) - subBits - 1 // us>>e is in [16, 32)
	if e >= maxExp {
		return HistBuckets - 1
	}
	return subBuckets + e*subBuckets + int(us>>e) - subBuckets
}

// bucketBounds is the range [lo, hi) of bucket i in microseconds.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subBuckets {
		return uint64(i), uint64(i) + 1
	}
	e := uint((i - subBuckets) / subBuckets)
	m := uint64((i-subBuckets)%subBuckets) + subBuckets
	return m << e, (m + 1) << e
}

// Histogram counts durations, cumulatively: Observe is one atomic add per
// call and safe for concurrent use; a reader takes Snapshots and
// subtracts the previous one to get an interval's distribution.
type Histogram struct {
	counts [HistBuckets]atomic.Uint64
}

// Observe counts one duration (negative ones count as zero).
func (h *Histogram) Observe(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.counts[bucketOf(us)].Add(1)
}

// Snapshot is a histogram's counts at one moment.
type Snapshot [HistBuckets]uint64

// Snapshot copies the counts.
func (h *Histogram) Snapshot() Snapshot {
	var s Snapshot
	for i := range h.counts {
		s[i] = h.counts[i].Load()
	}
	return s
}

// Add adds o's counts to s (merging histograms, or folding a retired one).
func (s *Snapshot) Add(o *Snapshot) {
	for i := range s {
		s[i] += o[i]
	}
}

// AddTo adds h's counts to s.
func (h *Histogram) AddTo(s *Snapshot) {
	for i := range h.counts {
		s[i] += h.counts[i].Load()
	}
}

// Sub is the interval's counts: s minus an earlier snapshot of the same
// histogram. A bucket that went down means the histogram was replaced
// (counter reset): then s itself is the interval's.
func (s *Snapshot) Sub(prev *Snapshot) Snapshot {
	var d Snapshot
	for i := range s {
		if s[i] < prev[i] {
			return *s
		}
		d[i] = s[i] - prev[i]
	}
	return d
}

// Count is the number of values counted.
func (s *Snapshot) Count() uint64 {
	var n uint64
	for _, c := range s {
		n += c
	}
	return n
}

// Quantile is the q-quantile (0 < q <= 1) of the counted values: the
// middle of the bucket holding the value of rank ceil(q*n), exact below
// 16 µs. It is 0 when nothing was counted.
func (s *Snapshot) Quantile(q float64) time.Duration {
	n := s.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(q * float64(n))
	if float64(rank) < q*float64(n) {
		rank++
	}
	rank = max(rank, 1)
	var seen uint64
	for i, c := range s {
		seen += c
		if seen >= rank {
			lo, hi := bucketBounds(i)
			if hi-lo == 1 {
				return time.Duration(lo) * time.Microsecond
			}
			return time.Duration(lo+(hi-lo)/2) * time.Microsecond
		}
	}
	return 0 // unreachable: seen reaches n
}
