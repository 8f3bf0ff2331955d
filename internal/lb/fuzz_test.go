package lb

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// FuzzReadHead checks that request parsing never panics, never accepts a
// head with conflicting framing, and that copyChunked stays consistent.
func FuzzReadHead(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.0\r\nX: a\r\n b\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var h head
		r := bufio.NewReaderSize(bytes.NewReader(data), readBufSize)
		if err := h.readHead(r, true); err != nil {
			return
		}
		if h.chunked && h.contentLength >= 0 {
			t.Fatal("accepted both Content-Length and chunked")
		}
		if h.proto11 && h.host == nil {
			t.Fatal("accepted HTTP/1.1 without Host")
		}
		if h.chunked {
			w := bufio.NewWriter(io.Discard)
			copyChunked(w, r, false, true)
		}
	})
}
