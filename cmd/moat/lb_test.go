//go:build linux && !portable

package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/lb"
	"github.com/moat-dev/moat/internal/testutil"
)

// TestLBServesHTTPS runs the moat binary's lb command with an HTTP and an
// HTTPS listener: HTTPS negotiates HTTP/2 by ALPN and still serves
// HTTP/1.1, with a self-signed certificate by default or the one given
// by --tls-cert/--tls-key.
func TestLBServesHTTPS(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proto=%s", r.Header.Get("X-Forwarded-Proto"))
	}))
	defer backend.Close()
	backendAddr := strings.TrimPrefix(backend.URL, "http://")

	given, err := lb.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", given.Certificate[0])
	der, err := x509.MarshalPKCS8PrivateKey(given.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, keyFile, "PRIVATE KEY", der)

	for _, tc := range []struct {
		name     string
		tlsFlags []string
		wantCert []byte // nil: any (self-signed)
	}{
		{"self-signed", nil, nil},
		{"given certificate", []string{"--tls-cert", certFile, "--tls-key", keyFile}, given.Certificate[0]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			httpsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			args := append([]string{"lb", "--listen", httpAddr, "--https", httpsAddr, "--target", backendAddr,
				"--health-interval", "200ms"}, tc.tlsFlags...)
			stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
			if err != nil {
				t.Fatal(err)
			}
			defer stderr.Close()
			cmd := exec.Command(moatBin, args...)
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Signal(os.Interrupt)
				cmd.Wait()
			}()

			tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			h1 := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}
			defer h1.CloseIdleConnections()
			for _, c := range []struct {
				url, proto, body string
				tr               *http.Transport
			}{
				{"http://" + httpAddr + "/", "HTTP/1.1", "proto=http", &http.Transport{}},
				{"https://" + httpsAddr + "/", "HTTP/2.0", "proto=https", tr},
				{"https://" + httpsAddr + "/", "HTTP/1.1", "proto=https", h1},
			} {
				resp := getUntil200(t, &http.Client{Transport: c.tr, Timeout: 5 * time.Second}, c.url, stderr.Name())
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.Proto != c.proto || string(body) != c.body {
					t.Errorf("GET %s: %s %q, want %s %q", c.url, resp.Proto, body, c.proto, c.body)
				}
				if resp.TLS != nil {
					got := resp.TLS.PeerCertificates[0]
					if tc.wantCert != nil && !bytes.Equal(got.Raw, tc.wantCert) {
						t.Errorf("served certificate %s, want the one in --tls-cert", got.Subject)
					}
					if err := got.VerifyHostname("127.0.0.1"); err != nil {
						t.Errorf("certificate: %v", err)
					}
				}
			}
		})
	}

	// Wrong flag combinations are usage errors.
	for _, args := range [][]string{
		{"lb", "--target", backendAddr, "--https", "127.0.0.1:1", "--tls-cert", certFile},
		{"lb", "--target", backendAddr, "--tls-cert", certFile, "--tls-key", keyFile},
		{"lb", "--target", backendAddr, "--https", "0.0.0.0:18443"},
		{"lb", "--target", backendAddr, "--listen", ""},
	} {
		if _, stderr, code := run(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, %q; want %d", args, code, stderr, exitUsage)
		}
	}
}

// getUntil200 polls url until the load balancer answers 200 (its target
// turned healthy), for at most 10 s.
func getUntil200(t *testing.T, c *http.Client, url, logFile string) *http.Response {
	t.Helper()
	var resp *http.Response
	testutil.Eventually(t, 10*time.Second, func() error {
		r, err := c.Get(url)
		if err == nil && r.StatusCode == 200 {
			resp = r
			return nil
		}
		if err == nil {
			r.Body.Close()
			err = errors.New(r.Status)
		}
		log, _ := os.ReadFile(logFile)
		return fmt.Errorf("GET %s: no 200 (last: %v)\nmoat lb: %s", url, err, log)
	})
	return resp
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLBListensOnlyOnLoopback(t *testing.T) {
	for _, args := range [][]string{
		{"lb", "--target", "127.0.0.1:1", "--listen", "0.0.0.0:18192"},
		{"lb", "--target", "127.0.0.1:1", "--listen", ":18192"},
		{"lb", "--target", "127.0.0.1:1", "--listen", "127.0.0.1:18192", "--metrics", "0.0.0.0:18193"},
		{"lb", "--target", "127.0.0.1:1", "--listen", "nonsense"},
	} {
		_, stderr, code := run(t, args...)
		if code != exitUsage || !strings.Contains(stderr, "loopback") {
			t.Errorf("%v: exit %d, %q; want exit %d naming loopback", args, code, stderr, exitUsage)
		}
	}
	for _, a := range []string{"127.0.0.1:80", "[::1]:80", "localhost:80", "127.9.9.9:80"} {
		if err := loopbackAddr("--listen", a); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
}
