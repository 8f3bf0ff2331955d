package lb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/moat-dev/moat/internal/targetgroup"
)

// This file is the one request path of every listener, whatever the
// client speaks (HTTP/1.1, HTTP/1.1 over TLS, HTTP/2): routing, target
// choice with stickiness, retry on connect failure with passive ejection,
// the forwarded headers, the upstream exchange (HTTP/1.1 to targets, over
// the engine's keep-alive pool), LB-generated statuses, metrics and the
// access log. A client protocol supplies an exchange; the HTTP/1.1 engine
// (connState) and the HTTP/2 handler (h2Exchange) are the two.

// exchange is one client request being served.
type exchange interface {
	// request is the rule-matching view of the request.
	request() *Request
	// stickyID is the target id in the stickiness cookie name, or "".
	stickyID(name string) string
	// writeHead writes the request line and the client's headers for the
	// target, each line ending in CRLF, leaving out hop-by-hop headers and
	// those the load balancer sets (X-Forwarded-*, X-Amzn-Trace-Id).
	writeHead(w *bufio.Writer)
	// writeBody writes the request body (chunked when m.chunked); read
	// errors are wrapped in errClient.
	writeBody(w *bufio.Writer) error
	// interim relays a 1xx response (not 101) at once.
	interim(rh *head) error
	// relay sends the final response from u to the client. keep says
	// whether the client connection may serve another request; a nil
	// error means the response was relayed or the client went away after
	// it started; errClient, that the client left before it (460).
	relay(g *group, t *targetgroup.Target, p *pool, u *upConn) (keep, hijacked bool, err error)
	// reply sends a response the load balancer makes itself.
	reply(code int, location, ctype, body string, keep bool) bool
}

// meta is what the shared path knows of a request.
type meta struct {
	ip, proto, port      string
	method, target, host []byte
	xff, trace           []byte        // incoming X-Forwarded-For and X-Amzn-Trace-Id
	contentLength        int64         // -1 when unknown
	chunked              bool          // the body goes to the target chunked
	closeConn            bool          // the client asked to close after this request
	upgrade              []byte        // the Upgrade header of a Connection: upgrade request
	expect               bool          // Expect: 100-continue, relayed to the target
	traceOut             []byte        // the X-Amzn-Trace-Id sent to the target
	status               int           // the status sent to the client (for logs and metrics)
	ttfb                 time.Duration // from start to the target's response head
}

func (m *meta) hasBody() bool { return m.chunked || m.contentLength > 0 }

// ALB's own statuses.
const (
	statusClientClosed = 460 // the client closed before the response; logged only
	statusXFFTooLong   = 463 // X-Forwarded-For with more than maxXFF addresses
	maxXFF             = 30
)

// handleRequest routes one request and answers it: fixed response,
// redirect or forward. It reports whether the client connection may serve
// another request, and whether it was handed to a tunnel.
func (e *Engine) handleRequest(x exchange, m *meta, lc *Listener, start time.Time) (keep, hijacked bool) {
	keep = !m.closeConn
	if xffCount(m.xff) > maxXFF {
		m.status = statusXFFTooLong
		e.refuse(m.status)
		e.logAccess(m, nil, nil, start)
		return x.reply(statusXFFTooLong, "", "", "", false), false
	}
	act := &lc.DefaultAction
	var req *Request
	if len(lc.Rules) > 0 || act.Type == ActionRedirect {
		req = x.request()
		act = Route(lc, req)
	}
	if act.Type != ActionForward && m.hasBody() {
		keep = false // the body is not read: close instead
	}
	switch act.Type {
	case ActionFixed:
		m.status = act.Fixed.StatusCode
		e.other.fromELB(m.status)
		return x.reply(act.Fixed.StatusCode, "", orDefault(act.Fixed.ContentType, "text/plain"), act.Fixed.Body, keep), false
	case ActionRedirect:
		code := act.Redirect.StatusCode
		if code == 0 {
			code = 302
		}
		m.status = code
		e.other.fromELB(code)
		return x.reply(code, RedirectURL(act.Redirect, req, m.proto, m.port), "", "", keep), false
	}
	g := e.pickGroup(act.Forward)
	if g == nil {
		m.status = 503
		e.other.fromELB(503)
		return x.reply(503, "", "", "", false), false
	}
	return e.forward(x, m, g, start)
}

