package lb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/targetgroup"
	"github.com/moat-dev/moat/internal/testutil"
)

// backend is a real HTTP server on a loopback address.
type backend struct {
	ln   net.Listener
	srv  *http.Server
	addr string
}

func startBackend(t *testing.T, ip string, h http.Handler) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{ln: ln, srv: &http.Server{Handler: h}, addr: ln.Addr().String()}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func nameHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/echo" {
			io.Copy(w, r.Body)
			return
		}
		fmt.Fprintf(w, "%s xff=%s proto=%s", name, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"))
	})
}

func forwardTo(tg string) Action {
	return Action{Type: ActionForward, Forward: []WeightedGroup{{TargetGroup: tg}}}
}

// startLB runs an engine on a loopback listener with one target group
// "tg" holding addrs.
func startLB(t *testing.T, tgc targetgroup.Config, rules []Rule, addrs ...string) (*Engine, string) {
	t.Helper()
	return startLBWith(t, "HTTP", tgc, rules, addrs...)
}

// startLBWith is startLB with a listener protocol, HTTP or HTTPS.
func startLBWith(t *testing.T, protocol string, tgc targetgroup.Config, rules []Rule, addrs ...string) (*Engine, string) {
	t.Helper()
	tgc.Name = "tg"
	if tgc.HealthCheck.Interval == 0 {
		tgc.HealthCheck.Interval = 200 * time.Millisecond
		tgc.HealthCheck.Timeout = 100 * time.Millisecond
	}
	cfg := Config{TargetGroups: []targetgroup.Config{tgc},
		Listeners: []Listener{{Name: "l", Protocol: protocol, DefaultAction: forwardTo("tg"), Rules: rules}}}
	e, addr := serveLB(t, cfg, Options{DrainTick: 50 * time.Millisecond})
	for _, a := range addrs {
		if err := e.Register("tg", a); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, s := range e.Targets("tg") {
			if s.State != targetgroup.StateHealthy {
				return fmt.Errorf("target %s is %s, not healthy", s.Addr, s.State)
			}
		}
		return nil
	})
	return e, addr
}

// serveLB runs an engine of cfg and serves its listener "l" on a
// loopback port, whose address it returns.
func serveLB(t testing.TB, cfg Config, opts Options) (*Engine, string) {
	t.Helper()
	e, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.Serve(ln, "l")
	t.Cleanup(func() { ln.Close(); e.Close() })
	return e, ln.Addr().String()
}

// quietGroup is a config with target group "tg", health-checked once an
// hour, behind listener "l".
func quietGroup(protocol string) Config {
	return Config{TargetGroups: []targetgroup.Config{{Name: "tg", HealthCheck: targetgroup.HealthCheck{Interval: time.Hour, Timeout: time.Second}}},
		Listeners: []Listener{{Name: "l", Protocol: protocol, DefaultAction: forwardTo("tg")}}}
}

// logged is a condition for testutil.Eventually: the access log holds s.
func logged(logs *testutil.Buffer, s string) func() error {
	return func() error {
		if !strings.Contains(logs.String(), s) {
			return fmt.Errorf("access log lacks %s:\n%s", s, logs.String())
		}
		return nil
	}
}

func TestForwardRoundRobinAndHeaders(t *testing.T) {
	a := startBackend(t, "127.0.0.2", nameHandler("a"))
	b := startBackend(t, "127.0.0.3", nameHandler("b"))
	e, addr := startLB(t, targetgroup.Config{}, nil, a.addr, b.addr)
	seen := map[string]int{}
	for range 10 {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "xff=127.0.0.1 proto=http") {
			t.Fatalf("headers: %q", body)
		}
		seen[string(body[:1])]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("round robin: %v", seen)
	}
	// a POST body is relayed
	resp, err := http.Post("http://"+addr+"/echo", "text/plain", strings.NewReader("hello body"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello body" {
		t.Fatalf("echo: %q", body)
	}
	if n := e.RequestCount("tg"); n != 11 {
		t.Fatalf("request count %d", n)
	}
}

func rawRoundTrip(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(c)
	return string(out)
}

func TestSmuggling(t *testing.T) {
	var hits atomic.Int32
	a := startBackend(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
	}))
	_, addr := startLB(t, targetgroup.Config{}, nil, a.addr)
	big := strings.Repeat("a", 17<<10)
	tests := []struct{ name, req, want string }{
		{"CL+TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"TE+CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"double CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", "HTTP/1.1 400"},
		{"double equal CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", "HTTP/1.1 400"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", "HTTP/1.1 400"},
		{"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", "HTTP/1.1 400"},
		{"TE not chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"bad CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd", "HTTP/1.1 400"},
		{"no host", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
		{"bad request line", "GET /\r\nHost: x\r\n\r\n", "HTTP/1.1 400"},
		{"oversized header", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", "HTTP/1.1 431"},
		{"oversized request line", "GET /" + big + " HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 414"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hits.Load()
			got := rawRoundTrip(t, addr, tt.req)
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("got %q", got)
			}
			if hits.Load() != before {
				t.Fatal("request reached the backend")
			}
		})
	}
	// bad chunked framing: the backend never sees a complete request, the
	// client connection is closed with an error status
	got := rawRoundTrip(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
	if strings.Contains(got, "200 OK") {
		t.Fatalf("bad chunked accepted: %q", got)
	}
	// a valid chunked request and pipelining work
	got = rawRoundTrip(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if strings.Count(got, "HTTP/1.1 200") != 2 {
		t.Fatalf("chunked+pipelined: %q", got)
	}
}

func TestSSEFlushedAsSent(t *testing.T) {
	next := make(chan struct{})
	a := startBackend(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	}))
	_, addr := startLB(t, targetgroup.Config{}, nil, a.addr)
	resp, err := http.Get("http://" + addr + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		br.ReadString('\n')
		next <- struct{}{} // the next event is sent only after this one arrived
	}
}

// wsEcho is a minimal WebSocket-ish upgrade backend: after 101 it echoes bytes.
func wsEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			w.WriteHeader(200)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw)
	})
}

