package lb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/targetgroup"
)

// backendEnv makes the test binary a target process (see
// TestBackendProcess): its value is the address to listen on.
const backendEnv = "MOAT_LB_TEST_BACKEND"

// TestBackendProcess is not a test: run with backendEnv set it is a
// target process that prints its address and serves until killed.
func TestBackendProcess(t *testing.T) {
	addr := os.Getenv(backendEnv)
	if addr == "" {
		t.Skip("a helper process for TestKill9UnderHTTPSLoad")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	name := ln.Addr().String()
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
}

// startBackendProcess starts the test binary as a target on ip.
func startBackendProcess(t *testing.T, ip string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBackendProcess$")
	cmd.Env = append(os.Environ(), backendEnv+"="+ip+":0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.HasPrefix(line, "error") {
		t.Fatalf("backend process on %s: %q %v", ip, line, err)
	}
	return cmd, strings.TrimSpace(line)
}

// TestKill9UnderHTTPSLoad is the chaos run through an HTTPS
// listener: four target processes, three of them kill -9'd one by one
// during a bounded load of HTTP/1.1-over-TLS and HTTP/2 clients; retry on
// connect failure and passive ejection must leave 0 failed requests.
func TestKill9UnderHTTPSLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a 6 s load run")
	}
	var cmds []*exec.Cmd
	var addrs []string
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		cmd, addr := startBackendProcess(t, ip)
		cmds = append(cmds, cmd)
		addrs = append(addrs, addr)
	}
	_, addr := startLBWith(t, "HTTPS", targetgroup.Config{HealthCheck: targetgroup.HealthCheck{
		Interval: 500 * time.Millisecond, Timeout: 200 * time.Millisecond, HealthyThreshold: 2, UnhealthyThreshold: 2}}, nil, addrs...)

	const (
		workers     = 8
		maxRequests = 200000
		runFor      = 6 * time.Second
	)
	ctx, cancel := context.WithTimeout(context.Background(), runFor)
	defer cancel()
	var sent, failed atomic.Int64
	var mu sync.Mutex
	var firstErrs []string
	var wg sync.WaitGroup
	for w := range workers {
		k := everyListener[1+w%2] // HTTP/1.1 over TLS and HTTP/2, half each
		c := k.client(t)
		wg.Go(func() {
			for ctx.Err() == nil && sent.Add(1) <= maxRequests {
				resp, err := c.Get("https://" + addr + "/")
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, fmt.Sprintf("%s: %v", k.name, err))
					}
					mu.Unlock()
				}
			}
		})
	}
	// kill -9 three of the four, 1.5 s apart; never the last one
	for i := range 3 {
		select {
		case <-ctx.Done():
		case <-time.After(1500 * time.Millisecond):
		}
		cmds[i].Process.Kill()
	}
	atLastKill := sent.Load()
	wg.Wait()
	n := min(sent.Load(), maxRequests)
	if ctx.Err() == nil || n <= atLastKill {
		t.Fatalf("the load ended before the last kill (%d requests then, %d in all)", atLastKill, n)
	}
	t.Logf("HTTPS, 3 of 4 targets kill -9'd under load: %d requests, %d failed", n, failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed; first: %v", failed.Load(), n, firstErrs)
	}
	if n < 100 {
		t.Fatalf("only %d requests in %s: the load did not run", n, runFor)
	}
}
