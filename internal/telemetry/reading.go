package telemetry

import (
	"time"

	"github.com/moat-dev/moat/internal/api"
)

// A Reading is the stack's cumulative counts at one moment, as the daemon
// reads them from the parts; Diff turns two readings a second apart into
// that second's sample.
type Reading struct {
	Time          time.Time
	LoadBalancers []LBReading
	// Instances are already per-interval values (the auto scaling
	// groups' own usage sampling computes CPUUtilization).
	Instances []api.InstanceMetrics
	Bastion   api.BastionMetrics
	NAT       []NATReading
}

// LBReading is one load balancer's counts.
type LBReading struct {
	Name  string
	Stats LBStats
	// InstanceIDs name targets by instance id (by target address); a
	// target not in it is named by its address.
	InstanceIDs map[string]string
}

// NATReading is one NAT gateway's cumulative egress.
type NATReading struct {
	Name           string
	Bytes, Packets uint64
}

// Classes are response counts by status class: index 1 to 5 for 1xx to
// 5xx, 0 for statuses outside 100-599.
type Classes [6]uint64

// Total is the number of responses counted.
func (c Classes) Total() uint64 {
	var n uint64
	for _, v := range c {
		n += v
	}
	return n
}

// Counts are cumulative response counts, by class, from the target and
// from the load balancer itself, and the target response times.
type Counts struct {
	Target, ELB        Classes
	TargetResponseTime Snapshot
}

// Add adds o's counts to c.
func (c *Counts) Add(o *Counts) {
	for i := range c.Target {
		c.Target[i] += o.Target[i]
		c.ELB[i] += o.ELB[i]
	}
	c.TargetResponseTime.Add(&o.TargetResponseTime)
}

// LBStats are a load balancer's cumulative counts since it started (each
// count only grows, except a target's, which starts again at zero with a
// new Epoch when it is registered again). Package lb fills them.
type LBStats struct {
	// ActiveConnections are the client connections open now.
	ActiveConnections int64
	// Other counts the requests that reached no target group: fixed
	// responses, redirects, and requests refused as malformed.
	Other Counts
	// Malformed counts the requests refused as malformed (400, 414, 431,
	// 463), which are in Other too; RequestCount leaves them out.
	Malformed uint64
	Groups    []GroupStats
}

// GroupStats are one target group's counts.
type GroupStats struct {
	Name string
	// NoTarget counts the requests that found no target (503).
	NoTarget Counts
	// Gone counts the responses of targets no longer registered.
	Gone    Counts
	Targets []TargetStats
}

// TargetStats are one registered target's counts and health state.
type TargetStats struct {
	ID, Addr string
	State    string // the target group's state: initial, healthy, unhealthy, draining
	Epoch    uint64
	Counts
}

// Total is the sum of every count of the load balancer.
func (s *LBStats) Total() Counts {
	t := s.Other
	for _, g := range s.Groups {
		t.Add(&g.NoTarget)
		t.Add(&g.Gone)
		for i := range g.Targets {
			t.Add(&g.Targets[i].Counts)
		}
	}
	return t
}
