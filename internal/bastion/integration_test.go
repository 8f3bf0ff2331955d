package bastion_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/bastion"
	"github.com/moat-dev/moat/internal/instancessh"
	"github.com/moat-dev/moat/internal/keypair"
	"github.com/moat-dev/moat/internal/sshconfig"
	"github.com/moat-dev/moat/internal/sshpolicy"
	"github.com/moat-dev/moat/internal/testutil"
	"golang.org/x/crypto/ssh"
)

// syncBuffer is the log the servers write audit lines to while the test
// reads them.
type syncBuffer struct{ testutil.Buffer }

func (b *syncBuffer) entries(t *testing.T) []map[string]any {
	t.Helper()
	data := b.String()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(data), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line is not JSON: %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// waitAudit polls until an audit entry has all the given fields (string
// values are substrings) and returns it.
func (b *syncBuffer) waitAudit(t *testing.T, want map[string]string) map[string]any {
	t.Helper()
	var found map[string]any
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, e := range b.entries(t) {
			if matches(e, want) {
				found = e
				return nil
			}
		}
		return fmt.Errorf("no audit entry matching %v; audit log:\n%s", want, b.String())
	})
	return found
}

func matches(e map[string]any, want map[string]string) bool {
	for k, v := range want {
		got, ok := e[k]
		if !ok || !strings.Contains(fmt.Sprint(got), v) {
			return false
		}
	}
	return true
}

type env struct {
	dir          string
	cfgFile      string // ssh -F file from sshconfig.Render
	knownHosts   string
	key          string // authorized private key
	wrongKey     string
	bastionAddr  netip.AddrPort
	instanceAddr netip.AddrPort
	instanceDir  string
	audit        *syncBuffer
	instanceLog  *syncBuffer
	fingerprint  string
	dials        atomic.Int64
	server       *bastion.Server
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (apt-get install openssh-client openssh-sftp-server)", tool)
			}
			t.Skipf("%s not installed (apt-get install openssh-client openssh-sftp-server)", tool)
		}
	}
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// refusedDst is a destination the policy refuses, as a security group
// without a rule for the bastion would.
var refusedDst = netip.MustParseAddrPort("127.0.0.4:22")

