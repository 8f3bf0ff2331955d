//go:build linux && !portable

package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/moat-dev/moat/internal/testutil"
)

// Tests of the commands that run or talk to a stack on this machine
// (Linux only), from a black-box review of the CLI.

func TestSSHNeedsAnInstanceBeforeDash(t *testing.T) {
	_, stderr, code := run(t, "ssh", "--stack", "nosuch", "--", "uptime")
	if code != exitUsage || !strings.Contains(stderr, "before --") {
		t.Errorf("ssh -- uptime: exit %d, %q; want a usage error", code, stderr)
	}
}

func TestMissingStackFileGivenWithF(t *testing.T) {
	_, stderr, code := run(t, "ps", "-f", "/nonexistent/moat.yaml")
	if code != exitUsage || !strings.Contains(stderr, "/nonexistent/moat.yaml") || strings.Contains(stderr, "pass --stack NAME or -f FILE") {
		t.Errorf("ps -f missing: exit %d, %q", code, stderr)
	}
}

// TestNonRootAgainstARootStack: a user who may not reach a root daemon's
// socket is told to use sudo, not that the stack is not running, and moat
// down refuses to reclaim without root instead of failing on every
// namespace.
func TestNonRootAgainstARootStack(t *testing.T) {
	testutil.RequireRoot(t, "playing both the root daemon and the user nobody")
	// The binary, where nobody may run it (t.TempDir's parent is root's).
	base, err := os.MkdirTemp("", "moat-nonroot")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	binDir := base
	bin := filepath.Join(binDir, "moat")
	b, err := os.ReadFile(moatBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	// A root "daemon": a listening socket in a state directory only root
	// may enter, as moat up leaves it.
	rootHome := filepath.Join(base, "root")
	if err := os.MkdirAll(filepath.Join(rootHome, "twin"), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(rootHome, "twin", "moat.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// nobody's own, empty home.
	userHome := filepath.Join(base, "user")
	if err := os.Mkdir(userHome, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(userHome, 0o777); err != nil {
		t.Fatal(err)
	}
	asNobody := func(home string, args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = binDir
		cmd.Env = []string{"MOAT_HOME=" + home, "HOME=" + userHome, "PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return string(out), cmd.ProcessState.ExitCode()
	}
	cases := []struct {
		home    string
		args    []string
		code    int
		want    string
		mustNot string
	}{
		{rootHome, []string{"ps", "--stack", "twin"}, exitFailure, "permission denied", "not running"},
		{rootHome, []string{"status", "--stack", "twin"}, exitFailure, "run this with sudo", "not running"},
		{rootHome, []string{"down", "--stack", "twin"}, exitFailure, "run this with sudo", "reclaim"},
		{userHome, []string{"ps", "--stack", "twin"}, exitNotFound, "started with sudo is found with sudo", ""},
		{userHome, []string{"down", "--stack", "twin"}, exitOK, "left nothing behind", "needs root"},
	}
	for _, c := range cases {
		out, code := asNobody(c.home, c.args...)
		if code != c.code || !strings.Contains(out, c.want) || (c.mustNot != "" && strings.Contains(out, c.mustNot)) {
			t.Errorf("nobody: moat %s: exit %d, %q; want exit %d with %q", strings.Join(c.args, " "), code, out, c.code, c.want)
		}
	}
	// With a leftover namespace of the stack, reclaiming needs root.
	if out, err := exec.Command("ip", "netns", "add", "moat-twin-router").CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	defer exec.Command("ip", "netns", "delete", "moat-twin-router").Run()
	if out, code := asNobody(userHome, "down", "--stack", "twin"); code != exitFailure || !strings.Contains(out, "moat down needs root") ||
		strings.Contains(out, "operation not permitted") {
		t.Errorf("nobody: moat down --stack twin with a leftover namespace: exit %d, %q; want exit %d with \"moat down needs root\"", code, out, exitFailure)
	}
}
