//go:build linux

package lb

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/testutil"
)

// TestListenerSurvivesEMFILE runs the process out of file descriptors
// (a low RLIMIT_NOFILE, then every free descriptor taken), so that accept
// fails with EMFILE while a client waits in the backlog; once descriptors
// are free again the same listener serves that client and new ones.
func TestListenerSurvivesEMFILE(t *testing.T) {
	a := startBackend(t, "127.0.0.2", nameHandler("a"))
	logs := &testutil.Buffer{}
	e, err := New(quietGroup("HTTP"), Options{Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- e.Serve(ln, "l") }()
	t.Cleanup(func() { ln.Close(); e.Close() })
	e.Register("tg", a.addr)
	get := func() string {
		t.Helper()
		resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get(); !strings.HasPrefix(got, "a ") {
		t.Fatalf("before: %q", got)
	}

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	low := old
	low.Cur = uint64(len(fds) + 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var filler []*os.File
	restore := func() {
		for _, f := range filler {
			f.Close()
		}
		filler = nil
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	}
	defer restore()
	for {
		f, err := os.Open("/dev/null")
		if err != nil {
			if !strings.Contains(err.Error(), "too many open files") {
				t.Fatalf("exhausting descriptors: %v", err)
			}
			break
		}
		filler = append(filler, f)
	}
	// one descriptor for the client's socket; the listener's accept has none
	filler[len(filler)-1].Close()
	filler = filler[:len(filler)-1]
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial with one free descriptor: %v", err)
	}
	defer c.Close()
	testutil.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(logs.String(), "too many open files") {
			return fmt.Errorf("accept never failed with EMFILE; log:\n%s", logs.String())
		}
		return nil
	})
	restore()

	// the client that waited in the backlog is served, and so are new ones
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	out, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(out), "HTTP/1.1 200") {
		t.Fatalf("waiting client after EMFILE: %q", out)
	}
	if got := get(); !strings.HasPrefix(got, "a ") {
		t.Fatalf("after: %q", got)
	}
	select {
	case err := <-served:
		t.Fatalf("listener ended: %v", err)
	default:
	}
}
