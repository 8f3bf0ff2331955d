// Package instance runs one EC2-style instance as a supervised process tree
// inside its own network namespace: its working directory gets the launch
// template's files, the user-data script runs first (as on first boot),
// then the run command is started and supervised. Output goes to the
// instance's log file; CPU and memory are measured over the whole process
// group.
//
// Instances never run as root. When moat runs as root the processes run as
// Spec.User if that account exists on this machine, otherwise as the
// unprivileged account "nobody" (uid and gid 65534); the working directory
// is handed to that account. When moat is not root they run as moat's own
// user. Unlike EC2, user data runs as that same unprivileged account, not
// as root.
//
// Lifecycle: pending (user data running) -> running -> shutting-down
// (Stop) -> terminated, with a reason. The run command's process is the
// leader of its own process group, so Stop reaches everything it spawned;
// with Limits (cgroup v1, see LimitsFor for instance types) it also
// reaches processes that left the group with setsid.
//
// A crash of moat leaves the instance processes running; the caller finds
// them by the PID it recorded (no parent-death signal is used, because
// Linux ties that signal to the forking thread, not the process).
package instance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moat-dev/moat/internal/nsenter"
)

// Spec says how to start an instance.
type Spec struct {
	// ID is the instance id (i-…); it is exported as MOAT_INSTANCE_ID.
	ID string
	// NetNSPath is the instance's network namespace (/run/netns/moat-…),
	// created by the caller. Empty runs in moat's own namespace.
	NetNSPath string
	// WorkDir is created if needed and receives FilesDir's contents.
	WorkDir  string
	FilesDir string
	// Env is added to a minimal environment (PATH, HOME, USER,
	// MOAT_INSTANCE_ID, MOAT_WORK_DIR).
	Env map[string]string
	// UserData is a script run with /bin/sh before Command; a failure
	// fails the launch.
	UserData string
	// Command is run with /bin/sh -c and supervised.
	Command string
	// User runs the processes when moat is root (default "nobody").
	User string
	// LogPath receives stdout and stderr of user data and the command.
	LogPath string
	// Limits of the instance type, applied where cgroups allow.
	Limits Limits

	// Isolation is IsolationMachine (the default; needs root) or
	// IsolationProcess. The fields below apply to IsolationMachine.
	Isolation Isolation
	// Owner names who allocated the instance's uid range (the stack), so
	// that ReleaseUIDRanges gives a crashed owner's ranges back; default
	// "moat".
	Owner string
	// Hostname is the instance's private DNS name
	// (ip-10-0-128-4.ec2.internal); its first label is the hostname, and
	// both resolve to IP in the instance's /etc/hosts.
	Hostname string
	IP       string
	// Hide are further host directories the instance must not see
	// (moat's state directory); /run, /tmp, /home and /root are always
	// its own.
	Hide []string
}

// State is an instance's EC2 state.
type State string

// States. Start returns a running instance; StatePending is for the
// caller to show while Start (user data) is still running.
const (
	StatePending      State = "pending"
	StateRunning      State = "running"
	StateShuttingDown State = "shutting-down"
	StateTerminated   State = "terminated"
)

// Instance is a started instance.
type Instance struct {
	spec    Spec
	iso     *isolated // nil with IsolationProcess
	cmd     *exec.Cmd
	pid     int
	started time.Time
	cg      *cgroupSet
	done    chan struct{}

	reapOnce sync.Once
	stopMu   sync.Mutex // one Stop at a time

	mu       sync.Mutex
	reaped   bool
	state    State
	reason   string
	stopping bool
	exitErr  error
	exitCode int
}

// account is who the processes run as.
type account struct {
	cred *syscall.Credential // nil: moat's own user
	name string
	home string
}

// NobodyUID is the uid (and gid) used when the launch template's user does
// not exist here.
const NobodyUID = 65534

