package instance

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An isolated instance's process tree hangs off an init: moat's own
// binary, re-executed by Start with the name initArg0 in new PID, mount,
// UTS and IPC namespaces (inside the instance's network namespace and
// cgroups). It stays the host's root, so that nothing the instance runs
// can undo what it sets up: it builds the instance's filesystem
// (mountPlan), sets the hostname, then starts the user data as uid 0 and
// the command as the launch template's user, each in a new user namespace
// mapping uids 0-65535 to the instance's range on the host. None of those
// processes has any capability over the namespaces init made (they belong
// to the host's user namespace), so they can neither unmount what hides
// the host nor remount anything writable. As PID 1 it reaps orphans; when
// the command ends it reports how and exits, and the kernel ends every
// other process of the PID namespace with it.
//
// Start and init talk over two pipes: init reads its initConfig (JSON)
// from fd 3 and reports on fd 4, one line each: "running" once the
// command runs, "failed MESSAGE" when the set-up failed, "userdata
// STATUS" when the user data failed, "exit STATUS" when the command ended
// (STATUS is the wait status).
const initArg0 = "moat-instance-init"

func init() {
	if len(os.Args) == 1 && os.Args[0] == initArg0 {
		os.Exit(runInit())
	}
}

// initConfig is what Start hands its init.
type initConfig struct {
	ID         string
	Hostname   string // the private DNS name (ip-10-0-128-4.ec2.internal)
	IP         string
	User       string
	UID, GID   uint32 // the user's, inside
	RootUID    uint32 // the host uid of root inside
	Home       string // the user's home inside
	HomeSource string // the home on the host
	Hide       []string
	Env        []string // the command's environment (HOME, USER set by init)
	UserData   string
	Command    string
}

// filesDir is where init writes the /etc files it binds (on the first
// /run tmpfs, covered afterwards by the instance's own).
const filesDir = "/run"

func runInit() int {
	syscall.CloseOnExec(3)
	syscall.CloseOnExec(4)
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&[]byte("init\x00")[0])), 0, 0, 0)
	status := os.NewFile(4, "status")
	var cfg initConfig
	if err := json.NewDecoder(os.NewFile(3, "config")).Decode(&cfg); err != nil {
		fmt.Fprintf(status, "failed read the configuration: %v\n", err)
		return 1
	}
	// Signals from the host reach PID 1 only if it handles them: the
	// daemon's SIGTERM to the process group is for the command, which
	// gets it too; SIGCHLD drives the reaping.
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if err := setUp(cfg); err != nil {
		fmt.Fprintf(status, "failed %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
	rootEnv := append(withoutVars(cfg.Env, "HOME", "USER", "LOGNAME"), "HOME=/root", "USER=root", "LOGNAME=root")
	if cfg.UserData != "" {
		script := filepath.Join("/run", "user-data")
		if err := writeOwned(script, cfg.UserData, 0o700, cfg.RootUID, cfg.RootUID); err != nil {
			fmt.Fprintf(status, "failed write user data: %v\n", err)
			return 1
		}
		fmt.Printf("moat: %s running user data\n", time.Now().UTC().Format(time.RFC3339))
		pid, err := spawn(cfg, []string{"/bin/sh", script}, 0, 0, rootEnv)
		if err != nil {
			fmt.Fprintf(status, "failed start user data: %v\n", err)
			return 1
		}
		ws := reapUntil(sigs, pid)
		if !ws.Exited() || ws.ExitStatus() != 0 {
			fmt.Printf("moat: user data failed: %s\n", describe(ws))
			fmt.Fprintf(status, "userdata %d\n", uint32(ws))
			return 1
		}
	}
	env := append(withoutVars(cfg.Env, "HOME", "USER", "LOGNAME"), "HOME="+cfg.Home, "USER="+cfg.User, "LOGNAME="+cfg.User)
	fmt.Printf("moat: %s starting: %s\n", time.Now().UTC().Format(time.RFC3339), cfg.Command)
	pid, err := spawn(cfg, []string{"/bin/sh", "-c", cfg.Command}, cfg.UID, cfg.GID, env)
	if err != nil {
		fmt.Fprintf(status, "failed start the command: %v\n", err)
		return 1
	}
	fmt.Fprintln(status, "running")
	ws := reapUntil(sigs, pid)
	fmt.Fprintf(status, "exit %d\n", uint32(ws))
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// describe says how a process ended, as exec.ExitError does.
func describe(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "signal: " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

func withoutVars(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !containsString(names, k) {
			out = append(out, kv)
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// reapUntil reaps every child (orphans included, init being PID 1) until
// pid has exited, and returns pid's wait status.
func reapUntil(sigs <-chan os.Signal, pid int) syscall.WaitStatus {
	for {
		for {
			var ws syscall.WaitStatus
			got, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err == syscall.EINTR {
				continue
			}
			if err != nil || got <= 0 {
				break
			}
			if got == pid {
				return ws
			}
		}
		<-sigs // SIGCHLD (or a signal for the command, which needs nothing here)
	}
}

// spawn starts argv as uid/gid inside a new user namespace mapping the
// instance's range, with stdin /dev/null and init's stdout and stderr
// (the console log), in the home directory.
func spawn(cfg initConfig, argv []string, uid, gid uint32, env []string) (int, error) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(cfg.RootUID), Size: UIDRangeSize}}
	return syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Dir:   cfg.Home,
		Env:   env,
		Files: []uintptr{null.Fd(), 1, 2},
		Sys: &syscall.SysProcAttr{
			Cloneflags:                 syscall.CLONE_NEWUSER,
			UidMappings:                ids,
			GidMappings:                ids,
			GidMappingsEnableSetgroups: true,
			Credential:                 &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}},
		},
	})
}

