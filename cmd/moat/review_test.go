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

// Tests of the fixes from a black-box review of the CLI.

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

func TestKeypairCLIMessages(t *testing.T) {
	t.Setenv("MOAT_HOME", t.TempDir())
	if _, stderr, code := run(t, "keypair", "create", "k1"); code != exitOK {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	// A taken name is the error, not the key file it left.
	_, stderr, code := run(t, "keypair", "create", "k1")
	if code != exitUsage || !strings.Contains(stderr, "key pair already exists") {
		t.Errorf("create twice: exit %d, %q", code, stderr)
	}
	// -o text as every other listing; table stays an alias.
	for _, o := range []string{"text", "table", ""} {
		out, stderr, code := run(t, "keypair", "list", "-o", o)
		if code != exitOK || !strings.Contains(out, "k1") {
			t.Errorf("list -o %q: exit %d, %q %q", o, code, out, stderr)
		}
	}
	if _, stderr, code := run(t, "keypair", "list", "-o", "yaml"); code != exitUsage || !strings.Contains(stderr, "text or json") {
		t.Errorf("list -o yaml: exit %d, %q", code, stderr)
	}
	// An unknown key pair is not found before -y is asked for.
	if _, stderr, code := run(t, "keypair", "delete", "nope"); code != exitNotFound || !strings.Contains(stderr, "no such key pair") {
		t.Errorf("delete nope: exit %d, %q", code, stderr)
	}
	if _, stderr, code := run(t, "keypair", "delete", "k1"); code != exitUsage || !strings.Contains(stderr, "-y") {
		t.Errorf("delete k1 without -y: exit %d, %q", code, stderr)
	}
}

func TestSSHNeedsAnInstanceBeforeDash(t *testing.T) {
	_, stderr, code := run(t, "ssh", "--stack", "nosuch", "--", "uptime")
	if code != exitUsage || !strings.Contains(stderr, "before --") {
		t.Errorf("ssh -- uptime: exit %d, %q; want a usage error", code, stderr)
	}
}

func TestKeypairImportOfAPrivateKeySaysSo(t *testing.T) {
	t.Setenv("MOAT_HOME", t.TempDir())
	if _, stderr, code := run(t, "keypair", "create", "k1"); code != exitOK {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	priv := os.Getenv("MOAT_HOME") + "/keys/k1.pem"
	_, stderr, code := run(t, "keypair", "import", "k2", priv)
	if code != exitUsage || !strings.Contains(stderr, "is a private key") {
		t.Errorf("import of a private key: exit %d, %q", code, stderr)
	}
}

func TestValidateCountsInWords(t *testing.T) {
	stdout, _, code := run(t, "validate", "-f", exampleFile)
	if code != exitOK || !strings.Contains(stdout, "is valid (no warnings)") {
		t.Errorf("validate example: exit %d, %q", code, stdout)
	}
	for n, want := range map[int]string{0: "no errors", 1: "1 error", 11: "11 errors"} {
		if got := count(n, "error"); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
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
