package lb

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/targetgroup"
	"github.com/moat-dev/moat/internal/testutil"
)

// listenerKind is one way a client reaches a listener.
type listenerKind struct {
	name     string
	protocol string // the listener's
	scheme   string
	h2       bool
}

// everyListener is HTTP, HTTP/1.1 over TLS and HTTP/2 over TLS: every
// behaviour of the request path is checked on all three.
var everyListener = []listenerKind{
	{"http", "HTTP", "http", false},
	{"https-http1.1", "HTTPS", "https", false},
	{"https-h2", "HTTPS", "https", true},
}

// client speaks the kind's protocol; cookies are not kept.
func (k listenerKind) client(t *testing.T) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ExpectContinueTimeout: 5 * time.Second}
	if k.h2 {
		tr.ForceAttemptHTTP2 = true
	} else {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // HTTP/1.1 only
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// do sends req and returns the response with its body read.
func (k listenerKind) do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if want := 1; k.h2 {
		want = 2
		if resp.ProtoMajor != want {
			t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
		}
	} else if resp.ProtoMajor != want {
		t.Fatalf("protocol %s, want HTTP/1.1", resp.Proto)
	}
	return resp, string(b)
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// headerEcho answers with the request headers the load balancer sets.
func headerEcho(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "name=%s\nxff=%s\nproto=%s\nport=%s\ntrace=%s\nhost=%s\n", name, r.Header.Get("X-Forwarded-For"),
			r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Port"), r.Header.Get("X-Amzn-Trace-Id"), r.Host)
	})
}

func field(body, name string) string {
	for l := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+"="); ok {
			return v
		}
	}
	return ""
}

func TestStickinessOnEveryListener(t *testing.T) {
	a := startBackend(t, "127.0.0.2", headerEcho("a"))
	b := startBackend(t, "127.0.0.3", headerEcho("b"))
	for _, k := range everyListener {
		t.Run(k.name, func(t *testing.T) {
			_, addr := startLBWith(t, k.protocol, targetgroup.Config{Stickiness: targetgroup.Stickiness{Type: targetgroup.StickyLBCookie}}, nil, a.addr, b.addr)
			c := k.client(t)
			url := k.scheme + "://" + addr + "/"
			resp, body := k.do(t, c, newRequest(t, "GET", url, nil))
			first := field(body, "name")
			var cookie *http.Cookie
			for _, ck := range resp.Cookies() {
				if ck.Name == "AWSALB" {
					cookie = ck
				}
			}
			if cookie == nil || cookie.Expires.Before(time.Now().Add(23*time.Hour)) {
				t.Fatalf("no AWSALB cookie of a day: %v", resp.Header["Set-Cookie"])
			}
			for range 6 {
				req := newRequest(t, "GET", url, nil)
				req.AddCookie(&http.Cookie{Name: "AWSALB", Value: cookie.Value})
				if _, body := k.do(t, c, req); field(body, "name") != first {
					t.Fatalf("sticky session moved from %s to %s", first, field(body, "name"))
				}
			}
			// without the cookie, requests are spread again
			seen := map[string]bool{}
			for range 4 {
				_, body := k.do(t, c, newRequest(t, "GET", url, nil))
				seen[field(body, "name")] = true
			}
			if len(seen) != 2 {
				t.Fatalf("without the cookie only %v answered", seen)
			}
		})
	}
}

var (
	rootTrace = regexp.MustCompile(`^Root=1-([0-9a-f]{8})-[0-9a-f]{24}$`)
	selfTrace = regexp.MustCompile(`^Self=1-[0-9a-f]{8}-[0-9a-f]{24};Root=1-67891233-abcdef012345678912345678;CalledFrom=app$`)
)

