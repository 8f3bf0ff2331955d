package albconformance_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/albconformance"
	"github.com/moat-dev/moat/internal/daemon"
	"github.com/moat-dev/moat/internal/lb"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
	"github.com/moat-dev/moat/internal/testutil"
)

// TestStandalone runs the conformance checks against the load balancer
// on its own (the engine moat lb runs), configured from the suite's stack
// file as moat up would configure it, in front of Backends on 127.0.0.x.
func TestStandalone(t *testing.T) {
	if testing.Short() {
		t.Skip("the conformance suite waits for health checks (minutes); not in -short")
	}
	s := newStandalone(t)
	target := &albconformance.Target{HTTP: "http://" + s.httpAddr, HTTPS: "https://" + s.httpsAddr, Targets: s}
	albconformance.Test(t, target)
}

// standalone is the engine with its backends; it implements
// albconformance.Targets.
type standalone struct {
	t                   *testing.T
	e                   *lb.Engine
	httpAddr, httpsAddr string
	groups              []string

	access testutil.Buffer

	mu       sync.Mutex
	backends map[string]*backend
	next     int // last octet of the next backend's 127.0.0.x
}

type backend struct {
	srv     *http.Server
	healthy atomic.Bool
}

func newStandalone(t *testing.T) *standalone {
	dir := t.TempDir()
	s := &standalone{t: t, httpAddr: freeAddr(t), httpsAddr: freeAddr(t), backends: map[string]*backend{}, next: 2,
		groups: []string{"echo", "sticky", "appsticky", "slowstart"}}
	text := albconformance.StackFile(albconformance.StackOptions{Name: "albconformance", HTTP: s.httpAddr, HTTPS: s.httpsAddr,
		Command: "./backend", BackendOn: ":8000"})
	f, err := spec.Parse(filepath.Join(dir, "moat.yaml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	p, problems := plan.Build(f)
	if len(problems.Errors()) > 0 {
		t.Fatalf("the suite's stack file: %v", problems)
	}
	cfg, ok := daemon.LBConfig(p, "alb")
	if !ok {
		t.Fatal("the suite's stack file has no load balancer alb")
	}
	s.e, err = lb.New(cfg, lb.Options{DrainTick: 100 * time.Millisecond, AccessLog: &s.access})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.e.Close() })
	for _, l := range cfg.Listeners {
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go s.e.Serve(ln, l.Name)
	}
	for range 2 {
		s.launch()
	}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, b := range s.backends {
			b.srv.Close()
		}
	})
	return s
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// launch starts a backend on the next 127.0.0.x and registers it in every
// target group, as an auto scaling group launches an instance.
func (s *standalone) launch() {
	s.mu.Lock()
	ip := fmt.Sprintf("127.0.0.%d", s.next)
	s.next++
	s.mu.Unlock()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		s.t.Error(err)
		return
	}
	b := &backend{}
	b.healthy.Store(true)
	b.srv = &http.Server{Handler: &albconformance.Backend{Healthy: b.healthy.Load}, ReadHeaderTimeout: 10 * time.Second}
	addr := ln.Addr().String()
	s.mu.Lock()
	s.backends[addr] = b
	s.mu.Unlock()
	for _, g := range s.groups {
		if err := s.e.Register(g, addr); err != nil {
			s.t.Error(err)
		}
	}
	// The application answers a moment after the instance is registered,
	// as it boots (health checks meanwhile wait in the listen backlog).
	time.AfterFunc(time.Second, func() { b.srv.Serve(ln) })
}

func (s *standalone) Health(_ context.Context, group string) ([]albconformance.TargetHealth, error) {
	var out []albconformance.TargetHealth
	for _, st := range s.e.Targets(group) {
		out = append(out, albconformance.TargetHealth{Addr: st.Addr, State: string(st.State)})
	}
	return out, nil
}

func (s *standalone) SetHealthy(_ context.Context, addr string, ok bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.backends[addr]
	if b == nil {
		return fmt.Errorf("no backend %s", addr)
	}
	b.healthy.Store(ok)
	return nil
}

func (s *standalone) Terminate(_ context.Context, addr string) error {
	s.mu.Lock()
	b := s.backends[addr]
	s.mu.Unlock()
	if b == nil {
		return fmt.Errorf("no backend %s", addr)
	}
	for _, g := range s.groups {
		if err := s.e.Deregister(g, addr); err != nil {
			return err
		}
	}
	// The instance stops once it has drained; its replacement starts now.
	time.AfterFunc(albconformance.DeregistrationDelay+time.Second, func() { b.srv.Close() })
	s.launch()
	return nil
}

func (s *standalone) AccessLog(context.Context) ([]byte, error) {
	return []byte(s.access.String()), nil
}
