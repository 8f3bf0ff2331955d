package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/moat-dev/moat/internal/plan"
)

// The console's safety model, as pure decisions on a request:
//   - it listens on loopback only (Listen refuses anything else);
//   - every request must name the console itself in Host: its own
//     address, or localhost on its port. A page of another site that
//     rebinds its DNS name to 127.0.0.1 sends its own name and is refused
//     (DNS rebinding);
//   - a change (scale, terminate, refresh, protect) is a POST whose Origin
//     is the console's own, whose body is JSON (so a cross-site form
//     cannot send it, and a cross-site fetch needs a preflight the console
//     never grants) and that carries the per-start token in TokenHeader.

// TokenHeader carries the per-start token on every change.
const TokenHeader = "X-Moat-Token"

// NewToken returns a fresh per-start token: 128 random bits in hex.
func NewToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// URL is the console's address for a browser, with the token in the
// fragment: the fragment never leaves the browser, and the page reads it
// to sign its changes. Without the token the console is read-only.
func URL(addr netip.AddrPort, token string) string {
	u := "http://" + addr.String() + "/"
	if token != "" {
		u += "#token=" + token
	}
	return u
}

// Errors of the checks.
var (
	errHost     = errors.New("foreign Host")
	errOrigin   = errors.New("cross-origin request")
	errToken    = errors.New("missing or wrong console token")
	errType     = errors.New("a change must be a JSON body (Content-Type: application/json)")
	errLoopback = errors.New("the console listens on loopback only")
)

// allowedHosts are the Host values that name the console at addr: the
// address itself and localhost on its port.
func allowedHosts(addr netip.AddrPort) []string {
	port := strconv.Itoa(int(addr.Port()))
	return []string{addr.String(), net.JoinHostPort("localhost", port)}
}

// checkHost accepts a request whose Host names the console at addr
// (case-insensitively), and nothing else: not another name, not the same
// address on another port, not an empty Host.
func checkHost(addr netip.AddrPort, host string) error {
	for _, h := range allowedHosts(addr) {
		if strings.EqualFold(host, h) {
			return nil
		}
	}
	return fmt.Errorf("%w %q: the console answers only to %s", errHost, host, strings.Join(allowedHosts(addr), " or "))
}

// checkChange accepts a change: a POST whose Origin is the console's own
// (http://HOST, HOST allowed by checkHost), whose Sec-Fetch-Site, when the
// browser sends one, is same-origin, whose body is JSON, and which carries
// the token.
func checkChange(addr netip.AddrPort, token string, h http.Header) error {
	origin := h.Get("Origin")
	host, ok := strings.CutPrefix(origin, "http://")
	if !ok || checkHost(addr, host) != nil {
		return fmt.Errorf("%w (Origin %q): changes come only from the console's own page", errOrigin, origin)
	}
	if site := h.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return fmt.Errorf("%w (Sec-Fetch-Site %q): changes come only from the console's own page", errOrigin, site)
	}
	if mt, _, err := mime.ParseMediaType(h.Get("Content-Type")); err != nil || mt != "application/json" {
		return errType
	}
	got := h.Get(TokenHeader)
	if token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
		return fmt.Errorf("%w: open the URL that moat console prints (it carries the token)", errToken)
	}
	return nil
}

// WithToken is endpoints with the console's URL carrying token (a copy;
// the plan's own endpoints stay as the stack file says).
func WithToken(endpoints []plan.Endpoint, token string) []plan.Endpoint {
	out := append([]plan.Endpoint(nil), endpoints...)
	for i, e := range out {
		if e.Kind == plan.EndpointConsole {
			out[i].URL = URL(e.Publish, token)
		}
	}
	return out
}
