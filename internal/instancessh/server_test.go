package instancessh_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/instancessh"
	"github.com/moat-dev/moat/internal/keypair"
	"github.com/moat-dev/moat/internal/sshpolicy"
	"github.com/moat-dev/moat/internal/testutil"
)

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (apt-get install openssh-client)", tool)
			}
			t.Skipf("%s not installed (apt-get install openssh-client)", tool)
		}
	}
}

type fixture struct {
	home, key, knownHosts, addr, port string
	dir                               string
}

// serve starts an endpoint on a fresh 127.0.0.x listener with cfg (host
// and authorized keys filled in) and returns what a client needs.
func serve(t *testing.T, cfg instancessh.Config) *fixture {
	t.Helper()
	need(t, "ssh", "scp")
	f := &fixture{home: t.TempDir()}
	t.Setenv("MOAT_HOME", f.home)
	store, err := keypair.Open(keypair.DefaultDir())
	if err != nil {
		t.Fatal(err)
	}
	kp, err := store.Create("app", keypair.RSA, "")
	if err != nil {
		t.Fatal(err)
	}
	f.key = kp.PrivateKeyPath
	keys, err := store.PublicKeys("app")
	if err != nil {
		t.Fatal(err)
	}
	host, err := keypair.LoadOrCreateHostKey(filepath.Join(f.home, "host"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.HostKey, cfg.AuthorizedKeys = host, sshpolicy.NewKeySet(keys...)
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	f.dir = cfg.Dir
	srv, err := instancessh.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.5:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr, f.port, _ = net.SplitHostPort(ln.Addr().String())
	f.knownHosts = filepath.Join(f.home, "known_hosts")
	if err := os.WriteFile(f.knownHosts, []byte(sshpolicy.KnownHostsLine(ln.Addr().String(), host.PublicKey())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return f
}

func (f *fixture) run(t *testing.T, tool string, args ...string) (string, string, int) {
	t.Helper()
	base := []string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", f.key,
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + f.knownHosts}
	if tool == "ssh" {
		base = append(base, "-p", f.port)
	} else {
		base = append(base, "-P", f.port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, append(base, args...)...)
	cmd.Env = []string{"HOME=" + f.home, "PATH=" + os.Getenv("PATH")}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

func TestExecStdinAndUser(t *testing.T) {
	f := serve(t, instancessh.Config{User: "ec2-user"})
	out, stderr, code := f.run(t, "ssh", "ec2-user@"+f.addr, "wc -c; echo err >&2")
	if code != 0 || strings.TrimSpace(out) != "0" || stderr != "err\n" {
		t.Errorf("exit %d, out %q, stderr %q", code, out, stderr)
	}
	_, stderr, code = f.run(t, "ssh", "root@"+f.addr, "true")
	if code != 255 || !strings.Contains(stderr, "log in as ec2-user, not root") {
		t.Errorf("wrong user: exit %d, stderr %q", code, stderr)
	}
}

func TestPortForwardingRefused(t *testing.T) {
	f := serve(t, instancessh.Config{})
	_, stderr, code := f.run(t, "ssh", "-W", "127.0.0.1:1", "ec2-user@"+f.addr)
	if code != 255 || !strings.Contains(stderr, "port forwarding) are disabled") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestLegacySCPWithoutSFTP(t *testing.T) {
	f := serve(t, instancessh.Config{SFTPServer: "-"})
	src := filepath.Join(f.home, "f.txt")
	if err := os.WriteFile(src, []byte("payload\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := f.run(t, "scp", src, "ec2-user@"+f.addr+":sftp.txt")
	if code == 0 || !strings.Contains(stderr, "use scp -O") {
		t.Errorf("scp over sftp without sftp-server: exit %d, stderr %q", code, stderr)
	}
	if _, stderr, code := f.run(t, "scp", "-O", src, "ec2-user@"+f.addr+":legacy.txt"); code != 0 {
		t.Fatalf("scp -O: exit %d: %s", code, stderr)
	}
	if got, err := os.ReadFile(filepath.Join(f.dir, "legacy.txt")); err != nil || string(got) != "payload\n" {
		t.Errorf("copied file: %q, %v", got, err)
	}
}

func TestRunsAsGivenUser(t *testing.T) {
	testutil.RequireRoot(t, "running sessions as another user")
	dir, err := os.MkdirTemp("", "moat-instancessh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	f := serve(t, instancessh.Config{Dir: dir, Credential: &syscall.Credential{Uid: 65534, Gid: 65534}})
	out, stderr, code := f.run(t, "ssh", "ec2-user@"+f.addr, "id -u; id -g; pwd; touch made")
	if want := fmt.Sprintf("65534\n65534\n%s\n", dir); code != 0 || out != want {
		t.Fatalf("exit %d, out %q (want %q), stderr %q", code, out, want, stderr)
	}
	fi, err := os.Stat(filepath.Join(dir, "made"))
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Errorf("file made by the session: %v %v", fi, err)
	}
	// With a pty too.
	out, stderr, code = f.run(t, "ssh", "-tt", "ec2-user@"+f.addr, "id -u")
	if code != 0 || strings.TrimSpace(out) != "65534" {
		t.Errorf("pty: exit %d, out %q, stderr %q", code, out, stderr)
	}
}

func TestClosedChannelHangsUpTheProgram(t *testing.T) {
	f := serve(t, instancessh.Config{})
	pidFile := filepath.Join(f.dir, "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", f.key,
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile="+f.knownHosts, "-p", f.port,
		"ec2-user@"+f.addr, "echo $$ > "+pidFile+"; exec sleep 60")
	cmd.Env = []string{"HOME=" + f.home, "PATH=" + os.Getenv("PATH")}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	testutil.Eventually(t, 10*time.Second, func() error {
		if b, err := os.ReadFile(pidFile); err == nil {
			fmt.Sscan(string(b), &pid)
		}
		if pid == 0 {
			return errors.New("remote program did not start")
		}
		return nil
	})
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) }) // if it survived
	testutil.Eventually(t, 5*time.Second, func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("remote program %d survived its client", pid)
		}
		return nil
	})
}
