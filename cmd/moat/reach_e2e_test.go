//go:build linux && !portable

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/secgroup"
	"github.com/moat-dev/moat/internal/testutil"
)

// reachJSON runs moat reach -o json on the running stack and decodes
// its standard output into v; it returns the exit code.
func (s *e2eStack) reachJSON(v any, args ...string) int {
	s.t.Helper()
	stdout, stderr, code := s.moatSplit(30*time.Second, 1, append([]string{"reach", "-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(stdout), v); err != nil {
		s.t.Fatalf("moat reach %q (exit %d): %v\nstdout: %s\nstderr: %s", args, code, err, stdout, stderr)
	}
	return code
}

// TestReachOnARunningStack is issue 15's must-show on the running
// example with custom network ACLs on its public and private subnets:
// every (source, destination, port) triple across the nodes, the internet
// and the load balancer is tried for real from the source's namespace
// (moat reach --probe) and the kernel agrees with moat reach on each,
// allowed and denied; --exposed lists exactly the listener and the
// bastion's SSH; a network ACL and a security group block one connection
// together and both are named; and a network ACL changed in the file to
// forget the ephemeral return range applies live on moat up: moat
// validate warned, moat reach names the return-path rule, and the load
// balancer's health checks fail with Target.Timeout, until the file is
// put back.
func TestReachOnARunningStack(t *testing.T) {
	var text string
	s := newE2EStack(t, "reach", func(s string) string {
		s = strings.Replace(s, "\nbastion:\n", naclsOnTheExample+"\nbastion:\n", 1)
		// Unhealthy targets stay (no replacement churn while the
		// network ACL forgets the replies).
		text = strings.Replace(s, "healthCheckType: ELB", "healthCheckType: EC2", 1)
		return text
	})
	s.mustMoat(180*time.Second, "up", "-d", "--wait")
	testutil.Eventually(t, 90*time.Second, s.healthy(2))
	ins := s.instances()
	slices.SortFunc(ins, func(a, b api.Instance) int { return strings.Compare(a.Subnet, b.Subnet) })
	if len(ins) != 2 || ins[0].Subnet != "private-a" || ins[1].Subnet != "private-b" {
		t.Fatalf("instances %+v, want one in private-a and one in private-b", ins)
	}
	nodes := []string{"internet", "lb-web-0", "lb-web-1", "bastion", ins[0].ID, ins[1].ID}

	t.Run("matrix", func(t *testing.T) {
		s := s.with(t)
		type triple struct {
			from, to string
			port     int
		}
		var triples []triple
		for _, from := range nodes {
			for _, to := range nodes {
				for _, port := range []int{22, 80, 8000} {
					if from != to {
						triples = append(triples, triple{from, to, port})
					}
				}
			}
			if from != "lb-web-0" && from != "lb-web-1" {
				triples = append(triples, triple{from, "lb:web:80", 80})
			}
		}
		var (
			mu                            sync.Mutex
			wg                            sync.WaitGroup
			limit                         = make(chan struct{}, 4) // four CLIs at once, each probe bounded by 1 s
			allowed, denied, agreed, hops int
			lbAllowed, lbDenied           int
		)
		for _, c := range triples {
			wg.Go(func() {
				limit <- struct{}{}
				defer func() { <-limit }()
				var vs []secgroup.Verdict
				var predicted bool
				if c.to == "lb:web:80" {
					var v secgroup.LBVerdict
					s.reachJSON(&v, "--probe", c.from, c.to)
					predicted = v.Allowed
					vs = append(vs, v.Front...)
					for _, tp := range v.Targets {
						vs = append(vs, tp.Hops...)
					}
				} else {
					var v secgroup.Verdict
					s.reachJSON(&v, "--probe", c.from, c.to, fmt.Sprint(c.port))
					predicted = v.Allowed
					vs = append(vs, v)
				}
				mu.Lock()
				defer mu.Unlock()
				reached, agree := true, true
				for _, h := range vs {
					hops++
					if h.Probe == nil {
						t.Errorf("%s -> %s %d: hop %s -> %s was not probed", c.from, c.to, c.port, h.From, h.To)
						agree = false
						continue
					}
					reached = reached && h.Probe.Reached
					if !h.Probe.Agrees || h.Probe.Reached != h.Allowed {
						agree = false
						t.Errorf("%s -> %s tcp/%d: hop %s -> %s predicted allowed=%v (%v), the kernel: %s",
							c.from, c.to, c.port, h.From, h.To, h.Allowed, h.Blockers, h.Probe.Outcome)
					}
				}
				if len(vs) == 0 || reached != predicted {
					agree = false
					t.Errorf("%s -> %s tcp/%d: predicted allowed=%v, the kernel reached every hop=%v", c.from, c.to, c.port, predicted, reached)
				}
				if agree {
					agreed++
				}
				switch {
				case c.to == "lb:web:80" && reached:
					lbAllowed++
				case c.to == "lb:web:80":
					lbDenied++
				}
				if reached {
					allowed++
				} else {
					denied++
				}
			})
		}
		wg.Wait()
		t.Logf("matrix: %d (source, destination, port) triples (%d through the load balancer: %d allowed, %d denied), %d hops probed; the kernel allowed %d and denied %d; moat reach agreed on %d (%.0f%%)",
			len(triples), lbAllowed+lbDenied, lbAllowed, lbDenied, hops, allowed, denied, agreed, 100*float64(agreed)/float64(len(triples)))
		if len(triples) < 50 || allowed < 10 || denied < 10 || lbAllowed == 0 || lbDenied == 0 {
			t.Errorf("want at least 50 triples with both kinds well represented, through the load balancer too")
		}
	})

	t.Run("exposed", func(t *testing.T) {
		s := s.with(t)
		var es []secgroup.Exposure
		s.reachJSON(&es, "--exposed")
		var got []string
		for _, e := range es {
			got = append(got, e.Target+" "+e.Ports())
		}
		if want := []string{"bastion tcp 22", "lb:web tcp 80"}; !slices.Equal(got, want) {
			t.Errorf("--exposed on the running stack lists %q, want exactly %q", got, want)
		}
	})

	t.Run("a network ACL and a security group at once", func(t *testing.T) {
		s := s.with(t)
		var v secgroup.Verdict
		code := s.reachJSON(&v, "--probe", "lb-web-1", ins[0].ID, "22")
		var codes []string
		for _, b := range v.Blockers {
			codes = append(codes, b.Code)
		}
		if code != exitFailure || !slices.Equal(codes, []string{secgroup.CodeSubnetACL, secgroup.CodeSecurityGroups}) ||
			!strings.Contains(v.Blockers[0].Message, "denied by nacl private in 90 deny tcp 22 10.0.1.0/24") ||
			!strings.Contains(v.Blockers[1].Message, "no ingress rule of security group(s) app allows tcp 22") ||
			v.Probe == nil || !v.Probe.Agrees {
			t.Errorf("exit %d, blockers %+v, probe %+v; want the network ACL's rule 90 and the app's group, the kernel agreeing", code, v.Blockers, v.Probe)
		}
	})

	t.Run("a network ACL that forgets the ephemeral range, applied live", func(t *testing.T) {
		s := s.with(t)
		forgot := forgetEphemeral(text)
		if forgot == text {
			t.Fatal("could not edit the network ACL")
		}
		if err := os.WriteFile(s.file, []byte(forgot), 0o644); err != nil {
			t.Fatal(err)
		}
		if out := s.mustMoat(30*time.Second, "validate"); !strings.Contains(out, "network ACL private blocks") {
			t.Errorf("moat validate did not warn:\n%s", out)
		}
		if out := s.mustMoat(30*time.Second, "up", "-d"); !strings.Contains(out, "network ACL private") {
			t.Errorf("moat up with a changed network ACL said %q", out)
		}
		var v secgroup.LBVerdict
		code := s.reachJSON(&v, "--probe", "internet", "lb:web:80")
		const reply = "leaving subnet private-a: denied by nacl private out 200 deny all all 0.0.0.0/0"
		named := slices.ContainsFunc(v.Blockers, func(b secgroup.Blocker) bool {
			return strings.Contains(b.Message, "reply (tcp 32768-60999 to 10.0.0.6) "+reply) && b.Code == secgroup.CodeSubnetACL
		})
		if code != exitFailure || v.Allowed || !named {
			t.Errorf("exit %d, blockers %+v; want the return path's rule 200 named", code, v.Blockers)
		}
		for _, tp := range v.Targets {
			for _, h := range tp.Hops {
				if h.Probe == nil || !h.Probe.Agrees || h.Probe.Reached {
					t.Errorf("hop %s -> %s: probe %+v, want not reached, as predicted", h.From, h.To, h.Probe)
				}
			}
		}
		// The load balancer's health checks time out: the replies are
		// dropped.
		testutil.Eventually(t, 60*time.Second, func() error {
			for _, tg := range s.targets() {
				if tg.State != "unhealthy" || tg.Reason != "Target.Timeout" {
					return fmt.Errorf("target %s: %s %s", tg.ID, tg.State, tg.Reason)
				}
			}
			return nil
		})
		out, _ := s.moat(30*time.Second, "reach", "--probe", "internet", "lb:web:80")
		if !strings.Contains(out, "health: unhealthy (Target.Timeout") || !strings.Contains(out, reply) ||
			!strings.Contains(out, "probe: timed out after 1s (dropped on the way there or back); the kernel agrees") {
			t.Errorf("moat reach does not show the health, the return-path rule and the probes:\n%s", out)
		}

		// The file put back, the replies pass again.
		if err := os.WriteFile(s.file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		s.mustMoat(30*time.Second, "up", "-d")
		testutil.Eventually(t, 60*time.Second, s.healthy(2))
		if code := s.reachJSON(&v, "--probe", "internet", "lb:web:80"); code != exitOK || !v.Allowed {
			t.Errorf("after the file was put back: exit %d, %+v", code, v.Blockers)
		}
	})
}
