// Package testutil holds what moat's tests share: the root check with the
// CI rule, polling with a deadline, and a test environment cut off from
// this machine's AWS set-up, and the example app's WebSocket echo check.
package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// RequireRoot skips the test when it does not run as root, saying what
// needs root (why, e.g. "network namespaces, nftables"). Under CI=true it
// fails instead: CI runs as root and must run every test.
func RequireRoot(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("this test needs root (%s), and CI=true: CI runs the suite as root and must run it", why)
	}
	tb.Skipf("skipping: needs root (%s); run as root: sudo scripts/test.sh", why)
}

// Poll calls cond until it returns nil or timeout passes, and returns
// cond's last result: nil once the condition held, else what it said was
// still missing. It waits 10 ms after the first try, doubling to at most
// 250 ms, so fast conditions are seen fast and slow ones (a command run)
// are not run in a busy loop.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	wait := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(min(wait, time.Until(deadline)+time.Millisecond))
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// Eventually polls cond (see Poll) and fails the test with cond's last
// error when it has not returned nil within timeout.
func Eventually(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	if err := Poll(timeout, cond); err != nil {
		tb.Fatalf("not within %v: %v", timeout, err)
	}
}

// awsVars are the settings through which the AWS SDKs and CLI find
// credentials, a region, an endpoint or a profile.
var awsVars = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
	"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_CLOUDFORMATION", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS",
	"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
	"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED",
}

// NoAWSEndpoint is a loopback address where nothing listens: isolated
// tests send AWS requests there unless they name their own endpoint, so a
// request a test did not mean to make fails fast and never leaves the
// machine.
const NoAWSEndpoint = "http://127.0.0.1:1"

// IsolateAWS cuts the test off from this machine's AWS set-up and from AWS
// itself, until it ends: no credentials, region or profile from the
// environment, shared config and credentials files that are empty, HOME a
// temporary directory, the instance metadata service disabled (nothing
// looks for an instance role), and AWS_ENDPOINT_URL (and
// AWS_ENDPOINT_URL_STS) at NoAWSEndpoint.
func IsolateAWS(tb testing.TB) {
	tb.Helper()
	dir := tb.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	for _, k := range append(awsVars, "MOAT_FILE") {
		tb.Setenv(k, "") // restored when the test ends
		os.Unsetenv(k)
	}
	tb.Setenv("HOME", dir)
	tb.Setenv("AWS_CONFIG_FILE", empty)
	tb.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	tb.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	setEndpoint(tb, NoAWSEndpoint)
}

// setEndpoint sets AWS_ENDPOINT_URL, and AWS_ENDPOINT_URL_STS too: while
// the SDK resolves credentials (a profile that assumes a role), its STS
// client ignores the general variable unless the STS one is set too, and
// would go to sts.REGION.amazonaws.com.
func setEndpoint(tb testing.TB, url string) {
	tb.Setenv("AWS_ENDPOINT_URL", url)
	tb.Setenv("AWS_ENDPOINT_URL_STS", url)
}

// FakeAWSAccessKey is the access key id FakeAWS sets: a stand-in sees
// requests signed with it.
const FakeAWSAccessKey = "AKIAMOATTESTFAKE"

// FakeAWS is IsolateAWS with fake static credentials, region us-east-1
// and AWS_ENDPOINT_URL at endpoint: the test's own server on loopback (a
// CloudFormation stand-in, say).
func FakeAWS(tb testing.TB, endpoint string) {
	tb.Helper()
	IsolateAWS(tb)
	tb.Setenv("AWS_ACCESS_KEY_ID", FakeAWSAccessKey)
	tb.Setenv("AWS_SECRET_ACCESS_KEY", "moat-test-fake-secret")
	tb.Setenv("AWS_REGION", "us-east-1")
	setEndpoint(tb, endpoint)
}

// Buffer is a bytes.Buffer that one goroutine may write (a process's
// output, a server's log) while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// EchoWebSocket opens a WebSocket to ws://addr/ws and checks that each
// message comes back unchanged (the example app's echo, straight or
// through the load balancer).
func EchoWebSocket(t testing.TB, addr string, msgs ...string) {
	t.Helper()
	ws, err := websocket.Dial("ws://"+addr+"/ws", "", "http://"+addr+"/")
	if err != nil {
		t.Fatalf("WebSocket to %s: %v", addr, err)
	}
	defer ws.Close()
	for _, msg := range msgs {
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := websocket.Message.Receive(ws, &got); err != nil {
			t.Fatal(err)
		}
		if got != msg {
			t.Errorf("echo of a %d-byte message came back as %d bytes", len(msg), len(got))
		}
	}
}