func TestForwardedHeadersOnEveryListener(t *testing.T) {
	a := startBackend(t, "127.0.0.2", headerEcho("a"))
	for _, k := range everyListener {
		t.Run(k.name, func(t *testing.T) {
			_, addr := startLBWith(t, k.protocol, targetgroup.Config{}, nil, a.addr)
			_, port, _ := net.SplitHostPort(addr)
			c := k.client(t)
			url := k.scheme + "://" + addr + "/x?y=1"

			req := newRequest(t, "GET", url, nil)
			req.Header.Set("X-Forwarded-For", "6.6.6.6")
			_, body := k.do(t, c, req)
			if got := field(body, "xff"); got != "6.6.6.6, 127.0.0.1" {
				t.Errorf("X-Forwarded-For %q, want ALB's append mode %q", got, "6.6.6.6, 127.0.0.1")
			}
			if got := field(body, "proto"); got != k.scheme {
				t.Errorf("X-Forwarded-Proto %q, want %q", got, k.scheme)
			}
			if got := field(body, "port"); got != port {
				t.Errorf("X-Forwarded-Port %q, want %q", got, port)
			}
			if got := field(body, "host"); got != addr {
				t.Errorf("Host %q, want %q", got, addr)
			}
			m := rootTrace.FindStringSubmatch(field(body, "trace"))
			if m == nil {
				t.Fatalf("X-Amzn-Trace-Id %q, want Root=1-<8 hex>-<24 hex>", field(body, "trace"))
			}
			secs, _ := strconv.ParseInt(m[1], 16, 64)
			if d := time.Since(time.Unix(secs, 0)); d < -time.Minute || d > time.Minute {
				t.Errorf("trace id time %s is not now", time.Unix(secs, 0))
			}

			req = newRequest(t, "GET", url, nil)
			req.Header.Set("X-Amzn-Trace-Id", "Self=1-67891233-000000000000000000000000;Root=1-67891233-abcdef012345678912345678;CalledFrom=app")
			if _, body := k.do(t, c, req); !selfTrace.MatchString(field(body, "trace")) {
				t.Errorf("incoming trace id not kept and extended: %q", field(body, "trace"))
			}

			// ALB answers 463 to more than 30 addresses in X-Forwarded-For
			for n, want := range map[int]int{30: 200, 31: 463} {
				req = newRequest(t, "GET", url, nil)
				req.Header.Set("X-Forwarded-For", strings.TrimSuffix(strings.Repeat("10.0.0.1, ", n), ", "))
				if resp, _ := k.do(t, c, req); resp.StatusCode != want {
					t.Errorf("%d addresses in X-Forwarded-For: status %d, want %d", n, resp.StatusCode, want)
				}
			}
		})
	}
}

