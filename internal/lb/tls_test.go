package lb

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/targetgroup"
)

func TestHTTPSWithHTTP2(t *testing.T) {
	a := startBackend(t, "127.0.0.2", nameHandler("a"))
	cfg := Config{TargetGroups: []targetgroup.Config{{Name: "tg", HealthCheck: targetgroup.HealthCheck{Interval: 200 * time.Millisecond, Timeout: 100 * time.Millisecond}}},
		Listeners: []Listener{{Name: "tls", Protocol: "HTTPS", DefaultAction: forwardTo("tg")}}}
	e, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.Serve(ln, "tls")
	t.Cleanup(func() { ln.Close(); e.Close() })
	e.Register("tg", a.addr)
	waitFor(t, func() bool { return e.Targets("tg")[0].State == targetgroup.StateHealthy })
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || !strings.Contains(string(body), "proto=https") {
		t.Fatalf("proto %s body %q", resp.Proto, body)
	}
}
