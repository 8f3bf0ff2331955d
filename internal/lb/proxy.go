package lb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/moat-dev/moat/internal/targetgroup"
)

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8<<10) }}
	heads   = sync.Pool{New: func() any { return &head{raw: make([]byte, 0, 4096), hdrs: make([][4]int, 0, 32)} }}
)

// connState is one client connection.
type connState struct {
	e      *Engine
	ls     *listenerState
	c      net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	h      *head
	ip     string
	proto  string
	port   string
	status int // status of the last relayed upstream response
}

func (e *Engine) serveConn(c net.Conn, ls *listenerState, proto, port string) {
	e.metrics.active.Inc()
	defer e.metrics.active.Dec()
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("connection handler panicked", "panic", r)
		}
	}()
	cs := &connState{e: e, ls: ls, c: c, proto: proto, port: port}
	cs.r = readers.Get().(*bufio.Reader)
	cs.r.Reset(c)
	cs.w = writers.Get().(*bufio.Writer)
	cs.w.Reset(c)
	cs.h = heads.Get().(*head)
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		cs.ip = a.IP.String()
	}
	hijacked := cs.loop()
	if !hijacked {
		c.Close()
	}
	cs.r.Reset(nil)
	readers.Put(cs.r)
	cs.w.Reset(nil)
	writers.Put(cs.w)
	heads.Put(cs.h)
}

// loop serves requests until the connection ends. It reports whether the
// connection was handed to a tunnel that closes it.
func (cs *connState) loop() bool {
	cfg := cs.e.cfg.Load()
	var lastSet time.Time // when the idle deadline was last pushed back
	for {
		if cs.r.Buffered() == 0 {
			// the idle deadline is refreshed at most once a second: a
			// deadline change costs a timer update per request otherwise
			if now := time.Now(); now.Sub(lastSet) > time.Second {
				cs.c.SetReadDeadline(now.Add(cfg.IdleTimeout))
				lastSet = now
			}
			if _, err := cs.r.Peek(1); err != nil {
				return false
			}
		}
		slow := !headBuffered(cs.r)
		if slow {
			// the head is not all here: bound the time to read it (slowloris)
			cs.c.SetReadDeadline(time.Now().Add(cfg.HeaderTimeout))
		}
		err := cs.h.readHead(cs.r, true)
		if err != nil {
			switch {
			case errors.Is(err, errTooLarge):
				cs.fail(431, "Request Header Fields Too Large")
			case errors.Is(err, errBadRequest):
				cs.fail(400, "Bad Request")
			}
			return false
		}
		if slow {
			lastSet = time.Now()
			cs.c.SetReadDeadline(lastSet.Add(cfg.IdleTimeout))
		}
		keep, hijacked := cs.handle()
		if hijacked {
			return true
		}
		if !keep {
			cs.w.Flush()
			return false
		}
		if cs.r.Buffered() == 0 {
			if cs.w.Flush() != nil {
				return false
			}
		}
	}
}

// headBuffered reports whether a complete request head is in r's buffer.
func headBuffered(r *bufio.Reader) bool {
	b, _ := r.Peek(r.Buffered())
	return bytes.Contains(b, crlfcrlf) || bytes.Contains(b, lflf)
}

var crlfcrlf, lflf = []byte("\r\n\r\n"), []byte("\n\n")

