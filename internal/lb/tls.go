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
	"time"

	"golang.org/x/net/http2"
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

// tlsFront terminates TLS for an HTTPS listener. HTTP/1.x (ALPN
// http/1.1, http/1.0 or none) goes to the HTTP/1.1 engine like a plain
// connection (without http/1.0 in the list, Go's TLS refuses a client
// that offers only it);
// HTTP/2 streams become h2Exchanges on the same request path.
type tlsFront struct {
	e    *Engine
	ls   *listenerState
	port string
	cfg  *tls.Config
	h2   *http2.Server
	opts *http2.ServeConnOpts
}

func (e *Engine) tlsFront(lc *Listener, ls *listenerState, port string) (*tlsFront, error) {
	var cert tls.Certificate
	var err error
	if lc.CertFile != "" {
		cert, err = tls.LoadX509KeyPair(lc.CertFile, lc.KeyFile)
	} else {
		cert, err = SelfSigned()
	}
	if err != nil {
		return nil, fmt.Errorf("listener %s certificate: %w", lc.Name, err)
	}
	cfg := e.cfg.Load()
	f := &tlsFront{e: e, ls: ls, port: port,
		cfg: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1", "http/1.0"}},
		h2:  &http2.Server{IdleTimeout: cfg.IdleTimeout, MaxConcurrentStreams: 128}}
	f.opts = &http2.ServeConnOpts{Context: e.ctx, Handler: http.HandlerFunc(f.serveHTTP2),
		BaseConfig: &http.Server{MaxHeaderBytes: maxHeaderTotal, ReadHeaderTimeout: cfg.HeaderTimeout}}
	return f, nil
}

// serve runs the TLS handshake on c (bounded by the header timeout) and
// hands the connection to the HTTP/1.1 engine or the HTTP/2 server.
func (f *tlsFront) serve(c net.Conn) {
	tc := tls.Server(c, f.cfg)
	c.SetDeadline(time.Now().Add(f.e.cfg.Load().HeaderTimeout))
	if err := tc.HandshakeContext(f.e.ctx); err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		f.e.serveConn(tc, f.ls, "https", f.port)
		return
	}
	f.e.metrics.activeConns.Add(1)
	defer f.e.metrics.activeConns.Add(-1)
	f.h2.ServeConn(tc, f.opts)
}
