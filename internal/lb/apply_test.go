package lb

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/targetgroup"
)

// TestApplyLive changes the listener's rules while a keep-alive
// connection and a WebSocket are open: both stay open and the keep-alive
// connection sees the new rule on its next request.
func TestApplyLive(t *testing.T) {
	a := startBackend(t, "127.0.0.2", wsEcho())
	e, addr := startLB(t, targetgroup.Config{}, nil, a.addr)
	ws, wsr := dialWS(t, addr)
	defer ws.Close()

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	get := func() *http.Response {
		io.WriteString(c, "GET /new HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if r := get(); r.StatusCode != 200 {
		t.Fatalf("before apply: %d", r.StatusCode)
	}
	cfg := Config{TargetGroups: []targetgroup.Config{{Name: "tg", HealthCheck: targetgroup.HealthCheck{Interval: 200 * time.Millisecond, Timeout: 100 * time.Millisecond}}},
		Listeners: []Listener{{Name: "l", DefaultAction: forwardTo("tg"), Rules: []Rule{{Priority: 1,
			Conditions: []Condition{{Field: FieldPathPattern, Values: []string{"/new"}}},
			Action:     Action{Type: ActionFixed, Fixed: FixedResponse{StatusCode: 404, Body: "gone"}}}}}}}
	if err := e.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if r := get(); r.StatusCode != 404 {
		t.Fatalf("after apply: %d", r.StatusCode)
	}
	ws.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(ws, "still here\n")
	if l, err := wsr.ReadString('\n'); err != nil || !strings.HasPrefix(l, "still here") {
		t.Fatalf("websocket after apply: %q %v", l, err)
	}
}
