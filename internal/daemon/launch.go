package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/moat-dev/moat/internal/instance"
	"github.com/moat-dev/moat/internal/instancessh"
	"github.com/moat-dev/moat/internal/keypair"
	"github.com/moat-dev/moat/internal/metadata"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
	"github.com/moat-dev/moat/internal/sshpolicy"
	"github.com/moat-dev/moat/internal/vpc"
	"golang.org/x/crypto/ssh"
)

// instanceRoot is where instances' working directories live. Instances
// run as an unprivileged user, so the directory and every one above it
// must be searchable by that user: root's state directory (under /root)
// is not, so as root they live under /run/moat.
func (s *stack) instanceRoot() string {
	if os.Geteuid() == 0 {
		return filepath.Join("/run/moat", s.plan.Stack, "instances")
	}
	return s.dir.Path("instances")
}

// launchInstance makes one instance of g: an address and a namespace in
// its subnet, its metadata and SSH endpoints, then its processes (user
// data first, then the supervised command). On failure nothing is left.
func (s *stack) launchInstance(ctx context.Context, g *groupRuntime, lt plan.LaunchTemplate, rec *instanceRec) (err error) {
	if msg := s.faults.capacityFailure(g.name, rec.zone, lt.InstanceType); msg != "" {
		return errors.New(msg)
	}
	addr, err := s.network().AllocateAddr(rec.subnet)
	if err != nil {
		return fmt.Errorf("allocate an address in %s: %w", rec.subnet, err)
	}
	g.mu.Lock()
	rec.addr = addr
	g.mu.Unlock()
	n, err := s.network().AddNode(ctx, vpc.NodeSpec{Name: rec.id, Kind: secgroup.KindInstance, Owner: g.name,
		Subnet: rec.subnet, Addr: addr, Groups: lt.SecurityGroups})
	if err != nil {
		s.network().ReleaseAddr(rec.subnet, addr)
		return err
	}
	g.mu.Lock()
	rec.node = n
	g.mu.Unlock()
	defer func() {
		if err != nil {
			err = errors.Join(err, s.destroyInstance(rec))
		}
	}()

	stopMD, err := s.serveMetadata(n, addr)
	if err != nil {
		return fmt.Errorf("metadata endpoint: %w", err)
	}
	workDir := filepath.Join(s.instanceRoot(), rec.id)
	stopSSH, err := s.serveInstanceSSH(g, lt, rec, n, workDir)
	if err != nil {
		stopMD()
		return fmt.Errorf("ssh endpoint: %w", err)
	}
	g.mu.Lock()
	rec.stopEndpoints = func() { stopSSH(); stopMD() }
	g.mu.Unlock()

	if err := os.MkdirAll(s.instanceRoot(), 0o755); err != nil {
		return err
	}
	_ = os.Chmod(filepath.Dir(s.instanceRoot()), 0o755)
	_ = os.Chmod("/run/moat", 0o755)
	if err := os.MkdirAll(filepath.Dir(s.logPath(rec.id)), 0o700); err != nil {
		return err
	}
	limits, _ := instance.LimitsFor(lt.InstanceType)
	env := map[string]string{}
	for k, v := range lt.Environment {
		env[k] = v
	}
	proc, err := instance.Start(ctx, instance.Spec{
		ID: rec.id, NetNSPath: n.NSPath, WorkDir: workDir, FilesDir: lt.FilesDir, Env: env,
		UserData: lt.UserData, Command: lt.Command, User: lt.User, LogPath: s.logPath(rec.id), Limits: limits,
		Isolation: s.isolation(), Owner: s.plan.Stack, IP: addr.String(), Hide: s.hidden(),
		Hostname: metadata.Hostname(metadata.Info{LocalIPv4: addr, Region: s.plan.AWS.Region}),
	})
	if err != nil {
		return err
	}
	g.mu.Lock()
	rec.proc = proc
	g.mu.Unlock()
	return nil
}

