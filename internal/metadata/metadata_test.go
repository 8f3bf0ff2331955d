package metadata

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

var (
	instIP = netip.MustParseAddr("10.0.11.5")
	info   = Info{
		InstanceID:       "i-0123456789abcdef0",
		LocalIPv4:        instIP,
		AvailabilityZone: "us-east-1a",
		Region:           "us-east-1",
		AMIID:            "ami-moat0000000000001",
		InstanceType:     "t3.micro",
		MAC:              "02:00:0a:00:0b:05",
		UserData:         "#!/bin/sh\necho hi\n",
	}
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newHandler() (*Handler, *clock) {
	c := &clock{t: time.Date(2026, 11, 28, 7, 0, 0, 0, time.UTC)}
	h := New(func(ip netip.Addr) (Info, bool) {
		if ip == instIP {
			return info, true
		}
		return Info{}, false
	}, c.now)
	return h, c
}

// do sends one request "from" remote (host:port) through the handler.
func do(h http.Handler, method, path, remote string, hdr map[string]string) (int, string, http.Header) {
	r := httptest.NewRequest(method, "http://169.254.169.254"+path, nil)
	r.RemoteAddr = remote
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b), w.Result().Header
}

func TestIMDSv1Paths(t *testing.T) {
	h, _ := newHandler()
	tests := []struct {
		path   string
		remote string
		code   int
		body   string
	}{
		{"/latest/meta-data/instance-id", "10.0.11.5:40000", 200, "i-0123456789abcdef0"},
		{"/latest/meta-data/local-ipv4", "10.0.11.5:40000", 200, "10.0.11.5"},
		{"/latest/meta-data/placement/availability-zone", "10.0.11.5:1", 200, "us-east-1a"},
		{"/latest/meta-data/placement/region", "10.0.11.5:1", 200, "us-east-1"},
		{"/latest/meta-data/ami-id", "10.0.11.5:1", 200, "ami-moat0000000000001"},
		{"/latest/meta-data/instance-type", "10.0.11.5:1", 200, "t3.micro"},
		{"/latest/meta-data/hostname", "10.0.11.5:1", 200, "ip-10-0-11-5.ec2.internal"},
		{"/latest/meta-data/local-hostname", "10.0.11.5:1", 200, "ip-10-0-11-5.ec2.internal"},
		{"/latest/meta-data/mac", "10.0.11.5:1", 200, "02:00:0a:00:0b:05"},
		{"/latest/user-data", "10.0.11.5:1", 200, "#!/bin/sh\necho hi\n"},
		{"/latest/meta-data/", "10.0.11.5:1", 200, "ami-id\nhostname\ninstance-id\ninstance-type\nlocal-hostname\nlocal-ipv4\nmac\nplacement/"},
		{"/latest/meta-data/instance-id", "[::ffff:10.0.11.5]:1", 200, "i-0123456789abcdef0"},
		{"/latest/meta-data/nope", "10.0.11.5:1", 404, ""},
		{"/other", "10.0.11.5:1", 404, ""},
		{"/latest/meta-data/instance-id", "10.0.11.6:1", 404, ""},
		{"/latest/meta-data/instance-id", "garbage", 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path+"@"+tt.remote, func(t *testing.T) {
			code, body, _ := do(h, "GET", tt.path, tt.remote, nil)
			if code != tt.code {
				t.Fatalf("code %d, want %d (body %q)", code, tt.code, body)
			}
			if tt.code == 200 && body != tt.body {
				t.Fatalf("body %q, want %q", body, tt.body)
			}
		})
	}
}