func TestTraceHeader(t *testing.T) {
	const now = 0x5f5e1000
	for _, tc := range []struct{ in, want string }{
		{"", "Root=1-5f5e1000-0123456789abcdef89abcdef"},
		{"garbage", "Root=1-5f5e1000-0123456789abcdef89abcdef"},
		{"Root=1-zz-short", "Root=1-5f5e1000-0123456789abcdef89abcdef"},
		{"Root=1-67891233-abcdef012345678912345678", "Self=1-5f5e1000-0123456789abcdef89abcdef;Root=1-67891233-abcdef012345678912345678"},
		{"Root=1-67891233-abcdef012345678912345678;CalledFrom=app", "Self=1-5f5e1000-0123456789abcdef89abcdef;Root=1-67891233-abcdef012345678912345678;CalledFrom=app"},
		{"Self=1-67891233-12456789abcdef012345678a; Root=1-67891233-abcdef012345678912345678", "Self=1-5f5e1000-0123456789abcdef89abcdef;Root=1-67891233-abcdef012345678912345678"},
	} {
		if got := string(traceHeader(nil, []byte(tc.in), now, 0x0123456789abcdef, 0x89abcdef)); got != tc.want {
			t.Errorf("traceHeader(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestHeadLimitsOnEveryListener checks ALB's request quotas (request line
// 16 K, one header 16 K, the whole head 64 K) and a malformed request
// target on every listener: HTTP/2
// requests are turned into HTTP/1.1 heads for the targets, so they meet
// the same limits, as 414 and 431 from the load balancer.
func TestHeadLimitsOnEveryListener(t *testing.T) {
	a := startBackend(t, "127.0.0.2", headerEcho("a"))
	for _, k := range everyListener {
		t.Run(k.name, func(t *testing.T) {
			_, addr := startLBWith(t, k.protocol, targetgroup.Config{}, nil, a.addr)
			c := k.client(t)
			url := k.scheme + "://" + addr
			for _, tc := range []struct {
				what, path string
				hdr        map[string]string
				want       int
			}{
				{"an 8 KB request line", "/" + strings.Repeat("a", 8<<10), nil, 200},
				{"a 17 KB request line", "/" + strings.Repeat("a", 17<<10), nil, 414},
				{"an 8 KB header", "/", map[string]string{"X-Big": strings.Repeat("b", 8<<10)}, 200},
				{"a 17 KB header", "/", map[string]string{"X-Big": strings.Repeat("b", 17<<10)}, 431},
			} {
				req := newRequest(t, "GET", url+tc.path, nil)
				for n, v := range tc.hdr {
					req.Header.Set(n, v)
				}
				resp, _ := k.do(t, c, req)
				if resp.StatusCode != tc.want {
					t.Errorf("%s: status %d, want %d", tc.what, resp.StatusCode, tc.want)
				}
				if tc.want != 200 && resp.Header.Get("Server") != "awselb/2.0" {
					t.Errorf("%s: Server %q, want the load balancer's own awselb/2.0", tc.what, resp.Header.Get("Server"))
				}
			}
			// a request target with a space is malformed (an HTTP/2 :path
			// would otherwise reach the target as a broken request line)
			req := newRequest(t, "GET", url+"/", nil)
			req.URL.Opaque = "/a b"
			if resp, _ := k.do(t, c, req); resp.StatusCode != 400 || resp.Header.Get("Server") != "awselb/2.0" {
				t.Errorf("a request target with a space: status %d from %q, want 400 from awselb/2.0", resp.StatusCode, resp.Header.Get("Server"))
			}
		})
	}
}

func TestXFFCount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{{"", 0}, {" ", 0}, {"1.1.1.1", 1}, {"1.1.1.1, 2.2.2.2", 2}, {"a,b,c", 3}} {
		if got := xffCount([]byte(tc.in)); got != tc.want {
			t.Errorf("xffCount(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestInterimResponsesOnEveryListener: a 100 Continue answering Expect
// and a 103 Early Hints reach Go's client, then the final response.
func TestInterimResponsesOnEveryListener(t *testing.T) {
	a := startBackend(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hints" {
			w.Header().Set("Link", "</app.css>; rel=preload; as=style")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			io.WriteString(w, "final")
			return
		}
		io.Copy(w, r.Body) // the Go server sends 100 Continue on this read
	}))
	for _, k := range everyListener {
		t.Run(k.name, func(t *testing.T) {
			_, addr := startLBWith(t, k.protocol, targetgroup.Config{}, nil, a.addr)
			c := k.client(t)
			var got100, got103 atomic.Int32
			var link atomic.Value
			trace := &httptrace.ClientTrace{
				Got100Continue: func() { got100.Add(1) },
				Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
					if code == 103 {
						got103.Add(1)
						link.Store(h.Get("Link"))
					}
					return nil
				},
			}
			req := newRequest(t, "POST", k.scheme+"://"+addr+"/echo", strings.NewReader("the body"))
			req.Header.Set("Expect", "100-continue")
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
			resp, body := k.do(t, c, req)
			if resp.StatusCode != 200 || body != "the body" || got100.Load() != 1 {
				t.Fatalf("Expect: 100-continue: status %d body %q, %d 100 Continue", resp.StatusCode, body, got100.Load())
			}
			req = newRequest(t, "GET", k.scheme+"://"+addr+"/hints", nil)
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
			resp, body = k.do(t, c, req)
			if resp.StatusCode != 200 || body != "final" || got103.Load() != 1 || link.Load() != "</app.css>; rel=preload; as=style" {
				t.Fatalf("103: status %d body %q, %d 103 with Link %v", resp.StatusCode, body, got103.Load(), link.Load())
			}
			if resp.Header.Get("Link") != "" {
				t.Fatalf("the 103's Link leaked into the final response")
			}
		})
	}
}

// TestLBStatusesOnEveryListener checks the statuses the load balancer
// makes itself, as ALB does: 503 without targets, 502 for a target that
// closes or answers garbage, 504 for a target silent past the idle
// timeout.
func TestLBStatusesOnEveryListener(t *testing.T) {
	rawTarget := func(t *testing.T, ip string, answer func(c net.Conn)) string {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					br := bufio.NewReader(c)
					if _, err := http.ReadRequest(br); err != nil {
						return // a health check connection that ended
					}
					answer(c)
				}()
			}
		}()
		return ln.Addr().String()
	}
	closer := rawTarget(t, "127.0.0.2", func(c net.Conn) {})
	garbage := rawTarget(t, "127.0.0.3", func(c net.Conn) { io.WriteString(c, "HTTP/1.1 2x0 what\r\n\r\n") })
	silent := rawTarget(t, "127.0.0.4", func(c net.Conn) { time.Sleep(3 * time.Second) })
	for _, k := range everyListener {
		t.Run(k.name, func(t *testing.T) {
			for _, tc := range []struct {
				name   string
				target string // "" registers none
				want   int
			}{
				{"no target", "", 503},
				{"target closes", closer, 502},
				{"malformed response", garbage, 502},
				{"no response within the idle timeout", silent, 504},
			} {
				t.Run(tc.name, func(t *testing.T) {
					cfg := quietGroup(k.protocol)
					cfg.IdleTimeout = 1500 * time.Millisecond
					e, addr := serveLB(t, cfg, Options{})
					if tc.target != "" {
						e.Register("tg", tc.target)
					}
					resp, _ := k.do(t, k.client(t), newRequest(t, "GET", k.scheme+"://"+addr+"/", nil))
					if resp.StatusCode != tc.want || resp.Header.Get("Server") != "awselb/2.0" {
						t.Fatalf("status %d (Server %q), want %d from the load balancer", resp.StatusCode, resp.Header.Get("Server"), tc.want)
					}
				})
			}
		})
	}
}