func resolveAccount(name string) account {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return account{name: strconv.Itoa(os.Geteuid())}
		}
		return account{name: u.Username, home: u.HomeDir}
	}
	if name != "" && name != "root" {
		if u, err := user.Lookup(name); err == nil {
			uid, err1 := strconv.Atoi(u.Uid)
			gid, err2 := strconv.Atoi(u.Gid)
			if err1 == nil && err2 == nil && uid != 0 {
				return account{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, name: u.Username, home: u.HomeDir}
			}
		}
	}
	return account{cred: &syscall.Credential{Uid: NobodyUID, Gid: NobodyUID, Groups: []uint32{}}, name: "nobody"}
}

// Start prepares the work directory, runs the user data and starts the
// command; it returns once the instance is running. ctx bounds the user
// data; the command outlives it (stop it with Stop).
func Start(ctx context.Context, spec Spec) (*Instance, error) {
	if spec.ID == "" || spec.WorkDir == "" || spec.LogPath == "" || spec.Command == "" {
		return nil, fmt.Errorf("start instance %q: id, work dir, log path and command are required", spec.ID)
	}
	switch spec.Isolation {
	case "", IsolationMachine:
		return startIsolated(ctx, spec)
	case IsolationProcess:
	default:
		return nil, fmt.Errorf("start instance %s: unknown isolation %q (machine or process)", spec.ID, spec.Isolation)
	}
	acct := resolveAccount(spec.User)
	if err := os.MkdirAll(spec.WorkDir, 0o750); err != nil {
		return nil, fmt.Errorf("start instance %s: create work dir: %w", spec.ID, err)
	}
	if spec.FilesDir != "" {
		if err := copyTree(spec.FilesDir, spec.WorkDir); err != nil {
			return nil, fmt.Errorf("start instance %s: copy files: %w", spec.ID, err)
		}
	}
	if acct.cred != nil {
		if err := chownTree(spec.WorkDir, int(acct.cred.Uid), int(acct.cred.Gid)); err != nil {
			return nil, fmt.Errorf("start instance %s: hand work dir to %s: %w", spec.ID, acct.name, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(spec.LogPath), 0o750); err != nil {
		return nil, fmt.Errorf("start instance %s: create log dir: %w", spec.ID, err)
	}
	logf, err := os.OpenFile(spec.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("start instance %s: open log: %w", spec.ID, err)
	}
	defer logf.Close() // the children hold their own copies

	cg, err := newCgroups(spec.ID, spec.Limits)
	if err != nil {
		return nil, fmt.Errorf("start instance %s: %w", spec.ID, err)
	}
	env := environ(spec, acct)
	if spec.UserData != "" {
		if err := runUserData(ctx, spec, acct, env, logf, cg); err != nil {
			_ = cg.remove()
			return nil, fmt.Errorf("start instance %s: %w", spec.ID, err)
		}
	}
	fmt.Fprintf(logf, "moat: %s starting: %s\n", time.Now().UTC().Format(time.RFC3339), spec.Command)
	cmd := command(spec, acct, env, logf, "-c", spec.Command)
	if err := startIn(spec.NetNSPath, cg, cmd); err != nil {
		_ = cg.remove()
		return nil, fmt.Errorf("start instance %s: %w", spec.ID, hint(err, spec, acct))
	}
	in := &Instance{spec: spec, cmd: cmd, pid: cmd.Process.Pid, started: time.Now(), cg: cg, done: make(chan struct{}), state: StateRunning}
	go in.wait()
	return in, nil
}

func environ(spec Spec, acct account) []string {
	m := map[string]string{
		"PATH":             "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME":             spec.WorkDir,
		"USER":             acct.name,
		"LOGNAME":          acct.name,
		"MOAT_INSTANCE_ID": spec.ID,
		"MOAT_WORK_DIR":    spec.WorkDir,
	}
	for k, v := range spec.Env {
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// command builds a /bin/sh command; stdout and stderr are the log file
// itself (an *os.File, so exec starts no copying goroutines). It leads a
// session of its own (so a process group of its own): had it moat's
// session, moat's death would orphan its process group and the kernel
// would send a stopped instance (stop-instances) SIGHUP and SIGCONT.
func command(spec Spec, acct account, env []string, logf *os.File, args ...string) *exec.Cmd {
	cmd := exec.Command("/bin/sh", args...)
	cmd.Dir = spec.WorkDir
	cmd.Env = env
	cmd.Stdin = nil
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: acct.cred}
	return cmd
}

func runUserData(ctx context.Context, spec Spec, acct account, env []string, logf *os.File, cg *cgroupSet) error {
	path := filepath.Join(spec.WorkDir, ".moat-user-data")
	if err := os.WriteFile(path, []byte(spec.UserData), 0o700); err != nil {
		return fmt.Errorf("write user data: %w", err)
	}
	if acct.cred != nil {
		if err := os.Chown(path, int(acct.cred.Uid), int(acct.cred.Gid)); err != nil {
			return fmt.Errorf("hand user data to %s: %w", acct.name, err)
		}
	}
	fmt.Fprintf(logf, "moat: %s running user data\n", time.Now().UTC().Format(time.RFC3339))
	cmd := command(spec, acct, env, logf, path)
	if err := startIn(spec.NetNSPath, cg, cmd); err != nil {
		return fmt.Errorf("user data: %w", hint(err, spec, acct))
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			fmt.Fprintf(logf, "moat: user data failed: %v\n", err)
			return fmt.Errorf("user data failed: %w", err)
		}
		return nil
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("user data interrupted: %w", ctx.Err())
	}
}

// startIn starts cmd inside the network namespace at nsPath and the
// cgroups cg (either may be empty).
//
// A thread's network namespace and (cgroup v1) cgroups are inherited by
// whatever it forks, so the thread nsenter.DoPath locks and switches into
// the namespace also enters the cgroups, exec.Cmd.Start forks there (the
// fork happens on the calling thread; with *os.File outputs Start starts
// no goroutines), and the thread leaves the cgroups and the namespace
// before it is unlocked. If leaving fails the thread stays locked, so the
// Go runtime destroys it rather than reusing one in the wrong namespace
// or cgroup.
func startIn(nsPath string, cg *cgroupSet, cmd *exec.Cmd) error {
	if nsPath == "" && cg == nil {
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start process: %w", err)
		}
		return nil
	}
	return nsenter.DoPath(nsPath, func() error {
		var startErr error
		if cg != nil {
			startErr = cg.enter()
		}
		if startErr == nil {
			if err := cmd.Start(); err != nil {
				startErr = fmt.Errorf("start process: %w", err)
			}
		}
		if cg != nil && cg.leave() != nil {
			runtime.LockOSThread() // still in the cgroups: the thread is discarded
		}
		return startErr
	})
}

// hint explains the usual cause of a permission error at start.
func hint(err error, spec Spec, acct account) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w (the work dir %s and every directory above it must be searchable by %s)", err, spec.WorkDir, acct.name)
	}
	return err
}

