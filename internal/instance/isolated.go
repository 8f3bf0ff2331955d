package instance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// isolated is what an IsolationMachine instance has besides a process
// instance's.
type isolated struct {
	uids   uidRange
	inner  innerAccount
	status <-chan string // init's reports after "running"
}

// finalStatus is the command's wait status as init reported it once it
// exited (init's own exit status cannot say "killed by a signal").
func (iso *isolated) finalStatus() (syscall.WaitStatus, bool) {
	var ws syscall.WaitStatus
	found := false
	for line := range iso.status {
		if v, ok := strings.CutPrefix(line, "exit "); ok {
			if n, err := strconv.ParseUint(v, 10, 32); err == nil {
				ws, found = syscall.WaitStatus(n), true
			}
		}
	}
	return ws, found
}

// startIsolated is Start for IsolationMachine: the working directory
// becomes the instance's home, handed to the user's uid in the instance's
// range, and init (see initArg0) sets the instance up and runs it.
func startIsolated(ctx context.Context, spec Spec) (in *Instance, err error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("start instance %s: isolation %s needs root (run moat as root, or set isolation process)", spec.ID, IsolationMachine)
	}
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return nil, fmt.Errorf("start instance %s: %w", spec.ID, err)
	}
	inner := chooseInner(spec.User, string(passwd))
	owner := spec.Owner
	if owner == "" {
		owner = "moat"
	}
	uids, err := allocateUIDRange(owner, spec.ID)
	if err != nil {
		return nil, fmt.Errorf("start instance %s: %w", spec.ID, err)
	}
	var cg *cgroupSet
	defer func() {
		if err != nil {
			_ = cg.remove()
			_ = uids.release()
		}
	}()
	if err := os.MkdirAll(spec.WorkDir, 0o750); err != nil {
		return nil, fmt.Errorf("start instance %s: create work dir: %w", spec.ID, err)
	}
	if spec.FilesDir != "" {
		if err := copyTree(spec.FilesDir, spec.WorkDir); err != nil {
			return nil, fmt.Errorf("start instance %s: copy files: %w", spec.ID, err)
		}
	}
	if err := chownTree(spec.WorkDir, int(uids.base+inner.uid), int(uids.base+inner.gid)); err != nil {
		return nil, fmt.Errorf("start instance %s: hand the home to %s: %w", spec.ID, inner.name, err)
	}
	if err := os.MkdirAll(filepath.Dir(spec.LogPath), 0o750); err != nil {
		return nil, fmt.Errorf("start instance %s: create log dir: %w", spec.ID, err)
	}
	logf, err := os.OpenFile(spec.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("start instance %s: open log: %w", spec.ID, err)
	}
	defer logf.Close()
	if cg, err = newCgroups(spec.ID, spec.Limits); err != nil {
		return nil, fmt.Errorf("start instance %s: %w", spec.ID, err)
	}

	cfg := initConfig{ID: spec.ID, Hostname: spec.Hostname, IP: spec.IP, User: inner.name, UID: inner.uid, GID: inner.gid,
		RootUID: uids.base, Home: inner.home, HomeSource: spec.WorkDir, Hide: spec.Hide,
		UserData: spec.UserData, Command: spec.Command}
	cfg.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"MOAT_INSTANCE_ID=" + spec.ID, "MOAT_WORK_DIR=" + inner.home}
	for k, v := range spec.Env {
		cfg.Env = append(cfg.Env, k+"="+v)
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start instance %s: %w", spec.ID, err)
	}
	defer cfgW.Close()
	stR, stW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		return nil, fmt.Errorf("start instance %s: %w", spec.ID, err)
	}
	cmd := &exec.Cmd{
		Path: "/proc/self/exe", Args: []string{initArg0}, Dir: "/",
		Env:    []string{"GOMAXPROCS=1"},
		Stdout: logf, Stderr: logf,
		ExtraFiles: []*os.File{cfgR, stW},
		// A session of its own, as command's processes (see command).
		SysProcAttr: &syscall.SysProcAttr{Setsid: true,
			Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC},
	}
	err = startIn(spec.NetNSPath, cg, cmd)
	cfgR.Close()
	stW.Close()
	if err != nil {
		stR.Close()
		return nil, fmt.Errorf("start instance %s: init: %w", spec.ID, err)
	}
	status := readStatus(stR)
	// fail ends init (and with it the PID namespace) and collects it.
	fail := func(e error) (*Instance, error) {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		for range status {
		}
		return nil, fmt.Errorf("start instance %s: %w", spec.ID, e)
	}
	if err := json.NewEncoder(cfgW).Encode(cfg); err != nil {
		return fail(fmt.Errorf("hand init its configuration: %w", err))
	}
	cfgW.Close()
	select {
	case line, ok := <-status:
		switch {
		case line == "running":
		case strings.HasPrefix(line, "userdata "):
			n, _ := strconv.ParseUint(strings.TrimPrefix(line, "userdata "), 10, 32)
			return fail(fmt.Errorf("user data failed: %s", describe(syscall.WaitStatus(n))))
		case strings.HasPrefix(line, "failed "):
			return fail(errors.New("set up the instance: " + strings.TrimPrefix(line, "failed ")))
		case !ok:
			return fail(errors.New("init ended before the command started (see the console log)"))
		default:
			return fail(fmt.Errorf("init said %q", line))
		}
	case <-ctx.Done():
		what := "start"
		if spec.UserData != "" {
			what = "user data"
		}
		return fail(fmt.Errorf("%s interrupted: %w", what, ctx.Err()))
	}
	in = &Instance{spec: spec, cmd: cmd, pid: cmd.Process.Pid, started: time.Now(), cg: cg, done: make(chan struct{}),
		state: StateRunning, iso: &isolated{uids: uids, inner: inner, status: status}}
	go in.wait()
	return in, nil
}

