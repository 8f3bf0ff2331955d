package realtime_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/browsertest"
	"github.com/moat-dev/moat/internal/testutil"
)

// startApp runs the example app on a free loopback port and returns its URL.
func startApp(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("python3", "app.py")
	cmd.Dir = "app"
	cmd.Env = append(os.Environ(), "HOST=127.0.0.1", fmt.Sprintf("PORT=%d", port),
		"MOAT_IMDS=http://127.0.0.1:1", "MOAT_INSTANCE_ID=i-0123456789abcdef0", "MOAT_ZONE=a", "MOAT_PRIVATE_IP=10.0.128.4")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	testutil.Eventually(t, 10*time.Second, func() error {
		resp, err := http.Get(url + "/health")
		if err != nil {
			return fmt.Errorf("app not healthy: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("app not healthy: /health answers %s", resp.Status)
		}
		return nil
	})
	return url
}

func TestAppServesPageHealthAndEvents(t *testing.T) {
	url := startApp(t)
	resp, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "i-0123456789abcdef0") || !strings.Contains(string(body), "EventSource") {
		t.Fatalf("page lacks identity or live stream:\n%s", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/events", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var events []string
	for sc.Scan() && len(events) < 2 {
		if line := sc.Text(); strings.HasPrefix(line, "data: ") {
			events = append(events, line)
		}
	}
	if len(events) < 2 || !strings.Contains(events[1], `"seq": 2`) {
		t.Fatalf("events = %q", events)
	}
	// Health can be made to fail, for ELB health demos.
	if r, err := http.Get(url + "/health/fail"); err == nil {
		r.Body.Close()
	}
	r, err := http.Get(url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 503 {
		t.Fatalf("health after fail = %d, want 503", r.StatusCode)
	}
}

// TestPageInBrowser loads the page in headless Chromium and checks that
// live updates arrive in the DOM.
func TestPageInBrowser(t *testing.T) {
	b := browsertest.Start(t)
	url := startApp(t)
	page := b.Open(t, url+"/")
	page.WaitFor(t, `document.getElementById("status").textContent === "live"`, 15*time.Second)
	page.WaitFor(t, `document.getElementById("log").children.length >= 2`, 15*time.Second)
	v, err := page.Eval(`document.getElementById("log").children[0].textContent`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(v), "from i-0123456789abcdef0 (a, 10.0.128.4)") {
		t.Fatalf("live update = %s", v)
	}
}

// TestAppAnswersKeepAliveQuickly sends several requests one after another
// on one keep-alive connection and fails when any takes 20 ms or more. A
// response written in two small writes (head, then body) waits for the
// client's delayed ACK under Nagle's algorithm: ~40 ms per request.
func TestAppAnswersKeepAliveQuickly(t *testing.T) {
	url := startApp(t)
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	for _, path := range []string{"/health", "/whoami", "/", "/health", "/whoami", "/", "/health", "/nope", "/health", "/whoami"} {
		start := time.Now()
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: app\r\n\r\n", path); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatalf("GET %s: body: %v", path, err)
		}
		resp.Body.Close()
		if d := time.Since(start); d >= 20*time.Millisecond {
			t.Errorf("GET %s on a keep-alive connection took %v, want < 20ms", path, d)
		}
		if resp.Close {
			t.Fatalf("GET %s: the app closed the keep-alive connection", path)
		}
	}
}

// TestAppEchoesWebSocket checks the app's WebSocket echo, with messages of
// each frame length encoding, and that echoes are not held back by the
// app's buffered writes.
func TestAppEchoesWebSocket(t *testing.T) {
	url := startApp(t)
	testutil.EchoWebSocket(t, strings.TrimPrefix(url, "http://"), "hello", strings.Repeat("x", 300), strings.Repeat("y", 70000), "bye")
}
