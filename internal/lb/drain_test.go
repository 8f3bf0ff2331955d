package lb

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/targetgroup"
	"github.com/moat-dev/moat/internal/testutil"
)

// TestDeregisterUnderLoad deregisters one of two targets under a bounded
// GET load (4 clients, 200 requests each) at a moment when every client
// waits on that target: the requests in flight finish (draining), none
// fails, and the drained target gets no new request. No sleeps: the
// target holds its requests until the test has deregistered it.
func TestDeregisterUnderLoad(t *testing.T) {
	const clients, perClient = 4, 200
	var hitsA, inflightA atomic.Int64
	release := make(chan struct{})
	a := startBackend(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/work" {
			return // health checks
		}
		hitsA.Add(1)
		inflightA.Add(1)
		defer inflightA.Add(-1)
		<-release
	}))
	b := startBackend(t, "127.0.0.3", nameHandler("b"))
	e, addr := startLB(t, targetgroup.Config{DeregistrationDelay: 30 * time.Second}, nil, a.addr, b.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var failed, ok atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			cl := &http.Client{Timeout: 20 * time.Second}
			for i := 0; i < perClient && ctx.Err() == nil; i++ {
				resp, err := cl.Get("http://" + addr + "/work")
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					if err == nil {
						resp.Body.Close()
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok.Add(1)
			}
		})
	}
	// Round robin sends every client to a sooner or later; there it waits.
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := inflightA.Load(); n != clients {
			return fmt.Errorf("%d of %d clients waiting on target a", n, clients)
		}
		return nil
	})
	if err := e.Deregister("tg", a.addr); err != nil {
		t.Fatal(err)
	}
	before := hitsA.Load() // no request is on its way anywhere now
	close(release)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d failed requests (%d ok)", failed.Load(), ok.Load())
	}
	if ok.Load() != clients*perClient {
		t.Fatalf("%d requests answered, want %d", ok.Load(), clients*perClient)
	}
	if n := hitsA.Load() - before; n != 0 {
		t.Fatalf("draining target got %d new requests", n)
	}
}

func netListen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
