package lb

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// ALB's header limits.
const (
	maxRequestLine = 16 << 10 // request line
	maxHeaderLine  = 16 << 10 // one header
	maxHeaderTotal = 64 << 10 // whole head
	maxHeaders     = 100
	readBufSize    = maxHeaderLine + 512
)

// errBadRequest and errTooLarge are protocol failures answered with 400
// and 431 before the connection is closed.
var (
	errBadRequest = errors.New("bad request")
	errTooLarge   = errors.New("request header too large")
	errURITooLong = errors.New("request line too long") // 414
)

// head is a parsed HTTP/1.x message head. Header lines are kept as
// offsets into raw, which is reused across requests on a connection.
type head struct {
	raw     []byte
	line    [2]int   // request or status line in raw
	hdrs    [][4]int // name start,end, value start,end in raw
	method  []byte
	target  []byte
	proto11 bool
	status  int

	contentLength int64 // -1 when absent
	chunked       bool
	closeConn     bool // Connection: close (or HTTP/1.0 without keep-alive)
	upgrade       bool // Connection: upgrade with an Upgrade header
	host          []byte
	xff           []byte // X-Forwarded-For (the first, when xffLines > 1)
	xffLines      int
	trace         []byte // X-Amzn-Trace-Id
	expect        bool   // Expect: 100-continue
}

func (h *head) reset() {
	h.raw = h.raw[:0]
	h.hdrs = h.hdrs[:0]
	h.method, h.target, h.host, h.xff, h.trace = nil, nil, nil, nil, nil
	h.xffLines = 0
	h.proto11, h.chunked, h.closeConn, h.upgrade, h.expect = false, false, false, false, false
	h.contentLength = -1
	h.status = 0
}

func (h *head) name(i int) []byte  { return h.raw[h.hdrs[i][0]:h.hdrs[i][1]] }
func (h *head) value(i int) []byte { return h.raw[h.hdrs[i][2]:h.hdrs[i][3]] }

// get returns the first value of header name (case-insensitive).
func (h *head) get(name string) ([]byte, bool) {
	for i := range h.hdrs {
		if equalFold(h.name(i), name) {
			return h.value(i), true
		}
	}
	return nil, false
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if c|0x20 != d|0x20 {
			return false
		}
		if c != d && (c|0x20 < 'a' || c|0x20 > 'z') {
			return false
		}
	}
	return true
}

// tokenChars marks the bytes allowed in an HTTP token (RFC 9110 5.6.2).
var tokenChars = func() (t [256]bool) {
	for c := 0x21; c < 0x7f; c++ {
		t[c] = !bytes.ContainsRune([]byte("\"(),/:;<=>?@[\\]{}"), rune(c))
	}
	return t
}()

func isToken(c byte) bool { return tokenChars[c] }