// forward sends the request to a target of g. A connection that fails
// before anything was sent ejects the target and the request goes to
// another one; so does an idempotent bodiless request whose connection
// broke before a response. A timeout after the request was sent is a 504.
func (e *Engine) forward(x exchange, m *meta, g *group, start time.Time) (keep, hijacked bool) {
	var triedArr [4]*targetgroup.Target
	tried := triedArr[:0]
	stickyID := ""
	if st := g.sticky.Load(); st.Type != "" {
		stickyID = x.stickyID(stickyCookieName(st))
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		t := g.tg.PickSticky(stickyID, tried)
		if t == nil {
			code := 503 // no registered target (none healthy and fail-open empty)
			counted := g.none
			if attempt > 0 {
				code, counted = failStatus(lastErr), g.pool(tried[len(tried)-1]).cell
			}
			return e.fail(x, m, g, nil, counted, code, start), false
		}
		tried = append(tried, t)
		p := g.pool(t)
		t.Begin()
		keep, hijacked, sent, err := e.tryTarget(x, m, g, t, p, start)
		t.End()
		if err == nil {
			p.cell.fromTarget(m.status, m.ttfb)
			e.metrics.observe(g, start)
			e.logAccess(m, g, t, start)
			return keep, hijacked
		}
		if errors.Is(err, errClient) {
			m.status = statusClientClosed
			p.cell.fromELB(m.status)
			e.metrics.observe(g, start)
			e.logAccess(m, g, t, start)
			return false, false
		}
		if !sent {
			if g.tg.Eject(t.ID) {
				g.m.ejections.Inc()
			}
		} else if isTimeout(err) || m.hasBody() || !idempotent(m.method) {
			return e.fail(x, m, g, t, p.cell, failStatus(err), start), false
		}
		lastErr = err
		if attempt >= 3 {
			return e.fail(x, m, g, t, p.cell, failStatus(err), start), false
		}
		g.m.retries.Inc()
	}
}

// fail answers with an LB-generated error status and records it, counted
// in c (the target's cell, or the group's for no target).
func (e *Engine) fail(x exchange, m *meta, g *group, t *targetgroup.Target, c *cell, code int, start time.Time) bool {
	m.status = code
	c.fromELB(code)
	e.metrics.observe(g, start)
	e.logAccess(m, g, t, start)
	return x.reply(code, "", "", "", false)
}

// failStatus is ALB's status for a failed exchange with a target: 504
// when connecting or waiting for the response timed out, 502 otherwise
// (connection refused or reset, malformed response).
func failStatus(err error) int {
	if isTimeout(err) {
		return 504
	}
	return 502
}

var errClient = errors.New("client connection failed")

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

// continueWait is how long a request with Expect: 100-continue waits for
// the target's answer before its body is sent anyway (as curl does).
const continueWait = time.Second

