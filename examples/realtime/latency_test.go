package realtime_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/lb"
	"github.com/moat-dev/moat/internal/targetgroup"
	"github.com/moat-dev/moat/internal/testutil"
)

// The latency benchmark's load: a fixed rate, open loop, from a pool of
// keep-alive connections, bounded in count.
const (
	latRate  = 200  // requests per second
	latConns = 16   // keep-alive connections at most
	latMax   = 6000 // requests per run at most (30 s at latRate)
)

// BenchmarkAppLatency measures the example app's latency at a fixed request
// rate, straight to the app and through the load balancer (the engine of
// `moat lb`, on loopback): p50 and p99 in microseconds. One iteration is one
// request; run it with a fixed count, e.g.
//
//	go test -run '^$' -bench AppLatency -benchtime 2000x ./examples/realtime/
func BenchmarkAppLatency(b *testing.B) {
	app := startApp(b)
	b.Run("direct", func(b *testing.B) { fixedRate(b, app+"/whoami") })
	b.Run("lb", func(b *testing.B) { fixedRate(b, startLB(b, strings.TrimPrefix(app, "http://"))+"/whoami") })
}

// startLB runs the load balancer on a free loopback port in front of
// target and returns its URL once the target is healthy.
func startLB(tb testing.TB, target string) string {
	tb.Helper()
	cfg := lb.Config{
		TargetGroups: []targetgroup.Config{{Name: "app", DeregistrationDelay: -1,
			HealthCheck: targetgroup.HealthCheck{Path: "/health", Interval: 5 * time.Second, HealthyThreshold: 2}}},
		Listeners: []lb.Listener{{Name: "http", Address: "127.0.0.1:0",
			DefaultAction: lb.Action{Type: lb.ActionForward, Forward: []lb.WeightedGroup{{TargetGroup: "app"}}}}},
	}
	e, err := lb.New(cfg, lb.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	if err := e.Register("app", target); err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go e.Serve(ln, "http")
	testutil.Eventually(tb, 15*time.Second, func() error {
		if ts := e.Targets("app"); len(ts) != 1 || ts[0].State != targetgroup.StateHealthy {
			return fmt.Errorf("target %s not healthy: %+v", target, ts)
		}
		return nil
	})
	return "http://" + ln.Addr().String()
}

// fixedRate sends b.N GET requests to url (at most latMax) at latRate per
// second without waiting for earlier answers, and reports the latency of
// each from the moment it was dispatched to the end of its body.
func fixedRate(b *testing.B, url string) {
	n := min(b.N, latMax)
	tr := &http.Transport{MaxConnsPerHost: latConns, MaxIdleConnsPerHost: latConns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n)*time.Second/latRate+30*time.Second)
	defer cancel()

	jobs := make(chan time.Time, n)
	var (
		mu   sync.Mutex
		lats []time.Duration
		errs []error
		wg   sync.WaitGroup
	)
	for range latConns {
		wg.Go(func() {
			for sent := range jobs {
				err := get(ctx, client, url)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					lats = append(lats, time.Since(sent))
				}
				mu.Unlock()
			}
		})
	}
	b.ResetTimer()
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / latRate)))
		jobs <- time.Now()
	}
	close(jobs)
	wg.Wait()
	b.StopTimer()
	if len(errs) > 0 {
		b.Fatalf("%d of %d requests failed, first: %v", len(errs), n, errs[0])
	}
	slices.Sort(lats)
	b.ReportMetric(float64(pct(lats, 50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(pct(lats, 99).Microseconds()), "p99-µs")
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "req/s")
}

func get(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

// pct is the p-th percentile of sorted latencies (nearest rank).
func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p+99)/100 - 1
	return sorted[max(i, 0)]
}
