//go:build linux && !portable

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/api"
)

func TestRenderTop(t *testing.T) {
	s := api.MetricsSample{Time: time.Date(2026, 12, 2, 9, 0, 1, 0, time.Local),
		LoadBalancers: []api.LBMetrics{{Name: "web", RequestCount: 12, HTTPCode_Target_2XX_Count: 10, HTTPCode_ELB_5XX_Count: 2,
			TargetResponseTimeP50: 0.0012, TargetResponseTimeP99: 0.2, ActiveConnectionCount: 3,
			TargetGroups: []api.TargetGroupMetrics{{Name: "web", HealthyHostCount: 1, UnHealthyHostCount: 1}},
			Targets: []api.TargetMetrics{
				{TargetGroup: "web", ID: "i-a", Addr: "10.0.128.4:8000", State: "healthy", RequestCount: 10, P50: 0.0012, P99: 0.2},
				{TargetGroup: "web", ID: "i-b", Addr: "10.0.129.4:8000", State: "unhealthy", RequestCount: 2, Errors5XX: 2}}}},
		Instances: []api.InstanceMetrics{{ID: "i-a", Group: "web", CPUUtilization: 51, MemoryUsedBytes: 30 << 20, MemoryLimitBytes: 1 << 30}},
		Bastion:   api.BastionMetrics{ActiveSessions: 1, Forwards: []api.BastionForward{{Destination: "10.0.128.4:22", ID: "i-a", Count: 1}}},
		NAT:       []api.NATMetrics{{Name: "nat-a", BytesOutToDestination: 1500, PacketsOutToDestination: 12}},
	}
	var b strings.Builder
	if err := renderTop(&b, s); err != nil {
		t.Fatal(err)
	}
	want := `09:00:01
load balancer web: 12 requests, target 2XX 10 3XX 0 4XX 0 5XX 0, ELB 3XX 0 4XX 0 5XX 2, TargetResponseTime p50 1.2ms p99 200.0ms, 3 connections
  target group web: 1 healthy, 1 unhealthy
  TARGET GROUP  TARGET  ADDRESS          STATE      REQUESTS  5XX  P50    P99
  web           i-a     10.0.128.4:8000  healthy    10        0    1.2ms  200.0ms
  web           i-b     10.0.129.4:8000  unhealthy  2         2    -      -
INSTANCE  GROUP  CPU    MEMORY
i-a       web    51.0%  30M / 1024M
bastion: 1 sessions, forwarding to i-a 10.0.128.4:22: 1
NAT gateway nat-a: 1500 bytes, 12 packets out
`
	if got := b.String(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}
