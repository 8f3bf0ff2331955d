// Package bastion is moat's SSH jump host: the single way into a stack's
// private subnets, used with a plain OpenSSH client (`ssh -J`).
//
// The bastion authenticates users by public key only, against the key
// pairs it is given, and then does exactly one thing: it opens
// `direct-tcpip` channels (what `ssh -J` and `ssh -W` ask for) to
// destinations that a policy check allows, through a dial function the
// caller provides (in `moat up`, one that dials from the bastion's own
// network namespace, so the destination's security groups decide). Shells,
// commands, agent forwarding, remote forwarding and X11 are refused with a
// message that says so. Every authentication, forwarded connection and
// refused request is written to an audit log as JSON lines.
//
// Hardening: only the key that the client proved it holds counts (the
// fingerprint is recorded by the verified-key callback and checked again
// in the connection's Permissions after the handshake, so the
// CVE-2024-45337 class of mistakes cannot happen); handshake deadline;
// limited authentication tries; per-source blocking after repeated failed
// handshakes; a cap on concurrent unauthenticated connections; keepalives;
// a persistent ed25519 host key; modern algorithms only (see Modern).
package bastion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/moat-dev/moat/internal/acceptloop"
	"github.com/moat-dev/moat/internal/sshpolicy"
)

// DialFunc opens a connection to a forwarding destination. In `moat up` it
// dials from the bastion's network namespace.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// PolicyFunc decides whether the bastion may forward to dst. A non-nil
// error refuses the forward; its text is shown to the user and audited,
// so it should say why ("security group sg-app does not allow the bastion
// on tcp/22").
type PolicyFunc func(dst netip.AddrPort) error

