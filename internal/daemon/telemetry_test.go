package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/daemon"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/instance"
	"github.com/moat-dev/moat/internal/testutil"
)

// TestMetrics runs the example stack, sends a known number of requests
// through the load balancer's published port and finds each one counted,
// per target, in GET /v1/metrics; then makes one instance burn a CPU for
// a few seconds and sees its CPUUtilization rise.
func TestMetrics(t *testing.T) {
	testutil.RequireRoot(t, "starting a stack: network namespaces, nftables")
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is missing: scripts/deps.sh installs it")
	}
	p := exampleStack(t, "telemetry")
	dir := daemon.StackDir(p.Stack)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl, ready, done := runDaemon(ctx, p, dir)
	waitReady(t, ready, 3*time.Minute)
	defer shutdown(t, cl, done, 90*time.Second)
	// The targets' health transitions are events, naming the instances.
	healthy := map[string]bool{}
	if err := cl.Events(ctx, false, func(e events.Event) {
		if e.Type == "target.health" && e.Fields["from"] == "initial" && e.Fields["to"] == "healthy" && strings.HasPrefix(e.Fields["target"], "i-") {
			healthy[e.Fields["target"]] = true
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(healthy) != 2 {
		t.Errorf("target.health events initial -> healthy for %v, want both instances", healthy)
	}
	base := "http://" + p.LoadBalancers[0].Listeners[0].Publish.String()
	hc := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	start := time.Now()
	const ok, missing = 40, 3
	for range ok {
		if code, _ := get("/whoami"); code != 200 {
			t.Fatalf("GET /whoami: %d", code)
		}
	}
	for range missing {
		if code, _ := get("/nope"); code != 404 {
			t.Fatalf("GET /nope: %d", code)
		}
	}
	// Every request is counted once, in the second it was answered, by
	// target; health checks are not requests.
	var lbTotal, lb2xx, lb4xx uint64
	perTarget := map[string]uint64{}
	testutil.Eventually(t, 10*time.Second, func() error {
		m, err := cl.Metrics(ctx, start.Add(-time.Second))
		if err != nil {
			return err
		}
		lbTotal, lb2xx, lb4xx = 0, 0, 0
		clear(perTarget)
		for _, s := range m.Samples {
			for _, l := range s.LoadBalancers {
				lbTotal += l.RequestCount
				lb2xx += l.HTTPCode_Target_2XX_Count
				lb4xx += l.HTTPCode_Target_4XX_Count
				for _, tm := range l.Targets {
					perTarget[tm.ID+" "+tm.Addr] += tm.RequestCount
				}
			}
		}
		if n := len(m.Samples); n > 0 {
			if nat := m.Samples[n-1].NAT; len(nat) != 1 || nat[0].Name != p.NATGateways[0].Name {
				return fmt.Errorf("NAT in the last sample: %+v, want one gateway, %s", nat, p.NATGateways[0].Name)
			}
		}
		if lbTotal != ok+missing || lb2xx != ok || lb4xx != missing {
			return fmt.Errorf("counted %d requests (%d 2XX, %d 4XX), want %d (%d, %d)", lbTotal, lb2xx, lb4xx, ok+missing, ok, missing)
		}
		return nil
	})
	var sum uint64
	for k, n := range perTarget {
		if !strings.HasPrefix(k, "i-") {
			t.Errorf("target %q is not named by its instance id", k)
		}
		sum += n
	}
	if len(perTarget) != 2 || sum != ok+missing {
		t.Errorf("per target %v: want both instances, %d in all", perTarget, ok+missing)
	}
	for k, n := range perTarget {
		if n == 0 {
			t.Errorf("target %s got no request of round robin's %d: %v", k, ok+missing, perTarget)
		}
	}
	t.Logf("per target: %v", perTarget)

	// One instance burns a CPU for 6 s (bounded by the app to 10 s); idle,
	// an instance of the example uses about 1%. The machine may be busy:
	// 10% (a fifth of the core burnt) is enough to tell.
	code, body := get("/burn?seconds=6")
	var who struct{ Instance string }
	if err := json.Unmarshal([]byte(body), &who); code != 200 || err != nil || !strings.HasPrefix(who.Instance, "i-") {
		t.Fatalf("GET /burn: %d %q (%v)", code, body, err)
	}
	burnt := time.Now()
	var peak float64
	testutil.Eventually(t, 15*time.Second, func() error {
		m, err := cl.Metrics(ctx, burnt)
		if err != nil {
			return err
		}
		for _, s := range m.Samples {
			for _, in := range s.Instances {
				if in.ID == who.Instance {
					peak = max(peak, in.CPUUtilization)
					if in.MemoryUsedBytes <= 0 {
						return fmt.Errorf("instance %s uses %d bytes of memory", in.ID, in.MemoryUsedBytes)
					}
					// t3.micro: 1 GiB, where this host applies limits
					if limited := instance.LimitsApplicable() == nil; limited && in.MemoryLimitBytes != 1<<30 {
						return fmt.Errorf("instance %s memory limit %d, want 1 GiB (t3.micro)", in.ID, in.MemoryLimitBytes)
					}
				}
			}
		}
		if peak < 10 {
			return fmt.Errorf("instance %s CPUUtilization peaked at %.1f%% since it started burning, want 10%% or more", who.Instance, peak)
		}
		return nil
	})
	t.Logf("instance %s burning one CPU of 2 vCPUs: CPUUtilization up to %.1f%%", who.Instance, peak)

	// One instance fails its /health (503, the app's demo switch): GETs
	// of /health through the load balancer reach it in turn, and each
	// second with such 5XX is an lb.5xx event naming it. (Its health
	// checks fail too, but the test ends before they count.)
	if code, body = get("/health/fail"); code != 200 {
		t.Fatalf("GET /health/fail: %d %q", code, body)
	}
	failed := 0
	for range 4 {
		if code, _ := get("/health"); code == 503 {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no GET /health through the load balancer reached the failing instance")
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		var by map[string]string
		n := 0
		if err := cl.Events(ctx, false, func(e events.Event) {
			if e.Type == "lb.5xx" {
				by = e.Fields
				for k, v := range e.Fields {
					if strings.HasPrefix(k, "target.i-") {
						c, _ := strconv.Atoi(v)
						n += c
					}
				}
			}
		}); err != nil {
			return err
		}
		if n != failed {
			return fmt.Errorf("lb.5xx events count %d 5XX by target (last: %v), want the %d 503s", n, by, failed)
		}
		return nil
	})
}