func dialWS(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return c, br
}

func TestWebSocketEchoAndDrain(t *testing.T) {
	a := startBackend(t, "127.0.0.2", wsEcho())
	e, addr := startLB(t, targetgroup.Config{DeregistrationDelay: 700 * time.Millisecond}, nil, a.addr)
	c, br := dialWS(t, addr)
	defer c.Close()
	io.WriteString(c, "ping\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if l, err := br.ReadString('\n'); err != nil || l != "ping\n" {
		t.Fatalf("echo: %q %v", l, err)
	}
	start := time.Now()
	if err := e.Deregister("tg", a.addr); err != nil {
		t.Fatal(err)
	}
	// still open during the delay
	io.WriteString(c, "pong\n")
	if l, err := br.ReadString('\n'); err != nil || l != "pong\n" {
		t.Fatalf("echo while draining: %q %v", l, err)
	}
	_, err := br.ReadString('\n')
	if err == nil {
		t.Fatal("tunnel not closed after the delay")
	}
	if el := time.Since(start); el < 700*time.Millisecond {
		t.Fatalf("closed after %s, before the delay", el)
	}
}

// TestChaos kills one of three targets (closes its listener and
// connections) in turn under a bounded GET load: no GET may fail.
func TestChaos(t *testing.T) {
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	var mu sync.Mutex
	backends := make([]*backend, 3)
	addrs := make([]string, 3)
	for i, ip := range ips {
		backends[i] = startBackend(t, ip, nameHandler(ip))
		addrs[i] = backends[i].addr
	}
	e, addr := startLB(t, targetgroup.Config{HealthCheck: targetgroup.HealthCheck{Interval: 100 * time.Millisecond, Timeout: 50 * time.Millisecond, HealthyThreshold: 2}}, nil, addrs...)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var failed, ok atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for i := 0; i < 5000 && ctx.Err() == nil; i++ {
				resp, err := cl.Get("http://" + addr + "/")
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					if err == nil {
						resp.Body.Close()
					}
					t.Logf("worker %d: %v %v", w, err, resp)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok.Add(1)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	for k := 0; ctx.Err() == nil; k++ {
		time.Sleep(700 * time.Millisecond)
		i := k % 3
		mu.Lock()
		backends[i].srv.Close() // the target dies: listener and connections closed
		mu.Unlock()
		time.Sleep(300 * time.Millisecond)
		ln, err := net.Listen("tcp", addrs[i])
		if err != nil {
			t.Fatalf("restart %s: %v", addrs[i], err)
		}
		mu.Lock()
		backends[i] = &backend{ln: ln, srv: &http.Server{Handler: nameHandler(ips[i])}, addr: addrs[i]}
		go backends[i].srv.Serve(ln)
		mu.Unlock()
	}
	wg.Wait()
	mu.Lock()
	for _, b := range backends {
		b.srv.Close()
	}
	mu.Unlock()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d failed GETs, %d ok", failed.Load(), ok.Load())
	}
	mfs, _ := e.Registry().Gather()
	var retries float64
	for _, mf := range mfs {
		if mf.GetName() == "moat_lb_retries_total" || mf.GetName() == "moat_lb_ejections_total" {
			for _, m := range mf.GetMetric() {
				retries += m.GetCounter().GetValue()
			}
		}
	}
	t.Logf("%d GETs, %v retries+ejections", ok.Load(), retries)
	if retries == 0 {
		t.Fatal("no retries or ejections counted in metrics")
	}
}

func TestFixedAndRedirect(t *testing.T) {
	a := startBackend(t, "127.0.0.2", nameHandler("a"))
	rules := []Rule{
		{Priority: 10, Conditions: []Condition{{Field: FieldPathPattern, Values: []string{"/old/*"}}},
			Action: Action{Type: ActionRedirect, Redirect: Redirect{Path: "/new/#{path}", StatusCode: 301}}},
		{Priority: 20, Conditions: []Condition{{Field: FieldPathPattern, Values: []string{"/teapot"}}},
			Action: Action{Type: ActionFixed, Fixed: FixedResponse{StatusCode: 418, Body: "short and stout"}}},
	}
	_, addr := startLB(t, targetgroup.Config{}, rules, a.addr)
	got := rawRoundTrip(t, addr, "GET /old/x HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 301") || !strings.Contains(got, "Location: http://example.com:") {
		t.Fatalf("redirect: %q", got)
	}
	got = rawRoundTrip(t, addr, "GET /teapot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 418") || !strings.HasSuffix(got, "short and stout") {
		t.Fatalf("fixed: %q", got)
	}
}

func TestStickyLBCookie(t *testing.T) {
	a := startBackend(t, "127.0.0.2", nameHandler("a"))
	b := startBackend(t, "127.0.0.3", nameHandler("b"))
	_, addr := startLB(t, targetgroup.Config{Stickiness: targetgroup.Stickiness{Type: targetgroup.StickyLBCookie}}, nil, a.addr, b.addr)
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "AWSALB" {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("no AWSALB cookie")
	}
	for range 6 {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.AddCookie(&http.Cookie{Name: "AWSALB", Value: cookie.Value})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if body[0] != first[0] {
			t.Fatalf("sticky session moved from %c to %c", first[0], body[0])
		}
	}
}
