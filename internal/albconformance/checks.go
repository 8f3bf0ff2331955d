package albconformance

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/websocket"
)

const docs = "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/"

// Checks are the documented ALB behaviours, in the order they run.
var Checks = []Check{
	{Name: "X-Forwarded-For: without the header, the load balancer sends the client's IP address",
		Doc: docs + "x-forwarded-headers.html#x-forwarded-for-append", Run: xffCreated},
	{Name: "X-Forwarded-For: append (the default) adds the client's IP address after the addresses received",
		Doc: docs + "x-forwarded-headers.html#x-forwarded-for-append", Run: xffAppended},
	{Name: "X-Forwarded-Proto: the protocol the client used to connect to the load balancer",
		Doc: docs + "x-forwarded-headers.html#x-forwarded-proto", Run: xfProto},
	{Name: "X-Forwarded-Port: the destination port the client used to connect to the load balancer",
		Doc: docs + "x-forwarded-headers.html#x-forwarded-port", Run: xfPort},
	{Name: "X-Amzn-Trace-Id: the load balancer adds Root=1-{8 hex digits of epoch seconds}-{24 hex digits}",
		Doc: docs + "load-balancer-request-tracing.html#request-tracing-syntax", Run: traceAdded},
	{Name: "X-Amzn-Trace-Id: an incoming Root is kept and the load balancer adds its Self field",
		Doc: docs + "load-balancer-request-tracing.html#request-tracing-syntax", Run: traceKept},
	{Name: "Request routing: the method, path and query string reach the target as the client sent them",
		Doc: docs + "load-balancer-listeners.html#listener-rules", Run: requestUnchanged},
	{Name: "Round robin: requests are spread over the healthy targets of the target group",
		Doc: docs + "edit-target-group-attributes.html#modify-routing-algorithm", Run: roundRobin},
	{Name: "HTTP/2: an HTTPS listener negotiates HTTP/2 with clients that offer it; an HTTP listener serves HTTP/1.1",
		Doc: docs + "load-balancer-listeners.html#listener-configuration", Run: protocolVersion},
	{Name: "Fixed-response action: the configured status code, content type and message body",
		Doc: docs + "rule-action-types.html#fixed-response-actions", Run: fixedResponse},
	{Name: "Redirect action: #{host}, #{path} and #{query} keep the request's values; HTTP_301",
		Doc: docs + "rule-action-types.html#redirect-actions", Run: redirectPlaceholders},
	{Name: "Redirect action: to HTTPS on port 443 with HTTP_302, other components kept",
		Doc: docs + "rule-action-types.html#redirect-actions", Run: redirectToHTTPS},
	{Name: "HTTP 503: the target group has no registered targets",
		Doc: docs + "load-balancer-troubleshooting.html#http-503-issues", Run: noTargets503},
	{Name: "HTTP 502: the target closed the connection without a response",
		Doc: docs + "load-balancer-troubleshooting.html#http-502-issues", Run: closed502},
	{Name: "HTTP 502: the target sent a malformed response",
		Doc: docs + "load-balancer-troubleshooting.html#http-502-issues", Run: malformed502},
	{Name: "HTTP 460: the client closed the connection before the load balancer could respond (access log)",
		Doc: docs + "load-balancer-troubleshooting.html#http-460-issues", Run: clientClosed460},
	{Name: "HTTP 400: the client sent a malformed request",
		Doc: docs + "load-balancer-troubleshooting.html#http-400-issues", Run: malformed400},
	{Name: "HTTP 504: the target did not respond before the idle timeout elapsed",
		Doc: docs + "load-balancer-troubleshooting.html#http-504-issues", Run: slow504},
	{Name: "HTTP 463: the X-Forwarded-For request header has more than 30 IP addresses",
		Doc: docs + "load-balancer-troubleshooting.html#http-463-issues", Run: xff463},
	{Name: "HTTP 414: the request line is longer than 16 KB (quota: request line 16 K)",
		Doc: docs + "load-balancer-limits.html", Run: uri414},
	{Name: "HTTP 431: a header is longer than 16 KB or the headers total more than 64 KB (quotas: 16 K, 64 K)",
		Doc: docs + "load-balancer-limits.html", Run: headers431},
	{Name: "HTTP 100 Continue: a client that sends Expect: 100-continue gets 100 Continue, then the response",
		Doc: docs + "load-balancer-listeners.html#listener-configuration", Run: expectContinue},
	{Name: "103 Early Hints from the target reach the client before the response",
		Doc: docs + "load-balancer-listeners.html#listener-configuration", Run: earlyHints},
	{Name: "Sticky sessions (duration-based): the load balancer sets cookie AWSALB for the stickiness duration",
		Doc: docs + "sticky-sessions.html#enable-sticky-sessions", Run: lbCookieSet},
	{Name: "Sticky sessions (duration-based): requests with the AWSALB cookie go to the same target",
		Doc: docs + "sticky-sessions.html#enable-sticky-sessions", Run: lbCookieSticks},
	{Name: "Sticky sessions (application-based): when the application sets its cookie, the load balancer sets AWSALBAPP",
		Doc: docs + "sticky-sessions.html#application-based-stickiness", Run: appCookieSet},
	{Name: "Sticky sessions (application-based): requests with the AWSALBAPP cookie go to the same target",
		Doc: docs + "sticky-sessions.html#application-based-stickiness", Run: appCookieSticks},
	{Name: "WebSocket: the upgrade is relayed and messages flow both ways",
		Doc: docs + "load-balancer-listeners.html#listener-configuration", Run: webSocket},
	{Name: "Connection idle timeout: the load balancer closes a client connection idle for longer than the idle timeout",
		Doc: docs + "edit-load-balancer-attributes.html#connection-idle-timeout", Run: idleClose},
	{Name: "Target health: a target becomes unhealthy after UnhealthyThreshold failed checks, gets no requests, and is healthy again after HealthyThreshold passed ones",
		Doc: docs + "target-group-health-checks.html#target-health-states", Group: true, Run: healthStates},
	{Name: "Sticky sessions (duration-based): a cookie naming an unhealthy target gets a new target and an updated AWSALB cookie",
		Doc: docs + "sticky-sessions.html#duration-based-stickiness", Group: true, Run: stickyRepinned},
	{Name: "Target health: when every target is unhealthy, the load balancer routes requests to all of them (fail open)",
		Doc: docs + "target-group-health-checks.html#health-check-settings", Group: true, Run: failOpen},
	{Name: "Deregistration delay: a deregistered target drains (in-flight requests complete, new ones go elsewhere), then leaves the group",
		Doc: docs + "edit-target-group-attributes.html#deregistration-delay", Group: true, Run: draining},
	{Name: "Target health: a newly registered target is initial until it passes one health check, then healthy and gets requests",
		Doc: docs + "target-group-health-checks.html#target-health-states", Group: true, Run: registration},
	{Name: "Slow start: a newly healthy target's share of requests ramps up over the slow start duration",
		Doc: docs + "edit-target-group-attributes.html#slow-start-mode", Group: true, Run: slowStart},
}