// wait notices the exit of the command without reaping it (waitid with
// WNOWAIT): the zombie keeps its pid, and so its process group id, from
// being reused until Stop reaps it, so Stop never signals a group that is
// not this instance's.
func (in *Instance) wait() {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, in.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	ws, ok := zombieStatus(in.pid)
	if in.iso != nil {
		if cws, found := in.iso.finalStatus(); found {
			ws, ok = cws, true
		}
	}
	in.mu.Lock()
	in.state = StateTerminated
	switch {
	case !ok:
		in.exitCode = -1
		in.exitErr = errors.New("process exited (status unknown)")
	case ws.Signaled():
		in.exitCode = -1
		in.exitErr = errors.New("process killed by signal " + ws.Signal().String())
	default:
		in.exitCode = ws.ExitStatus()
		if in.exitCode != 0 {
			in.exitErr = fmt.Errorf("process exited with status %d", in.exitCode)
		}
	}
	switch {
	case in.stopping:
		in.reason = "Client.UserInitiatedShutdown: User initiated shutdown"
	case in.exitErr == nil:
		in.reason = "Client.InstanceInitiatedShutdown: Instance initiated shutdown (exit status 0)"
	default:
		in.reason = "Server.InternalError: " + in.exitErr.Error()
	}
	in.mu.Unlock()
	close(in.done)
}

