package lb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moat-dev/moat/internal/targetgroup"
)

// serveHTTP2 serves one HTTP/2 stream.
func (f *tlsFront) serveHTTP2(rw http.ResponseWriter, r *http.Request) {
	x := &h2Exchange{rw: rw, r: r}
	m := &x.m
	m.ip, _, _ = net.SplitHostPort(r.RemoteAddr)
	m.proto, m.port = "https", f.port
	m.method, m.target, m.host = []byte(r.Method), []byte(r.RequestURI), []byte(r.Host)
	if v := r.Header.Values("X-Forwarded-For"); len(v) > 0 {
		m.xff = []byte(strings.Join(v, ", "))
	}
	if v := r.Header.Get("X-Amzn-Trace-Id"); v != "" {
		m.trace = []byte(v)
	}
	m.contentLength = r.ContentLength
	m.chunked = r.ContentLength < 0
	if code := headLimit(r); code != 0 {
		// malformed or over the quotas as an HTTP/1.1 head would be (the target gets one)
		m.status = code
		f.e.refuse(code)
		x.reply(code, "", "", "", false)
		return
	}
	f.e.handleRequest(x, m, f.ls.cfg.Load(), time.Now())
	if x.abort {
		// the response started and broke: reset the stream so the client
		// sees a failure, not a short body
		panic(http.ErrAbortHandler)
	}
}

// headLimit is the status the load balancer answers when the HTTP/1.1
// head the target would get from r is one an HTTP/1.1 client could not
// send (readHead): 400 for a request target with a space or a control
// character, 414 for a request line over maxRequestLine, 431 for a header
// line over maxHeaderLine, more than maxHeaders headers or a head over
// maxHeaderTotal; else 0. Host counts as a header.
func headLimit(r *http.Request) int {
	for i := 0; i < len(r.RequestURI); i++ {
		if c := r.RequestURI[i]; c <= ' ' || c == 0x7f {
			return 400
		}
	}
	line := len(r.Method) + 1 + len(r.RequestURI) + len(" HTTP/1.1")
	if line > maxRequestLine {
		return 414
	}
	host := len("Host: ") + len(r.Host)
	if host > maxHeaderLine {
		return 431
	}
	total, n := line+2+host+2, 1
	for k, vs := range r.Header {
		for _, v := range vs {
			l := len(k) + 2 + len(v)
			total += l + 2
			n++
			if l > maxHeaderLine || n > maxHeaders || total > maxHeaderTotal {
				return 431
			}
		}
	}
	return 0
}

// h2Exchange is one HTTP/2 request; the target gets HTTP/1.1.
type h2Exchange struct {
	rw    http.ResponseWriter
	r     *http.Request
	m     meta
	abort bool
}

var _ exchange = (*h2Exchange)(nil)

func (x *h2Exchange) request() *Request {
	r := x.r
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	return &Request{Method: r.Method, Host: host, Path: r.URL.Path, RawQuery: r.URL.RawQuery, SourceIP: net.ParseIP(x.m.ip),
		Header: func(n string) (string, bool) { v := r.Header.Values(n); return firstOr(v), len(v) > 0 }}
}