// readLine reads one CRLF- (or LF-) terminated line into h.raw without the
// terminator and returns its bounds.
func (h *head) readLine(r *bufio.Reader, limit int) (int, int, error) {
	start := len(h.raw)
	for {
		frag, err := r.ReadSlice('\n')
		if len(h.raw)-start+len(frag) > limit || len(h.raw)+len(frag) > maxHeaderTotal {
			return 0, 0, errTooLarge
		}
		h.raw = append(h.raw, frag...)
		if err == nil {
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(h.raw) > start {
			return 0, 0, io.ErrUnexpectedEOF
		}
		return 0, 0, err
	}
	end := len(h.raw) - 1
	if end > start && h.raw[end-1] == '\r' {
		end--
	}
	return start, end, nil
}

// readHead reads a request head (request=true) or a response head.
func (h *head) readHead(r *bufio.Reader, request bool) error {
	h.reset()
	var s, e int
	var err error
	for {
		s, e, err = h.readLine(r, maxRequestLine)
		if err != nil {
			if request && errors.Is(err, errTooLarge) {
				return errURITooLong
			}
			return err
		}
		if e > s || !request {
			break
		}
		h.raw = h.raw[:0] // tolerate leading empty lines (RFC 9112 2.2)
	}
	h.line = [2]int{s, e}
	line := h.raw[s:e]
	if request {
		sp1 := bytes.IndexByte(line, ' ')
		sp2 := bytes.LastIndexByte(line, ' ')
		if sp1 <= 0 || sp2 <= sp1+1 {
			return errBadRequest
		}
		h.method, h.target = line[:sp1], line[sp1+1:sp2]
		for _, c := range h.method {
			if !isToken(c) {
				return errBadRequest
			}
		}
		for _, c := range h.target {
			if c <= 0x20 || c == 0x7f {
				return errBadRequest
			}
		}
		switch string(line[sp2+1:]) {
		case "HTTP/1.1":
			h.proto11 = true
		case "HTTP/1.0":
		default:
			return errBadRequest
		}
	} else {
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
			return errBadRequest
		}
		h.proto11 = line[7] == '1'
		st, err := strconv.Atoi(string(line[9:12]))
		if err != nil || st < 100 {
			return errBadRequest
		}
		h.status = st
	}
	keepAlive := false
	sawCL := false
	for {
		s, e, err := h.readLine(r, maxHeaderLine)
		if err != nil {
			return err
		}
		if s == e {
			break
		}
		if len(h.hdrs) >= maxHeaders {
			return errTooLarge
		}
		ln := h.raw[s:e]
		if ln[0] == ' ' || ln[0] == '\t' {
			return errBadRequest // obs-fold
		}
		c := bytes.IndexByte(ln, ':')
		if c <= 0 {
			return errBadRequest
		}
		for _, ch := range ln[:c] {
			if !isToken(ch) {
				return errBadRequest // includes whitespace before the colon
			}
		}
		vs, ve := s+c+1, e
		for vs < ve && (h.raw[vs] == ' ' || h.raw[vs] == '\t') {
			vs++
		}
		for ve > vs && (h.raw[ve-1] == ' ' || h.raw[ve-1] == '\t') {
			ve--
		}
		for _, ch := range h.raw[vs:ve] {
			if ch == 0 || ch == '\r' || ch == '\n' {
				return errBadRequest
			}
		}
		h.hdrs = append(h.hdrs, [4]int{s, s + c, vs, ve})
		name, val := ln[:c], h.raw[vs:ve]
		switch {
		case equalFold(name, "content-length"):
			if sawCL {
				return errBadRequest // duplicate Content-Length
			}
			sawCL = true
			n, ok := parseDecimal(val)
			if !ok {
				return errBadRequest
			}
			h.contentLength = n
		case equalFold(name, "transfer-encoding"):
			if h.chunked || !equalFoldBytes(val, "chunked") {
				return errBadRequest // only a single "chunked" coding is accepted
			}
			h.chunked = true
		case equalFold(name, "connection"):
			for tok := range bytes.SplitSeq(val, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				switch {
				case equalFoldBytes(tok, "close"):
					h.closeConn = true
				case equalFoldBytes(tok, "keep-alive"):
					keepAlive = true
				case equalFoldBytes(tok, "upgrade"):
					h.upgrade = true
				}
			}
		case request && equalFold(name, "host"):
			if h.host != nil {
				return errBadRequest
			}
			h.host = val
		case request && equalFold(name, "x-forwarded-for"):
			if h.xffLines == 0 {
				h.xff = val
			}
			h.xffLines++
		case request && equalFold(name, "x-amzn-trace-id"):
			h.trace = val
		case request && equalFold(name, "expect"):
			h.expect = equalFold(val, "100-continue")
		}
	}
	if sawCL && h.chunked {
		return errBadRequest // CL+TE: refuse, as haproxy does
	}
	if request && h.proto11 && h.host == nil {
		return errBadRequest
	}
	if !h.proto11 && !keepAlive {
		h.closeConn = true
	}
	if h.upgrade {
		if _, ok := h.get("upgrade"); !ok {
			h.upgrade = false
		}
	}
	return nil
}