// tryTarget runs the request against t over a pooled or new connection.
// sent reports whether request bytes may have reached the target. A nil
// error means a response was relayed (or the client went away after it
// started).
func (e *Engine) tryTarget(x exchange, m *meta, g *group, t *targetgroup.Target, p *pool, start time.Time) (keep, hijacked, sent bool, err error) {
	u := p.get()
	for {
		if u == nil {
			c, derr := e.dial(t.Addr)
			if derr != nil {
				return false, false, false, derr
			}
			u = newUpConn(c, e.cfg.Load().IdleTimeout)
		}
		writeRequestHead(x, m, u.w)
		var werr error
		answered := false // the target answered before the body was sent
		if m.expect && m.hasBody() {
			if werr = u.w.Flush(); werr == nil {
				answered, werr = awaitContinue(x, u)
			}
			if werr != nil && u.hot && isEOF(werr) {
				u.c.Close()
				u = nil // stale keep-alive connection, no body sent yet: redial
				continue
			}
		}
		if werr == nil && !answered {
			werr = x.writeBody(u.w)
			if werr == nil {
				werr = u.w.Flush()
			}
		}
		if werr != nil {
			u.c.Close()
			if errors.Is(werr, errClient) {
				return false, false, true, werr
			}
			if u.hot && !m.hasBody() {
				u = nil // stale keep-alive connection: redial the same target
				continue
			}
			return false, false, u.hot, werr
		}
		if !answered {
			if rerr := u.hd.readHead(u.r, false); rerr != nil {
				u.c.Close()
				if u.hot && isEOF(rerr) && idempotent(m.method) && !m.hasBody() {
					u = nil
					continue
				}
				return false, false, true, rerr
			}
		}
		if answered && u.hd.status >= 200 {
			m.closeConn = true // the body was never read
		}
		break
	}
	for u.hd.status < 200 && u.hd.status != 101 {
		if err := x.interim(&u.hd); err != nil {
			u.c.Close()
			return false, false, true, errors.Join(errClient, err)
		}
		if err := u.hd.readHead(u.r, false); err != nil {
			u.c.Close()
			return false, false, true, err
		}
	}
	m.status, m.ttfb = u.hd.status, time.Since(start)
	keep, hijacked, err = x.relay(g, t, p, u)
	return keep, hijacked, true, err
}

// awaitContinue waits up to continueWait for the target's answer to
// Expect: 100-continue. A 100 is relayed and the body follows; a final
// response is left in u.hd (answered); silence means send the body.
func awaitContinue(x exchange, u *upConn) (answered bool, err error) {
	u.c.SetReadDeadline(time.Now().Add(continueWait))
	_, perr := u.r.Peek(1)
	u.refreshed = time.Time{} // the next read sets the idle deadline again
	u.c.SetReadDeadline(time.Now().Add(u.idle))
	if perr != nil {
		if isTimeout(perr) {
			return false, nil
		}
		return false, perr
	}
	if err := u.hd.readHead(u.r, false); err != nil {
		return false, err
	}
	if u.hd.status == 100 {
		if err := x.interim(&u.hd); err != nil {
			return false, errors.Join(errClient, err)
		}
		return false, nil
	}
	return true, nil
}

// dial opens a connection to a target, bounded by the connect timeout.
func (e *Engine) dial(addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.Load().ConnectTimeout)
	defer cancel()
	return e.opts.Dial(ctx, "tcp", addr)
}