func TestWebSocketOverHTTPS(t *testing.T) {
	a := startBackend(t, "127.0.0.2", wsEcho())
	_, addr := startLBWith(t, "HTTPS", targetgroup.Config{}, nil, a.addr)
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade over TLS: %v %v", resp, err)
	}
	for _, msg := range []string{"ping\n", "pong\n"} {
		io.WriteString(c, msg)
		if l, err := br.ReadString('\n'); err != nil || l != msg {
			t.Fatalf("echo over TLS: %q %v", l, err)
		}
	}
}

// TestAccessLogOnEveryListener: each request leaves one access log line
// with its status and the trace id the target got.
func TestAccessLogOnEveryListener(t *testing.T) {
	a := startBackend(t, "127.0.0.2", headerEcho("a"))
	for _, k := range everyListener {
		t.Run(k.name, func(t *testing.T) {
			logs := &testutil.Buffer{}
			e, addr := serveLB(t, quietGroup(k.protocol), Options{AccessLog: logs})
			e.Register("tg", a.addr)
			_, body := k.do(t, k.client(t), newRequest(t, "GET", k.scheme+"://"+addr+"/logged", nil))
			var entry map[string]any
			if err := json.Unmarshal([]byte(logs.String()), &entry); err != nil {
				t.Fatalf("access log %q: %v", logs.String(), err)
			}
			if entry["proto"] != k.scheme || entry["target"] != "/logged" || entry["status"] != float64(200) ||
				entry["target_addr"] != a.addr || entry["trace_id"] != field(body, "trace") {
				t.Fatalf("access log line %v; the target saw trace %q", entry, field(body, "trace"))
			}
		})
	}
}

// TestClientClosedIs460: a client that closes before its request body is
// complete leaves ALB's 460 in the access log (it gets no response).
func TestClientClosedIs460(t *testing.T) {
	a := startBackend(t, "127.0.0.2", headerEcho("a"))
	logs := &testutil.Buffer{}
	e, addr := serveLB(t, quietGroup("HTTP"), Options{AccessLog: logs})
	e.Register("tg", a.addr)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
	c.Close()
	testutil.Eventually(t, 10*time.Second, logged(logs, `"status":460`))
	if !strings.Contains(logs.String(), `"target":"/upload"`) {
		t.Fatalf("access log: %s", logs.String())
	}

	// a client that gives up on a slow target is a 460 too
	slow := startBackend(t, "127.0.0.3", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(1500 * time.Millisecond)
		io.WriteString(w, "late")
	}))
	e.Register("tg", slow.addr)
	e.Deregister("tg", a.addr)
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(200 * time.Millisecond)
	c.Close()
	testutil.Eventually(t, 10*time.Second, logged(logs, `"target":"/slow"`))
	if !strings.Contains(logs.String(), `"target":"/slow","host":"x","target_group":"tg","target_addr":"`+slow.addr+`","status":460`) {
		t.Fatalf("access log: %s", logs.String())
	}
}

// TestRequestBodiesOnEveryListener: a body of known length and a body of
// unknown length (chunked to the target) reach the target whole.
func TestRequestBodiesOnEveryListener(t *testing.T) {
	a := startBackend(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body) // all of it before answering, as HTTP/1.x servers need
		if err != nil {
			w.WriteHeader(400)
			return
		}
		w.Write(b)
	}))
	big := strings.Repeat("0123456789abcdef", 10000) // 160 KB: several chunks and frames
	for _, k := range everyListener {
		t.Run(k.name, func(t *testing.T) {
			_, addr := startLBWith(t, k.protocol, targetgroup.Config{}, nil, a.addr)
			c := k.client(t)
			for _, body := range []io.Reader{strings.NewReader(big), struct{ io.Reader }{strings.NewReader(big)}} {
				req := newRequest(t, "POST", k.scheme+"://"+addr+"/echo", body)
				if resp, got := k.do(t, c, req); resp.StatusCode != 200 || got != big {
					t.Fatalf("POST with content length %d: status %d, %d bytes back", req.ContentLength, resp.StatusCode, len(got))
				}
			}
		})
	}
}

// TestHTTP10ClientOverTLS: a client that offers only ALPN http/1.0 (curl
// --http1.0) is served over HTTPS as ALB serves HTTP/1.0 clients, not
// refused at the handshake with "no application protocol".
func TestHTTP10ClientOverTLS(t *testing.T) {
	a := startBackend(t, "127.0.0.2", nameHandler("a"))
	_, addr := startLBWith(t, "HTTPS", targetgroup.Config{}, nil, a.addr)
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.0"}})
	if err != nil {
		t.Fatalf("TLS handshake offering http/1.0: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "a ") {
		t.Fatalf("HTTP/1.0 over TLS: status %d body %q", resp.StatusCode, body)
	}
}