// Config configures a Server. HostKey, AuthorizedKeys and Dial are required.
type Config struct {
	// HostKey is the server's identity; see keypair.LoadOrCreateHostKey.
	HostKey ssh.Signer
	// AuthorizedKeys are the public keys that may log in.
	AuthorizedKeys *sshpolicy.KeySet
	// User, when set, is the only login name accepted (e.g. ec2-user).
	User string
	// Dial opens forwarded connections.
	Dial DialFunc
	// Policy, when set, is asked before every forward.
	Policy PolicyFunc
	// Audit receives one JSON object per line for every authentication,
	// forward, session attempt and refusal. Nil discards.
	Audit io.Writer
	// Logger is the operational log. Nil discards.
	Logger *slog.Logger

	// HandshakeTimeout bounds key exchange plus authentication; default 10s.
	HandshakeTimeout time.Duration
	// MaxAuthTries per connection; default 3.
	MaxAuthTries int
	// KeepAliveInterval between server keepalives; default 15s. The
	// connection is closed when no reply comes within
	// KeepAliveInterval*KeepAliveCountMax (default 3).
	KeepAliveInterval time.Duration
	KeepAliveCountMax int
	// DialTimeout bounds opening a forwarded connection; default 10s.
	DialTimeout time.Duration
	// MaxStartups caps concurrent unauthenticated connections; default 64.
	MaxStartups int
	// MaxConnections caps all concurrent connections; default 512.
	MaxConnections int
	// AllowedSources, when not empty, are the only client networks
	// accepted (the bastion's allowedCidrs); others are closed at once.
	AllowedSources []netip.Prefix
	// Limiter blocks sources after repeated failed handshakes.
	Limiter LimiterConfig
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Server is an SSH bastion. Create it with New and run it with Serve.
type Server struct {
	cfg      Config
	audit    *slog.Logger
	log      *slog.Logger
	limiter  *failureLimiter
	startups chan struct{}
	nextID   atomic.Uint64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	// forwards counts the open forwards by destination.
	forwards map[netip.AddrPort]int
	sessions int // authenticated connections open
}

// Activity is what goes through the bastion now.
type Activity struct {
	// Sessions are the authenticated SSH connections open.
	Sessions int
	// Forwards are the open forwards (ssh -J, -W, -L) by destination.
	Forwards map[netip.AddrPort]int
}

// Activity says what goes through the bastion now.
func (s *Server) Activity() Activity {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := Activity{Sessions: s.sessions, Forwards: make(map[netip.AddrPort]int, len(s.forwards))}
	for d, n := range s.forwards {
		a.Forwards[d] = n
	}
	return a
}

func (s *Server) countSession(d int) {
	s.mu.Lock()
	s.sessions += d
	s.mu.Unlock()
}

func (s *Server) countForward(dst netip.AddrPort, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forwards[dst] += d; s.forwards[dst] <= 0 {
		delete(s.forwards, dst)
	}
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.HostKey == nil {
		return nil, errors.New("bastion: no host key configured")
	}
	if cfg.AuthorizedKeys == nil {
		return nil, errors.New("bastion: no authorized keys configured")
	}
	if cfg.Dial == nil {
		return nil, errors.New("bastion: no dial function configured")
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.MaxAuthTries <= 0 {
		cfg.MaxAuthTries = 3
	}
	if cfg.KeepAliveInterval <= 0 {
		cfg.KeepAliveInterval = 15 * time.Second
	}
	if cfg.KeepAliveCountMax <= 0 {
		cfg.KeepAliveCountMax = 3
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.MaxStartups <= 0 {
		cfg.MaxStartups = 64
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 512
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	audit := cfg.Audit
	if audit == nil {
		audit = io.Discard
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		cfg:      cfg,
		audit:    slog.New(slog.NewJSONHandler(audit, nil)).With("component", "bastion"),
		log:      log.With("component", "bastion"),
		limiter:  newFailureLimiter(cfg.Limiter),
		startups: make(chan struct{}, cfg.MaxStartups),
		conns:    map[net.Conn]struct{}{},
		forwards: map[netip.AddrPort]int{},
	}, nil
}

// HostKey is the server's public host key.
func (s *Server) HostKey() ssh.PublicKey { return s.cfg.HostKey.PublicKey() }

// KnownHostsLine is the known_hosts line for this server reached at
// address (host:port), for clients' UserKnownHostsFile.
func (s *Server) KnownHostsLine(address string) string {
	return sshpolicy.KnownHostsLine(address, s.HostKey())
}

// Serve accepts connections on ln until ctx is cancelled, then closes ln
// and every connection and returns nil once all handlers have finished.
// It returns an error if accepting fails for another reason.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	err := acceptloop.ServeCounted(ctx, ln, s.log, &wg, func(nc net.Conn) { s.handle(ctx, nc) })
	s.closeAll()
	if err != nil {
		return fmt.Errorf("bastion: %w", err)
	}
	return nil
}

func (s *Server) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) >= s.cfg.MaxConnections {
		return false
	}
	s.conns[nc] = struct{}{}
	return true
}

func (s *Server) untrack(nc net.Conn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

func (s *Server) sourceAllowed(a netip.Addr) bool {
	if len(s.cfg.AllowedSources) == 0 {
		return true
	}
	a = a.Unmap()
	for _, p := range s.cfg.AllowedSources {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// connState is what the authentication callbacks of one connection learn.
type connState struct {
	id       string
	source   string
	mu       sync.Mutex
	offered  string   // fingerprint of the last key offered
	methods  []string // methods attempted, bounded
	verified string   // fingerprint set by the verified-key callback
}

func (st *connState) noteMethod(m string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.methods) < 16 && (len(st.methods) == 0 || st.methods[len(st.methods)-1] != m) {
		st.methods = append(st.methods, m)
	}
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func (s *Server) handle(ctx context.Context, nc net.Conn) {
	src := addrPortOf(nc.RemoteAddr())
	st := &connState{id: "c" + strconv.FormatUint(s.nextID.Add(1), 10), source: src.String()}
	if !s.sourceAllowed(src.Addr()) {
		s.audit.Warn("connection_refused", "conn", st.id, "source", st.source, "reason", "source is not in the bastion's allowed CIDRs")
		nc.Close()
		return
	}
	if ok, until := s.limiter.Allow(src.Addr(), s.cfg.Now()); !ok {
		// Silently dropped: the block itself was audited when it began.
		_ = until
		nc.Close()
		return
	}
	if !s.track(nc) {
		s.audit.Warn("connection_refused", "conn", st.id, "source", st.source, "reason", "too many connections")
		nc.Close()
		return
	}
	defer s.untrack(nc)
	defer nc.Close()
	stopClose := context.AfterFunc(ctx, func() { nc.Close() })
	defer stopClose()
	select {
	case s.startups <- struct{}{}:
	default:
		s.audit.Warn("connection_refused", "conn", st.id, "source", st.source, "reason", "too many unauthenticated connections")
		return
	}
	released := false
	release := func() {
		if !released {
			released = true
			<-s.startups
		}
	}
	defer release()

	start := s.cfg.Now()
	_ = nc.SetDeadline(start.Add(s.cfg.HandshakeTimeout))
	sconn, chans, reqs, err := ssh.NewServerConn(nc, s.serverConfig(st))
	if err != nil {
		s.handshakeFailed(st, src, err)
		return
	}
	_ = nc.SetDeadline(time.Time{})
	release()
	defer sconn.Close()

	// Trust only the key the client proved it holds: the fingerprint in
	// the connection's final Permissions, written by the verified-key
	// callback, and still authorized now.
	fp := ""
	if sconn.Permissions != nil {
		fp = sconn.Permissions.Extensions[sshpolicy.ExtFingerprint]
	}
	st.mu.Lock()
	verified := st.verified
	st.mu.Unlock()
	if fp == "" || fp != verified || !s.cfg.AuthorizedKeys.ContainsFingerprint(fp) {
		s.audit.Error("auth", "conn", st.id, "source", st.source, "user", sconn.User(), "result", "failure",
			"fingerprint", fp, "reason", "authenticated without a verified authorized key; connection closed")
		return
	}
	s.audit.Info("login", "conn", st.id, "source", st.source, "user", sconn.User(), "fingerprint", fp,
		"client", string(sconn.ClientVersion()))
	s.countSession(1)
	defer s.countSession(-1)

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(cctx, func() { sconn.Close() })
	defer stop()
	go func() {
		_ = sconn.Wait()
		cancel()
	}()
	go s.keepalive(cctx, sconn, st)
	go s.globalRequests(reqs, st, sconn.User(), fp)

	var wg sync.WaitGroup
	for nch := range chans {
		switch nch.ChannelType() {
		case "direct-tcpip":
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.forward(cctx, nch, st, sconn.User(), fp)
			}()
		case "session":
			msg := "moat bastion: shells, commands, agent and X11 forwarding are disabled here; the bastion only forwards to instances: ssh -J USER@BASTION USER@PRIVATE-IP"
			_ = nch.Reject(ssh.Prohibited, msg)
			s.audit.Warn("session", "conn", st.id, "source", st.source, "user", sconn.User(), "fingerprint", fp,
				"result", "refused", "reason", "sessions (shell, exec, subsystem, agent and X11 forwarding) are disabled on the bastion")
		default:
			_ = nch.Reject(ssh.UnknownChannelType, "moat bastion: channel type "+nch.ChannelType()+" is not allowed; only direct-tcpip (ssh -J / -W) is")
			s.audit.Warn("channel", "conn", st.id, "source", st.source, "user", sconn.User(), "fingerprint", fp,
				"type", nch.ChannelType(), "result", "refused", "reason", "only direct-tcpip channels are allowed")
		}
	}
	cancel()
	wg.Wait()
	s.audit.Info("logout", "conn", st.id, "source", st.source, "user", sconn.User(), "fingerprint", fp,
		"duration_ms", s.cfg.Now().Sub(start).Milliseconds())
}

func (s *Server) serverConfig(st *connState) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		Config:                  sshpolicy.Modern(),
		PublicKeyAuthAlgorithms: sshpolicy.ClientKeyAlgorithms,
		MaxAuthTries:            s.cfg.MaxAuthTries,
		ServerVersion:           "SSH-2.0-moat_bastion",
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			fp := ssh.FingerprintSHA256(key)
			st.noteMethod("publickey")
			st.mu.Lock()
			st.offered = fp
			st.mu.Unlock()
			if s.cfg.User != "" && c.User() != s.cfg.User {
				return nil, &ssh.BannerError{
					Err:     fmt.Errorf("user %q is not allowed", c.User()),
					Message: fmt.Sprintf("moat bastion: log in as %s, not %s\n", s.cfg.User, c.User()),
				}
			}
			if !s.cfg.AuthorizedKeys.Contains(key) {
				return nil, &ssh.BannerError{
					Err:     fmt.Errorf("key %s is not authorized", fp),
					Message: fmt.Sprintf("moat bastion: key %s is not authorized here\n", fp),
				}
			}
			// Nothing recorded yet: this key has only been offered.
			return &ssh.Permissions{Extensions: map[string]string{}}, nil
		},
		VerifiedPublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey, p *ssh.Permissions, algo string) (*ssh.Permissions, error) {
			fp := ssh.FingerprintSHA256(key)
			if !s.cfg.AuthorizedKeys.Contains(key) {
				return nil, fmt.Errorf("key %s is not authorized", fp)
			}
			if p == nil {
				p = &ssh.Permissions{}
			}
			if p.Extensions == nil {
				p.Extensions = map[string]string{}
			}
			p.Extensions[sshpolicy.ExtFingerprint] = fp
			st.mu.Lock()
			st.verified = fp
			st.mu.Unlock()
			return p, nil
		},
		AuthLogCallback: func(c ssh.ConnMetadata, method string, err error) {
			st.noteMethod(method)
			if method == "none" && err != nil {
				return // every client starts with "none"; failures are summed up at the end
			}
			st.mu.Lock()
			fp := st.offered
			if err == nil {
				fp = st.verified
			}
			st.mu.Unlock()
			if err == nil {
				s.audit.Info("auth", "conn", st.id, "source", st.source, "user", c.User(), "method", method,
					"result", "success", "fingerprint", fp)
				return
			}
			attrs := []any{"conn", st.id, "source", st.source, "user", c.User(), "method", method,
				"result", "failure", "reason", authReason(method, err)}
			if method == "publickey" {
				attrs = append(attrs, "fingerprint", fp)
			}
			s.audit.Warn("auth", attrs...)
		},
	}
	cfg.AddHostKey(s.cfg.HostKey)
	return cfg
}