func equalFoldBytes(b []byte, s string) bool { return equalFold(b, s) }

func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// hop-by-hop headers are not forwarded.
func hopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return equalFold(name, "te")
	case 7:
		return equalFold(name, "trailer") || equalFold(name, "upgrade")
	case 10:
		return equalFold(name, "connection") || equalFold(name, "keep-alive")
	case 16:
		return equalFold(name, "proxy-connection")
	case 17:
		return equalFold(name, "transfer-encoding") || equalFold(name, "x-forwarded-port")
	case 15:
		return equalFold(name, "x-forwarded-for")
	case 19:
		return equalFold(name, "proxy-authenticate") || equalFold(name, "x-forwarded-proto")
	}
	return false
}

// replaced reports whether a request header is left out because the load
// balancer sets it: hop-by-hop headers, X-Forwarded-*, X-Amzn-Trace-Id.
func replaced(name []byte) bool {
	return hopByHop(name) || len(name) == 15 && equalFold(name, "x-amzn-trace-id")
}

// setsCookie reports whether a response head sets cookie name.
func (h *head) setsCookie(name string) bool {
	for i := range h.hdrs {
		if equalFold(h.name(i), "set-cookie") {
			v := h.value(i)
			if len(v) > len(name) && v[len(name)] == '=' && string(v[:len(name)]) == name {
				return true
			}
		}
	}
	return false
}

// copyChunked copies a chunked body from r to w, validating its framing
// and re-emitting it (reframe; otherwise only the data, trailers dropped,
// for HTTP/2 clients); flush is called when r has no buffered data, so
// streamed chunks (SSE) leave at once.
func copyChunked(w *bufio.Writer, r *bufio.Reader, flush, reframe bool) error {
	var line [maxHeaderLine]byte
	for {
		ln, err := readSmallLine(r, line[:0])
		if err != nil {
			return err
		}
		sz := ln
		if i := bytes.IndexByte(sz, ';'); i >= 0 {
			sz = sz[:i]
		}
		sz = bytes.TrimRight(sz, " \t")
		if len(sz) == 0 || len(sz) > 15 {
			return errBadRequest
		}
		var n int64
		for _, c := range sz {
			switch {
			case c >= '0' && c <= '9':
				n = n<<4 | int64(c-'0')
			case c >= 'a' && c <= 'f':
				n = n<<4 | int64(c-'a'+10)
			case c >= 'A' && c <= 'F':
				n = n<<4 | int64(c-'A'+10)
			default:
				return errBadRequest
			}
		}
		if reframe {
			w.Write(ln)
			w.WriteString("\r\n")
		}
		if n == 0 {
			for { // trailers
				t, err := readSmallLine(r, line[:0])
				if err != nil {
					return err
				}
				if reframe {
					w.Write(t)
					w.WriteString("\r\n")
				}
				if len(t) == 0 {
					if !reframe && flush {
						return w.Flush()
					}
					return nil
				}
			}
		}
		if err := copyBody(w, r, n); err != nil {
			return err
		}
		crlf, err := readSmallLine(r, line[:0])
		if err != nil {
			return err
		}
		if len(crlf) != 0 {
			return errBadRequest
		}
		if reframe {
			w.WriteString("\r\n")
		}
		if flush && r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
}

func readSmallLine(r *bufio.Reader, dst []byte) ([]byte, error) {
	for {
		frag, err := r.ReadSlice('\n')
		if len(dst)+len(frag) > cap(dst) && cap(dst) > 0 && len(dst)+len(frag) > maxHeaderLine {
			return nil, errTooLarge
		}
		dst = append(dst, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		break
	}
	dst = dst[:len(dst)-1]
	if len(dst) > 0 && dst[len(dst)-1] == '\r' {
		dst = dst[:len(dst)-1]
	}
	return dst, nil
}
