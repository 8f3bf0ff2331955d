//go:build unix

package lb

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/targetgroup"
)

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

// BenchmarkEngineGET measures the engine alone: a raw keep-alive client
// and a raw target that answer from fixed bytes, so allocations and time
// per request are the proxy's (Go's client and server add their own in
// BenchmarkProxyGET).
func BenchmarkEngineGET(b *testing.B) { benchEngine(b, "HTTP") }

// BenchmarkEngineGETTLS is BenchmarkEngineGET through an HTTPS listener
// (HTTP/1.1 over TLS, one kept-alive TLS connection).
func BenchmarkEngineGETTLS(b *testing.B) { benchEngine(b, "HTTPS") }

func benchEngine(b *testing.B, protocol string) {
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
		Listeners: []Listener{{Name: "l", Protocol: protocol, DefaultAction: forwardTo("tg")}}}, Options{})
	e.Register("tg", tln.Addr().String())
	var c net.Conn
	if protocol == "HTTPS" {
		c, err = tls.Dial("tcp", lbAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	} else {
		c, err = net.Dial("tcp", lbAddr)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	req := []byte("GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n\r\n")
	want := "HTTP/1.1 200 OK\r\n"
	b.ReportAllocs()
	cpu0 := processCPU()
	n := 0
	for b.Loop() {
		n++
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
	b.ReportMetric(float64(processCPU()-cpu0)/float64(n), "cpu-ns/op")
}

// processCPU is the CPU time (user and system) the process has used: the
// engine's, the raw client's and the raw target's, which are small.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
