package fault

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Subnet is what DisruptConnectivity needs to know of a subnet.
type Subnet struct {
	Name string
	Zone string
}

// Block is one subnet's traffic to drop in the router: every packet
// leaving the subnet for Peers and entering it from them; nil Peers
// means every other interface (other subnets, the internet). Traffic
// inside the subnet stays, as with FIS (it never crosses the router).
type Block struct {
	Subnet string
	Peers  []string
}

// Blocks plans DisruptConnectivity over the stack's subnets (pure):
// scope all blocks each target subnet from everything outside it; scope
// availability-zone blocks it from the subnets of other zones only.
func Blocks(spec Spec, subnets []Subnet) ([]Block, error) {
	byName := map[string]Subnet{}
	var names []string
	for _, s := range subnets {
		byName[s.Name] = s
		names = append(names, s.Name)
	}
	var out []Block
	for _, t := range spec.Targets {
		sn, ok := byName[t]
		if !ok {
			return nil, fmt.Errorf("fault %s: subnet %q does not exist: the stack's subnets are %s", spec.Kind, t, strings.Join(names, ", "))
		}
		b := Block{Subnet: sn.Name}
		if spec.Scope == ScopeZone {
			for _, o := range subnets {
				if o.Zone != sn.Zone {
					b.Peers = append(b.Peers, o.Name)
				}
			}
			if len(b.Peers) == 0 {
				continue // one zone only: nothing to cut
			}
		}
		out = append(out, b)
	}
	return out, nil
}

// Netem is what NetworkLatency and PacketLoss do to what an interface
// sends, in netem's terms.
type Netem struct {
	Latency, Jitter time.Duration
	LossPercent     float64
}

// NetemOf is the spec's netem settings.
func NetemOf(spec Spec) Netem {
	return Netem{Latency: spec.Delay, Jitter: spec.Jitter, LossPercent: spec.LossPercent}
}

// Burn is what CPUStress or MemoryStress runs inside an instance.
type Burn struct {
	// Workers CPU burners, together limited to CPUs cores (a cgroup's CFS
	// quota, inside the instance's own).
	Workers int
	CPUs    float64
	// MemoryBytes held by one burner.
	MemoryBytes int64
}

// BurnOf plans a stress fault on an instance with vcpus CPUs (0:
// unknown, taken as 1) and a memory limit (0: none).
func BurnOf(spec Spec, vcpus float64, memLimit int64) (Burn, error) {
	if vcpus <= 0 {
		vcpus = 1
	}
	switch spec.Kind {
	case CPUStress:
		w := spec.Workers
		if w == 0 {
			w = int(math.Ceil(vcpus))
		}
		return Burn{Workers: w, CPUs: float64(w) * spec.LoadPercent / 100}, nil
	case MemoryStress:
		if memLimit <= 0 {
			return Burn{}, fmt.Errorf("fault %s: the instance has no memory limit (instance type unknown to moat, or no cgroup v1 memory hierarchy): give an instance type moat knows, e.g. t3.micro", spec.Kind)
		}
		return Burn{MemoryBytes: int64(float64(memLimit) * spec.MemoryPercent / 100)}, nil
	}
	return Burn{}, fmt.Errorf("fault %s: not a stress fault", spec.Kind)
}

// CapacityFails decides whether a launch of a group in zone (its name or
// AWS name) fails under an InsufficientCapacity spec; roll is a uniform
// random number in [0, 1).
func CapacityFails(spec Spec, zone, awsZone string, roll float64) bool {
	if !slices.Contains(spec.Zones, zone) && !slices.Contains(spec.Zones, awsZone) {
		return false
	}
	return roll*100 < spec.Percentage
}

// InsufficientCapacityMessage is EC2's message for a launch refused for
// capacity, as Auto Scaling's activity shows it (StatusMessage), with the
// error code InsufficientInstanceCapacity. others are the group's other
// zones (AWS names).
func InsufficientCapacityMessage(instanceType, awsZone string, others []string) string {
	msg := fmt.Sprintf("We currently do not have sufficient %s capacity in the Availability Zone you requested (%s). Our system will be working on provisioning additional capacity.", instanceType, awsZone)
	if len(others) > 0 {
		msg += fmt.Sprintf(" You can currently get %s capacity by not specifying an Availability Zone in your request or choosing %s.", instanceType, strings.Join(others, ", "))
	}
	return msg
}