// setUp builds the instance's filesystem and names it.
func setUp(cfg initConfig) error {
	files := map[string]string{
		"hostname": ShortHostname(cfg.Hostname) + "\n",
		"hosts":    hostsFile(cfg.IP, cfg.Hostname),
	}
	inner := innerAccount{name: cfg.User, uid: cfg.UID, gid: cfg.GID, home: cfg.Home}
	for _, f := range []string{"passwd", "group"} {
		b, err := os.ReadFile("/etc/" + f)
		if err != nil {
			return fmt.Errorf("read /etc/%s: %w", f, err)
		}
		files[f] = withAccount(string(b), inner, f == "group")
	}
	// The home may be below a directory the plan covers (/tmp, /run):
	// hold it open and bind it from the descriptor.
	home, err := unix.Open(cfg.HomeSource, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the home %s: %w", cfg.HomeSource, err)
	}
	defer unix.Close(home)
	cfg.HomeSource = fmt.Sprintf("/proc/self/fd/%d", home)
	var etc []string
	for _, f := range []string{"hostname", "hosts", "passwd", "group"} {
		etc = append(etc, "/etc/"+f)
	}
	plan := mountPlan(mountInput{HomeSource: cfg.HomeSource, Home: cfg.Home, RootUID: cfg.RootUID, Hide: cfg.Hide,
		Files: etc, Exists: isDir})
	for _, st := range plan {
		if err := apply(st, files); err != nil {
			return err
		}
	}
	if h := ShortHostname(cfg.Hostname); h != "" {
		if err := unix.Sethostname([]byte(h)); err != nil {
			return fmt.Errorf("set the hostname %s: %w", h, err)
		}
	}
	return os.Chdir(cfg.Home)
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// apply carries out one step of the mount plan. files are the contents of
// the set-up's files by name (mountFile steps write them first).
func apply(st mountStep, files map[string]string) error {
	var err error
	switch st.Kind {
	case mountPrivate:
		err = unix.Mount("", st.Target, "", unix.MS_REC|unix.MS_PRIVATE, "")
	case mountReadOnly:
		err = unix.MountSetattr(unix.AT_FDCWD, st.Target, unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	case mountProc:
		err = unix.Mount("proc", st.Target, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	case mountTmpfs:
		err = unix.Mount("tmpfs", st.Target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, st.Data)
		if err == nil && st.ReadOnly {
			err = unix.Mount("", st.Target, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, st.Data)
		}
	case mountBind:
		if err = os.MkdirAll(st.Target, 0o755); err != nil {
			break
		}
		if err = unix.Mount(st.Source, st.Target, "", unix.MS_BIND, ""); err != nil {
			break
		}
		// A bind of a read-only mount is read-only: clear it (not
		// recursively: what is mounted below stays as it is).
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
		if st.ReadOnly {
			attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
		} else {
			attr.Attr_clr = unix.MOUNT_ATTR_RDONLY
		}
		err = unix.MountSetattr(unix.AT_FDCWD, st.Target, 0, &attr)
	case mountFile:
		src := filepath.Join(filesDir, st.Source)
		if err = os.WriteFile(src, []byte(files[st.Source]), 0o644); err != nil {
			break
		}
		if _, serr := os.Lstat(st.Target); serr != nil {
			break // the host has no such file: nothing to cover
		}
		if err = unix.Mount(src, st.Target, "", unix.MS_BIND, ""); err != nil {
			break
		}
		err = unix.MountSetattr(unix.AT_FDCWD, st.Target, 0, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	default:
		err = fmt.Errorf("unknown step")
	}
	if err != nil {
		return fmt.Errorf("mount %s %s: %w", st.Kind, st.Target, err)
	}
	return nil
}

// writeOwned writes a file owned by uid:gid.
func writeOwned(path, content string, mode os.FileMode, uid, gid uint32) error {
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		return err
	}
	return os.Chown(path, int(uid), int(gid))
}

// readStatus reads init's report lines into a channel, closed at EOF.
func readStatus(r *os.File) <-chan string {
	ch := make(chan string, 4)
	go func() {
		defer close(ch)
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}
