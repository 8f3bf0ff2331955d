// Package instancessh is the SSH endpoint on every instance, as sshd is on
// an EC2 instance's port 22: it accepts the launch template's key pair and
// gives a shell (with a pty) or runs a command as the instance's user, in
// the instance's directory and environment. scp works both ways: with
// `scp -O` (the legacy protocol: exec of `scp -t`/`scp -f`) and with
// modern scp's default SFTP protocol when an sftp-server binary is
// installed (Debian: openssh-sftp-server).
//
// The integrator opens the listener inside the instance's network
// namespace and hands it to Serve; the server itself never switches
// namespaces. Port forwarding, agent forwarding and X11 are refused.
package instancessh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moat-dev/moat/internal/acceptloop"
	"github.com/moat-dev/moat/internal/sshpolicy"
	"golang.org/x/crypto/ssh"
)

// DefaultSFTPServers are where sftp-server is looked for.
var DefaultSFTPServers = []string{"/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server", "/usr/lib/ssh/sftp-server"}

// Config configures a Server. HostKey and AuthorizedKeys are required.
type Config struct {
	// HostKey is the instance's SSH identity (keypair.LoadOrCreateHostKey).
	HostKey ssh.Signer
	// AuthorizedKeys: the launch template's key pair.
	AuthorizedKeys *sshpolicy.KeySet
	// User, when set, is the only login name accepted (e.g. ec2-user).
	User string
	// Credential runs sessions as this uid/gid (needs root); nil runs them
	// as the server's own user.
	Credential *syscall.Credential
	// Home is $HOME for sessions; default Dir.
	Home string
	// Dir is the working directory of sessions.
	Dir string
	// Env is the instance environment ("KEY=value"), added to a minimal
	// login environment.
	Env []string
	// Shell runs commands (Shell -c CMD) and interactive logins; default
	// /bin/bash if present, else /bin/sh.
	Shell string
	// SFTPServer is the sftp-server binary; default the first of
	// DefaultSFTPServers that exists; "-" disables SFTP. Without one, the
	// sftp subsystem is refused and `scp -O` must be used.
	SFTPServer string
	// Start starts a session's process; default (*exec.Cmd).Start. The
	// integrator starts it inside the instance's network namespace
	// (instance.StartInNamespace), so sessions connect from the
	// instance's address.
	Start func(*exec.Cmd) error
	// Logger receives one record per authentication and session.
	Logger *slog.Logger
	// HandshakeTimeout defaults to 10s, MaxAuthTries to 3.
	HandshakeTimeout time.Duration
	MaxAuthTries     int
}

// Server is an instance's SSH endpoint.
type Server struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.HostKey == nil {
		return nil, errors.New("instance ssh: no host key configured")
	}
	if cfg.AuthorizedKeys == nil {
		return nil, errors.New("instance ssh: no authorized keys configured")
	}
	if cfg.Shell == "" {
		cfg.Shell = "/bin/sh"
		if _, err := os.Stat("/bin/bash"); err == nil {
			cfg.Shell = "/bin/bash"
		}
	}
	if cfg.Dir == "" {
		cfg.Dir = "/"
	}
	if cfg.Home == "" {
		cfg.Home = cfg.Dir
	}
	if cfg.SFTPServer == "" {
		for _, p := range DefaultSFTPServers {
			if _, err := os.Stat(p); err == nil {
				cfg.SFTPServer = p
				break
			}
		}
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.MaxAuthTries <= 0 {
		cfg.MaxAuthTries = 3
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log.With("component", "instancessh")}, nil
}

// Serve accepts connections on ln until ctx is cancelled, then closes ln
// and all sessions (their process groups get SIGHUP, then SIGKILL) and
// returns nil once every handler has finished.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	if err := acceptloop.ServeCounted(ctx, ln, s.log, &wg, func(nc net.Conn) { s.handle(ctx, nc) }); err != nil {
		return fmt.Errorf("instance ssh: %w", err)
	}
	return nil
}

func (s *Server) serverConfig() *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		Config:                  sshpolicy.Modern(),
		PublicKeyAuthAlgorithms: sshpolicy.ClientKeyAlgorithms,
		MaxAuthTries:            s.cfg.MaxAuthTries,
		ServerVersion:           "SSH-2.0-moat_instance",
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if s.cfg.User != "" && c.User() != s.cfg.User {
				return nil, &ssh.BannerError{Err: fmt.Errorf("user %q is not allowed", c.User()),
					Message: fmt.Sprintf("moat instance: log in as %s, not %s\n", s.cfg.User, c.User())}
			}
			if !s.cfg.AuthorizedKeys.Contains(key) {
				return nil, fmt.Errorf("key %s is not authorized", ssh.FingerprintSHA256(key))
			}
			return &ssh.Permissions{Extensions: map[string]string{}}, nil
		},
		VerifiedPublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey, p *ssh.Permissions, _ string) (*ssh.Permissions, error) {
			if !s.cfg.AuthorizedKeys.Contains(key) {
				return nil, fmt.Errorf("key %s is not authorized", ssh.FingerprintSHA256(key))
			}
			if p == nil {
				p = &ssh.Permissions{}
			}
			if p.Extensions == nil {
				p.Extensions = map[string]string{}
			}
			p.Extensions[sshpolicy.ExtFingerprint] = ssh.FingerprintSHA256(key)
			return p, nil
		},
		AuthLogCallback: func(c ssh.ConnMetadata, method string, err error) {
			if method == "none" && err != nil {
				return
			}
			if err != nil {
				s.log.Warn("auth", "source", c.RemoteAddr().String(), "user", c.User(), "method", method, "result", "failure", "reason", err.Error())
			}
		},
	}
	cfg.AddHostKey(s.cfg.HostKey)
	return cfg
}

