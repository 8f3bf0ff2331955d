package autoscale

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// Lifecycle is an instance's Auto Scaling lifecycle state.
type Lifecycle string

// Lifecycle states.
const (
	Pending     Lifecycle = "Pending"
	InService   Lifecycle = "InService"
	Terminating Lifecycle = "Terminating"
)

// Health is an instance's Auto Scaling health status.
type Health string

// Health statuses.
const (
	Healthy   Health = "Healthy"
	Unhealthy Health = "Unhealthy"
)

// Instance is one member of the group.
type Instance struct {
	ID                    string
	Zone, Subnet          string
	LaunchTemplateVersion string
	LaunchTime            time.Time
	InServiceTime         time.Time // zero until running
	Lifecycle             Lifecycle
	Health                Health
	// HealthReason says why the instance is unhealthy.
	HealthReason string
	Protected    bool
	// replacing: taken out of the capacity count; terminated once its
	// replacement is ready (refresh) or at once (unhealthy).
	replacing bool
	elbDown   bool
	exited    bool
	stopped   bool
}

// ActionKind is what to do.
type ActionKind string

// Action kinds.
const (
	Launch    ActionKind = "Launch"
	Terminate ActionKind = "Terminate"
)

// Action is an effect for the integrator to apply.
type Action struct {
	Kind                  ActionKind
	InstanceID            string
	Zone, Subnet          string // Launch
	LaunchTemplateVersion string // Launch
	Protected             bool   // Launch: protected from scale-in
	// Activity is the matching entry in the group's history.
	Activity Activity
}

// Activity is one scaling activity, in AWS's wording.
type Activity struct {
	Time        time.Time
	Description string // "Launching a new EC2 instance: i-…"
	Cause       string // "At 2026-… an instance was started in response to …"
	Status      string // InProgress, Successful, Failed
	// StatusMessage is why a failed activity failed, as EC2 said it
	// (AWS's StatusMessage), e.g. an InsufficientInstanceCapacity.
	StatusMessage string
	InstanceID    string
}

// Metrics is one metric datapoint, covering the last metric period.
type Metrics struct {
	// CPU is each instance's CPU utilisation in percent.
	CPU map[string]float64
	// Requests is each target's request count during the period.
	Requests map[string]float64
}

// Controller decides for one group. Not safe for concurrent use.
type Controller struct {
	g         Group
	instances []*Instance
	history   []Activity
	rand      io.Reader

	lastScaling time.Time
	// consecutive datapoints above/below target per target tracking policy,
	// and breaching per step policy.
	above, below []int
	breach       []int
	refresh      *refreshState

	pendingTerminations []Action
	// launch back-off after failed launches
	failures int
	// failedZones are zones where a launch failed lately (when): launches
	// go to the group's other zones meanwhile, as AWS's do.
	failedZones map[string]time.Time
	nextLaunch  time.Time
	scaleCause  string // why desired last changed, for the next launches
}

type refreshState struct {
	started time.Time
	version string
}

// Option configures a Controller.
type Option func(*Controller)

// WithRand sets the source of instance ids (tests).
func WithRand(r io.Reader) Option { return func(c *Controller) { c.rand = r } }

// New returns a controller for g with no instances.
func New(g Group, opts ...Option) (*Controller, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	if g.HealthCheckType == "" {
		g.HealthCheckType = HealthEC2
	}
	c := &Controller{g: g, rand: rand.Reader}
	for _, o := range opts {
		o(c)
	}
	c.above = make([]int, len(g.TargetTracking))
	c.below = make([]int, len(g.TargetTracking))
	c.breach = make([]int, len(g.StepScaling))
	return c, nil
}

// Group returns the group's current configuration.
func (c *Controller) Group() Group { return c.g }

// Desired is the group's desired capacity.
func (c *Controller) Desired() int { return c.g.Desired }

// Instances returns copies of the group's instances, oldest first.
func (c *Controller) Instances() []Instance {
	out := make([]Instance, 0, len(c.instances))
	for _, in := range c.instances {
		out = append(out, *in)
	}
	return out
}

// History returns the activity history, oldest first.
func (c *Controller) History() []Activity { return slices.Clone(c.history) }

