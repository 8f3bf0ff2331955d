//go:build linux && !portable

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/testutil"
)

// TestRequestsPerTargetScaling runs the example with a 2 s metric period
// (AWS: 60 s) and a target of 600 requests per target per minute, puts a
// bounded load on the published listener (40 requests/s, at most 2400
// requests and 60 s), and checks that the policy scales the group out
// after its 3 breaching datapoints, and back in to the minimum after the
// load stops (15 datapoints, cooldown and warm-up), with each step in the
// activity history.
func TestRequestsPerTargetScaling(t *testing.T) {
	s := newE2EStack(t, "e2escale", func(text string) string {
		text = strings.Replace(text, "metricPeriod: 15", "metricPeriod: 2", 1)
		text = strings.Replace(text, "defaultCooldown: 60", "defaultCooldown: 10", 1)
		text = strings.Replace(text, "defaultInstanceWarmup: 10", "defaultInstanceWarmup: 12", 1)
		return strings.Replace(text, "targetValue: 1000", "targetValue: 600", 1)
	})
	s.mustMoat(120*time.Second, "up", "-d", "--wait")
	testutil.Eventually(t, 30*time.Second, s.healthy(2))

	var sent, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := http.Client{Timeout: 5 * time.Second}
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(60 * time.Second)
		for sent.Load() < 2400 {
			select {
			case <-stop:
				return
			case <-deadline:
				return
			case <-tick.C:
			}
			sent.Add(1)
			resp, err := c.Get(s.web + "/health")
			if err != nil {
				failed.Add(1)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
			}
		}
	}()
	loadStart := time.Now()
	testutil.Eventually(t, 45*time.Second, func() error {
		if n := len(s.instances()); n <= 2 {
			return fmt.Errorf("no scale-out under load: %d instances", n)
		}
		return nil
	})
	out := time.Since(loadStart)
	testutil.Eventually(t, 30*time.Second, func() error { return s.healthy(len(s.instances()))() })
	close(stop)
	wg.Wait()
	t.Logf("scaled out to %d instances %v after the load started (%d requests, %d failed)", len(s.instances()), out.Round(time.Millisecond), sent.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed while scaling out", failed.Load(), sent.Load())
	}
	// 40 requests/s over 2 targets is 1200 per target per minute, twice
	// the target: ceil(2 * 1200 / 600) = 4 instances (allowing for jitter
	// in the load's rate).
	if n := len(s.instances()); n < 3 || n > 5 {
		t.Errorf("scaled out to %d instances, want about 4", n)
	}

	idle := time.Now()
	testutil.Eventually(t, 120*time.Second, func() error {
		if list := s.instances(); len(list) != 2 || countRunning(list) != 2 {
			return fmt.Errorf("no scale-in to 2 running instances after the load stopped: %+v", list)
		}
		return nil
	})
	t.Logf("scaled back in to 2 instances %v after the load stopped", time.Since(idle).Round(time.Millisecond))
	if in := time.Since(idle); in < 15*2*time.Second {
		t.Errorf("scaled in %v after the load stopped: sooner than 15 datapoints of 2 s", in)
	}

	t.Logf("activity history:\n%s", s.mustMoat(10*time.Second, "activity", "web"))
	var acts []api.Activity
	if err := json.Unmarshal([]byte(s.mustMoat(10*time.Second, "activity", "web", "-o", "json")), &acts); err != nil {
		t.Fatal(err)
	}
	var outStep, inStep bool
	for _, a := range acts {
		if strings.Contains(a.Cause, "requests-per-target") && strings.Contains(a.Cause, "changing the desired capacity from 2 to") {
			outStep = true
		}
		if strings.Contains(a.Cause, "requests-per-target") && strings.Contains(a.Cause, "to 2") && !strings.Contains(a.Cause, "from 2 to") {
			inStep = true
		}
	}
	if !outStep || !inStep {
		text := s.mustMoat(10*time.Second, "activity", "web")
		t.Errorf("activity history lacks the policy's scale-out (%v) or scale-in (%v) step:\n%s", outStep, inStep, text)
	}
}