func authReason(method string, err error) string {
	switch method {
	case "password", "keyboard-interactive", "gssapi-with-mic", "hostbased":
		return method + " authentication is disabled: only public keys are accepted"
	}
	var be *ssh.BannerError
	if errors.As(err, &be) {
		return be.Err.Error()
	}
	return strings.TrimPrefix(err.Error(), "ssh: ")
}

func (s *Server) handshakeFailed(st *connState, src netip.AddrPort, err error) {
	st.mu.Lock()
	methods := strings.Join(st.methods, ",")
	offered := st.offered
	st.mu.Unlock()
	reason := strings.TrimPrefix(err.Error(), "ssh: ")
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		reason = fmt.Sprintf("handshake not completed within %v", s.cfg.HandshakeTimeout)
	case strings.Contains(reason, "signature did not verify"):
		reason = "bad signature for key " + offered + ": the client does not hold its private key"
	case methods == "none" || (methods != "" && !strings.Contains(methods, "publickey")):
		reason = "client offered no public key; password and keyboard-interactive authentication are disabled"
	case strings.Contains(methods, "publickey"):
		reason = "no authorized key: " + reason
	case errors.Is(err, io.EOF):
		reason = "connection closed before authentication"
	}
	attrs := []any{"conn", st.id, "source", st.source, "method", "handshake", "result", "failure",
		"methods_tried", methods, "reason", reason}
	if offered != "" {
		attrs = append(attrs, "fingerprint", offered)
	}
	s.audit.Warn("auth", attrs...)
	now := s.cfg.Now()
	if s.limiter.Fail(src.Addr(), now) {
		lc := s.limiter.cfg
		s.audit.Warn("source_blocked", "source", sourceKey(src.Addr()).String(),
			"reason", fmt.Sprintf("%d failed handshakes within %v", lc.MaxFailures, lc.Window),
			"until", now.Add(lc.Block).UTC().Format(time.RFC3339))
	}
}

