package lb

import (
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/targetgroup"
	"github.com/moat-dev/moat/internal/telemetry"
	"github.com/moat-dev/moat/internal/testutil"
)

// TestStats sends known requests and reads them back, by source and
// class, from Stats and from the Prometheus counters (one source).
func TestStats(t *testing.T) {
	a := startBackend(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			w.WriteHeader(500)
		case "/slow":
			time.Sleep(40 * time.Millisecond)
		case "/close":
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close() // after the request was sent: the load balancer's 502
		}
	}))
	rules := []Rule{{Priority: 10, Conditions: []Condition{{Field: FieldPathPattern, Values: []string{"/teapot"}}},
		Action: Action{Type: ActionFixed, Fixed: FixedResponse{StatusCode: 418}}}}
	e, addr := startLB(t, targetgroup.Config{}, rules, a.addr)
	for _, req := range []string{"GET /", "GET /", "GET /", "GET /slow", "GET /fail", "GET /fail", "POST /close", "GET /teapot", "GET /bad path"} {
		rawRoundTrip(t, addr, req+" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	}
	// one client connection held open
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var st telemetry.LBStats
	testutil.Eventually(t, 5*time.Second, func() error {
		if st = e.Stats(); st.ActiveConnections != 1 {
			return errorf("%d active connections, want 1", st.ActiveConnections)
		}
		return nil
	})
	if len(st.Groups) != 1 || len(st.Groups[0].Targets) != 1 {
		t.Fatalf("stats: %+v", st)
	}
	tg := st.Groups[0].Targets[0]
	if tg.Addr != a.addr || tg.State != string(targetgroup.StateHealthy) || tg.Epoch == 0 {
		t.Fatalf("target: %s %s epoch %d", tg.Addr, tg.State, tg.Epoch)
	}
	if want := (telemetry.Classes{0, 0, 4, 0, 0, 2}); tg.Target != want {
		t.Errorf("target's responses by class %v, want %v", tg.Target, want)
	}
	if want := (telemetry.Classes{0, 0, 0, 0, 0, 1}); tg.ELB != want {
		t.Errorf("load balancer's responses for the target %v, want %v", tg.ELB, want)
	}
	if want := (telemetry.Classes{0, 0, 0, 0, 2, 0}); st.Other.ELB != want {
		t.Errorf("responses without a target group %v, want %v (418 fixed, 400 malformed)", st.Other.ELB, want)
	}
	rt := tg.TargetResponseTime
	if n := rt.Count(); n != 6 {
		t.Errorf("%d target response times, want 6", n)
	}
	if p99 := rt.Quantile(0.99); p99 < 38*time.Millisecond || p99 > 2*time.Second {
		t.Errorf("p99 %v, want about the slow request's 40 ms (within the histogram's 3.2%%)", p99)
	}
	if p50 := rt.Quantile(0.5); p50 >= 40*time.Millisecond {
		t.Errorf("p50 %v, want below the slow request's 40 ms", p50)
	}
	total := st.Total()
	if total.Target.Total() != 6 || total.ELB.Total() != 3 {
		t.Errorf("total %v from targets, %v from the load balancer; want 6 and 3", total.Target, total.ELB)
	}
	// Prometheus reads the same cells
	mfs, err := e.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	byCode := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "moat_lb_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" {
					byCode[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if byCode["200"] != 4 || byCode["500"] != 2 || byCode["502"] != 1 || len(byCode) != 3 {
		t.Errorf("moat_lb_requests_total by code %v, want 200: 4, 500: 2, 502: 1", byCode)
	}
}

// TestStatsGoneTargets: a deregistered target's counts move to its
// group's Gone, so the load balancer's total does not go down.
func TestStatsGoneTargets(t *testing.T) {
	a := startBackend(t, "127.0.0.2", nameHandler("a"))
	e, addr := startLBWith(t, "HTTP", targetgroup.Config{DeregistrationDelay: time.Millisecond}, nil, a.addr)
	for range 3 {
		rawRoundTrip(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	}
	if err := e.Deregister("tg", a.addr); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		st := e.Stats()
		if len(st.Groups[0].Targets) != 0 {
			return errorf("target still registered")
		}
		if g := st.Groups[0].Gone.Target[2]; g != 3 {
			return errorf("gone targets' 2xx: %d, want 3", g)
		}
		return nil
	})
}

func errorf(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

// BenchmarkCount is the cost the counts add to each forwarded request:
// the target's count and its response time, from parallel goroutines.
func BenchmarkCount(b *testing.B) {
	c := newCell()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.fromTarget(200, 1500*time.Microsecond)
		}
	})
}

// BenchmarkCountSerial is BenchmarkCount from one goroutine (no cache
// line contention).
func BenchmarkCountSerial(b *testing.B) {
	c := newCell()
	for b.Loop() {
		c.fromTarget(200, 1500*time.Microsecond)
	}
}

// BenchmarkRecordResponse is all a forwarded response's accounting costs
// on the request path: its target response time (time.Since), its count
// and histogram bucket in the target's cell, and the Prometheus duration
// histogram. (Before the cells, the Prometheus counter and histogram
// alone cost 88-102 ns/op on the same machine.)
func BenchmarkRecordResponse(b *testing.B) {
	e, err := New(Config{TargetGroups: []targetgroup.Config{{Name: "tg"}}, Listeners: []Listener{{Name: "l", DefaultAction: forwardTo("tg")}}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	g := e.group("tg")
	p := g.pool(g.tg.Register("t", "127.0.0.2:1"))
	start := time.Now()
	for b.Loop() {
		p.cell.fromTarget(200, time.Since(start))
		e.metrics.observe(g, start)
	}
}