// do sends a request to the listener; hdr holds extra headers ("Host"
// sets the Host header).
func (l *Listener) do(ctx context.Context, method, path string, hdr map[string]string, body io.Reader) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, l.URL.String()+path, body)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := l.Client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, b, fmt.Errorf("%s %s: reading the body: %w", method, path, err)
	}
	return resp, b, nil
}

// echo sends GET path and decodes the backend's echo.
func (l *Listener) echo(ctx context.Context, path string, hdr map[string]string) (Echo, *http.Response, error) {
	resp, b, err := l.do(ctx, "GET", path, hdr, nil)
	if err != nil {
		return Echo{}, resp, err
	}
	var e Echo
	if resp.StatusCode != 200 {
		return e, resp, fmt.Errorf("GET %s: status %d, want 200 from a target: %.200s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, resp, fmt.Errorf("GET %s: not an answer of a target: %w: %.200s", path, err, b)
	}
	return e, resp, nil
}

func header(e Echo, name string) string {
	return strings.Join(e.Header[http.CanonicalHeaderKey(name)], ", ")
}

func xffCreated(ctx context.Context, l *Listener) error {
	e, _, err := l.echo(ctx, "/xff", nil)
	if err != nil {
		return err
	}
	if got := header(e, "X-Forwarded-For"); got != "127.0.0.1" {
		return fmt.Errorf("X-Forwarded-For %q, want the client's address 127.0.0.1", got)
	}
	return nil
}

func xffAppended(ctx context.Context, l *Listener) error {
	e, _, err := l.echo(ctx, "/xff", map[string]string{"X-Forwarded-For": "203.0.113.7, 198.51.100.1"})
	if err != nil {
		return err
	}
	if got, want := header(e, "X-Forwarded-For"), "203.0.113.7, 198.51.100.1, 127.0.0.1"; got != want {
		return fmt.Errorf("X-Forwarded-For %q, want %q", got, want)
	}
	return nil
}

func xfProto(ctx context.Context, l *Listener) error {
	e, _, err := l.echo(ctx, "/proto", nil)
	if err != nil {
		return err
	}
	if got := header(e, "X-Forwarded-Proto"); got != l.Proto {
		return fmt.Errorf("X-Forwarded-Proto %q, want %q", got, l.Proto)
	}
	return nil
}

func xfPort(ctx context.Context, l *Listener) error {
	e, _, err := l.echo(ctx, "/port", nil)
	if err != nil {
		return err
	}
	if got := header(e, "X-Forwarded-Port"); got != l.Port {
		return fmt.Errorf("X-Forwarded-Port %q, want %q", got, l.Port)
	}
	return nil
}

var traceRoot = regexp.MustCompile(`^1-[0-9a-f]{8}-[0-9a-f]{24}$`)

// traceFields splits an X-Amzn-Trace-Id value into its fields.
func traceFields(v string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Split(v, ";") {
		if k, val, ok := strings.Cut(strings.TrimSpace(f), "="); ok {
			m[k] = val
		}
	}
	return m
}

func traceAdded(ctx context.Context, l *Listener) error {
	e, _, err := l.echo(ctx, "/trace", nil)
	if err != nil {
		return err
	}
	v := header(e, "X-Amzn-Trace-Id")
	root := traceFields(v)["Root"]
	if !traceRoot.MatchString(root) {
		return fmt.Errorf("X-Amzn-Trace-Id %q: want Root=1-{8 hex}-{24 hex}", v)
	}
	sec, _ := strconv.ParseInt(root[2:10], 16, 64)
	if d := time.Since(time.Unix(sec, 0)); d < -time.Minute || d > time.Minute {
		return fmt.Errorf("X-Amzn-Trace-Id %q: its time %v is not now", v, time.Unix(sec, 0).UTC())
	}
	return nil
}

func traceKept(ctx context.Context, l *Listener) error {
	const root = "1-67891233-abcdef012345678912345678"
	in := "Root=" + root + ";Sampled=1"
	e, _, err := l.echo(ctx, "/trace", map[string]string{"X-Amzn-Trace-Id": in})
	if err != nil {
		return err
	}
	v := header(e, "X-Amzn-Trace-Id")
	f := traceFields(v)
	if f["Root"] != root || f["Sampled"] != "1" || !traceRoot.MatchString(f["Self"]) {
		return fmt.Errorf("X-Amzn-Trace-Id %q reached the target as %q: want Root and Sampled kept and Self=1-{8 hex}-{24 hex} added", in, v)
	}
	return nil
}

func requestUnchanged(ctx context.Context, l *Listener) error {
	for _, m := range []string{"GET", "POST", "DELETE"} {
		path := "/a/b%20c/d?x=1&y=%2F&x=2"
		resp, b, err := l.do(ctx, m, path, nil, strings.NewReader("12345"))
		if err != nil {
			return err
		}
		var e Echo
		if err := json.Unmarshal(b, &e); err != nil || resp.StatusCode != 200 {
			return fmt.Errorf("%s %s: %d %.200s", m, path, resp.StatusCode, b)
		}
		if e.Method != m || e.Path != "/a/b c/d" || e.Query != "x=1&y=%2F&x=2" || e.BodyBytes != 5 {
			return fmt.Errorf("%s %s reached the target as %s path %q query %q with %d body bytes", m, path, e.Method, e.Path, e.Query, e.BodyBytes)
		}
	}
	return nil
}

// spread sends n requests to path and counts them by backend.
func (l *Listener) spread(ctx context.Context, path string, n int, hdr map[string]string) (map[string]int, error) {
	seen := map[string]int{}
	for range n {
		resp, _, err := l.do(ctx, "GET", path, hdr, nil)
		if err != nil {
			return seen, err
		}
		if resp.StatusCode != 200 {
			return seen, fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
		}
		seen[resp.Header.Get(BackendHeader)]++
	}
	return seen, nil
}

func roundRobin(ctx context.Context, l *Listener) error {
	seen, err := l.spread(ctx, "/rr", 20, nil)
	if err != nil {
		return err
	}
	if len(seen) != 2 {
		return fmt.Errorf("20 requests went to %v, want both targets", seen)
	}
	for b, n := range seen {
		if n < 8 {
			return fmt.Errorf("20 requests went to %v: %s got %d, round robin gives each about 10", seen, b, n)
		}
	}
	return nil
}

func protocolVersion(ctx context.Context, l *Listener) error {
	resp, _, err := l.do(ctx, "GET", "/h2", nil, nil)
	if err != nil {
		return err
	}
	want := 1
	if l.Proto == "https" {
		want = 2
	}
	if resp.ProtoMajor != want {
		return fmt.Errorf("%s listener answered over %s, want HTTP/%d", l.Proto, resp.Proto, want)
	}
	return nil
}

func fixedResponse(ctx context.Context, l *Listener) error {
	resp, b, err := l.do(ctx, "GET", "/fixed", nil, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != FixedStatus || !strings.HasPrefix(resp.Header.Get("Content-Type"), FixedType) || string(b) != FixedBody {
		return fmt.Errorf("got %d %q %q, want %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), b, FixedStatus, FixedType, FixedBody)
	}
	if resp.Header.Get(BackendHeader) != "" {
		return fmt.Errorf("a target answered a fixed-response rule")
	}
	return nil
}

func redirectPlaceholders(ctx context.Context, l *Listener) error {
	resp, _, err := l.do(ctx, "GET", "/moved/page?a=1", map[string]string{"Host": "shop.example:" + l.Port}, nil)
	if err != nil {
		return err
	}
	want := l.Proto + "://shop.example:" + l.Port + "/new/moved/page?from=shop.example&a=1"
	if got := resp.Header.Get("Location"); resp.StatusCode != 301 || got != want {
		return fmt.Errorf("got %d Location %q, want 301 %q", resp.StatusCode, got, want)
	}
	return nil
}

func redirectToHTTPS(ctx context.Context, l *Listener) error {
	resp, _, err := l.do(ctx, "GET", "/secure/x?y=1", nil, nil)
	if err != nil {
		return err
	}
	// Locally the HTTPS listener's port 443 is published on another port.
	httpsPort := strings.TrimPrefix(l.Target.HTTPS[strings.LastIndex(l.Target.HTTPS, ":"):], ":")
	want := "https://" + l.URL.Hostname() + ":" + httpsPort + "/secure/x?y=1"
	if got := resp.Header.Get("Location"); resp.StatusCode != 302 || got != want {
		return fmt.Errorf("got %d Location %q, want 302 %q", resp.StatusCode, got, want)
	}
	return nil
}

func wantStatus(ctx context.Context, l *Listener, path string, hdr map[string]string, code int) error {
	resp, b, err := l.do(ctx, "GET", path, hdr, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != code {
		return fmt.Errorf("GET %s: %d %.100q, want %d", path, resp.StatusCode, b, code)
	}
	return nil
}

func noTargets503(ctx context.Context, l *Listener) error {
	return wantStatus(ctx, l, "/empty/x", nil, 503)
}
func closed502(ctx context.Context, l *Listener) error {
	return wantStatus(ctx, l, "/?close=1", nil, 502)
}
func malformed502(ctx context.Context, l *Listener) error {
	return wantStatus(ctx, l, "/?malformed=1", nil, 502)
}

// raw sends bytes on a fresh connection and reads one response.
func (l *Listener) raw(ctx context.Context, req string) (*http.Response, error) {
	c, err := l.Dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	resp.Body.Close()
	return resp, nil
}

func clientClosed460(ctx context.Context, l *Listener) error {
	c, err := l.Dial(ctx)
	if err != nil {
		return err
	}
	target := fmt.Sprintf("/gone?sleep=1000&id=%d", time.Now().UnixNano())
	if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		c.Close()
		return err
	}
	time.Sleep(200 * time.Millisecond) // the request reaches the target
	c.Close()
	return poll(10*time.Second, func() error {
		b, err := l.Target.Targets.AccessLog(ctx)
		if err != nil {
			return err
		}
		for line := range strings.Lines(string(b)) {
			var e struct {
				Target string `json:"target"`
				Status int    `json:"status"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Target == target {
				if e.Status != 460 {
					return fmt.Errorf("access log: %s with status %d, want 460", target, e.Status)
				}
				return nil
			}
		}
		return fmt.Errorf("access log: no line for %s", target)
	})
}

func malformed400(ctx context.Context, l *Listener) error {
	resp, err := l.raw(ctx, "GET /\x01bad HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
	if err != nil {
		return err
	}
	if resp.StatusCode != 400 {
		return fmt.Errorf("malformed request: status %d, want 400", resp.StatusCode)
	}
	return nil
}

func slow504(ctx context.Context, l *Listener) error {
	start := time.Now()
	path := fmt.Sprintf("/slow?sleep=%d", (IdleTimeout + 3*time.Second).Milliseconds())
	if err := wantStatus(ctx, l, path, nil, 504); err != nil {
		return err
	}
	if took := time.Since(start); took < IdleTimeout-500*time.Millisecond || took > IdleTimeout+2*time.Second {
		return fmt.Errorf("504 after %v, want it after the idle timeout %v", took.Round(time.Millisecond), IdleTimeout)
	}
	return nil
}

func xff463(ctx context.Context, l *Listener) error {
	addrs := make([]string, 31)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("192.0.2.%d", i+1)
	}
	if err := wantStatus(ctx, l, "/xff", map[string]string{"X-Forwarded-For": strings.Join(addrs, ", ")}, 463); err != nil {
		return err
	}
	return wantStatus(ctx, l, "/xff", map[string]string{"X-Forwarded-For": strings.Join(addrs[:30], ", ")}, 200)
}

func uri414(ctx context.Context, l *Listener) error {
	long := "/" + strings.Repeat("a", 17<<10)
	resp, err := l.raw(ctx, "GET "+long+" HTTP/1.1\r\nHost: x\r\n\r\n")
	if err != nil {
		return err
	}
	if resp.StatusCode != 414 {
		return fmt.Errorf("a 17 KB request line: status %d, want 414", resp.StatusCode)
	}
	return wantStatus(ctx, l, "/"+strings.Repeat("a", 8<<10), nil, 200)
}

func headers431(ctx context.Context, l *Listener) error {
	for _, c := range []struct {
		what, headers string
	}{
		{"a 17 KB header", "X-Big: " + strings.Repeat("b", 17<<10) + "\r\n"},
		{"70 KB of 10 KB headers", strings.Repeat("X-Part: "+strings.Repeat("p", 10<<10)+"\r\n", 7)},
	} {
		resp, err := l.raw(ctx, "GET /big HTTP/1.1\r\nHost: x\r\n"+c.headers+"\r\n")
		if err != nil {
			return fmt.Errorf("%s: %w", c.what, err)
		}
		if resp.StatusCode != 431 {
			return fmt.Errorf("%s: status %d, want 431", c.what, resp.StatusCode)
		}
	}
	return wantStatus(ctx, l, "/big", map[string]string{"X-Big": strings.Repeat("b", 8<<10)}, 200)
}

func expectContinue(ctx context.Context, l *Listener) error {
	// The client waits up to 10 s for 100 Continue before it sends the
	// body; a load balancer that swallowed it would make this slow.
	tr := l.Client.Transport.(*http.Transport).Clone()
	tr.ExpectContinueTimeout = 10 * time.Second
	defer tr.CloseIdleConnections()
	got100 := false
	trace := &httptrace.ClientTrace{Got100Continue: func() { got100 = true }}
	body := strings.Repeat("c", 100000)
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), "POST", l.URL.String()+"/continue", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Expect", "100-continue")
	start := time.Now()
	resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("POST with Expect: 100-continue: %w", err)
	}
	defer resp.Body.Close()
	var e Echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != 200 {
		return fmt.Errorf("POST with Expect: 100-continue: status %d, %v", resp.StatusCode, err)
	}
	if !got100 || e.BodyBytes != int64(len(body)) || time.Since(start) > 5*time.Second {
		return fmt.Errorf("100 Continue received: %v; the target got %d of %d body bytes after %v", got100, e.BodyBytes, len(body), time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func earlyHints(ctx context.Context, l *Listener) error {
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		if code == 103 {
			hints = append(hints, h.Get("Link"))
		}
		return nil
	}}
	resp, _, err := l.do(httptrace.WithClientTrace(ctx, trace), "GET", "/hints?hints=1", nil, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || len(hints) != 1 || !strings.Contains(hints[0], "/style.css") {
		return fmt.Errorf("status %d, 103 Early Hints Link headers %q: want one with </style.css>, then 200", resp.StatusCode, hints)
	}
	return nil
}

func cookieOf(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func lbCookieSet(ctx context.Context, l *Listener) error {
	_, resp, err := l.echo(ctx, "/sticky/x", nil)
	if err != nil {
		return err
	}
	c := cookieOf(resp, "AWSALB")
	if c == nil {
		return fmt.Errorf("no AWSALB cookie in %q", resp.Header.Values("Set-Cookie"))
	}
	want := time.Now().Add(StickyDuration)
	if d := c.Expires.Sub(want); d < -time.Minute || d > time.Minute {
		return fmt.Errorf("AWSALB expires %v, want about %v (the stickiness duration %v from now)", c.Expires, want.UTC(), StickyDuration)
	}
	return nil
}

// sticks gets a stickiness cookie from path (sending extra on the first
// request) and checks that requests with it stay on one target while
// requests without it reach both.
func sticks(ctx context.Context, l *Listener, path, first, cookie string) error {
	_, resp, err := l.echo(ctx, path+first, nil)
	if err != nil {
		return err
	}
	var cookies []string
	for _, c := range resp.Cookies() {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	if cookieOf(resp, cookie) == nil {
		return fmt.Errorf("no %s cookie in %q", cookie, resp.Header.Values("Set-Cookie"))
	}
	pinned := resp.Header.Get(BackendHeader)
	seen, err := l.spread(ctx, path, 20, map[string]string{"Cookie": strings.Join(cookies, "; ")})
	if err != nil {
		return err
	}
	if len(seen) != 1 || seen[pinned] != 20 {
		return fmt.Errorf("20 requests with the cookie of %s went to %v", pinned, seen)
	}
	if seen, err := l.spread(ctx, path, 10, nil); err != nil || len(seen) != 2 {
		return fmt.Errorf("10 requests without the cookie went to %v (%v), want both targets", seen, err)
	}
	return nil
}

func lbCookieSticks(ctx context.Context, l *Listener) error {
	return sticks(ctx, l, "/sticky/x", "", "AWSALB")
}

func appCookieSet(ctx context.Context, l *Listener) error {
	_, resp, err := l.echo(ctx, "/appsticky/x", nil)
	if err != nil {
		return err
	}
	if c := cookieOf(resp, "AWSALBAPP-0"); c != nil {
		return fmt.Errorf("AWSALBAPP-0 set although the application set no cookie")
	}
	_, resp, err = l.echo(ctx, "/appsticky/x?setcookie="+AppCookie, nil)
	if err != nil {
		return err
	}
	if cookieOf(resp, AppCookie) == nil || cookieOf(resp, "AWSALBAPP-0") == nil {
		return fmt.Errorf("want cookies %s and AWSALBAPP-0, got %q", AppCookie, resp.Header.Values("Set-Cookie"))
	}
	return nil
}

func appCookieSticks(ctx context.Context, l *Listener) error {
	return sticks(ctx, l, "/appsticky/x", "?setcookie="+AppCookie, "AWSALBAPP-0")
}

func webSocket(ctx context.Context, l *Listener) error {
	scheme := "ws"
	if l.Proto == "https" {
		scheme = "wss"
	}
	cfg, err := websocket.NewConfig(scheme+"://"+l.URL.Host+"/ws", l.URL.String())
	if err != nil {
		return err
	}
	cfg.TlsConfig = &tls.Config{InsecureSkipVerify: true}
	ws, err := cfg.DialContext(ctx)
	if err != nil {
		return fmt.Errorf("WebSocket handshake: %w", err)
	}
	defer ws.Close()
	ws.SetDeadline(time.Now().Add(10 * time.Second))
	for _, msg := range []string{"hello", strings.Repeat("x", 70000), "bye"} {
		if err := websocket.Message.Send(ws, msg); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		var got string
		for len(got) < len(msg) {
			var part string
			if err := websocket.Message.Receive(ws, &part); err != nil {
				return fmt.Errorf("receive: %w", err)
			}
			got += part
		}
		if got != msg {
			return fmt.Errorf("echo of a %d-byte message came back as %d bytes", len(msg), len(got))
		}
	}
	return nil
}

func idleClose(ctx context.Context, l *Listener) error {
	c, err := l.Dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(IdleTimeout + 10*time.Second))
	if _, err := io.WriteString(c, "GET /idle HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	idleSince := time.Now()
	_, err = r.ReadByte()
	took := time.Since(idleSince)
	switch {
	case err == nil:
		return fmt.Errorf("the load balancer sent bytes on an idle connection")
	case !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset"):
		return fmt.Errorf("idle connection: %w (want it closed after %v)", err, IdleTimeout)
	case took < IdleTimeout-500*time.Millisecond || took > IdleTimeout+3*time.Second:
		return fmt.Errorf("idle connection closed after %v, want the idle timeout %v", took.Round(time.Millisecond), IdleTimeout)
	}
	return nil
}

// --- target-group checks ---

// healthy waits until every target of group is healthy and there are
// want of them, and returns their addresses.
func healthy(ctx context.Context, l *Listener, group string, want int, limit time.Duration) ([]string, error) {
	var addrs []string
	err := poll(limit, func() error {
		hs, err := l.Target.Targets.Health(ctx, group)
		if err != nil {
			return err
		}
		addrs = addrs[:0]
		for _, h := range hs {
			if h.State != "healthy" {
				return fmt.Errorf("target group %s: %v, want %d healthy targets", group, hs, want)
			}
			addrs = append(addrs, h.Addr)
		}
		if len(addrs) != want {
			return fmt.Errorf("target group %s: %v, want %d healthy targets", group, hs, want)
		}
		return nil
	})
	slices.Sort(addrs)
	return addrs, err
}

// healthLimit bounds a health state change: the thresholds' checks, one
// more interval, and slack for a busy machine.
func healthLimit(threshold int) time.Duration {
	return time.Duration(threshold+1)*HealthInterval + 10*time.Second
}

// steady is a group check's start and end: both targets of every target
// group healthy (a replacement takes a launch and HealthyThreshold checks).
func steady(ctx context.Context, l *Listener) ([]string, error) {
	addrs, err := healthy(ctx, l, "echo", 2, 90*time.Second)
	if err == nil && !slices.Equal(addrs, l.Target.settled) {
		l.Target.settled, l.Target.settledAt = addrs, time.Now()
	}
	return addrs, err
}

func stateOf(ctx context.Context, l *Listener, group, addr string) (string, error) {
	hs, err := l.Target.Targets.Health(ctx, group)
	if err != nil {
		return "", err
	}
	for _, h := range hs {
		if h.Addr == addr {
			return h.State, nil
		}
	}
	return "", nil
}

func waitState(ctx context.Context, l *Listener, group, addr, want string, limit time.Duration) error {
	return poll(limit, func() error {
		st, err := stateOf(ctx, l, group, addr)
		if err != nil {
			return err
		}
		if st != want {
			return fmt.Errorf("target %s is %q, want %q", addr, st, want)
		}
		return nil
	})
}

func healthStates(ctx context.Context, l *Listener) (err error) {
	addrs, err := steady(ctx, l)
	if err != nil {
		return err
	}
	a := addrs[0]
	if err := l.Target.Targets.SetHealthy(ctx, a, false); err != nil {
		return err
	}
	defer func() {
		if rerr := l.Target.Targets.SetHealthy(ctx, a, true); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if err := waitState(ctx, l, "echo", a, "unhealthy", healthLimit(UnhealthyThreshold)); err != nil {
		return err
	}
	seen, err := l.spread(ctx, "/health-states", 20, nil)
	if err != nil {
		return err
	}
	if seen[a] != 0 {
		return fmt.Errorf("unhealthy target %s got %d of 20 requests", a, seen[a])
	}
	if err := l.Target.Targets.SetHealthy(ctx, a, true); err != nil {
		return err
	}
	if err := waitState(ctx, l, "echo", a, "healthy", healthLimit(HealthyThreshold)); err != nil {
		return err
	}
	seen, err = l.spread(ctx, "/health-states", 20, nil)
	if err == nil && seen[a] == 0 {
		err = fmt.Errorf("target %s is healthy again but got none of 20 requests", a)
	}
	return err
}

func stickyRepinned(ctx context.Context, l *Listener) (err error) {
	if _, err := steady(ctx, l); err != nil {
		return err
	}
	_, resp, err := l.echo(ctx, "/sticky/repin", nil)
	if err != nil {
		return err
	}
	c := cookieOf(resp, "AWSALB")
	if c == nil {
		return fmt.Errorf("no AWSALB cookie in %q", resp.Header.Values("Set-Cookie"))
	}
	a := resp.Header.Get(BackendHeader)
	if err := l.Target.Targets.SetHealthy(ctx, a, false); err != nil {
		return err
	}
	defer func() {
		if rerr := l.Target.Targets.SetHealthy(ctx, a, true); rerr != nil && err == nil {
			err = rerr
		}
		if _, serr := steady(ctx, l); serr != nil && err == nil {
			err = serr
		}
	}()
	if err := waitState(ctx, l, "sticky", a, "unhealthy", healthLimit(UnhealthyThreshold)); err != nil {
		return err
	}
	_, resp, err = l.echo(ctx, "/sticky/repin", map[string]string{"Cookie": "AWSALB=" + c.Value})
	if err != nil {
		return err
	}
	b := resp.Header.Get(BackendHeader)
	nc := cookieOf(resp, "AWSALB")
	if b == a || nc == nil || nc.Value == c.Value {
		return fmt.Errorf("a request with the cookie of unhealthy %s went to %s with AWSALB %v, want another target and a new cookie", a, b, nc)
	}
	seen, err := l.spread(ctx, "/sticky/repin", 10, map[string]string{"Cookie": "AWSALB=" + nc.Value})
	if err == nil && seen[b] != 10 {
		err = fmt.Errorf("10 requests with the updated cookie went to %v, want all on %s", seen, b)
	}
	return err
}

func failOpen(ctx context.Context, l *Listener) (err error) {
	addrs, err := steady(ctx, l)
	if err != nil {
		return err
	}
	defer func() {
		for _, a := range addrs {
			if rerr := l.Target.Targets.SetHealthy(ctx, a, true); rerr != nil && err == nil {
				err = rerr
			}
		}
		if _, serr := steady(ctx, l); serr != nil && err == nil {
			err = serr
		}
	}()
	for _, a := range addrs {
		if err := l.Target.Targets.SetHealthy(ctx, a, false); err != nil {
			return err
		}
	}
	for _, a := range addrs {
		if err := waitState(ctx, l, "echo", a, "unhealthy", healthLimit(UnhealthyThreshold)); err != nil {
			return err
		}
	}
	seen, err := l.spread(ctx, "/fail-open", 20, nil)
	if err != nil {
		return err
	}
	if len(seen) != 2 {
		return fmt.Errorf("with every target unhealthy, 20 requests went to %v, want both targets", seen)
	}
	return nil
}

// replacement waits for a target of group that is not in old and returns it.
func replacement(ctx context.Context, l *Listener, group string, old []string, limit time.Duration) (string, error) {
	var found string
	err := poll(limit, func() error {
		hs, err := l.Target.Targets.Health(ctx, group)
		if err != nil {
			return err
		}
		for _, h := range hs {
			if !slices.Contains(old, h.Addr) {
				found = h.Addr
				return nil
			}
		}
		return fmt.Errorf("no new target in %s: %v", group, hs)
	})
	return found, err
}

func draining(ctx context.Context, l *Listener) error {
	if _, err := steady(ctx, l); err != nil {
		return err
	}
	// Pin a session to a target of group sticky and keep a request to it
	// in flight (shorter than the deregistration delay).
	var cookie, a string
	err := poll(10*time.Second, func() error {
		_, resp, err := l.echo(ctx, "/sticky/drain", nil)
		if err != nil {
			return err
		}
		c := cookieOf(resp, "AWSALB")
		if c == nil {
			return fmt.Errorf("no AWSALB cookie")
		}
		cookie, a = "AWSALB="+c.Value, resp.Header.Get(BackendHeader)
		return nil
	})
	if err != nil {
		return err
	}
	// in flight long enough to see the target draining, shorter than the
	// idle timeout and the deregistration delay
	inflight := min(IdleTimeout, DeregistrationDelay) - 1500*time.Millisecond
	type result struct {
		backend string
		err     error
	}
	done := make(chan result, 1)
	go func() {
		e, _, err := l.echo(ctx, fmt.Sprintf("/sticky/drain?sleep=%d", inflight.Milliseconds()), map[string]string{"Cookie": cookie})
		done <- result{e.Backend, err}
	}()
	time.Sleep(300 * time.Millisecond) // the request reaches the target
	if err := l.Target.Targets.Terminate(ctx, a); err != nil {
		return err
	}
	if st, err := stateOf(ctx, l, "sticky", a); err != nil || st != "draining" {
		return fmt.Errorf("deregistered target %s with a request in flight is %q (%v), want draining", a, st, err)
	}
	seen, err := l.spread(ctx, "/sticky/drain", 10, nil)
	if err != nil {
		return err
	}
	if seen[a] != 0 {
		return fmt.Errorf("draining target %s got %d of 10 new requests", a, seen[a])
	}
	r := <-done
	if r.err != nil || r.backend != a {
		return fmt.Errorf("the request in flight on %s when it was deregistered: answered by %q, %v", a, r.backend, r.err)
	}
	if err := waitState(ctx, l, "sticky", a, "", DeregistrationDelay+10*time.Second); err != nil {
		return fmt.Errorf("after the deregistration delay: %w", err)
	}
	_, err = steady(ctx, l)
	return err
}

func registration(ctx context.Context, l *Listener) error {
	addrs, err := steady(ctx, l)
	if err != nil {
		return err
	}
	if err := l.Target.Targets.Terminate(ctx, addrs[0]); err != nil {
		return err
	}
	n, err := replacement(ctx, l, "echo", addrs, 60*time.Second)
	if err != nil {
		return err
	}
	if st, err := stateOf(ctx, l, "echo", n); err != nil || st != "initial" {
		return fmt.Errorf("new target %s is %q (%v), want initial", n, st, err)
	}
	if err := waitState(ctx, l, "echo", n, "healthy", healthLimit(HealthyThreshold)); err != nil {
		return err
	}
	seen, err := l.spread(ctx, "/registered", 20, nil)
	if err == nil && seen[n] == 0 {
		err = fmt.Errorf("healthy new target %s got none of 20 requests: %v", n, seen)
	}
	if err != nil {
		return err
	}
	_, err = steady(ctx, l)
	return err
}

// balanced waits until n requests to path split about evenly over want
// targets: none of them is in slow start any more.
func balanced(ctx context.Context, l *Listener, path string, want int, limit time.Duration) error {
	const n = 100
	return poll(limit, func() error {
		seen, err := l.spread(ctx, path, n, nil)
		if err != nil {
			return err
		}
		if len(seen) != want {
			return fmt.Errorf("%d requests went to %v, want %d targets", n, seen, want)
		}
		for _, c := range seen {
			if c < n*7/(10*want) {
				return fmt.Errorf("%d requests went to %v, want about %d each", n, seen, n/want)
			}
		}
		return nil
	})
}

func slowStart(ctx context.Context, l *Listener) error {
	addrs, err := steady(ctx, l)
	if err != nil {
		return err
	}
	// A target that an earlier check registered may still be in slow
	// start itself: wait until the one that stays is past it.
	select {
	case <-time.After(time.Until(l.Target.settledAt.Add(SlowStart))):
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := l.Target.Targets.Terminate(ctx, addrs[0]); err != nil {
		return err
	}
	n, err := replacement(ctx, l, "slowstart", addrs, 60*time.Second)
	if err != nil {
		return err
	}
	if err := waitState(ctx, l, "slowstart", n, "healthy", healthLimit(HealthyThreshold)); err != nil {
		return err
	}
	// Just healthy: its weight is far below the old target's.
	const n100 = 100
	seen, err := l.spread(ctx, "/slowstart/x", n100, nil)
	if err != nil {
		return err
	}
	if seen[n] > 35 {
		return fmt.Errorf("a target just out of initial got %d of %d requests (%v); slow start gives it far less than half", seen[n], n100, seen)
	}
	// At the end of the ramp: its fair share.
	if err := balanced(ctx, l, "/slowstart/x", 2, SlowStart+20*time.Second); err != nil {
		return err
	}
	_, err = steady(ctx, l)
	return err
}
