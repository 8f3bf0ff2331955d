package daemon

// The stack's telemetry: a per-second sampler reading the load
// balancers' counts, the instances' usage, the bastion and the NAT, kept
// for GET /v1/metrics; the load balancers' 5XX go to the event log.

import (
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/bastion"
	"github.com/moat-dev/moat/internal/telemetry"
)

// startTelemetry starts the sampler on the stack's loop context; it reads
// whatever parts exist, so it runs while the stack starts too.
func (s *stack) startTelemetry() {
	sm := telemetry.NewSampler(func(time.Time) telemetry.Reading { return s.readTelemetry() })
	sm.Log = s.log.With("component", "telemetry")
	sm.OnSample = func(m api.MetricsSample) {
		for _, e := range telemetry.Errors5XXEvents(m) {
			s.events.Add(e)
		}
	}
	s.partsMu.Lock()
	s.sampler = sm
	s.partsMu.Unlock()
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		sm.Run(s.loopCtx, time.Second)
	}()
}

// metrics is the samples after since (all for a zero time).
func (s *stack) metrics(since time.Time) api.Metrics {
	s.partsMu.RLock()
	sm := s.sampler
	s.partsMu.RUnlock()
	if sm == nil {
		return api.Metrics{Samples: []api.MetricsSample{}}
	}
	return api.Metrics{Samples: sm.Since(since)}
}

func (s *stack) handleMetrics(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if v := r.URL.Query().Get(api.Since); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, errBadSince(v))
			return
		}
		since = time.UnixMilli(ms)
	}
	writeJSON(w, http.StatusOK, s.metrics(since))
}

type errBadSince string

func (e errBadSince) Error() string {
	return "bad since " + strconv.Quote(string(e)) + ": give a time in Unix milliseconds, e.g. since=" + strconv.FormatInt(time.Now().Add(-time.Minute).UnixMilli(), 10)
}

// readTelemetry reads the stack's counts for the sampler.
func (s *stack) readTelemetry() telemetry.Reading {
	var rd telemetry.Reading
	ids := s.targetInstanceIDs()
	for _, l := range s.plan.LoadBalancers {
		if b := s.balancer(l.Name); b != nil {
			rd.LoadBalancers = append(rd.LoadBalancers, telemetry.LBReading{Name: l.Name, Stats: b.engine.Stats(), InstanceIDs: ids})
		}
	}
	for _, g := range s.plan.AutoScalingGroups {
		if rt := s.group(g.Name); rt != nil {
			rd.Instances = append(rd.Instances, rt.usage()...)
		}
	}
	if n := s.network(); n != nil {
		if nat, err := n.NATEgress(); err == nil {
			for _, g := range nat {
				rd.NAT = append(rd.NAT, telemetry.NATReading{Name: g.Name, Bytes: g.Bytes, Packets: g.Packets})
			}
		}
	}
	s.partsMu.RLock()
	b := s.bastionSrv
	s.partsMu.RUnlock()
	if b != nil {
		rd.Bastion = bastionMetrics(b.Activity(), s.instances(false))
	}
	return rd
}

// bastionMetrics is the bastion's activity, naming the instances it
// forwards to.
func bastionMetrics(a bastion.Activity, instances []api.Instance) api.BastionMetrics {
	byIP := map[string]string{}
	for _, in := range instances {
		byIP[in.IP] = in.ID
	}
	m := api.BastionMetrics{ActiveSessions: a.Sessions}
	for dst, n := range a.Forwards {
		m.Forwards = append(m.Forwards, api.BastionForward{Destination: dst.String(), ID: byIP[dst.Addr().String()], Count: n})
	}
	sort.Slice(m.Forwards, func(i, j int) bool { return m.Forwards[i].Destination < m.Forwards[j].Destination })
	return m
}

// usage is the running instances' last usage sample, by id.
func (g *groupRuntime) usage() []api.InstanceMetrics {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := []api.InstanceMetrics{}
	for _, r := range g.recs {
		if r.proc == nil || r.state != stateRunning {
			continue
		}
		out = append(out, api.InstanceMetrics{ID: r.id, Group: g.name, CPUUtilization: r.cpu, MemoryUsedBytes: r.mem, MemoryLimitBytes: r.memLimit})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