func (cs *connState) fail(code int, text string) {
	cs.w.WriteString("HTTP/1.1 " + strconv.Itoa(code) + " " + text +
		"\r\nServer: awselb/2.0\r\nContent-Type: text/html\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	cs.w.Flush()
}

func (cs *connState) simple(code int, text string, extra string, ctype, body string, keep bool) bool {
	w := cs.w
	w.WriteString("HTTP/1.1 ")
	w.WriteString(strconv.Itoa(code))
	w.WriteString(" " + text + "\r\nServer: awselb/2.0\r\n" + extra)
	if ctype != "" {
		w.WriteString("Content-Type: " + ctype + "\r\n")
	}
	w.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	if !keep {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
	if string(cs.h.method) != "HEAD" {
		w.WriteString(body)
	}
	return keep
}

// handle proxies one request whose head is in cs.h. It reports whether
// the connection may serve another request, and whether it was hijacked.
func (cs *connState) handle() (keep, hijacked bool) {
	h := cs.h
	start := time.Now()
	lc := cs.ls.cfg.Load()
	act := &lc.DefaultAction
	var req *Request
	if len(lc.Rules) > 0 || act.Type == ActionRedirect {
		req = cs.request()
		act = Route(lc, req)
	}
	keepReq := !h.closeConn
	hasBody := h.chunked || h.contentLength > 0
	switch act.Type {
	case ActionFixed:
		if hasBody {
			keepReq = false // do not read an unwanted body; close instead
		}
		return cs.simple(act.Fixed.StatusCode, statusText(act.Fixed.StatusCode), "", orDefault(act.Fixed.ContentType, "text/plain"), act.Fixed.Body, keepReq), false
	case ActionRedirect:
		if hasBody {
			keepReq = false
		}
		if req == nil {
			req = cs.request()
		}
		code := act.Redirect.StatusCode
		if code == 0 {
			code = 302
		}
		loc := RedirectURL(act.Redirect, req, cs.proto, cs.port)
		return cs.simple(code, statusText(code), "Location: "+loc+"\r\n", "", "", keepReq), false
	}
	g := cs.e.pickGroup(act.Forward)
	if g == nil {
		return cs.simple(503, "Service Unavailable", "", "", "", false), false
	}
	return cs.forward(g, start)
}

// request is the rule-matching view of the current request.
func (cs *connState) request() *Request {
	h := cs.h
	host := string(h.host)
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	path, rawQuery := string(h.target), ""
	if i := indexByte(h.target, '?'); i >= 0 {
		path, rawQuery = string(h.target[:i]), string(h.target[i+1:])
	}
	return &Request{Method: string(h.method), Host: host, Path: path, RawQuery: rawQuery, SourceIP: net.ParseIP(cs.ip),
		Header: func(n string) (string, bool) { v, ok := h.get(n); return string(v), ok }}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

func idempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE":
		return true
	}
	return false
}

// forward sends the request to a target of g, retrying on another target
// when the connection fails before anything was sent (or the request is
// idempotent and bodiless).
func (cs *connState) forward(g *group, start time.Time) (keep, hijacked bool) {
	h := cs.h
	hasBody := h.chunked || h.contentLength > 0
	var tried []*targetgroup.Target
	var triedArr [4]*targetgroup.Target
	tried = triedArr[:0]
	st := g.sticky.Load()
	stickyID := ""
	if st.Type != "" {
		stickyID = cs.cookie(stickyCookieName(st))
	}
	for attempt := 0; ; attempt++ {
		t := g.tg.PickSticky(stickyID, tried)
		if t == nil {
			if attempt == 0 {
				cs.e.metrics.observe(g, 503, start)
				return cs.simple(503, "Service Unavailable", "", "", "", false), false
			}
			cs.e.metrics.observe(g, 502, start)
			return cs.simple(502, "Bad Gateway", "", "", "", false), false
		}
		tried = append(tried, t)
		t.Begin()
		keep, hijacked, sent, err := cs.tryTarget(g, t)
		t.End()
		if err == nil {
			cs.e.metrics.observe(g, cs.status, start)
			cs.logAccess(g, t, start)
			return keep, hijacked
		}
		if errors.Is(err, errClient) {
			return false, false
		}
		if sent && (hasBody || !idempotent(h.method)) || attempt >= 3 {
			code := 502
			if isTimeout(err) {
				code = 504
			}
			cs.e.metrics.observe(g, code, start)
			return cs.simple(code, statusText(code), "", "", "", false), false
		}
		if !sent {
			if g.tg.Eject(t.ID) {
				g.m.ejections.Inc()
			}
		}
		g.m.retries.Inc()
	}
}

var errClient = errors.New("client connection failed")

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tryTarget runs the request against t. sent reports whether request
// bytes may have reached the target. A nil error means a response was
// relayed (or the client went away after it started).
func (cs *connState) tryTarget(g *group, t *targetgroup.Target) (keep, hijacked, sent bool, err error) {
	p := g.pool(t)
	u := p.get()
	for {
		if u == nil {
			c, derr := cs.e.opts.Dial(context.Background(), "tcp", t.Addr)
			if derr != nil {
				return false, false, false, derr
			}
			u = &upConn{c: c, r: bufio.NewReaderSize(c, readBufSize), w: bufio.NewWriterSize(c, 8<<10)}
		}
		werr := cs.writeRequest(u)
		if werr == nil {
			werr = u.w.Flush()
		}
		if werr != nil {
			if errors.Is(werr, errClient) {
				u.c.Close()
				return false, false, true, werr
			}
			u.c.Close()
			if u.hot && !(cs.h.chunked || cs.h.contentLength > 0) {
				u = nil // stale keep-alive connection: redial the same target
				continue
			}
			return false, false, !u.hot, werr
		}
		rerr := u.hd.readHead(u.r, false)
		if rerr != nil {
			u.c.Close()
			if u.hot && isEOF(rerr) && idempotent(cs.h.method) && !(cs.h.chunked || cs.h.contentLength > 0) {
				u = nil
				continue
			}
			return false, false, true, rerr
		}
		break
	}
	return cs.relayResponse(g, t, p, u)
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}

// writeRequest writes the request head and body to u.
func (cs *connState) writeRequest(u *upConn) error {
	h, w := cs.h, u.w
	w.Write(h.raw[h.line[0]:h.line[1]])
	w.WriteString("\r\n")
	for i := range h.hdrs {
		n := h.name(i)
		if hopByHop(n) {
			continue
		}
		w.Write(h.raw[h.hdrs[i][0]:h.hdrs[i][3]])
		w.WriteString("\r\n")
	}
	w.WriteString("X-Forwarded-For: ")
	if len(h.xff) > 0 {
		w.Write(h.xff)
		w.WriteString(", ")
	}
	w.WriteString(cs.ip)
	w.WriteString("\r\nX-Forwarded-Proto: ")
	w.WriteString(cs.proto)
	w.WriteString("\r\nX-Forwarded-Port: ")
	w.WriteString(cs.port)
	w.WriteString("\r\n")
	if h.upgrade {
		up, _ := h.get("upgrade")
		w.WriteString("Connection: Upgrade\r\nUpgrade: ")
		w.Write(up)
		w.WriteString("\r\n")
	}
	if h.chunked {
		w.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		if err := copyChunked(w, cs.r, false); err != nil {
			return errors.Join(errClient, err)
		}
		return nil
	}
	w.WriteString("\r\n")
	if h.contentLength > 0 {
		if err := copyBody(w, cs.r, h.contentLength); err != nil {
			return errors.Join(errClient, err)
		}
	}
	return nil
}

// relayResponse copies the response head and body from u to the client.
func (cs *connState) relayResponse(g *group, t *targetgroup.Target, p *pool, u *upConn) (keep, hijacked, sent bool, err error) {
	rh, w := &u.hd, cs.w
	keep = !cs.h.closeConn
	for rh.status >= 100 && rh.status < 200 && rh.status != 101 {
		// interim responses are relayed as they are
		w.Write(rh.raw[:])
		w.WriteString("\r\n")
		if err := rh.readHead(u.r, false); err != nil {
			u.c.Close()
			return false, false, true, err
		}
	}
	cs.status = rh.status
	noBody := string(cs.h.method) == "HEAD" || rh.status == 204 || rh.status == 304
	upstreamReusable := !rh.closeConn
	untilClose := !noBody && !rh.chunked && rh.contentLength < 0 && rh.status != 101
	if untilClose {
		keep = false
		upstreamReusable = false
	}
	w.Write(rh.raw[rh.line[0]:rh.line[1]])
	w.WriteString("\r\n")
	for i := range rh.hdrs {
		n := rh.name(i)
		if rh.status != 101 && hopByHop(n) && !equalFold(n, "transfer-encoding") {
			continue
		}
		if rh.status == 101 && (equalFold(n, "keep-alive") || equalFold(n, "proxy-connection")) {
			continue
		}
		w.Write(rh.raw[rh.hdrs[i][0]:rh.hdrs[i][3]])
		w.WriteString("\r\n")
	}
	if !keep && rh.status != 101 {
		w.WriteString("Connection: close\r\n")
	}
	if st := g.sticky.Load(); st.Type != "" && rh.status != 101 {
		cs.writeStickyCookie(st, t, rh)
	}
	w.WriteString("\r\n")
	if rh.status == 101 {
		if err := w.Flush(); err != nil {
			u.c.Close()
			return false, false, true, nil
		}
		cs.tunnel(g, t, u)
		return false, true, true, nil
	}
	var cerr error
	switch {
	case noBody:
	case rh.chunked:
		cerr = copyChunked(w, u.r, true)
	case rh.contentLength >= 0:
		cerr = copyBody(w, u.r, rh.contentLength)
	default:
		_, cerr = streamUntilEOF(w, u.r)
	}
	if cerr != nil {
		// the response has started: nothing to retry; end the client side
		u.c.Close()
		return false, false, true, nil
	}
	if upstreamReusable {
		p.put(u)
	} else {
		u.c.Close()
	}
	return keep, false, true, nil
}

// copyBody copies exactly n bytes from r to w straight out of r's buffer:
// unlike io.CopyN it allocates nothing (no LimitReader) and does no extra
// copy through a temporary buffer. A body shorter than n is an error.
func copyBody(w *bufio.Writer, r *bufio.Reader, n int64) error {
	for n > 0 {
		if r.Buffered() == 0 {
			if _, err := r.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		k := r.Buffered()
		if int64(k) > n {
			k = int(n)
		}
		b, _ := r.Peek(k)
		if _, err := w.Write(b); err != nil {
			return err
		}
		r.Discard(k)
		n -= int64(k)
	}
	return nil
}

// streamUntilEOF copies r to w, flushing whenever r has nothing buffered.
func streamUntilEOF(w *bufio.Writer, r *bufio.Reader) (int64, error) {
	var n int64
	buf := make([]byte, 32<<10)
	for {
		k, err := r.Read(buf)
		if k > 0 {
			w.Write(buf[:k])
			n += int64(k)
			if r.Buffered() == 0 {
				if ferr := w.Flush(); ferr != nil {
					return n, ferr
				}
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// tunnel relays bytes both ways after a 101 (WebSocket) until either side
// closes, the idle timeout passes, or the target's drain ends.
func (cs *connState) tunnel(g *group, t *targetgroup.Target, u *upConn) {
	t.Begin()
	defer t.End()
	g.addTunnel(t, u.c)
	defer g.removeTunnel(t, u.c)
	idle := cs.e.cfg.Load().IdleTimeout
	client, up := cs.c, u.c
	done := make(chan struct{}, 2)
	cp := func(dst net.Conn, src io.Reader, srcConn net.Conn) {
		buf := make([]byte, 16<<10)
		for {
			srcConn.SetReadDeadline(time.Now().Add(idle))
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
				client.SetReadDeadline(time.Now().Add(idle))
				up.SetReadDeadline(time.Now().Add(idle))
			}
			if err != nil {
				break
			}
		}
		client.Close()
		up.Close()
		done <- struct{}{}
	}
	go cp(up, cs.r, client)
	cp(client, u.r, up)
	<-done
}

func (cs *connState) logAccess(g *group, t *targetgroup.Target, start time.Time) {
	if cs.e.access == nil {
		return
	}
	cs.e.access.Info("request", "client", cs.ip, "method", string(cs.h.method), "target", string(cs.h.target),
		"host", string(cs.h.host), "target_group", g.name, "target_addr", t.Addr,
		"status", cs.status, "duration_ms", float64(time.Since(start).Microseconds())/1000)
}

func statusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Found"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	}
	return "Status " + strconv.Itoa(code)
}

func stickyCookieName(st *targetgroup.Stickiness) string {
	if st.Type == targetgroup.StickyAppCookie {
		return "AWSALBAPP-0"
	}
	return "AWSALB"
}

// cookie returns the decoded target id in request cookie name, or "".
func (cs *connState) cookie(name string) string {
	h := cs.h
	for i := range h.hdrs {
		if !equalFold(h.name(i), "cookie") {
			continue
		}
		for part := range bytes.SplitSeq(h.value(i), []byte(";")) {
			part = bytes.TrimSpace(part)
			if len(part) > len(name) && part[len(name)] == '=' && string(part[:len(name)]) == name {
				id, err := base64.RawURLEncoding.DecodeString(string(part[len(name)+1:]))
				if err == nil {
					return string(id)
				}
			}
		}
	}
	return ""
}

// writeStickyCookie adds the stickiness cookie naming t to the response:
// always for lb_cookie, and for app_cookie when the application sets its
// cookie.
func (cs *connState) writeStickyCookie(st *targetgroup.Stickiness, t *targetgroup.Target, rh *head) {
	if st.Type == targetgroup.StickyAppCookie {
		found := false
		for i := range rh.hdrs {
			if equalFold(rh.name(i), "set-cookie") && bytes.HasPrefix(rh.value(i), []byte(st.AppCookieName+"=")) {
				found = true
			}
		}
		if !found {
			return
		}
	}
	exp := time.Now().Add(st.Duration).UTC().Format(http.TimeFormat)
	cs.w.WriteString("Set-Cookie: " + stickyCookieName(st) + "=" + base64.RawURLEncoding.EncodeToString([]byte(t.ID)) +
		"; Expires=" + exp + "; Path=/\r\n")
}
