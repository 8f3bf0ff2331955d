//go:build linux && !portable

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/albconformance"
	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/testutil"
)

// TestStackALBConformance runs the ALB conformance checks against a
// running stack: moat up of the suite's stack file, its HTTP (80) and
// HTTPS (443) listeners published on loopback, two instances running
// this test binary as the checks' backend.
func TestStackALBConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("the conformance suite waits for health checks (minutes); not in -short")
	}
	// The backend is this test binary, shipped to the instances as the
	// launch template's files (an instance sees none of the host's /tmp).
	bin, err := os.MkdirTemp("", "moat-albconformance-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bin) })
	backend := filepath.Join(bin, "backend")
	if err := linkExecutable(os.Args[0], backend); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("albconf-%04x", os.Getpid()&0xffff)
	httpAddr, httpsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	text := albconformance.StackFile(albconformance.StackOptions{Name: name, HTTP: httpAddr, HTTPS: httpsAddr,
		Metrics: fmt.Sprintf("127.0.0.1:%d", freePort(t)), Console: fmt.Sprintf("127.0.0.1:%d", freePort(t)), Files: bin, Command: "./backend", BackendOn: ":8000"})
	s := newE2EStackFile(t, name, t.TempDir(), text)
	s.mustMoat(120*time.Second, "up", "-d", "--wait")
	albconformance.Test(t, &albconformance.Target{HTTP: "http://" + httpAddr, HTTPS: "https://" + httpsAddr, Targets: stackTargets{s}})
	s.mustMoat(60*time.Second, "down")
	assertNoLeftovers(t, name)
}

// linkExecutable makes dst the executable src: a hard link, or a copy
// across file systems.
func linkExecutable(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

// stackTargets are a stack's instances, as albconformance.Targets: target
// health from moat targets, health switched by a file in the instance's
// working directory, termination by moat terminate.
type stackTargets struct{ s *e2eStack }

func (st stackTargets) Health(_ context.Context, group string) ([]albconformance.TargetHealth, error) {
	list, err := st.list()
	if err != nil {
		return nil, err
	}
	var hs []albconformance.TargetHealth
	for _, tg := range list {
		if tg.TargetGroup == group {
			hs = append(hs, albconformance.TargetHealth{Addr: tg.Address, State: tg.State})
		}
	}
	return hs, nil
}

// instance is the id of the instance behind target addr.
func (st stackTargets) instance(addr string) (string, error) {
	list, err := st.list()
	if err != nil {
		return "", err
	}
	for _, tg := range list {
		if tg.Address == addr {
			return tg.ID, nil
		}
	}
	return "", fmt.Errorf("no target %s in moat targets: %+v", addr, list)
}

func (st stackTargets) SetHealthy(_ context.Context, addr string, healthy bool) error {
	id, err := st.instance(addr)
	if err != nil {
		return err
	}
	f := filepath.Join("/run/moat", st.s.name, "instances", id, albconformance.UnhealthyFile)
	if healthy {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	return os.WriteFile(f, nil, 0o644)
}

func (st stackTargets) Terminate(ctx context.Context, addr string) error {
	id, err := st.instance(addr)
	if err != nil {
		return err
	}
	if out, err := st.s.moat(30*time.Second, "terminate", id); err != nil {
		return fmt.Errorf("moat terminate %s: %v: %s", id, err, out)
	}
	var healthErr error // ends the wait at once
	err = testutil.Poll(30*time.Second, func() error {
		hs, err := st.Health(ctx, "sticky")
		if err != nil {
			healthErr = err
			return nil
		}
		state := ""
		for _, h := range hs {
			if h.Addr == addr {
				state = h.State
			}
		}
		if state == "" || state == "draining" {
			return nil
		}
		return fmt.Errorf("terminated instance %s is still %s in target group sticky after 30 s", id, state)
	})
	if healthErr != nil {
		return healthErr
	}
	return err
}

// list runs moat targets -o json.
func (st stackTargets) list() ([]api.Target, error) {
	out, err := st.s.moat(10*time.Second, "targets", "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("moat targets: %v: %s", err, out)
	}
	var list []api.Target
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("moat targets -o json: %w: %s", err, out)
	}
	return list, nil
}

func (st stackTargets) AccessLog(context.Context) ([]byte, error) {
	return os.ReadFile(filepath.Join(st.s.home, st.s.name, "lb-alb-access.jsonl"))
}