func (s *Server) keepalive(ctx context.Context, conn ssh.Conn, st *connState) {
	t := time.NewTicker(s.cfg.KeepAliveInterval)
	defer t.Stop()
	wait := s.cfg.KeepAliveInterval * time.Duration(s.cfg.KeepAliveCountMax)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		res := make(chan error, 1)
		go func() {
			_, _, err := conn.SendRequest("keepalive@openssh.com", true, nil)
			res <- err
		}()
		timer := time.NewTimer(wait)
		select {
		case err := <-res:
			timer.Stop()
			if err != nil {
				conn.Close()
				return
			}
		case <-timer.C:
			s.audit.Warn("disconnect", "conn", st.id, "source", st.source, "reason", fmt.Sprintf("no keepalive reply within %v", wait))
			conn.Close()
			return
		case <-ctx.Done():
			timer.Stop()
			return
		}
	}
}

func (s *Server) globalRequests(reqs <-chan *ssh.Request, st *connState, user, fp string) {
	for r := range reqs {
		switch r.Type {
		case "tcpip-forward", "cancel-tcpip-forward", "streamlocal-forward@openssh.com", "cancel-streamlocal-forward@openssh.com":
			s.audit.Warn("request", "conn", st.id, "source", st.source, "user", user, "fingerprint", fp,
				"type", r.Type, "result", "refused", "reason", "remote forwarding is disabled on the bastion")
		}
		if r.WantReply {
			_ = r.Reply(false, nil)
		}
	}
}