// zombieStatus reads the wait status of an exited, unreaped process from
// /proc/PID/stat (field 52, exit_code).
func zombieStatus(pid int) (syscall.WaitStatus, bool) {
	st, err := readStat(strconv.Itoa(pid))
	if err != nil || !st.hasExitCode {
		return 0, false
	}
	return syscall.WaitStatus(st.exitCode), true
}

// reap collects the exited command once; after it the pid may be reused.
func (in *Instance) reap() {
	in.reapOnce.Do(func() { _ = in.cmd.Wait() })
}

// ID is the instance id.
func (in *Instance) ID() string { return in.spec.ID }

// Limited reports whether the instance runs under its Limits (cgroups
// were available).
func (in *Instance) Limited() bool { return in.cg != nil }

// PID is the process id of the command (the process group's leader).
func (in *Instance) PID() int { return in.pid }

// Started is when the command was started.
func (in *Instance) Started() time.Time { return in.started }

// Exited is closed when the command's process has exited.
func (in *Instance) Exited() <-chan struct{} { return in.done }

// Wait blocks until the command exits or ctx ends, and returns its exit
// error (nil for exit status 0).
func (in *Instance) Wait(ctx context.Context) error {
	select {
	case <-in.done:
		in.mu.Lock()
		defer in.mu.Unlock()
		return in.exitErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ExitCode is the command's exit code (-1 if killed by a signal or still
// running).
func (in *Instance) ExitCode() int {
	select {
	case <-in.done:
	default:
		return -1
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.exitCode
}

// State is the instance's state and, once terminated, the reason.
func (in *Instance) State() (State, string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.state, in.reason
}

// Stop shuts the instance down: SIGTERM to its process group, SIGKILL to
// what is left after grace (or when ctx ends), and waits until no process
// of the group is left. Call it for every instance, also after its
// command exited on its own: the exited command stays a zombie (keeping
// its process group id from reuse) until Stop reaps it. Stop again is a
// no-op.
func (in *Instance) Stop(ctx context.Context, grace time.Duration) error {
	in.stopMu.Lock()
	defer in.stopMu.Unlock()
	in.mu.Lock()
	if in.reaped {
		in.mu.Unlock()
		return nil // done before; the pid may belong to someone else now
	}
	if in.state != StateTerminated {
		in.state = StateShuttingDown
	}
	in.stopping = true
	in.mu.Unlock()
	pgid := in.pid
	in.signal(syscall.SIGTERM)
	in.signal(syscall.SIGCONT) // a frozen instance (Freeze) handles SIGTERM too
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-in.done:
	case <-t.C:
	case <-ctx.Done():
	}
	// The leader may be gone while children of the group still run.
	in.signal(syscall.SIGKILL)
	select {
	case <-in.done:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("stop instance %s: process %d did not exit after SIGKILL", in.spec.ID, pgid)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, err := in.members()
		if err != nil {
			return fmt.Errorf("stop instance %s: %w", in.spec.ID, err)
		}
		if len(pids) == 0 {
			in.reap()
			in.mu.Lock()
			in.reaped = true
			in.mu.Unlock()
			err := in.cg.remove()
			if in.iso != nil {
				err = errors.Join(err, in.iso.uids.release())
			}
			if err != nil {
				return fmt.Errorf("stop instance %s: %w", in.spec.ID, err)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stop instance %s: processes %v of group %d still alive", in.spec.ID, pids, pgid)
		}
		in.signal(syscall.SIGKILL)
		time.Sleep(10 * time.Millisecond)
	}
}

// procStat is the part of /proc/PID/stat moat reads.
type procStat struct {
	state                        byte
	pgrp                         int
	utime, stime, cutime, cstime uint64
	rssPages                     int64
	exitCode                     int
	hasExitCode                  bool
}

func readStat(pid string) (procStat, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return procStat{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 22 {
		return procStat{}, errors.New("short stat")
	}
	var st procStat
	st.state = f[0][0]
	st.pgrp, _ = strconv.Atoi(f[2])
	st.utime, _ = strconv.ParseUint(f[11], 10, 64)
	st.stime, _ = strconv.ParseUint(f[12], 10, 64)
	st.cutime, _ = strconv.ParseUint(f[13], 10, 64)
	st.cstime, _ = strconv.ParseUint(f[14], 10, 64)
	st.rssPages, _ = strconv.ParseInt(f[21], 10, 64)
	if len(f) > 49 {
		if c, err := strconv.Atoi(f[49]); err == nil {
			st.exitCode, st.hasExitCode = c, true
		}
	}
	return st, nil
}

// scanGroup calls fn for every live (non-zombie) process of group pgid or
// in extra (the instance's cgroup, which also holds processes that left
// the group with setsid).
func scanGroup(pgid int, extra map[int]bool, fn func(pid int, st procStat)) error {
	d, err := os.Open("/proc")
	if err != nil {
		return fmt.Errorf("read /proc: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read /proc: %w", err)
	}
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		st, err := readStat(n)
		if err != nil || (st.pgrp != pgid && !extra[pid]) || st.state == 'Z' || st.state == 'X' {
			continue
		}
		fn(pid, st)
	}
	return nil
}

// members lists the instance's live processes: its process group and,
// with limits, its cgroup.
func (in *Instance) members() ([]int, error) {
	var pids []int
	err := scanGroup(in.pid, in.cg.procs(), func(pid int, _ procStat) { pids = append(pids, pid) })
	return pids, err
}

// signal sends sig to the process group and to every process in the
// instance's cgroup.
func (in *Instance) signal(sig syscall.Signal) {
	_ = syscall.Kill(-in.pid, sig)
	for pid := range in.cg.procs() {
		_ = syscall.Kill(pid, sig)
	}
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// Usage is the CPU time (user+system, including reaped children) and the
// resident memory summed over the instance's live process group (and,
// with limits, every process of its cgroup).
func (in *Instance) Usage() (cpuSeconds float64, memBytes int64) {
	page := int64(os.Getpagesize())
	var ticks uint64
	_ = scanGroup(in.pid, in.cg.procs(), func(_ int, st procStat) {
		ticks += st.utime + st.stime + st.cutime + st.cstime
		memBytes += st.rssPages * page
	})
	return float64(ticks) / clockTicks, memBytes
}

// CgroupMemory is the instance's memory use and limit as its memory
// cgroup counts them (the working set: usage less inactive page cache);
// ok is false when it runs without one (Usage has its resident memory).
func (in *Instance) CgroupMemory() (used, limit int64, ok bool) { return in.cg.memory() }

// copyTree copies the contents of src into dst (files, directories,
// symbolic links; modes kept).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode()&os.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			_ = os.Remove(target)
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			return copyFile(p, target, info.Mode().Perm())
		}
		return nil // sockets, devices: skipped
	})
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func chownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// Account resolves the launch template's user as Start does: the named
// account when moat is root and it exists (never root), else nobody; when
// moat is not root, moat's own user (cred nil). SSH sessions on the
// instance run as the same account.
func Account(name string) (cred *syscall.Credential, username, home string) {
	a := resolveAccount(name)
	return a.cred, a.name, a.home
}

// StartInNamespace starts cmd inside the network namespace at nsPath (the
// instance's), so that whatever it connects to is reached from the
// instance's address, never from the host's namespace. The instance SSH
// server starts its sessions with it.
func StartInNamespace(nsPath string, cmd *exec.Cmd) error { return startIn(nsPath, nil, cmd) }