func (s *Server) handle(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	_ = nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	sconn, chans, reqs, err := ssh.NewServerConn(nc, s.serverConfig())
	if err != nil {
		s.log.Warn("handshake failed", "source", nc.RemoteAddr().String(), "err", err)
		return
	}
	_ = nc.SetDeadline(time.Time{})
	defer sconn.Close()
	fp := ""
	if sconn.Permissions != nil {
		fp = sconn.Permissions.Extensions[sshpolicy.ExtFingerprint]
	}
	if fp == "" || !s.cfg.AuthorizedKeys.ContainsFingerprint(fp) {
		s.log.Error("auth", "source", nc.RemoteAddr().String(), "result", "failure", "reason", "no verified authorized key")
		return
	}
	s.log.Info("login", "source", nc.RemoteAddr().String(), "user", sconn.User(), "fingerprint", fp)
	go func() {
		for r := range reqs {
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.Prohibited, "moat instance: "+nch.ChannelType()+" channels (port forwarding) are disabled")
			s.log.Warn("channel refused", "type", nch.ChannelType(), "user", sconn.User())
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess := &session{srv: s, ch: ch, user: sconn.User(), remote: nc.RemoteAddr().String(), local: nc.LocalAddr().String()}
			sess.serve(cctx, creqs)
		}()
	}
	cancel()
	wg.Wait()
}

// session is one "session" channel: at most one program runs in it.
type session struct {
	srv    *Server
	ch     ssh.Channel
	user   string
	remote string
	local  string

	env     []string
	pty     *ptyReq
	master  *os.File // set once the program runs with a pty
	started bool
}

type ptyReq struct {
	Term          string
	Cols, Rows    uint32
	Width, Height uint32
	Modes         string
}

func (ss *session) serve(ctx context.Context, reqs <-chan *ssh.Request) {
	// The session's program lives as long as its channel: when the client
	// closes it (or the connection ends) the process group is hung up.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer ss.ch.Close()
	done := make(chan int, 1)
	for {
		select {
		case r, ok := <-reqs:
			if !ok {
				return
			}
			ok = ss.request(ctx, r, done)
			if r.WantReply {
				_ = r.Reply(ok, nil)
			}
		case code := <-done:
			_ = ss.ch.CloseWrite()
			_, _ = ss.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
			return
		}
	}
}

func (ss *session) stderrf(format string, args ...any) {
	fmt.Fprintf(ss.ch.Stderr(), "moat instance: "+format+"\r\n", args...)
}

func (ss *session) request(ctx context.Context, r *ssh.Request, done chan<- int) bool {
	switch r.Type {
	case "pty-req":
		var p ptyReq
		if ss.started || ssh.Unmarshal(r.Payload, &p) != nil {
			return false
		}
		ss.pty = &p
		return true
	case "window-change":
		var w struct{ Cols, Rows, Width, Height uint32 }
		if ssh.Unmarshal(r.Payload, &w) == nil && ss.master != nil {
			setWinsize(ss.master, w.Cols, w.Rows)
		}
		return true
	case "env":
		var e struct{ Name, Value string }
		if ssh.Unmarshal(r.Payload, &e) != nil || !validEnvName(e.Name) || len(ss.env) >= 64 {
			return false
		}
		ss.env = append(ss.env, e.Name+"="+e.Value)
		return true
	case "auth-agent-req@openssh.com":
		ss.stderrf("agent forwarding is disabled")
		ss.srv.log.Warn("agent forwarding refused", "user", ss.user, "source", ss.remote)
		return false
	case "x11-req":
		ss.stderrf("X11 forwarding is disabled")
		return false
	case "shell", "exec", "subsystem":
		if ss.started {
			return false
		}
		var argv []string
		what := r.Type
		switch r.Type {
		case "shell":
			argv = []string{ss.srv.cfg.Shell, "-l"}
		case "exec":
			var c struct{ Command string }
			if ssh.Unmarshal(r.Payload, &c) != nil {
				return false
			}
			argv = []string{ss.srv.cfg.Shell, "-c", c.Command}
			what = "exec " + c.Command
		case "subsystem":
			var c struct{ Name string }
			if ssh.Unmarshal(r.Payload, &c) != nil {
				return false
			}
			what = "subsystem " + c.Name
			if c.Name != "sftp" || ss.srv.cfg.SFTPServer == "" || ss.srv.cfg.SFTPServer == "-" {
				// Accept, explain on stderr and exit 127: a plain refusal
				// makes clients exit before they print the explanation.
				ss.started = true
				ss.srv.log.Warn("session refused", "user", ss.user, "source", ss.remote, "what", what)
				go func() {
					ss.stderrf("subsystem %q is not available here (for scp use scp -O)", c.Name)
					done <- 127
				}()
				return true
			}
			argv = []string{ss.srv.cfg.SFTPServer}
			ss.pty = nil
		}
		if err := ss.start(ctx, argv, done); err != nil {
			ss.stderrf("%v", err)
			ss.srv.log.Error("session failed", "user", ss.user, "source", ss.remote, "what", what, "err", err)
			return false
		}
		ss.started = true
		ss.srv.log.Info("session", "user", ss.user, "source", ss.remote, "what", what, "pty", ss.pty != nil)
		return true
	case "signal":
		return false
	}
	return false
}

