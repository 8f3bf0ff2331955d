package bastion

import (
	"net/netip"
	"sync"
	"time"
)

// LimiterConfig bounds failed handshakes per source.
type LimiterConfig struct {
	// MaxFailures within Window blocks a source; default 10.
	MaxFailures int
	// Window over which failures are counted; default 1 minute.
	Window time.Duration
	// Block is how long a source stays blocked; default 1 minute.
	Block time.Duration
	// MaxSources bounds memory; default 4096. When full, the source with
	// the oldest failure is forgotten.
	MaxSources int
}

func (c LimiterConfig) withDefaults() LimiterConfig {
	if c.MaxFailures <= 0 {
		c.MaxFailures = 10
	}
	if c.Window <= 0 {
		c.Window = time.Minute
	}
	if c.Block <= 0 {
		c.Block = time.Minute
	}
	if c.MaxSources <= 0 {
		c.MaxSources = 4096
	}
	return c
}

// failureLimiter counts failed handshakes per source (an IPv4 address or
// an IPv6 /64) and blocks sources that fail too often. It is pure: time is
// passed in.
type failureLimiter struct {
	cfg     LimiterConfig
	mu      sync.Mutex
	sources map[netip.Prefix]*sourceState
}

type sourceState struct {
	windowStart  time.Time
	failures     int
	blockedUntil time.Time
	last         time.Time
}

func newFailureLimiter(cfg LimiterConfig) *failureLimiter {
	return &failureLimiter{cfg: cfg.withDefaults(), sources: map[netip.Prefix]*sourceState{}}
}

// sourceKey groups IPv6 addresses by /64, the usual allocation to one host.
func sourceKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// Allow reports whether a new connection from a may proceed at now, and if
// not, until when the source is blocked.
func (l *failureLimiter) Allow(a netip.Addr, now time.Time) (bool, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.sources[sourceKey(a)]
	if !ok || !now.Before(s.blockedUntil) {
		return true, time.Time{}
	}
	return false, s.blockedUntil
}

// Fail records a failed handshake from a at now. It returns true when this
// failure made the source blocked.
func (l *failureLimiter) Fail(a netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := sourceKey(a)
	s, ok := l.sources[k]
	if !ok {
		if len(l.sources) >= l.cfg.MaxSources {
			l.evict(now)
		}
		s = &sourceState{windowStart: now}
		l.sources[k] = s
	}
	if now.Sub(s.windowStart) >= l.cfg.Window {
		s.windowStart, s.failures = now, 0
	}
	s.failures++
	s.last = now
	if s.failures >= l.cfg.MaxFailures && !now.Before(s.blockedUntil) {
		s.blockedUntil = now.Add(l.cfg.Block)
		s.windowStart, s.failures = now, 0
		return true
	}
	return false
}

// evict forgets expired sources, or failing that the least recent one.
func (l *failureLimiter) evict(now time.Time) {
	var oldest netip.Prefix
	var oldestT time.Time
	for k, s := range l.sources {
		if now.Sub(s.last) >= l.cfg.Window && !now.Before(s.blockedUntil) {
			delete(l.sources, k)
			continue
		}
		if oldestT.IsZero() || s.last.Before(oldestT) {
			oldest, oldestT = k, s.last
		}
	}
	if len(l.sources) >= l.cfg.MaxSources {
		delete(l.sources, oldest)
	}
}

// Len is the number of sources tracked.
func (l *failureLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sources)
}