// writeRequestHead writes the request head for the target: the client's
// request line and headers, then the load balancer's.
func writeRequestHead(x exchange, m *meta, w *bufio.Writer) {
	x.writeHead(w)
	w.WriteString("X-Forwarded-For: ")
	if len(m.xff) > 0 {
		w.Write(m.xff)
		w.WriteString(", ")
	}
	w.WriteString(m.ip)
	w.WriteString("\r\nX-Forwarded-Proto: ")
	w.WriteString(m.proto)
	w.WriteString("\r\nX-Forwarded-Port: ")
	w.WriteString(m.port)
	m.traceOut = traceHeader(m.traceOut[:0], m.trace, time.Now().Unix(), rand.Uint64(), rand.Uint32())
	w.WriteString("\r\nX-Amzn-Trace-Id: ")
	w.Write(m.traceOut)
	w.WriteString("\r\n")
	if m.upgrade != nil {
		w.WriteString("Connection: Upgrade\r\nUpgrade: ")
		w.Write(m.upgrade)
		w.WriteString("\r\n")
	}
	if m.chunked {
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	w.WriteString("\r\n")
}

// xffCount is the number of addresses in an X-Forwarded-For value.
func xffCount(v []byte) int {
	if len(bytes.TrimSpace(v)) == 0 {
		return 0
	}
	return bytes.Count(v, []byte(",")) + 1
}

const hexDigits = "0123456789abcdef"

// traceHeader appends to dst the X-Amzn-Trace-Id the target gets, as ALB
// makes it: with no valid Root field in the incoming value, a new
// Root=1-<8 hex epoch seconds>-<24 hex>; otherwise Self=1-... followed by
// the incoming fields (an old Self dropped), so the Root is kept.
func traceHeader(dst, in []byte, now int64, r1 uint64, r2 uint32) []byte {
	hasRoot := false
	for f := range bytes.SplitSeq(in, []byte(";")) {
		if v, ok := bytes.CutPrefix(bytes.TrimSpace(f), []byte("Root=")); ok && validTraceID(v) {
			hasRoot = true
		}
	}
	if hasRoot {
		dst = append(dst, "Self="...)
	} else {
		dst = append(dst, "Root="...)
	}
	dst = append(dst, "1-"...)
	for i := 7; i >= 0; i-- {
		dst = append(dst, hexDigits[(uint64(now)>>(4*i))&0xf])
	}
	dst = append(dst, '-')
	for i := 15; i >= 0; i-- {
		dst = append(dst, hexDigits[(r1>>(4*i))&0xf])
	}
	for i := 7; i >= 0; i-- {
		dst = append(dst, hexDigits[(r2>>(4*i))&0xf])
	}
	if !hasRoot {
		return dst
	}
	for f := range bytes.SplitSeq(in, []byte(";")) {
		f = bytes.TrimSpace(f)
		if len(f) == 0 || bytes.HasPrefix(f, []byte("Self=")) {
			continue
		}
		dst = append(dst, ';')
		dst = append(dst, f...)
	}
	return dst
}

// validTraceID reports whether v is 1-<8 hex>-<24 hex>.
func validTraceID(v []byte) bool {
	if len(v) != 35 || v[0] != '1' || v[1] != '-' || v[10] != '-' {
		return false
	}
	for i, c := range v[2:] {
		if i == 8 {
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func (e *Engine) logAccess(m *meta, g *group, t *targetgroup.Target, start time.Time) {
	if e.access == nil {
		return
	}
	tg, addr := "-", "-"
	if g != nil {
		tg = g.name
	}
	if t != nil {
		addr = t.Addr
	}
	e.access.Info("request", "client", m.ip, "proto", m.proto, "method", string(m.method), "target", string(m.target),
		"host", string(m.host), "target_group", tg, "target_addr", addr, "status", m.status,
		"trace_id", string(m.traceOut), "duration_ms", float64(time.Since(start).Microseconds())/1000)
}

func idempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE":
		return true
	}
	return false
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func statusText(code int) string {
	switch code {
	case statusClientClosed:
		return "Client Closed Request"
	case statusXFFTooLong:
		return "X-Forwarded-For Too Long"
	}
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "Status " + strconv.Itoa(code)
}

func stickyCookieName(st *targetgroup.Stickiness) string {
	if st.Type == targetgroup.StickyAppCookie {
		return "AWSALBAPP-0"
	}
	return "AWSALB"
}

// cookieTarget returns the decoded target id of cookie name in a Cookie
// header value, or "".
func cookieTarget[T string | []byte](v T, name string) string {
	for len(v) > 0 {
		var part T
		if i := bytes.IndexByte([]byte(v), ';'); i >= 0 {
			part, v = v[:i], v[i+1:]
		} else {
			part, v = v, v[:0]
		}
		for len(part) > 0 && (part[0] == ' ' || part[0] == '\t') {
			part = part[1:]
		}
		if len(part) > len(name) && part[len(name)] == '=' && string(part[:len(name)]) == name {
			id, err := base64.RawURLEncoding.DecodeString(string(part[len(name)+1:]))
			if err == nil {
				return string(id)
			}
		}
	}
	return ""
}

// stickyCookie is the Set-Cookie value naming t, or "" when none is due:
// always for lb_cookie, and for app_cookie when the application sets its
// cookie (setsApp).
func stickyCookie(st *targetgroup.Stickiness, t *targetgroup.Target, setsApp func(name string) bool) string {
	if st.Type == "" || st.Type == targetgroup.StickyAppCookie && !setsApp(st.AppCookieName) {
		return ""
	}
	exp := time.Now().Add(st.Duration).UTC().Format(http.TimeFormat)
	return stickyCookieName(st) + "=" + base64.RawURLEncoding.EncodeToString([]byte(t.ID)) + "; Expires=" + exp + "; Path=/"
}