// Refreshing reports whether an instance refresh is in progress.
func (c *Controller) Refreshing() bool { return c.refresh != nil }

func (c *Controller) find(id string) *Instance {
	for _, in := range c.instances {
		if in.ID == id {
			return in
		}
	}
	return nil
}

// Launch back-off after failed launches.
const (
	LaunchBackoff    = 10 * time.Second
	MaxLaunchBackoff = 5 * time.Minute
	// ZoneFailureHold is how long launches avoid a zone where one failed
	// (e.g. InsufficientInstanceCapacity) while the group has other zones.
	ZoneFailureHold = time.Minute
)

// ErrNotFound means the instance is not in the group.
var ErrNotFound = errors.New("instance not in group")

// Adopt adds an existing instance (a daemon restart).
func (c *Controller) Adopt(in Instance) {
	if in.Lifecycle == "" {
		in.Lifecycle = Pending
	}
	if in.Health == "" {
		in.Health = Healthy
	}
	c.instances = append(c.instances, &in)
}

// InstanceRunning records that a launched instance is running.
func (c *Controller) InstanceRunning(id string, now time.Time) {
	in := c.find(id)
	if in == nil || in.Lifecycle != Pending {
		return
	}
	in.Lifecycle = InService
	in.InServiceTime = now
	c.failures, c.nextLaunch = 0, time.Time{}
	delete(c.failedZones, in.Zone)
	c.finish(id, "Launching", "Successful")
}

// LaunchFailed removes an instance that could not be started. As on AWS,
// the next launch goes at once to another of the group's zones, avoiding
// the failed one for ZoneFailureHold; when every zone has failed, launches
// back off: 10 s after the first failure, doubling up to
// MaxLaunchBackoff, until an instance starts.
func (c *Controller) LaunchFailed(id string, err error, now time.Time) {
	if in := c.find(id); in != nil {
		if c.failedZones == nil {
			c.failedZones = map[string]time.Time{}
		}
		c.failedZones[in.Zone] = now
	}
	c.remove(id)
	c.failures++
	if len(c.usableSubnets(now)) == 0 {
		c.nextLaunch = now.Add(min(MaxLaunchBackoff, LaunchBackoff<<min(c.failures-1, 10)))
	}
	c.finish(id, "Launching", "Failed")
	c.history = append(c.history, Activity{Time: now, InstanceID: id, Status: "Failed", StatusMessage: err.Error(),
		Description: "Launching a new EC2 instance: " + id + ". Status Reason: " + err.Error(),
		Cause:       fmt.Sprintf("At %s the launch of instance %s failed.", ts(now), id)})
}

// InstanceExited records that an instance's process tree is gone (EC2
// health: unhealthy). reason is shown in the activity history.
func (c *Controller) InstanceExited(id, reason string, now time.Time) {
	if in := c.find(id); in != nil && !in.exited {
		in.exited = true
		if in.HealthReason == "" {
			in.HealthReason = reason
		}
	}
}

// InstanceStopped records that an instance is stopped (true) or runs
// again (false), as a stop-instances fault does: EC2 health counts a
// stopped instance unhealthy, so after the grace period it is replaced
// unless it runs again first.
func (c *Controller) InstanceStopped(id string, stopped bool, now time.Time) {
	if in := c.find(id); in != nil {
		in.stopped = stopped
	}
}

// TargetHealth records a target group's verdict on an instance (used when
// the health check type is ELB).
func (c *Controller) TargetHealth(id string, healthy bool, now time.Time) {
	if in := c.find(id); in != nil {
		in.elbDown = !healthy
	}
}

// InstanceTerminated removes a terminated instance.
func (c *Controller) InstanceTerminated(id string, now time.Time) {
	if c.find(id) == nil {
		return
	}
	c.remove(id)
	c.finish(id, "Terminating", "Successful")
}

// SetProtection sets an instance's scale-in protection.
func (c *Controller) SetProtection(id string, protected bool) error {
	in := c.find(id)
	if in == nil {
		return fmt.Errorf("set protection of %s: %w", id, ErrNotFound)
	}
	in.Protected = protected
	return nil
}