func TestIMDSv2Tokens(t *testing.T) {
	h, c := newHandler()
	const from = "10.0.11.5:5000"
	ttl := map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"}
	if code, _, _ := do(h, "GET", "/latest/api/token", from, ttl); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET token: %d, want 405", code)
	}
	for _, bad := range []string{"", "0", "21601", "x"} {
		if code, _, _ := do(h, "PUT", "/latest/api/token", from, map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": bad}); code != 400 {
			t.Errorf("ttl %q: %d, want 400", bad, code)
		}
	}
	code, tok, hdr := do(h, "PUT", "/latest/api/token", from, ttl)
	if code != 200 || len(tok) != 64 || hdr.Get("X-aws-ec2-metadata-token-ttl-seconds") != "60" {
		t.Fatalf("PUT token: %d %q %v", code, tok, hdr)
	}
	withTok := map[string]string{"X-aws-ec2-metadata-token": tok}
	if code, body, _ := do(h, "GET", "/latest/meta-data/instance-id", from, withTok); code != 200 || body != info.InstanceID {
		t.Fatalf("with token: %d %q", code, body)
	}
	if code, _, _ := do(h, "GET", "/latest/meta-data/instance-id", from, map[string]string{"X-aws-ec2-metadata-token": "forged"}); code != 401 {
		t.Fatalf("forged token: %d, want 401", code)
	}
	if code, _, _ := do(h, "GET", "/latest/meta-data/instance-id", from, map[string]string{"X-aws-ec2-metadata-token": tok, "X-Forwarded-For": "1.2.3.4"}); code != 403 {
		t.Fatalf("proxied request: %d, want 403", code)
	}
	c.t = c.t.Add(61 * time.Second)
	if code, _, _ := do(h, "GET", "/latest/meta-data/instance-id", from, withTok); code != 401 {
		t.Fatalf("expired token: %d, want 401", code)
	}
	h.RequireToken = true
	if code, _, _ := do(h, "GET", "/latest/meta-data/instance-id", from, nil); code != 401 {
		t.Fatalf("v1 with tokens required: %d, want 401", code)
	}
}

func TestTokenBoundToInstance(t *testing.T) {
	other := netip.MustParseAddr("10.0.12.7")
	h := New(func(ip netip.Addr) (Info, bool) {
		return Info{InstanceID: "i-" + strings.Repeat("a", 17), LocalIPv4: ip}, ip == instIP || ip == other
	}, nil)
	_, tok, _ := do(h, "PUT", "/latest/api/token", "10.0.11.5:1", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "30"})
	if code, _, _ := do(h, "GET", "/latest/meta-data/instance-id", "10.0.12.7:1", map[string]string{"X-aws-ec2-metadata-token": tok}); code != 401 {
		t.Fatalf("token used by another instance: %d, want 401", code)
	}
}

func TestIdentityDocument(t *testing.T) {
	h, _ := newHandler()
	code, body, _ := do(h, "GET", "/latest/dynamic/instance-identity/document", "10.0.11.5:1", nil)
	if code != 200 {
		t.Fatalf("code %d", code)
	}
	var doc map[string]string
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"instanceId": info.InstanceID, "privateIp": "10.0.11.5", "availabilityZone": "us-east-1a",
		"region": "us-east-1", "imageId": info.AMIID, "instanceType": "t3.micro"}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %q, want %q", k, doc[k], v)
		}
	}
}

func TestHostnameOtherRegion(t *testing.T) {
	got := Hostname(Info{LocalIPv4: netip.MustParseAddr("10.1.2.3"), Region: "eu-west-1"})
	if got != "ip-10-1-2-3.eu-west-1.compute.internal" {
		t.Fatal(got)
	}
}

// TestRealListener serves over a loopback socket: the source address of
// the TCP connection identifies the instance.
func TestRealListener(t *testing.T) {
	h := New(func(ip netip.Addr) (Info, bool) {
		return Info{InstanceID: "i-0000000000000000a", LocalIPv4: ip, Region: "us-east-1"}, ip == netip.MustParseAddr("127.0.0.1")
	}, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/latest/meta-data/local-hostname", nil)
	req.Header.Set("X-aws-ec2-metadata-token", string(tok))
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ip-127-0-0-1.ec2.internal" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}

func FuzzServeHTTP(f *testing.F) {
	for _, s := range []string{"/latest/meta-data/instance-id", "/latest/user-data", "/latest/api/token", "/latest/meta-data/placement/", "/%2e%2e/x"} {
		f.Add("GET", s, "60")
	}
	h, _ := newHandler()
	f.Fuzz(func(t *testing.T, method, path, ttl string) {
		r := &http.Request{Method: method, URL: &url.URL{Path: path}, Header: http.Header{}, RemoteAddr: "10.0.11.5:1", Body: http.NoBody}
		r.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", ttl)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code == 200 && method == "GET" && w.Body.Len() == 0 && path != "/latest/user-data" {
			t.Fatalf("empty 200 for %q", path)
		}
	})
}
