// Package metadata serves the EC2 instance metadata service (IMDS) to
// instances: IMDSv1 GETs and IMDSv2 session tokens (PUT
// /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds, then the
// X-aws-ec2-metadata-token header). The caller is identified by the source
// address of the request, as on EC2, through a lookup the integrator
// provides; the integrator also makes the handler reachable at
// 169.254.169.254 from inside each instance's namespace.
package metadata

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Info is what the metadata service knows about one instance.
type Info struct {
	InstanceID       string
	LocalIPv4        netip.Addr
	AvailabilityZone string // us-east-1a
	Region           string // us-east-1
	AMIID            string
	InstanceType     string
	Hostname         string // ip-10-0-1-5.ec2.internal; derived when empty
	MAC              string // optional
	UserData         string
}

// Lookup finds the instance that owns a source address.
type Lookup func(ip netip.Addr) (Info, bool)

// Token limits, as on EC2.
const (
	MinTokenTTL = 1 * time.Second
	MaxTokenTTL = 6 * time.Hour
)

// Handler is the metadata service.
type Handler struct {
	lookup Lookup
	now    func() time.Time
	// RequireToken turns IMDSv1 off (HttpTokens: required).
	RequireToken bool

	mu     sync.Mutex
	tokens map[string]token
}

type token struct {
	ip      netip.Addr
	expires time.Time
}

var _ http.Handler = (*Handler)(nil)

// New returns a handler; now may be nil (time.Now).
func New(lookup Lookup, now func() time.Time) *Handler {
	if now == nil {
		now = time.Now
	}
	return &Handler{lookup: lookup, now: now, tokens: map[string]token{}}
}

func remoteIP(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// ServeHTTP answers one metadata request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip, ok := remoteIP(r)
	if !ok {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	// EC2 refuses requests that went through a proxy.
	if r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	info, ok := h.lookup(ip)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.URL.Path == "/latest/api/token" {
		h.issueToken(w, r, ip)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	if tok := r.Header.Get("X-aws-ec2-metadata-token"); tok != "" {
		if !h.validToken(tok, ip) {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
	} else if h.RequireToken {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	body, ok := answer(info, r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(body))
}

func (h *Handler) issueToken(w http.ResponseWriter, r *http.Request, ip netip.Addr) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", "PUT")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	secs, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
	ttl := time.Duration(secs) * time.Second
	if err != nil || ttl < MinTokenTTL || ttl > MaxTokenTTL {
		http.Error(w, "Bad Request", http.StatusBadRequest)
		return
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	now := h.now()
	h.mu.Lock()
	for k, t := range h.tokens {
		if !now.Before(t.expires) {
			delete(h.tokens, k)
		}
	}
	h.tokens[tok] = token{ip: ip, expires: now.Add(ttl)}
	h.mu.Unlock()
	w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(secs))
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(tok))
}

func (h *Handler) validToken(tok string, ip netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.tokens[tok]
	return ok && t.ip == ip && h.now().Before(t.expires)
}

// Hostname is EC2's private DNS name for an address.
func Hostname(info Info) string {
	if info.Hostname != "" {
		return info.Hostname
	}
	if !info.LocalIPv4.Is4() {
		return ""
	}
	name := "ip-" + strings.ReplaceAll(info.LocalIPv4.String(), ".", "-")
	if info.Region == "us-east-1" || info.Region == "" {
		return name + ".ec2.internal"
	}
	return name + "." + info.Region + ".compute.internal"
}

func answer(info Info, path string) (string, bool) {
	leaves := map[string]string{
		"instance-id":                 info.InstanceID,
		"local-ipv4":                  info.LocalIPv4.String(),
		"placement/availability-zone": info.AvailabilityZone,
		"placement/region":            info.Region,
		"ami-id":                      info.AMIID,
		"instance-type":               info.InstanceType,
		"hostname":                    Hostname(info),
		"local-hostname":              Hostname(info),
	}
	if info.MAC != "" {
		leaves["mac"] = info.MAC
	}
	switch path {
	case "/latest/dynamic/instance-identity/document":
		doc, _ := json.MarshalIndent(map[string]any{
			"instanceId":       info.InstanceID,
			"privateIp":        info.LocalIPv4.String(),
			"availabilityZone": info.AvailabilityZone,
			"region":           info.Region,
			"imageId":          info.AMIID,
			"instanceType":     info.InstanceType,
			"architecture":     "x86_64",
			"version":          "2017-09-30",
		}, "", "  ")
		return string(doc), true
	case "/latest/dynamic", "/latest/dynamic/":
		return "instance-identity/", true
	case "/latest/dynamic/instance-identity", "/latest/dynamic/instance-identity/":
		return "document", true
	case "/latest", "/latest/":
		return "api/token\ndynamic\nmeta-data\nuser-data", true
	case "/latest/user-data":
		if info.UserData == "" {
			return "", false
		}
		return info.UserData, true
	case "/latest/meta-data", "/latest/meta-data/":
		return "ami-id\nhostname\ninstance-id\ninstance-type\nlocal-hostname\nlocal-ipv4\n" + macLine(info) + "placement/", true
	case "/latest/meta-data/placement", "/latest/meta-data/placement/":
		return "availability-zone\nregion", true
	}
	rest, ok := strings.CutPrefix(path, "/latest/meta-data/")
	if !ok {
		return "", false
	}
	v, ok := leaves[rest]
	if !ok || v == "" || v == "invalid IP" {
		return "", false
	}
	return v, true
}

func macLine(info Info) string {
	if info.MAC == "" {
		return ""
	}
	return "mac\n"
}