// SetDesired is set-desired-capacity (a user request).
func (c *Controller) SetDesired(n int, now time.Time) error {
	if n < c.g.Min || n > c.g.Max {
		return fmt.Errorf("set desired capacity of %s to %d: must be between min %d and max %d", c.g.Name, n, c.g.Min, c.g.Max)
	}
	c.setDesired(n, now, fmt.Sprintf("At %s a user request explicitly set group desired capacity changing the desired capacity from %d to %d.", ts(now), c.g.Desired, n))
	return nil
}

// TerminateInstance is terminate-instance-in-auto-scaling-group: the
// instance is terminated; with decrement the desired capacity shrinks by
// one, otherwise a replacement is launched.
func (c *Controller) TerminateInstance(id string, decrement bool, now time.Time) error {
	in := c.find(id)
	if in == nil {
		return fmt.Errorf("terminate %s: %w", id, ErrNotFound)
	}
	if in.Lifecycle == Terminating {
		return nil
	}
	if decrement && c.g.Desired-1 < c.g.Min {
		return fmt.Errorf("terminate %s with decrement: desired capacity %d would go below min %d", id, c.g.Desired, c.g.Min)
	}
	cause := fmt.Sprintf("At %s instance %s was taken out of service in response to a user request.", ts(now), id)
	if decrement {
		cause = fmt.Sprintf("At %s instance %s was taken out of service in response to a user request, shrinking the capacity from %d to %d.", ts(now), id, c.g.Desired, c.g.Desired-1)
		c.g.Desired--
	}
	c.pendingTerminations = append(c.pendingTerminations, c.terminate(in, now, cause))
	return nil
}

// StartRefresh starts an instance refresh to the given launch template
// version (which new launches use from now on).
func (c *Controller) StartRefresh(version string, now time.Time) error {
	if c.refresh != nil {
		return fmt.Errorf("start instance refresh of %s: one is already in progress", c.g.Name)
	}
	c.g.LaunchTemplateVersion = version
	c.refresh = &refreshState{started: now, version: version}
	c.history = append(c.history, Activity{Time: now, Status: "InProgress",
		Description: "Starting instance refresh to launch template version " + version,
		Cause:       fmt.Sprintf("At %s an instance refresh was started by a user request.", ts(now))})
	return nil
}

// CancelRefresh stops an instance refresh; replaced instances stay.
func (c *Controller) CancelRefresh(now time.Time) {
	if c.refresh == nil {
		return
	}
	c.refresh = nil
	for _, in := range c.instances {
		if in.replacing && in.Lifecycle != Terminating {
			in.replacing = false
		}
	}
	c.history = append(c.history, Activity{Time: now, Status: "Cancelled",
		Description: "Instance refresh cancelled", Cause: fmt.Sprintf("At %s the instance refresh was cancelled.", ts(now))})
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (c *Controller) remove(id string) {
	c.instances = slices.DeleteFunc(c.instances, func(in *Instance) bool { return in.ID == id })
}

func (c *Controller) finish(id, prefix, status string) {
	for i := len(c.history) - 1; i >= 0; i-- {
		a := &c.history[i]
		if a.InstanceID == id && a.Status == "InProgress" && len(a.Description) >= len(prefix) && a.Description[:len(prefix)] == prefix {
			a.Status = status
			return
		}
	}
}

func (c *Controller) setDesired(n int, now time.Time, cause string) {
	if n == c.g.Desired {
		return
	}
	c.g.Desired = n
	c.lastScaling = now
	c.scaleCause = cause
}

// NewInstanceID returns an EC2-style id: "i-" and 17 lowercase hex digits.
func NewInstanceID(r io.Reader) (string, error) {
	var b [9]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("new instance id: %w", err)
	}
	return "i-" + hex.EncodeToString(b[:])[:17], nil
}

// active instances count toward capacity.
func (in *Instance) active() bool { return in.Lifecycle != Terminating && !in.replacing }

func (c *Controller) unhealthyReason(in *Instance, now time.Time) (string, bool) {
	if now.Sub(in.LaunchTime) < c.g.GracePeriod {
		return "", false
	}
	if in.exited {
		return "an EC2 instance status checks failure", true
	}
	if in.stopped {
		return "an EC2 health check indicating it has been terminated or stopped", true
	}
	if c.g.HealthCheckType == HealthELB && in.elbDown {
		return "an ELB system health check failure", true
	}
	return "", false
}