// destroyInstance stops what launchInstance made, in reverse: processes
// first (a namespace with a live process outlives its deletion), then the
// endpoints, the node and the working directory.
func (s *stack) destroyInstance(rec *instanceRec) error {
	var errs []error
	s.faults.instanceGone(rec.id)
	if rec.proc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		if err := rec.proc.Stop(ctx, 10*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", rec.id, err))
		}
		cancel()
	}
	if rec.stopEndpoints != nil {
		rec.stopEndpoints()
	}
	if rec.node != nil {
		if err := s.network().RemoveNode(context.Background(), rec.id); err != nil {
			errs = append(errs, err)
		}
	} else if rec.addr.IsValid() {
		s.network().ReleaseAddr(rec.subnet, rec.addr)
	}
	if err := os.RemoveAll(filepath.Join(s.instanceRoot(), rec.id)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// serveMetadata answers the EC2 metadata address inside the instance's
// namespace, for that instance.
func (s *stack) serveMetadata(n *vpc.Node, addr netip.Addr) (stop func(), err error) {
	ln, err := metadata.ListenInNamespace(n.NSPath)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: s.metadata.Pinned(addr), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}

// metadataInfo is the metadata service's view of the instance at ip.
func (s *stack) metadataInfo(ip netip.Addr) (metadata.Info, bool) {
	for _, g := range s.groupMap() {
		g.mu.Lock()
		for _, r := range g.recs {
			if r.addr == ip {
				info := metadata.Info{InstanceID: r.id, LocalIPv4: ip, AvailabilityZone: s.awsZone(r.zone),
					Region: s.plan.AWS.Region, AMIID: "ami-moatlocal0000000", InstanceType: g.lt.InstanceType,
					UserData: g.lt.UserData}
				g.mu.Unlock()
				return info, true
			}
		}
		g.mu.Unlock()
	}
	return metadata.Info{}, false
}

func (s *stack) awsZone(zone string) string {
	for _, z := range s.plan.Zones {
		if z.Name == zone {
			return z.AWSName
		}
	}
	return zone
}

// isolation is how the stack's instances are isolated (local.isolation).
func (s *stack) isolation() instance.Isolation {
	if s.plan.Local.Isolation == string(instance.IsolationProcess) {
		return instance.IsolationProcess
	}
	return instance.IsolationMachine
}

// hidden are the host directories of moat's that isolated instances must
// not see beyond those they never see (/run, /tmp, /home, /root): the
// state directory ($MOAT_HOME, with the key pairs) and the instances'
// directories.
func (s *stack) hidden() []string {
	hide := []string{string(s.dir), s.instanceRoot()}
	if home := filepath.Dir(string(s.dir)); home != "/" {
		hide = append(hide, home) // $MOAT_HOME: key pairs and private keys
	}
	return hide
}

// checkIsolation refuses to start a stack whose instances are to be
// isolated as machines on a host that forbids it, saying how to fix it
// (or to choose local.isolation: process).
func (s *stack) checkIsolation(context.Context) error {
	if len(s.plan.AutoScalingGroups) == 0 {
		return nil
	}
	if s.isolation() == instance.IsolationProcess {
		s.event("instance", "instance.isolation", "Instances run as processes of the host (local.isolation: process): they see its processes and files and each other's")
		return nil
	}
	return instance.CheckIsolation()
}

// serveInstanceSSH runs the instance's SSH endpoint on port 22 of its own
// address, accepting the launch template's key pair; sessions run as the
// instance's user, in its home, environment and namespaces (all of them
// with isolation machine, so a login sees what the instance sees; its
// network namespace only with isolation process).
func (s *stack) serveInstanceSSH(g *groupRuntime, lt plan.LaunchTemplate, rec *instanceRec, n *vpc.Node, workDir string) (stop func(), err error) {
	if lt.KeyPair == "" {
		return func() {}, nil
	}
	keys, err := s.keys.PublicKeys(lt.KeyPair)
	if err != nil {
		return nil, fmt.Errorf("key pair %s: %w", lt.KeyPair, err)
	}
	hk, err := keypair.LoadOrCreateHostKey(s.hostKeyPath(rec.id))
	if err != nil {
		return nil, err
	}
	var env []string
	for k, v := range lt.Environment {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	cfg := instancessh.Config{HostKey: hk, AuthorizedKeys: sshpolicy.NewKeySet(keys...), User: lt.User,
		Logger: s.sshLog.With("instance", rec.id)}
	if s.isolation() == instance.IsolationMachine {
		home := instance.IsolatedHome(lt.User)
		cfg.Dir, cfg.Home = "/", home
		cfg.Env = append(env, "MOAT_INSTANCE_ID="+rec.id, "MOAT_WORK_DIR="+home)
		cfg.Start = func(c *exec.Cmd) error {
			g.mu.Lock()
			proc := rec.proc
			g.mu.Unlock()
			if proc == nil {
				return fmt.Errorf("instance %s is still booting", rec.id)
			}
			return proc.StartSession(c)
		}
	} else {
		cred, _, _ := instance.Account(lt.User)
		nsPath := n.NSPath
		cfg.Credential, cfg.Dir, cfg.Home = cred, workDir, workDir
		cfg.Env = append(env, "MOAT_INSTANCE_ID="+rec.id, "MOAT_WORK_DIR="+workDir)
		cfg.Start = func(c *exec.Cmd) error { return instance.StartInNamespace(nsPath, c) }
	}
	srv, err := instancessh.New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := n.Listen("tcp", ":22")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, ln)
	}()
	s.setHostKey(rec.id, netip.AddrPortFrom(rec.addr, 22), hk.PublicKey())
	return func() {
		cancel()
		ln.Close()
		<-done
		s.setHostKey(rec.id, netip.AddrPort{}, nil)
	}, nil
}

// setHostKey records (or, with a nil key, forgets) an SSH host key for
// moat ssh's known_hosts.
func (s *stack) setHostKey(name string, at netip.AddrPort, key ssh.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if key == nil {
		delete(s.hostKeys, name)
		return
	}
	s.hostKeys[name] = sshpolicy.KnownHostsLine(at.String(), key)
}
