package fis

import (
	"time"

	"github.com/moat-dev/moat/internal/api"
)

// SumLoadBalancers adds up each load balancer's seconds in samples (GET
// /v1/metrics) that ended after since: requests, and failed ones (5xx,
// the load balancer's and its targets'). last is the end of the last
// second added (since when none was).
func SumLoadBalancers(samples []api.MetricsSample, since time.Time) (sums map[string]LBReport, last time.Time) {
	sums, last = map[string]LBReport{}, since
	for _, s := range samples {
		if !s.Time.After(since) {
			continue
		}
		if s.Time.After(last) {
			last = s.Time
		}
		for _, lb := range s.LoadBalancers {
			r := sums[lb.Name]
			r.Name = lb.Name
			failed := lb.HTTPCode_ELB_5XX_Count + lb.HTTPCode_Target_5XX_Count
			r.Requests += lb.RequestCount
			r.Failed += failed
			r.Served += lb.RequestCount - min(failed, lb.RequestCount)
			sums[lb.Name] = r
		}
	}
	return sums, last
}

// Add adds another period's counts.
func (r *LBReport) Add(o LBReport) {
	r.Requests += o.Requests
	r.Served += o.Served
	r.Failed += o.Failed
}