func validEnvName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, c := range n {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	// Never let a client steer the loader or the shell.
	switch {
	case strings.HasPrefix(n, "LD_"), n == "PATH", n == "HOME", n == "SHELL", n == "USER", n == "LOGNAME", n == "IFS", n == "BASH_ENV", n == "ENV":
		return false
	}
	return true
}

func (ss *session) environ() []string {
	cfg := ss.srv.cfg
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + cfg.Home, "USER=" + ss.user, "LOGNAME=" + ss.user, "SHELL=" + cfg.Shell,
	}
	env = append(env, cfg.Env...)
	env = append(env, ss.env...)
	rh, rp, _ := net.SplitHostPort(ss.remote)
	lh, lp, _ := net.SplitHostPort(ss.local)
	env = append(env, "SSH_CLIENT="+rh+" "+rp+" "+lp, "SSH_CONNECTION="+rh+" "+rp+" "+lh+" "+lp)
	if ss.pty != nil {
		env = append(env, "TERM="+ss.pty.Term)
	}
	return env
}

// start runs argv in the session and sends its exit code on done.
func (ss *session) start(ctx context.Context, argv []string, done chan<- int) error {
	cfg := ss.srv.cfg
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = cfg.Dir
	cmd.Env = ss.environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cfg.Credential}
	cmd.WaitDelay = 2 * time.Second

	if ss.pty != nil {
		master, tty, err := openPTY()
		if err != nil {
			return err
		}
		setWinsize(master, ss.pty.Cols, ss.pty.Rows)
		if cfg.Credential != nil {
			_ = tty.Chown(int(cfg.Credential.Uid), int(cfg.Credential.Gid))
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		cmd.SysProcAttr.Setsid = true
		cmd.SysProcAttr.Setctty = true
		if err := ss.srv.startCmd(cmd); err != nil {
			master.Close()
			tty.Close()
			return fmt.Errorf("start %s: %w", argv[0], err)
		}
		tty.Close()
		ss.master = master
		go func() { _, _ = io.Copy(master, ss.ch) }()
		go func() {
			// Reading the master ends with EIO once every holder of the
			// terminal has exited.
			_, _ = io.Copy(ss.ch, master)
			code := wait(ctx, cmd)
			master.Close()
			done <- code
		}()
		return nil
	}

	cmd.SysProcAttr.Setpgid = true
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = ss.ch
	cmd.Stderr = ss.ch.Stderr()
	if err := ss.srv.startCmd(cmd); err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	go func() {
		_, _ = io.Copy(stdin, ss.ch)
		stdin.Close()
	}()
	go func() {
		code := wait(ctx, cmd)
		done <- code
	}()
	return nil
}

// wait waits for cmd, hanging up its process group when ctx ends, and
// returns its exit code (128+signal when killed).
func wait(ctx context.Context, cmd *exec.Cmd) int {
	pid := cmd.Process.Pid
	stop := context.AfterFunc(ctx, func() {
		_ = syscall.Kill(-pid, syscall.SIGHUP)
		time.AfterFunc(2*time.Second, func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	})
	defer stop()
	err := cmd.Wait()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 255
}

// String describes the server for logs.
func (s *Server) String() string {
	return "instance ssh (user " + s.cfg.User + ", dir " + s.cfg.Dir + ", uid " + credUID(s.cfg.Credential) + ")"
}

func credUID(c *syscall.Credential) string {
	if c == nil {
		return strconv.Itoa(os.Getuid())
	}
	return strconv.FormatUint(uint64(c.Uid), 10)
}

// startCmd starts a session's process with the configured starter.
func (s *Server) startCmd(cmd *exec.Cmd) error {
	if s.cfg.Start != nil {
		return s.cfg.Start(cmd)
	}
	return cmd.Start()
}
