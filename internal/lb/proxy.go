package lb

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
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
	e  *Engine
	ls *listenerState
	c  net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
	h  *head
	m  meta // the current request as the shared path sees it

	xffBuf []byte    // several X-Forwarded-For lines joined
	start  time.Time // when the current request's head was read
}

var _ exchange = (*connState)(nil)

func (e *Engine) serveConn(c net.Conn, ls *listenerState, proto, port string) {
	e.metrics.activeConns.Add(1)
	defer e.metrics.activeConns.Add(-1)
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("connection handler panicked", "panic", r)
		}
	}()
	cs := &connState{e: e, ls: ls, c: c, m: meta{proto: proto, port: port}}
	cs.r = readers.Get().(*bufio.Reader)
	cs.r.Reset(c)
	cs.w = writers.Get().(*bufio.Writer)
	cs.w.Reset(c)
	cs.h = heads.Get().(*head)
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		cs.m.ip = a.IP.String()
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
			code := 0
			switch {
			case errors.Is(err, errURITooLong):
				code = 414
			case errors.Is(err, errTooLarge):
				code = 431
			case errors.Is(err, errBadRequest):
				code = 400
			}
			if code != 0 {
				cs.e.refuse(code)
				cs.reply(code, "", "", "", false)
			}
			cs.w.Flush()
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

// reply writes a response the load balancer makes itself.
func (cs *connState) reply(code int, location, ctype, body string, keep bool) bool {
	w := cs.w
	w.WriteString("HTTP/1.1 ")
	w.WriteString(strconv.Itoa(code))
	w.WriteString(" " + statusText(code) + "\r\nServer: awselb/2.0\r\n")
	if location != "" {
		w.WriteString("Location: " + location + "\r\n")
	}
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
	h, m := cs.h, &cs.m
	m.method, m.target, m.host, m.xff, m.trace = h.method, h.target, h.host, h.xff, h.trace
	if h.xffLines > 1 {
		m.xff = cs.joinXFF()
	}
	m.contentLength, m.chunked, m.closeConn, m.expect = h.contentLength, h.chunked, h.closeConn, h.expect
	m.upgrade = nil
	if h.upgrade {
		m.upgrade, _ = h.get("upgrade")
	}
	m.status = 0
	cs.start = time.Now()
	return cs.e.handleRequest(cs, m, cs.ls.cfg.Load(), cs.start)
}

// joinXFF joins several X-Forwarded-For lines into one list, in order.
func (cs *connState) joinXFF() []byte {
	h := cs.h
	cs.xffBuf = cs.xffBuf[:0]
	for i := range h.hdrs {
		if equalFold(h.name(i), "x-forwarded-for") {
			if len(cs.xffBuf) > 0 {
				cs.xffBuf = append(cs.xffBuf, ", "...)
			}
			cs.xffBuf = append(cs.xffBuf, h.value(i)...)
		}
	}
	return cs.xffBuf
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
	return &Request{Method: string(h.method), Host: host, Path: path, RawQuery: rawQuery, SourceIP: net.ParseIP(cs.m.ip),
		Header: func(n string) (string, bool) { v, ok := h.get(n); return string(v), ok }}
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

func (cs *connState) stickyID(name string) string {
	h := cs.h
	for i := range h.hdrs {
		if equalFold(h.name(i), "cookie") {
			if id := cookieTarget(h.value(i), name); id != "" {
				return id
			}
		}
	}
	return ""
}

// writeHead copies the request line and headers as the client sent them.
func (cs *connState) writeHead(w *bufio.Writer) {
	h := cs.h
	w.Write(h.raw[h.line[0]:h.line[1]])
	w.WriteString("\r\n")
	for i := range h.hdrs {
		if replaced(h.name(i)) {
			continue
		}
		w.Write(h.raw[h.hdrs[i][0]:h.hdrs[i][3]])
		w.WriteString("\r\n")
	}
}

func (cs *connState) writeBody(w *bufio.Writer) error {
	var err error
	switch {
	case cs.h.chunked:
		err = copyChunked(w, cs.r, false, true)
	case cs.h.contentLength > 0:
		err = copyBody(w, cs.r, cs.h.contentLength)
	}
	if err != nil {
		return errors.Join(errClient, err)
	}
	return nil
}

// clientGone reports whether the client closed its connection while the
// target took its time. It is asked only of slow responses: it costs two
// deadline changes and up to a millisecond.
func (cs *connState) clientGone() bool {
	if cs.r.Buffered() > 0 {
		return false // a pipelined request is waiting: the client is there
	}
	// a read that barely waits (an expired deadline would fail before
	// reading): a closed connection answers EOF at once
	cs.c.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := cs.r.Peek(1)
	cs.c.SetReadDeadline(time.Now().Add(cs.e.cfg.Load().IdleTimeout))
	return err != nil && !isTimeout(err)
}

// interim relays a 1xx response head as it came, and flushes it; an
// HTTP/1.0 client gets none (RFC 9110 15.2).
func (cs *connState) interim(rh *head) error {
	if !cs.h.proto11 {
		return nil
	}
	w := cs.w
	w.Write(rh.raw[rh.line[0]:rh.line[1]])
	w.WriteString("\r\n")
	for i := range rh.hdrs {
		if hopByHop(rh.name(i)) {
			continue
		}
		w.Write(rh.raw[rh.hdrs[i][0]:rh.hdrs[i][3]])
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	return w.Flush()
}

// relay copies the response head and body from u to the client.
func (cs *connState) relay(g *group, t *targetgroup.Target, p *pool, u *upConn) (keep, hijacked bool, err error) {
	rh, w := &u.hd, cs.w
	if time.Since(cs.start) > time.Second && cs.clientGone() {
		u.c.Close()
		return false, false, errClient // ALB's 460
	}
	keep = !cs.m.closeConn
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
		if c := stickyCookie(st, t, rh.setsCookie); c != "" {
			w.WriteString("Set-Cookie: " + c + "\r\n")
		}
	}
	w.WriteString("\r\n")
	if rh.status == 101 {
		if err := w.Flush(); err != nil {
			u.c.Close()
			return false, false, nil
		}
		cs.tunnel(g, t, u)
		return false, true, nil
	}
	var cerr error
	switch {
	case noBody:
	case rh.chunked:
		cerr = copyChunked(w, u.r, true, true)
	case rh.contentLength >= 0:
		cerr = copyBody(w, u.r, rh.contentLength)
	default:
		_, cerr = streamUntilEOF(w, u.r)
	}
	if cerr != nil {
		// the response has started: nothing to retry; end the client side
		u.c.Close()
		return false, false, nil
	}
	if upstreamReusable {
		p.put(u)
	} else {
		u.c.Close()
	}
	return keep, false, nil
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