func firstOr(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (x *h2Exchange) stickyID(name string) string {
	for _, v := range x.r.Header["Cookie"] {
		if id := cookieTarget(v, name); id != "" {
			return id
		}
	}
	return ""
}

// writeHead writes an HTTP/1.1 request head from the HTTP/2 request.
// Expect is left out: the HTTP/2 server answers 100-continue itself when
// the body is read.
func (x *h2Exchange) writeHead(w *bufio.Writer) {
	r := x.r
	w.WriteString(r.Method + " " + r.RequestURI + " HTTP/1.1\r\nHost: " + r.Host + "\r\n")
	for k, vs := range r.Header {
		if replaced([]byte(k)) || k == "Content-Length" || k == "Expect" || k == "Host" {
			continue
		}
		for _, v := range vs {
			w.WriteString(k + ": " + v + "\r\n")
		}
	}
	switch {
	case r.ContentLength > 0:
		w.WriteString("Content-Length: " + strconv.FormatInt(r.ContentLength, 10) + "\r\n")
	case r.ContentLength == 0 && (r.Method == "POST" || r.Method == "PUT" || r.Method == "PATCH"):
		w.WriteString("Content-Length: 0\r\n")
	}
}

func (x *h2Exchange) writeBody(w *bufio.Writer) error {
	r := x.r
	switch {
	case r.ContentLength > 0:
		n, err := io.CopyN(w, r.Body, r.ContentLength)
		if err == nil && n < r.ContentLength {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return errors.Join(errClient, err)
		}
	case r.ContentLength < 0:
		bp := chunkBufs.Get().(*[]byte)
		defer chunkBufs.Put(bp)
		buf := *bp
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.WriteString(strconv.FormatInt(int64(n), 16) + "\r\n")
				w.Write(buf[:n])
				w.WriteString("\r\n")
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return errors.Join(errClient, err)
			}
		}
		w.WriteString("0\r\n\r\n")
	}
	return nil
}

var chunkBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyHeader adds a target's response headers to h, without hop-by-hop
// ones (HTTP/2 has none).
func copyHeader(h http.Header, rh *head) {
	for i := range rh.hdrs {
		n := rh.name(i)
		if hopByHop(n) || equalFold(n, "transfer-encoding") {
			continue
		}
		h.Add(string(n), string(rh.value(i)))
	}
}

// interim relays 1xx responses but 100: the HTTP/2 server sends its own
// 100 Continue when the body is read.
func (x *h2Exchange) interim(rh *head) error {
	if rh.status == 100 {
		return nil
	}
	h := x.rw.Header()
	saved := h.Clone()
	copyHeader(h, rh)
	x.rw.WriteHeader(rh.status)
	clear(h)
	maps.Copy(h, saved)
	return nil
}

func (x *h2Exchange) relay(g *group, t *targetgroup.Target, p *pool, u *upConn) (keep, hijacked bool, err error) {
	rh := &u.hd
	if rh.status == 101 {
		u.c.Close()
		return false, false, fmt.Errorf("target %s switched protocols on an HTTP/2 request", t.Addr)
	}
	if x.r.Context().Err() != nil {
		u.c.Close()
		return false, false, errors.Join(errClient, x.r.Context().Err()) // the client reset the stream: 460
	}
	h := x.rw.Header()
	copyHeader(h, rh)
	if st := g.sticky.Load(); st.Type != "" {
		if c := stickyCookie(st, t, rh.setsCookie); c != "" {
			h.Add("Set-Cookie", c)
		}
	}
	x.rw.WriteHeader(rh.status)
	noBody := x.r.Method == "HEAD" || rh.status == 204 || rh.status == 304
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(flushWriter{x.rw})
	defer func() { bw.Reset(nil); writers.Put(bw) }()
	var cerr error
	switch {
	case noBody:
	case rh.chunked:
		cerr = copyChunked(bw, u.r, true, false)
	case rh.contentLength >= 0:
		cerr = copyBody(bw, u.r, rh.contentLength)
	default:
		_, cerr = streamUntilEOF(bw, u.r)
	}
	if cerr == nil {
		cerr = bw.Flush()
	}
	if cerr != nil {
		u.c.Close()
		x.abort = true
		return false, false, nil
	}
	if !rh.closeConn && (noBody || rh.chunked || rh.contentLength >= 0) {
		p.put(u)
	} else {
		u.c.Close()
	}
	return true, false, nil
}

func (x *h2Exchange) reply(code int, location, ctype, body string, keep bool) bool {
	h := x.rw.Header()
	h.Set("Server", "awselb/2.0")
	if location != "" {
		h.Set("Location", location)
	}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	x.rw.WriteHeader(code)
	if x.r.Method != "HEAD" {
		io.WriteString(x.rw, body)
	}
	return true
}

// flushWriter sends every write to the HTTP/2 client at once.
type flushWriter struct{ rw http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.rw.Write(p)
	if fl, ok := f.rw.(http.Flusher); ok && err == nil {
		fl.Flush()
	}
	return n, err
}
