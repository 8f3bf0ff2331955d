package lb

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/targetgroup"
)

// TestDeregisterUnderLoad deregisters one of two targets under a bounded
// GET load: no request fails, and the drained target stops getting new
// requests.
func TestDeregisterUnderLoad(t *testing.T) {
	var hitsA atomic.Int64
	a := startBackend(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hitsA.Add(1)
		time.Sleep(5 * time.Millisecond) // requests are in flight when draining starts
	}))
	b := startBackend(t, "127.0.0.3", nameHandler("b"))
	e, addr := startLB(t, targetgroup.Config{DeregistrationDelay: 2 * time.Second}, nil, a.addr, b.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var failed, ok atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 5 * time.Second}
			for i := 0; i < 2000 && ctx.Err() == nil; i++ {
				resp, err := cl.Get("http://" + addr + "/")
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
		}()
	}
	time.Sleep(500 * time.Millisecond)
	if err := e.Deregister("tg", a.addr); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // in-flight requests on a finish
	after := hitsA.Load()
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d failed requests (%d ok)", failed.Load(), ok.Load())
	}
	if hitsA.Load() != after {
		t.Fatalf("draining target got %d new requests", hitsA.Load()-after)
	}
}

func netListen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