// warm reports whether an instance is in service, healthy and past warm-up.
func (c *Controller) warm(in *Instance, now time.Time, warmup time.Duration) bool {
	return in.Lifecycle == InService && in.Health == Healthy && !in.exited && !in.stopped && !in.elbDown &&
		!in.InServiceTime.IsZero() && now.Sub(in.InServiceTime) >= warmup
}

// Step makes the group's decisions at now. m is the datapoint for the
// metric period that just ended, or nil. Actions are returned in the
// order to apply them (launches before terminations).
func (c *Controller) Step(now time.Time, m *Metrics) []Action {
	var launches, terms []Action
	terms = append(terms, c.pendingTerminations...)
	c.pendingTerminations = nil

	// Health: mark and replace unhealthy instances.
	var unhealthy []*Instance
	for _, in := range c.instances {
		if in.Lifecycle == Terminating || in.Health == Unhealthy {
			continue
		}
		if why, bad := c.unhealthyReason(in, now); bad {
			in.Health = Unhealthy
			in.HealthReason = why
			in.replacing = true
			unhealthy = append(unhealthy, in)
		}
	}

	if m != nil {
		c.scalePolicies(now, m)
	}

	// Capacity.
	active := 0
	for _, in := range c.instances {
		if in.active() {
			active++
		}
	}
	cause := c.scaleCause
	c.scaleCause = ""
	for active < c.g.Desired && !now.Before(c.nextLaunch) {
		a, err := c.launch(now, active, cause)
		if err != nil {
			break
		}
		launches = append(launches, a)
		active++
	}
	for active > c.g.Desired {
		v := c.victim()
		if v == nil {
			break // every candidate is protected
		}
		terms = append(terms, c.terminate(v, now, fmt.Sprintf("%sAt %s an instance was taken out of service in response to a difference between desired and actual capacity, shrinking the capacity from %d to %d.", prefix(cause), ts(now), active, active-1)))
		active--
	}
	for _, in := range unhealthy {
		terms = append(terms, c.terminate(in, now, fmt.Sprintf("At %s an instance was taken out of service in response to %s.", ts(now), in.HealthReason)))
	}

	if c.refresh == nil && len(launches) == 0 && len(terms) == 0 {
		l, t := c.rebalance(now)
		launches = append(launches, l...)
		terms = append(terms, t...)
	}
	if c.refresh != nil {
		l, t := c.refreshStep(now)
		launches = append(launches, l...)
		terms = append(terms, t...)
	}
	return append(launches, terms...)
}

func prefix(cause string) string {
	if cause == "" {
		return ""
	}
	return cause + " "
}

func (c *Controller) launch(now time.Time, active int, cause string) (Action, error) {
	id, err := NewInstanceID(c.rand)
	if err != nil {
		return Action{}, err
	}
	sn := c.chooseSubnet(now)
	in := &Instance{ID: id, Zone: sn.Zone, Subnet: sn.ID, LaunchTemplateVersion: c.g.LaunchTemplateVersion,
		LaunchTime: now, Lifecycle: Pending, Health: Healthy, Protected: c.g.NewInstancesProtectedFromScaleIn}
	c.instances = append(c.instances, in)
	act := Activity{Time: now, InstanceID: id, Status: "InProgress",
		Description: "Launching a new EC2 instance: " + id,
		Cause: fmt.Sprintf("%sAt %s an instance was started in response to a difference between desired and actual capacity, increasing the capacity from %d to %d.",
			prefix(cause), ts(now), active, active+1)}
	c.history = append(c.history, act)
	return Action{Kind: Launch, InstanceID: id, Zone: sn.Zone, Subnet: sn.ID,
		LaunchTemplateVersion: in.LaunchTemplateVersion, Protected: in.Protected, Activity: act}, nil
}

func (c *Controller) terminate(in *Instance, now time.Time, cause string) Action {
	in.Lifecycle = Terminating
	act := Activity{Time: now, InstanceID: in.ID, Status: "InProgress",
		Description: "Terminating EC2 instance: " + in.ID, Cause: cause}
	c.history = append(c.history, act)
	return Action{Kind: Terminate, InstanceID: in.ID, Zone: in.Zone, Subnet: in.Subnet, Activity: act}
}

