package lb

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestCopyBody(t *testing.T) {
	big := strings.Repeat("0123456789", 10<<10) // larger than both buffers
	for _, tc := range []struct {
		name, in string
		n        int64
		want     string
		err      error
	}{
		{"exact", "hello", 5, "hello", nil},
		{"leaves the rest buffered", "helloGET /", 5, "hello", nil},
		{"zero", "abc", 0, "", nil},
		{"large", big + "tail", int64(len(big)), big, nil},
		{"short body", "hel", 5, "", io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			w := bufio.NewWriterSize(&out, 8<<10)
			r := bufio.NewReaderSize(strings.NewReader(tc.in), 4096)
			err := copyBody(w, r, tc.n)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			w.Flush()
			if out.String() != tc.want {
				t.Fatalf("copied %d bytes, want %d", out.Len(), len(tc.want))
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != tc.in[len(tc.want):] {
				t.Fatalf("left %q in the reader", rest)
			}
		})
	}
}
