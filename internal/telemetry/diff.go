package telemetry

import (
	"time"

	"github.com/moat-dev/moat/internal/api"
)

// Diff is the sample of the interval from prev to cur: counts are cur's
// minus prev's (a target registered again, with a new epoch, counts from
// zero; a count that went down counts as zero), gauges are cur's.
func Diff(prev, cur *Reading) api.MetricsSample {
	s := api.MetricsSample{Time: cur.Time, LoadBalancers: []api.LBMetrics{}, Instances: cur.Instances,
		Bastion: cur.Bastion, NAT: []api.NATMetrics{}}
	if s.Instances == nil {
		s.Instances = []api.InstanceMetrics{}
	}
	for _, l := range cur.LoadBalancers {
		var before *LBReading
		for i := range prev.LoadBalancers {
			if prev.LoadBalancers[i].Name == l.Name {
				before = &prev.LoadBalancers[i]
			}
		}
		s.LoadBalancers = append(s.LoadBalancers, diffLB(before, &l))
	}
	for _, n := range cur.NAT {
		m := api.NATMetrics{Name: n.Name, BytesOutToDestination: n.Bytes, PacketsOutToDestination: n.Packets}
		for _, p := range prev.NAT {
			if p.Name == n.Name {
				m.BytesOutToDestination, m.PacketsOutToDestination = sub(n.Bytes, p.Bytes), sub(n.Packets, p.Packets)
			}
		}
		s.NAT = append(s.NAT, m)
	}
	return s
}

func sub(cur, prev uint64) uint64 {
	if cur < prev {
		return 0
	}
	return cur - prev
}

// diffCounts is cur minus prev, class by class and bucket by bucket.
func diffCounts(prev, cur *Counts) Counts {
	var d Counts
	for i := range cur.Target {
		d.Target[i] = sub(cur.Target[i], prev.Target[i])
		d.ELB[i] = sub(cur.ELB[i], prev.ELB[i])
	}
	for i := range cur.TargetResponseTime {
		d.TargetResponseTime[i] = sub(cur.TargetResponseTime[i], prev.TargetResponseTime[i])
	}
	return d
}

func seconds(d time.Duration) float64 { return d.Seconds() }

// diffLB is a load balancer's sample; prev is nil for a new one.
func diffLB(prev *LBReading, cur *LBReading) api.LBMetrics {
	if prev == nil {
		prev = &LBReading{}
	}
	pt, ct := prev.Stats.Total(), cur.Stats.Total()
	d := diffCounts(&pt, &ct)
	m := api.LBMetrics{Name: cur.Name,
		RequestCount:              d.Target.Total() + d.ELB.Total() - sub(cur.Stats.Malformed, prev.Stats.Malformed),
		HTTPCode_Target_2XX_Count: d.Target[2], HTTPCode_Target_3XX_Count: d.Target[3],
		HTTPCode_Target_4XX_Count: d.Target[4], HTTPCode_Target_5XX_Count: d.Target[5],
		HTTPCode_ELB_3XX_Count: d.ELB[3], HTTPCode_ELB_4XX_Count: d.ELB[4], HTTPCode_ELB_5XX_Count: d.ELB[5],
		TargetResponseTimeP50: seconds(d.TargetResponseTime.Quantile(0.5)),
		TargetResponseTimeP99: seconds(d.TargetResponseTime.Quantile(0.99)),
		ActiveConnectionCount: cur.Stats.ActiveConnections,
		TargetGroups:          []api.TargetGroupMetrics{}, Targets: []api.TargetMetrics{}}
	type key struct{ group, id string }
	before := map[key]*TargetStats{}
	for _, g := range prev.Stats.Groups {
		for i := range g.Targets {
			before[key{g.Name, g.Targets[i].ID}] = &g.Targets[i]
		}
	}
	for _, g := range cur.Stats.Groups {
		tg := api.TargetGroupMetrics{Name: g.Name}
		for i := range g.Targets {
			t := &g.Targets[i]
			switch t.State {
			case "healthy":
				tg.HealthyHostCount++
			case "unhealthy":
				tg.UnHealthyHostCount++
			}
			var td Counts
			if b := before[key{g.Name, t.ID}]; b != nil && b.Epoch == t.Epoch {
				td = diffCounts(&b.Counts, &t.Counts)
			} else {
				td = t.Counts // new, or registered again: its counts started at zero
			}
			id := cur.InstanceIDs[t.Addr]
			if id == "" {
				id = t.ID
			}
			m.Targets = append(m.Targets, api.TargetMetrics{TargetGroup: g.Name, ID: id, Addr: t.Addr, State: t.State,
				RequestCount: td.Target.Total() + td.ELB.Total(), HTTPCode_Target_5XX_Count: td.Target[5],
				HTTPCode_ELB_5XX_Count: td.ELB[5], Errors5XX: td.Target[5] + td.ELB[5],
				P50: seconds(td.TargetResponseTime.Quantile(0.5)), P99: seconds(td.TargetResponseTime.Quantile(0.99))})
		}
		m.TargetGroups = append(m.TargetGroups, tg)
	}
	return m
}
