package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/client"
	"github.com/moat-dev/moat/internal/daemon"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
	"github.com/moat-dev/moat/internal/testutil"
)

// freeAddr is a loopback address with a port that is free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// exampleStack is the bundled example under a unique stack name, on free
// loopback ports, with its state in a scratch MOAT_HOME.
func exampleStack(t *testing.T, name string) *plan.Plan {
	t.Helper()
	t.Setenv("MOAT_HOME", t.TempDir())
	dir := t.TempDir()
	src, err := os.ReadFile("../../examples/realtime/moat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(src), "name: realtime", fmt.Sprintf("name: %s-%04x", name, os.Getpid()&0xffff), 1)
	text = strings.Replace(text, "address: 127.0.0.1:8080", "address: "+freeAddr(t), 1)
	text = strings.Replace(text, "bastion: 127.0.0.1:2222", "bastion: "+freeAddr(t)+"\n  console: "+freeAddr(t), 1)
	if err := os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "app"), os.DirFS("../../examples/realtime/app")); err != nil {
		t.Fatal(err)
	}
	f, err := spec.LoadFile(filepath.Join(dir, "moat.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, problems := plan.Build(f)
	if len(problems.Errors()) > 0 {
		t.Fatal(problems)
	}
	return p
}

// TestControlAPIWhileStarting polls every read of the control API from
// several clients while the stack starts, so that the race detector sees
// the API read what start writes. Status must answer throughout.
func TestControlAPIWhileStarting(t *testing.T) {
	testutil.RequireRoot(t, "starting a stack: network namespaces, nftables")
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is missing: scripts/deps.sh installs it")
	}
	p := exampleStack(t, "startrace")
	dir := daemon.StackDir(p.Stack)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl, ready, done := runDaemon(ctx, p, dir)
	stop := make(chan struct{})
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		phases   = map[string]int{}
		answered = map[string]int{}
	)
	reads := map[string]func() error{
		"status": func() error {
			st, err := cl.Status(ctx)
			if err == nil {
				mu.Lock()
				phases[st.Phase]++
				mu.Unlock()
			}
			return err
		},
		"instances":  func() error { _, err := cl.Instances(ctx, true); return err },
		"targets":    func() error { _, err := cl.Targets(ctx); return err },
		"membership": func() error { _, err := cl.Membership(ctx); return err },
		"ssh":        func() error { _, err := cl.SSHAccess(ctx); return err },
		"metrics":    func() error { _, err := cl.Metrics(ctx, time.Time{}); return err },
		"activities": func() error { _, err := cl.Activities(ctx, "web"); return err },
		"events":     func() error { return cl.Events(ctx, false, func(events.Event) {}) },
	}
	for name, read := range reads {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if read() == nil {
					mu.Lock()
					answered[name]++
					mu.Unlock()
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	// A change while the stack starts is refused, not half-applied.
	var refused []error
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			err := cl.Scale(ctx, "web", 2)
			var ae *client.Error
			if errors.As(err, &ae) {
				mu.Lock()
				refused = append(refused, err)
				mu.Unlock()
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	var startErr error
	select {
	case startErr = <-ready:
	case <-time.After(3 * time.Minute):
		startErr = fmt.Errorf("the stack did not start within 3 minutes")
	}
	close(stop)
	wg.Wait()
	if startErr != nil {
		t.Error(startErr)
	}
	shutdown(t, cl, done, 90*time.Second)
	if phases[api.PhaseStarting] == 0 {
		t.Errorf("status never answered while the stack started: phases seen %v", phases)
	}
	for _, name := range []string{"instances", "targets", "ssh", "events"} {
		if answered[name] == 0 {
			t.Errorf("%s never answered while the stack started: %v", name, answered)
		}
	}
	if len(refused) == 0 {
		t.Error("no change was refused while the stack started")
	}
	for _, err := range refused {
		if !strings.Contains(err.Error(), "the stack is starting") {
			t.Errorf("a change while starting: got %v, want the stack is starting", err)
			break
		}
	}
	t.Logf("while starting: status phases %v, answers %v", phases, answered)
}
