package console

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckHost(t *testing.T) {
	addr := netip.MustParseAddrPort("127.0.0.1:9465")
	v6 := netip.MustParseAddrPort("[::1]:9465")
	for _, c := range []struct {
		addr netip.AddrPort
		host string
		ok   bool
	}{
		{addr, "127.0.0.1:9465", true},
		{addr, "localhost:9465", true},
		{addr, "LOCALHOST:9465", true},
		{addr, "127.0.0.1:9466", false},        // another port
		{addr, "127.0.0.1", false},             // no port: not what a browser sends for :9465
		{addr, "127.0.0.2:9465", false},        // another loopback address
		{addr, "evil.example:9465", false},     // DNS rebinding: the attacker's name
		{addr, "127.0.0.1.nip.io:9465", false}, // a name that resolves to loopback
		{addr, "", false},
		{addr, "localhost", false},
		{v6, "[::1]:9465", true},
		{v6, "localhost:9465", true},
		{v6, "::1:9465", false},
	} {
		err := checkHost(c.addr, c.host)
		if (err == nil) != c.ok {
			t.Errorf("checkHost(%s, %q) = %v, want ok=%v", c.addr, c.host, err, c.ok)
		}
		if err != nil && !errors.Is(err, errHost) {
			t.Errorf("checkHost(%s, %q) = %v, want errHost", c.addr, c.host, err)
		}
	}
}

func TestCheckChange(t *testing.T) {
	addr := netip.MustParseAddrPort("127.0.0.1:9465")
	const token = "0123456789abcdef0123456789abcdef"
	good := map[string]string{"Origin": "http://127.0.0.1:9465", "Content-Type": "application/json", TokenHeader: token,
		"Sec-Fetch-Site": "same-origin"}
	with := func(k, v string) http.Header {
		h := http.Header{}
		for gk, gv := range good {
			h.Set(gk, gv)
		}
		if v == "" {
			h.Del(k)
		} else {
			h.Set(k, v)
		}
		return h
	}
	for _, c := range []struct {
		name  string
		h     http.Header
		token string
		want  error
	}{
		{"same origin with token", with("X-None", ""), token, nil},
		{"localhost origin", with("Origin", "http://localhost:9465"), token, nil},
		{"json with charset", with("Content-Type", "application/json; charset=utf-8"), token, nil},
		{"no Sec-Fetch-Site (older browser, curl)", with("Sec-Fetch-Site", ""), token, nil},
		{"cross origin", with("Origin", "http://evil.example"), token, errOrigin},
		{"cross origin on loopback", with("Origin", "http://127.0.0.1:8080"), token, errOrigin},
		{"https origin", with("Origin", "https://127.0.0.1:9465"), token, errOrigin},
		{"null origin (sandboxed frame, file:)", with("Origin", "null"), token, errOrigin},
		{"no origin", with("Origin", ""), token, errOrigin},
		{"cross-site fetch", with("Sec-Fetch-Site", "cross-site"), token, errOrigin},
		{"same-site fetch", with("Sec-Fetch-Site", "same-site"), token, errOrigin},
		{"form post", with("Content-Type", "application/x-www-form-urlencoded"), token, errType},
		{"text/plain (no preflight)", with("Content-Type", "text/plain"), token, errType},
		{"no token", with(TokenHeader, ""), token, errToken},
		{"wrong token", with(TokenHeader, strings.Repeat("0", 32)), token, errToken},
		{"console without a token refuses all", with(TokenHeader, ""), "", errToken},
	} {
		err := checkChange(addr, c.token, c.h)
		if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("%s: checkChange = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestTokenAndURL(t *testing.T) {
	a, b := NewToken(), NewToken()
	if len(a) != 32 || a == b {
		t.Fatalf("tokens %q %q: want 32 hex digits, different each time", a, b)
	}
	addr := netip.MustParseAddrPort("127.0.0.1:9465")
	if got := URL(addr, "abc"); got != "http://127.0.0.1:9465/#token=abc" {
		t.Errorf("URL = %q", got)
	}
	if got := URL(addr, ""); got != "http://127.0.0.1:9465/" {
		t.Errorf("URL without token = %q", got)
	}
}

func TestNewRefusesNonLoopback(t *testing.T) {
	for _, a := range []string{"0.0.0.0:9465", "10.0.0.1:9465", "[::]:9465"} {
		if _, err := New(Options{Addr: netip.MustParseAddrPort(a)}); !errors.Is(err, errLoopback) {
			t.Errorf("New on %s: %v, want a refusal", a, err)
		}
	}
	if _, err := New(Options{Addr: netip.MustParseAddrPort("[::1]:9465")}); err != nil {
		t.Errorf("New on [::1]:9465: %v", err)
	}
}