// UIDBase is the host uid that root inside the instance maps to (the
// first of its range); 0 for an instance with IsolationProcess.
func (in *Instance) UIDBase() uint32 {
	if in.iso == nil {
		return 0
	}
	return in.iso.uids.base
}

// StartSession starts cmd as a login of the instance's user (the instance
// SSH server's sessions): with IsolationMachine inside every namespace of
// the instance (nsenter joins init's PID, mount, UTS, IPC and network
// namespaces and the user namespace of the instance's processes, then
// becomes the user, in its home), so a login sees what the instance sees;
// with IsolationProcess in its network namespace only. A terminal on
// cmd.Stdin is handed to the user. cmd must not set a Credential (the
// session becomes the user inside).
func (in *Instance) StartSession(cmd *exec.Cmd) error {
	if in.iso == nil {
		return startIn(in.spec.NetNSPath, nil, cmd)
	}
	select {
	case <-in.done:
		return fmt.Errorf("instance %s is not running", in.spec.ID)
	default:
	}
	if err := in.inside(cmd, true); err != nil {
		return err
	}
	return cmd.Start()
}

// inside makes cmd (not started yet) run inside every namespace of the
// isolated instance as its user, in its home: cmd becomes nsenter joining
// init's PID, mount, UTS, IPC and network namespaces and the user
// namespace of the instance's processes. SSH sessions (StartSession) run
// this way with fork: nsenter stays their parent outside and the session
// runs in the instance's PID namespace. The burners (StartBurners) run
// without: nsenter becomes the burner, in every namespace of the
// instance but its PID namespace, a single process that the daemon
// reaps (a forked child outliving a killed nsenter would be reparented to
// the host's init, and its zombie would keep the burners' cgroup busy).
func (in *Instance) inside(cmd *exec.Cmd, fork bool) error {
	userns, err := in.userNamespace()
	if err != nil {
		return err
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return fmt.Errorf("enter instance %s: %w (install util-linux)", in.spec.ID, err)
	}
	u := in.iso.inner
	args := []string{"nsenter", "--target=" + strconv.Itoa(in.pid), "--mount", "--uts", "--ipc", "--net", "--pid",
		"--user=" + userns, "--setuid=" + strconv.Itoa(int(u.uid)), "--setgid=" + strconv.Itoa(int(u.gid)), "--wd"}
	if !fork {
		args = append(args, "--no-fork")
	}
	cmd.Args = append(append(args, "--"), cmd.Args...)
	cmd.Path = nsenter
	cmd.Dir = "/"
	if cmd.SysProcAttr != nil {
		cmd.SysProcAttr.Credential = nil
	}
	if f, ok := cmd.Stdin.(*os.File); ok && strings.HasPrefix(f.Name(), "/dev/pts/") {
		_ = f.Chown(int(in.iso.uids.base+u.uid), int(in.iso.uids.base+u.gid))
	}
	return nil
}

// userNamespace is the user namespace of one of init's children (they all
// map the instance's range alike).
func (in *Instance) userNamespace() (string, error) {
	pid := strconv.Itoa(in.pid)
	b, err := os.ReadFile("/proc/" + pid + "/task/" + pid + "/children")
	if err != nil {
		return "", fmt.Errorf("instance %s: %w", in.spec.ID, err)
	}
	own, _ := os.Readlink("/proc/self/ns/user")
	for _, c := range strings.Fields(string(b)) {
		p := "/proc/" + c + "/ns/user"
		if ns, err := os.Readlink(p); err == nil && ns != own {
			return p, nil
		}
	}
	return "", fmt.Errorf("instance %s has no process left to log in beside", in.spec.ID)
}

// CheckIsolation says whether this host lets moat isolate instances as
// machines (IsolationMachine): it needs root and user namespaces. It
// makes one (with PID, mount, UTS and IPC namespaces, as instances get)
// around /bin/true; when the kernel refuses, the error says which setting
// forbids it and how to allow it, or to choose IsolationProcess.
func CheckIsolation() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("isolating instances as machines needs root")
	}
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: UIDRangeBase, Size: 1}}
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		UidMappings: ids, GidMappings: ids,
	}
	if err := cmd.Run(); err != nil {
		sysctls := map[string]string{}
		for _, name := range []string{"user.max_user_namespaces", "kernel.unprivileged_userns_clone", "kernel.apparmor_restrict_unprivileged_userns"} {
			if b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/")); err == nil {
				sysctls[name] = strings.TrimSpace(string(b))
			}
		}
		return isolationFix(err, sysctls)
	}
	return nil
}
