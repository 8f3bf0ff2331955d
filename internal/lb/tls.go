package lb

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/moat-dev/moat/internal/targetgroup"
)

// SelfSigned returns a fresh self-signed certificate for localhost and
// loopback addresses, for HTTPS listeners without certificate files.
func SelfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate key: %w", err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "moat"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// serveTLS serves an HTTPS listener with HTTP/2 and HTTP/1.1 (ALPN)
// through net/http; rules, target groups, retries and metrics are shared
// with the HTTP/1.1 path.
func (e *Engine) serveTLS(ln net.Listener, ls *listenerState) error {
	lc := ls.cfg.Load()
	var cert tls.Certificate
	var err error
	if lc.CertFile != "" {
		cert, err = tls.LoadX509KeyPair(lc.CertFile, lc.KeyFile)
	} else {
		cert, err = SelfSigned()
	}
	if err != nil {
		return fmt.Errorf("listener %s certificate: %w", lc.Name, err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	cfg := e.cfg.Load()
	tr := &http.Transport{DialContext: e.opts.Dial, MaxIdleConnsPerHost: 256, IdleConnTimeout: cfg.IdleTimeout}
	rp := &httputil.ReverseProxy{
		Transport:     tr,
		FlushInterval: -1,
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(targetKey{}).(*targetgroup.Target)
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", t.Addr
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			pr.Out.Header.Set("X-Forwarded-Port", port)
		},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		lc := ls.cfg.Load()
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		req := &Request{Method: r.Method, Host: host, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
			Header: func(n string) (string, bool) { v := r.Header.Values(n); return firstOr(v), len(v) > 0 }}
		if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			req.SourceIP = net.ParseIP(ip)
		}
		act := Route(lc, req)
		switch act.Type {
		case ActionFixed:
			w.Header().Set("Content-Type", orDefault(act.Fixed.ContentType, "text/plain"))
			w.WriteHeader(act.Fixed.StatusCode)
			w.Write([]byte(act.Fixed.Body))
			return
		case ActionRedirect:
			code := act.Redirect.StatusCode
			if code == 0 {
				code = 302
			}
			http.Redirect(w, r, RedirectURL(act.Redirect, req, "https", port), code)
			return
		}
		g := e.pickGroup(act.Forward)
		if g == nil {
			w.WriteHeader(503)
			return
		}
		t := g.tg.Pick(nil)
		if t == nil {
			e.metrics.observe(g, 503, start)
			w.WriteHeader(503)
			return
		}
		t.Begin()
		defer t.End()
		sw := &statusWriter{ResponseWriter: w, code: 200}
		rp.ServeHTTP(sw, r.WithContext(contextWithTarget(r.Context(), t)))
		e.metrics.observe(g, sw.code, start)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: cfg.HeaderTimeout, IdleTimeout: cfg.IdleTimeout,
		MaxHeaderBytes: maxHeaderTotal, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}}
	err = srv.ServeTLS(ln, "", "")
	if err == http.ErrServerClosed || e.ctx.Err() != nil {
		return nil
	}
	return err
}

func firstOr(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(c int)           { s.code = c; s.ResponseWriter.WriteHeader(c) }
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
