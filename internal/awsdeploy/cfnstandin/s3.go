// The S3 calls moat deploy makes: HeadBucket, CreateBucket, PutObject.

package cfnstandin

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

func (s *Server) s3(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	const ns = "http://s3.amazonaws.com/doc/2006-03-01/"
	s3err := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><BucketName>%s</BucketName></Error>`, code, esc(msg), esc(bucket))
		}
	}
	switch {
	case r.Method == http.MethodHead && key == "":
		s.calls = append(s.calls, "s3:HeadBucket")
		if !s.buckets[bucket] {
			s3err(404, "NotFound", "Not Found")
			return
		}
		w.WriteHeader(200)
	case r.Method == http.MethodPut && key == "":
		s.calls = append(s.calls, "s3:CreateBucket")
		if s.buckets[bucket] {
			s3err(409, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it.")
			return
		}
		s.buckets[bucket] = true
		w.Header().Set("Location", "/"+bucket)
		w.WriteHeader(200)
	case r.Method == http.MethodPut:
		if r.URL.Query().Has("x-id") && r.URL.Query().Get("x-id") != "PutObject" {
			s3err(400, "NotImplemented", "the stand-in only implements PutObject")
			return
		}
		s.calls = append(s.calls, "s3:PutObject")
		if !s.buckets[bucket] {
			s3err(404, "NoSuchBucket", "The specified bucket does not exist")
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			s3err(400, "IncompleteBody", err.Error())
			return
		}
		if strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") {
			if body, err = unchunk(body); err != nil {
				s3err(400, "InvalidRequest", err.Error())
				return
			}
		}
		s.objects[bucket+"/"+key] = body
		w.Header().Set("ETag", `"standin"`)
		w.WriteHeader(200)
	default:
		_ = ns
		s3err(405, "MethodNotAllowed", fmt.Sprintf("the stand-in does not implement %s %s", r.Method, r.URL.Path))
	}
}

// unchunk decodes an aws-chunked body (size;chunk-signature=...\r\ndata\r\n ... 0\r\ntrailers).
func unchunk(b []byte) ([]byte, error) {
	var out []byte
	for {
		line, rest, ok := bytes.Cut(b, []byte("\r\n"))
		if !ok {
			return nil, fmt.Errorf("aws-chunked: no chunk header")
		}
		sizeHex, _, _ := strings.Cut(string(line), ";")
		n, err := strconv.ParseInt(sizeHex, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("aws-chunked: bad size %q", sizeHex)
		}
		if n == 0 {
			return out, nil
		}
		if int64(len(rest)) < n+2 {
			return nil, fmt.Errorf("aws-chunked: short chunk")
		}
		out = append(out, rest[:n]...)
		b = rest[n+2:]
	}
}
