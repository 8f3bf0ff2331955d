package lb

import (
	"bufio"
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

// BenchmarkProxyGET measures the HTTP/1.1 hot path end to end on
// loopback with one keep-alive client connection.
func BenchmarkProxyGET(b *testing.B) {
	be := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })}
	ln, err := netListen("127.0.0.2:0")
	if err != nil {
		b.Fatal(err)
	}
	go be.Serve(ln)
	defer be.Close()
	e, lbAddr := serveLB(b, Config{TargetGroups: []targetgroup.Config{{Name: "tg"}},
		Listeners: []Listener{{Name: "l", DefaultAction: forwardTo("tg")}}}, Options{})
	e.Register("tg", ln.Addr().String())
	cl := &http.Client{}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := cl.Get("http://" + lbAddr + "/")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func netListen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// BenchmarkEngineGET measures the engine alone: a raw keep-alive client
// and a raw target that answer from fixed bytes, so allocations and time
// per request are the proxy's (Go's client and server add their own in
// BenchmarkProxyGET).
func BenchmarkEngineGET(b *testing.B) {
	tln, err := netListen("127.0.0.2:0")
	if err != nil {
		b.Fatal(err)
	}
	defer tln.Close()
	go func() {
		for {
			c, err := tln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				for {
					for {
						l, err := r.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(l) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	e, lbAddr := serveLB(b, Config{TargetGroups: []targetgroup.Config{{Name: "tg"}},
		Listeners: []Listener{{Name: "l", DefaultAction: forwardTo("tg")}}}, Options{})
	e.Register("tg", tln.Addr().String())
	c, err := net.Dial("tcp", lbAddr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	req := []byte("GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n\r\n")
	want := "HTTP/1.1 200 OK\r\n"
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		l, err := r.ReadString('\n')
		if err != nil || l != want {
			b.Fatalf("status line %q: %v", l, err)
		}
		for {
			l, err := r.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(l) <= 2 {
				break
			}
		}
		if _, err := r.Discard(2); err != nil {
			b.Fatal(err)
		}
	}
}