// usableSubnets are the group's subnets in zones without a launch failure
// in the last ZoneFailureHold.
func (c *Controller) usableSubnets(now time.Time) []Subnet {
	var out []Subnet
	for _, s := range c.g.Subnets {
		if at, failed := c.failedZones[s.Zone]; !failed || now.Sub(at) >= ZoneFailureHold {
			out = append(out, s)
		}
	}
	return out
}

// chooseSubnet balances across zones: the zone with the fewest active
// instances (ties: the group's subnet order), then its least used
// subnet; zones where a launch failed lately are left out while others
// remain.
func (c *Controller) chooseSubnet(now time.Time) Subnet {
	subnets := c.usableSubnets(now)
	if len(subnets) == 0 {
		subnets = c.g.Subnets
	}
	perZone := map[string]int{}
	perSubnet := map[string]int{}
	for _, in := range c.instances {
		if in.active() {
			perZone[in.Zone]++
			perSubnet[in.Subnet]++
		}
	}
	best := subnets[0]
	for _, s := range subnets[1:] {
		if z, bz := perZone[s.Zone], perZone[best.Zone]; z < bz || (s.Zone == best.Zone && perSubnet[s.ID] < perSubnet[best.ID]) {
			best = s
		}
	}
	return best
}

// victim applies the default termination policy: the zone with the most
// instances (having an unprotected one), then instances not on the current
// launch template version, then the oldest instance. Protected instances
// are never chosen.
func (c *Controller) victim() *Instance {
	perZone := map[string]int{}
	for _, in := range c.instances {
		if in.active() {
			perZone[in.Zone]++
		}
	}
	var cands []*Instance
	for _, in := range c.instances {
		if in.active() && !in.Protected {
			cands = append(cands, in)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	slices.SortStableFunc(cands, func(a, b *Instance) int {
		if x := cmp.Compare(perZone[b.Zone], perZone[a.Zone]); x != 0 {
			return x
		}
		ao, bo := a.LaunchTemplateVersion != c.g.LaunchTemplateVersion, b.LaunchTemplateVersion != c.g.LaunchTemplateVersion
		if ao != bo {
			if ao {
				return -1
			}
			return 1
		}
		if x := a.LaunchTime.Compare(b.LaunchTime); x != 0 {
			return x
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return cands[0]
}

// refreshStep replaces old-version instances in batches, launching the
// replacements first and terminating the old ones once every replacement
// is in service and warmed up, so healthy capacity never drops below
// MinHealthyPercentage of desired (nor below desired at all).
func (c *Controller) refreshStep(now time.Time) (launches, terms []Action) {
	w := c.g.refreshWarmup()
	var old, replacing []*Instance
	ready := true
	for _, in := range c.instances {
		if in.Lifecycle == Terminating {
			continue
		}
		switch {
		case in.replacing:
			replacing = append(replacing, in)
		case in.LaunchTemplateVersion != c.refresh.version:
			if !in.Protected {
				old = append(old, in)
			}
		case !c.warm(in, now, w):
			ready = false
		}
	}
	if !ready {
		return nil, nil
	}
	for _, in := range replacing {
		terms = append(terms, c.terminate(in, now, fmt.Sprintf("At %s an instance was taken out of service in response to an instance refresh.", ts(now))))
	}
	if len(old) == 0 {
		c.history = append(c.history, Activity{Time: now, Status: "Successful",
			Description: "Instance refresh to launch template version " + c.refresh.version + " completed",
			Cause:       fmt.Sprintf("At %s the instance refresh started at %s completed.", ts(now), ts(c.refresh.started))})
		c.refresh = nil
		return nil, terms
	}
	desired := c.g.Desired
	minHealthy := int(math.Ceil(float64(desired) * float64(c.g.minHealthyPercentage()) / 100))
	batch := max(1, desired-minHealthy)
	slices.SortStableFunc(old, func(a, b *Instance) int { return a.LaunchTime.Compare(b.LaunchTime) })
	active := 0
	for _, in := range c.instances {
		if in.active() {
			active++
		}
	}
	for _, in := range old[:min(batch, len(old))] {
		in.replacing = true
		active--
		a, err := c.launch(now, active, fmt.Sprintf("At %s an instance refresh replaced instance %s.", ts(now), in.ID))
		if err != nil {
			break
		}
		launches = append(launches, a)
		active++
	}
	return launches, terms
}

// Update replaces the group's configuration (moat up re-run), keeping its
// instances and history. A new launch template version starts an instance
// refresh when instances run an older one. The desired capacity is the
// new one, clamped to the new limits.
func (c *Controller) Update(g Group, now time.Time) error {
	g.Desired = min(g.Max, max(g.Min, g.Desired))
	if err := g.Validate(); err != nil {
		return err
	}
	if g.HealthCheckType == "" {
		g.HealthCheckType = HealthEC2
	}
	oldVersion := c.g.LaunchTemplateVersion
	if g.Desired != c.g.Desired {
		c.scaleCause = fmt.Sprintf("At %s a user request update of AutoScalingGroup constraints to min: %d, max: %d, desired: %d changing the desired capacity from %d to %d.",
			ts(now), g.Min, g.Max, g.Desired, c.g.Desired, g.Desired)
		c.lastScaling = now
	}
	if len(g.TargetTracking) != len(c.g.TargetTracking) || len(g.StepScaling) != len(c.g.StepScaling) {
		c.above = make([]int, len(g.TargetTracking))
		c.below = make([]int, len(g.TargetTracking))
		c.breach = make([]int, len(g.StepScaling))
	}
	c.g = g
	if g.LaunchTemplateVersion == oldVersion || c.refresh != nil {
		if c.refresh != nil {
			c.refresh.version = g.LaunchTemplateVersion
		}
		return nil
	}
	for _, in := range c.instances {
		if in.active() && in.LaunchTemplateVersion != g.LaunchTemplateVersion {
			c.g.LaunchTemplateVersion = oldVersion // StartRefresh sets it
			return c.StartRefresh(g.LaunchTemplateVersion, now)
		}
	}
	return nil
}

// rebalance is AZRebalance: when the group's zones differ by more than one
// instance, it launches an instance in the smallest zone and, once every
// instance is in service and warmed up, terminates one in the largest.
func (c *Controller) rebalance(now time.Time) (launches, terms []Action) {
	w := c.g.warmup()
	for _, in := range c.instances {
		if in.active() && !c.warm(in, now, w) {
			return nil, nil
		}
	}
	for _, in := range c.instances {
		if in.replacing && in.Lifecycle != Terminating {
			terms = append(terms, c.terminate(in, now, fmt.Sprintf("At %s an instance was taken out of service in response to an Availability Zone rebalancing.", ts(now))))
		}
	}
	if len(terms) > 0 {
		return nil, terms
	}
	perZone := map[string]int{}
	for _, s := range c.g.Subnets {
		perZone[s.Zone] = 0
	}
	for _, in := range c.instances {
		if in.active() {
			perZone[in.Zone]++
		}
	}
	lo, hi := math.MaxInt, -1
	big := ""
	usable := c.usableSubnets(now)
	for _, s := range c.g.Subnets {
		n := perZone[s.Zone]
		if slices.ContainsFunc(usable, func(u Subnet) bool { return u.Zone == s.Zone }) {
			lo = min(lo, n) // a zone launches avoid is not rebalanced into
		}
		if n > hi {
			hi, big = n, s.Zone
		}
	}
	if hi-lo <= 1 {
		return nil, nil
	}
	var victim *Instance
	for _, in := range c.instances {
		if in.active() && !in.Protected && in.Zone == big && (victim == nil || in.LaunchTime.Before(victim.LaunchTime)) {
			victim = in
		}
	}
	if victim == nil {
		return nil, nil
	}
	victim.replacing = true
	active := 0
	for _, in := range c.instances {
		if in.active() {
			active++
		}
	}
	a, err := c.launch(now, active, fmt.Sprintf("At %s an instance was launched to balance instances in zones %s and others, replacing %s.", ts(now), big, victim.ID))
	if err != nil {
		victim.replacing = false
		return nil, nil
	}
	return []Action{a}, nil
}