// start runs a bastion and an instance endpoint; the bastion blocks a
// source after maxFailures failed handshakes.
func start(t *testing.T, maxFailures ...int) *env {
	t.Helper()
	need(t, "ssh", "scp", "ssh-keygen")
	e := &env{dir: t.TempDir(), audit: &syncBuffer{}, instanceLog: &syncBuffer{}}
	t.Setenv("MOAT_HOME", filepath.Join(e.dir, "moat"))
	store, err := keypair.Open(keypair.DefaultDir())
	if err != nil {
		t.Fatal(err)
	}
	kp, err := store.Create("ops", keypair.ED25519, "")
	if err != nil {
		t.Fatal(err)
	}
	e.key, e.fingerprint = kp.PrivateKeyPath, kp.Fingerprint
	wrong, err := store.Create("stranger", keypair.ED25519, "")
	if err != nil {
		t.Fatal(err)
	}
	e.wrongKey = wrong.PrivateKeyPath
	keys, err := store.PublicKeys("ops")
	if err != nil {
		t.Fatal(err)
	}
	bastionHost, err := keypair.LoadOrCreateHostKey(filepath.Join(e.dir, "state", "bastion_host_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	instanceHost, err := keypair.LoadOrCreateHostKey(filepath.Join(e.dir, "state", "instance_host_ed25519"))
	if err != nil {
		t.Fatal(err)
	}

	bln := listen(t, "127.0.0.1:0")
	iln := listen(t, "127.0.0.3:0")
	e.bastionAddr = bln.Addr().(*net.TCPAddr).AddrPort()
	e.instanceAddr = iln.Addr().(*net.TCPAddr).AddrPort()
	e.instanceDir = filepath.Join(e.dir, "instance")
	if err := os.MkdirAll(e.instanceDir, 0o755); err != nil {
		t.Fatal(err)
	}

	var d net.Dialer
	b, err := bastion.New(bastion.Config{
		HostKey:        bastionHost,
		AuthorizedKeys: sshpolicy.NewKeySet(keys...),
		User:           "ec2-user",
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil || !ap.Addr().IsLoopback() {
				return nil, fmt.Errorf("test dialer: %s is not loopback", addr)
			}
			e.dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
		Policy: func(dst netip.AddrPort) error {
			if dst == refusedDst {
				return errors.New("security group sg-app does not allow the bastion on tcp/22")
			}
			return nil
		},
		Audit:            e.audit,
		HandshakeTimeout: 5 * time.Second,
		Limiter:          bastion.LimiterConfig{MaxFailures: append(maxFailures, 10)[0], Window: time.Minute, Block: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.server = b
	is, err := instancessh.New(instancessh.Config{
		HostKey:        instanceHost,
		AuthorizedKeys: sshpolicy.NewKeySet(keys...),
		User:           "ec2-user",
		Dir:            e.instanceDir,
		Env:            []string{"APP_ENV=moat-test"},
		Logger:         slog.New(slog.NewJSONHandler(e.instanceLog, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = b.Serve(ctx, bln) }()
	go func() { defer wg.Done(); _ = is.Serve(ctx, iln) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})

	e.knownHosts = filepath.Join(e.dir, "known_hosts")
	kh := b.KnownHostsLine(e.bastionAddr.String()) + "\n" +
		sshpolicy.KnownHostsLine(e.instanceAddr.String(), instanceHost.PublicKey()) + "\n"
	if err := os.WriteFile(e.knownHosts, []byte(kh), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := sshconfig.Render(sshconfig.ClientConfig{
		BastionAlias: "bastion", BastionAddr: e.bastionAddr, BastionUser: "ec2-user",
		IdentityFile: e.key, KnownHostsFile: e.knownHosts,
	}, []sshconfig.Instance{{Alias: "web-1", Addr: e.instanceAddr.Addr(), Port: int(e.instanceAddr.Port()), User: "ec2-user", Comment: "i-0test"}})
	cfg += "\nHost *\n  BatchMode yes\n  ConnectTimeout 10\n"
	e.cfgFile = filepath.Join(e.dir, "ssh_config")
	if err := os.WriteFile(e.cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// run runs an OpenSSH tool with a clean environment and returns its
// stdout, stderr and exit code.
func (e *env) run(t *testing.T, name string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"HOME=" + e.dir, "PATH=" + os.Getenv("PATH")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return stdout.String(), stderr.String(), code
}

// jumpArgs are the explicit `ssh -J` options a user would type.
func (e *env) jumpArgs(key string) []string {
	return []string{
		"-F", "/dev/null", // no user configuration: everything is on the command line
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", key,
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + e.knownHosts,
	}
}

func TestJumpRunsCommandOnInstance(t *testing.T) {
	e := start(t)
	// The configuration from sshconfig.Render: ProxyJump via the bastion block.
	out, stderr, code := e.run(t, "ssh", "-F", e.cfgFile, "web-1", "echo hello-$((6*7)); pwd; echo $APP_ENV; echo user=$USER")
	if code != 0 {
		t.Fatalf("ssh exit %d: %s", code, stderr)
	}
	want := fmt.Sprintf("hello-42\n%s\nmoat-test\nuser=ec2-user\n", e.instanceDir)
	if out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	// Exit codes come back.
	args := sshconfig.SSHArgs(e.cfgFile, "web-1", []string{"echo", "argv-ok;", "exit", "7"})
	if out, _, code := e.run(t, args[0], args[1:]...); code != 7 || out != "argv-ok\n" {
		t.Errorf("SSHArgs: exit code %d, output %q; want 7, argv-ok", code, out)
	}
	// The audit log has the login and the forward with byte counts.
	e.audit.waitAudit(t, map[string]string{"msg": "auth", "result": "success", "method": "publickey", "fingerprint": e.fingerprint, "source": "127.0.0.1:"})
	fwd := e.audit.waitAudit(t, map[string]string{"msg": "forward", "result": "closed", "destination": e.instanceAddr.String()})
	if fwd["bytes_to_destination"].(float64) == 0 || fwd["bytes_from_destination"].(float64) == 0 {
		t.Errorf("forward audit without byte counts: %v", fwd)
	}
	if _, ok := fwd["duration_ms"]; !ok {
		t.Errorf("forward audit without duration: %v", fwd)
	}
}

// TestActivity: a session through the bastion and its forward are counted
// while open (telemetry's ActiveSessions), and no longer once closed.
func TestActivity(t *testing.T) {
	e := start(t)
	if a := e.server.Activity(); a.Sessions != 0 || len(a.Forwards) != 0 {
		t.Fatalf("before any client: %+v", a)
	}
	done := make(chan int, 1)
	go func() {
		_, _, code := e.run(t, "ssh", "-F", e.cfgFile, "web-1", "sleep 3")
		done <- code
	}()
	testutil.Eventually(t, 10*time.Second, func() error {
		a := e.server.Activity()
		if a.Sessions != 1 || a.Forwards[e.instanceAddr] != 1 || len(a.Forwards) != 1 {
			return fmt.Errorf("while ssh runs: %+v, want 1 session forwarding to %s", a, e.instanceAddr)
		}
		return nil
	})
	if code := <-done; code != 0 {
		t.Fatalf("ssh exit %d", code)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if a := e.server.Activity(); a.Sessions != 0 || len(a.Forwards) != 0 {
			return fmt.Errorf("after ssh: %+v, want nothing open", a)
		}
		return nil
	})
}

func TestExplicitJumpFlag(t *testing.T) {
	e := start(t)
	// `ssh -J` from the command line: the jump process gets -F, so put the
	// bastion's options in a file, as a user's ~/.ssh/config would.
	cfg := filepath.Join(e.dir, "jump_config")
	body := fmt.Sprintf("Host 127.0.0.1 127.0.0.3\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n  BatchMode yes\n", e.key, e.knownHosts)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := e.run(t, "ssh", "-F", cfg,
		"-J", "ec2-user@"+e.bastionAddr.String(),
		"-p", fmt.Sprint(e.instanceAddr.Port()), "ec2-user@"+e.instanceAddr.Addr().String(), "uname -s")
	if code != 0 || out != "Linux\n" {
		t.Fatalf("ssh -J: exit %d, out %q, stderr %s", code, out, stderr)
	}
}

func TestScpThroughJump(t *testing.T) {
	e := start(t)
	src := filepath.Join(e.dir, "payload.bin")
	data := bytes.Repeat([]byte("moat scp through the bastion\n"), 4096)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"sftp", nil},              // modern scp: the SFTP protocol (sftp-server on the instance)
		{"legacy", []string{"-O"}}, // the scp protocol: exec of scp -t
	} {
		t.Run(mode.name, func(t *testing.T) {
			dst := "copy-" + mode.name + ".bin"
			args := append(append([]string{"-F", e.cfgFile, "-q"}, mode.args...), src, "web-1:"+dst)
			if _, stderr, code := e.run(t, "scp", args...); code != 0 {
				t.Fatalf("scp up: exit %d: %s", code, stderr)
			}
			got, err := os.ReadFile(filepath.Join(e.instanceDir, dst))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("uploaded file differs (err %v, %d bytes)", err, len(got))
			}
			back := filepath.Join(e.dir, "back-"+mode.name)
			args = append(append([]string{"-F", e.cfgFile, "-q"}, mode.args...), "web-1:"+dst, back)
			if _, stderr, code := e.run(t, "scp", args...); code != 0 {
				t.Fatalf("scp down: exit %d: %s", code, stderr)
			}
			got, err = os.ReadFile(back)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("downloaded file differs (err %v)", err)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	e := start(t, 100) // every refusal below comes from 127.0.0.1
	bastionPort := fmt.Sprint(e.bastionAddr.Port())

	t.Run("wrong key", func(t *testing.T) {
		_, stderr, code := e.run(t, "ssh", append(e.jumpArgs(e.wrongKey), "-p", bastionPort, "ec2-user@127.0.0.1", "true")...)
		if code != 255 || !strings.Contains(stderr, "Permission denied (publickey)") || !strings.Contains(stderr, "is not authorized here") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		wrongFP := strings.TrimSpace(strings.Fields(mustRun(t, "ssh-keygen", "-l", "-f", e.wrongKey))[1])
		e.audit.waitAudit(t, map[string]string{"msg": "auth", "method": "publickey", "result": "failure", "fingerprint": wrongFP, "reason": "not authorized"})
	})

	t.Run("password and keyboard-interactive with OpenSSH", func(t *testing.T) {
		args := append(e.jumpArgs(e.key), "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive",
			"-p", bastionPort, "ec2-user@127.0.0.1", "true")
		_, stderr, code := e.run(t, "ssh", args...)
		if code != 255 || !strings.Contains(stderr, "Permission denied (publickey)") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		e.audit.waitAudit(t, map[string]string{"msg": "auth", "method": "handshake", "result": "failure", "reason": "password and keyboard-interactive authentication are disabled"})
	})

	t.Run("password and keyboard-interactive sent anyway", func(t *testing.T) {
		for _, m := range []ssh.AuthMethod{
			ssh.Password("hunter2"),
			ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) { return nil, nil }),
		} {
			cc := &ssh.ClientConfig{
				User: "ec2-user", HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second,
				// Offer the method even though the server does not list it.
				AuthCallback: func(ctx *ssh.ClientAuthContext) (ssh.AuthMethod, error) {
					if len(ctx.TriedMethods) > 1 {
						return nil, errors.New("done")
					}
					return m, nil
				},
			}
			if c, err := ssh.Dial("tcp", e.bastionAddr.String(), cc); err == nil {
				c.Close()
				t.Fatal("login without a key succeeded")
			}
		}
		e.audit.waitAudit(t, map[string]string{"msg": "auth", "method": "password", "result": "failure", "reason": "password authentication is disabled"})
		e.audit.waitAudit(t, map[string]string{"msg": "auth", "method": "keyboard-interactive", "result": "failure", "reason": "keyboard-interactive authentication is disabled"})
	})

	t.Run("too many keys", func(t *testing.T) {
		var signers []ssh.Signer
		for range 8 {
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			sg, _ := ssh.NewSignerFromKey(priv)
			signers = append(signers, sg)
		}
		cc := &ssh.ClientConfig{User: "ec2-user", Auth: []ssh.AuthMethod{ssh.PublicKeys(signers...)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second}
		if c, err := ssh.Dial("tcp", e.bastionAddr.String(), cc); err == nil {
			c.Close()
			t.Fatal("login with unauthorized keys succeeded")
		}
		e.audit.waitAudit(t, map[string]string{"msg": "auth", "method": "handshake", "reason": "too many authentication failures"})
	})

	t.Run("knowing the public key is not enough", func(t *testing.T) {
		// The client offers the authorized public key but can only sign
		// with another key: the signature check must reject it.
		authorized, err := os.ReadFile(e.key)
		if err != nil {
			t.Fatal(err)
		}
		real, err := ssh.ParsePrivateKey(authorized)
		if err != nil {
			t.Fatal(err)
		}
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		other, _ := ssh.NewSignerFromKey(priv)
		cc := &ssh.ClientConfig{User: "ec2-user", Auth: []ssh.AuthMethod{ssh.PublicKeys(impostor{pub: real.PublicKey(), Signer: other})},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second}
		c, err := ssh.Dial("tcp", e.bastionAddr.String(), cc)
		if err == nil {
			c.Close()
			t.Fatal("login with a forged signature succeeded")
		}
		t.Logf("client: %v", err)
		e.audit.waitAudit(t, map[string]string{"msg": "auth", "method": "handshake", "result": "failure", "fingerprint": e.fingerprint,
			"reason": "does not hold its private key"})
	})

	t.Run("destination refused by security group", func(t *testing.T) {
		before := e.dials.Load()
		args := append(e.jumpArgs(e.key), "-o", "ProxyCommand=ssh -F "+e.cfgFile+" -W %h:%p bastion",
			"-p", fmt.Sprint(refusedDst.Port()), "ec2-user@"+refusedDst.Addr().String(), "true")
		_, stderr, code := e.run(t, "ssh", args...)
		if code != 255 || !strings.Contains(stderr, "administratively prohibited") ||
			!strings.Contains(stderr, "security group sg-app does not allow the bastion on tcp/22") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		if e.dials.Load() != before {
			t.Error("the bastion dialed a destination the policy refused")
		}
		e.audit.waitAudit(t, map[string]string{"msg": "forward", "result": "refused", "destination": refusedDst.String(), "reason": "sg-app does not allow the bastion"})
	})

	t.Run("hostname destination", func(t *testing.T) {
		_, stderr, _ := e.run(t, "ssh", "-F", e.cfgFile, "-W", "localhost:22", "bastion")
		if !strings.Contains(stderr, "not an IP address") {
			t.Errorf("stderr %q", stderr)
		}
	})

	t.Run("shell on the bastion", func(t *testing.T) {
		_, stderr, code := e.run(t, "ssh", "-F", e.cfgFile, "bastion", "id")
		if code != 255 || !strings.Contains(stderr, "the bastion only forwards to instances") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		e.audit.waitAudit(t, map[string]string{"msg": "session", "result": "refused", "fingerprint": e.fingerprint})
	})

	t.Run("agent forwarding", func(t *testing.T) {
		sock := filepath.Join(e.dir, "agent.sock")
		agent := exec.Command("ssh-agent", "-D", "-a", sock)
		if err := agent.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
		testutil.Eventually(t, 10*time.Second, func() error { _, err := os.Stat(sock); return err })
		run := func(args ...string) (string, string, int) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "ssh", args...)
			cmd.Env = []string{"HOME=" + e.dir, "PATH=" + os.Getenv("PATH"), "SSH_AUTH_SOCK=" + sock}
			var o, se bytes.Buffer
			cmd.Stdout, cmd.Stderr = &o, &se
			err := cmd.Run()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return o.String(), se.String(), ee.ExitCode()
			}
			return o.String(), se.String(), 0
		}
		// On the bastion: the session that would carry the agent is refused.
		_, stderr, code := run("-F", e.cfgFile, "-A", "bastion", "true")
		if code != 255 || !strings.Contains(stderr, "agent and X11 forwarding are disabled") {
			t.Errorf("bastion: exit %d, stderr %q", code, stderr)
		}
		// Through the jump to the instance: refused there too, visibly.
		out, stderr, code := run("-F", e.cfgFile, "-A", "web-1", "echo sock=$SSH_AUTH_SOCK")
		if code != 0 || out != "sock=\n" || !strings.Contains(stderr, "agent forwarding is disabled") {
			t.Errorf("instance: exit %d, out %q, stderr %q", code, out, stderr)
		}
		e.instanceLog.waitAudit(t, map[string]string{"msg": "agent forwarding refused"})
	})

	t.Run("remote forwarding", func(t *testing.T) {
		_, stderr, code := e.run(t, "ssh", "-F", e.cfgFile, "-N", "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:1", "bastion")
		if code != 255 || !strings.Contains(stderr, "remote port forwarding failed") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		e.audit.waitAudit(t, map[string]string{"msg": "request", "type": "tcpip-forward", "result": "refused"})
	})

	// Only AEAD ciphers are offered, so no separate MAC is ever negotiated.
	t.Run("legacy algorithms", func(t *testing.T) {
		for _, opt := range []string{"KexAlgorithms=ecdh-sha2-nistp256", "Ciphers=aes128-ctr", "HostKeyAlgorithms=ecdsa-sha2-nistp256"} {
			_, stderr, code := e.run(t, "ssh", "-F", e.cfgFile, "-o", opt, "bastion", "true")
			if code != 255 || !strings.Contains(stderr, "no matching") {
				t.Errorf("%s: exit %d, stderr %q", opt, code, stderr)
			}
		}
		_, stderr, _ := e.run(t, "ssh", "-F", e.cfgFile, "-v", "web-1", "true")
		if !strings.Contains(stderr, "kex: algorithm: curve25519-sha256") && !strings.Contains(stderr, "kex: algorithm: mlkem768x25519-sha256") {
			t.Errorf("unexpected key exchange:\n%s", stderr)
		}
	})
}

func TestFloodOfFailedHandshakes(t *testing.T) {
	e := start(t)
	const total, workers = 200, 8
	deadline := time.Now().Add(10 * time.Second)
	var attempted atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 2 * time.Second}
			for attempted.Add(1) <= total && time.Now().Before(deadline) {
				nc, err := d.Dial("tcp", e.bastionAddr.String())
				if err != nil {
					continue
				}
				_ = nc.SetDeadline(time.Now().Add(2 * time.Second))
				// Half do a full key exchange and fail authentication,
				// half send garbage.
				if attempted.Load()%2 == 0 {
					cc := &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.Password("x")}, HostKeyCallback: ssh.InsecureIgnoreHostKey()}
					if c, _, _, err := ssh.NewClientConn(nc, e.bastionAddr.String(), cc); err == nil {
						c.Close()
					}
				} else {
					_, _ = nc.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
					_, _ = nc.Read(make([]byte, 64))
				}
				nc.Close()
			}
		}()
	}
	// While the flood runs, the operator still gets in (from 127.0.0.1).
	out, stderr, code := e.run(t, "ssh", "-F", e.cfgFile, "-o", "BindAddress=127.0.0.1", "web-1", "echo still-in")
	wg.Wait()
	if code != 0 || out != "still-in\n" {
		t.Fatalf("legitimate login during flood: exit %d, out %q, stderr %s", code, out, stderr)
	}
	e.audit.waitAudit(t, map[string]string{"msg": "source_blocked", "source": "127.0.0.2/32"})
	failures := 0
	for _, a := range e.audit.entries(t) {
		if matches(a, map[string]string{"msg": "auth", "result": "failure", "source": "127.0.0.2:"}) {
			failures++
		}
	}
	// Once blocked, the flooder's connections are dropped before any
	// handshake work or audit line.
	if failures > 20 {
		t.Errorf("%d failed handshakes from the flooding source were processed; want the block to stop them", failures)
	}
	t.Logf("flood: %d connection attempts, %d processed before the block", min(attempted.Load(), total), failures)
	// And after the flood, still in.
	if out, stderr, code := e.run(t, "ssh", "-F", e.cfgFile, "web-1", "echo after"); code != 0 || out != "after\n" {
		t.Fatalf("login after flood: exit %d, out %q, stderr %s", code, out, stderr)
	}
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	return string(out)
}

func TestPTYShellThroughJump(t *testing.T) {
	e := start(t)
	// -tt forces a pty; the shell reads commands from it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", "-F", e.cfgFile, "-tt", "-o", "SetEnv=LC_MOAT=yes", "web-1")
	cmd.Env = []string{"HOME=" + e.dir, "PATH=" + os.Getenv("PATH"), "TERM=xterm-moat"}
	cmd.Stdin = strings.NewReader("stty cols 123 rows 45; tty; stty size; echo term=$TERM lc=$LC_MOAT; exit 3\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("ssh -tt: %v\n%s", err, out.String())
	}
	for _, want := range []string{"/dev/pts/", "45 123", "term=xterm-moat lc=yes"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("pty session output lacks %q:\n%s", want, out.String())
		}
	}
}

// impostor presents one public key and signs with another.
type impostor struct {
	pub ssh.PublicKey
	ssh.Signer
}

func (i impostor) PublicKey() ssh.PublicKey { return i.pub }
