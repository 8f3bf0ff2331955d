package instance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/moat-dev/moat/internal/nsenter"
	"github.com/moat-dev/moat/internal/testutil"
)

// testNS creates a throwaway named network namespace, deleted when the
// test ends, and returns its path.
func testNS(tb testing.TB) string {
	tb.Helper()
	path, del := newNS(tb)
	tb.Cleanup(del)
	return path
}

// newNS creates a named network namespace with lo up; del deletes it.
func newNS(tb testing.TB) (path string, del func()) {
	tb.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "moat-test-" + hex.EncodeToString(b[:])
	h, err := nsenter.NewNamed(name)
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	// Bring lo up, as the integrator does for an instance namespace.
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		tb.Fatalf("netlink in %s: %v", name, err)
	}
	defer nh.Close()
	lo, err := nh.LinkByName("lo")
	if err == nil {
		err = nh.LinkSetUp(lo)
	}
	if err != nil {
		tb.Fatalf("bring lo up in %s: %v", name, err)
	}
	return "/run/netns/" + name, func() {
		if err := netns.DeleteNamed(name); err != nil {
			tb.Errorf("delete namespace %s: %v", name, err)
		}
	}
}

// anyNS is a throwaway namespace as root; otherwise moat's own namespace,
// so tests of supervision run without root too.
func anyNS(tb testing.TB) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		return ""
	}
	return testNS(tb)
}

// baseDir is a temporary directory the unprivileged account can traverse.
func baseDir(tb testing.TB) string {
	tb.Helper()
	d, err := os.MkdirTemp("", "moat-instance-test-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		tb.Fatal(err)
	}
	return d
}

// spec is an instance isolated as a machine as root, else a process
// (machine isolation needs root).
func spec(tb testing.TB, ns, command string) Spec {
	d := baseDir(tb)
	s := Spec{
		ID:        "i-0123456789abcdef0",
		NetNSPath: ns,
		WorkDir:   filepath.Join(d, "work"),
		LogPath:   filepath.Join(d, "log", "console.log"),
		Command:   command,
	}
	if os.Geteuid() != 0 {
		s.Isolation = IsolationProcess
	}
	return s
}

func start(t *testing.T, s Spec) *Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in, err := Start(ctx, s)
	if err != nil {
		log, _ := os.ReadFile(s.LogPath)
		t.Fatalf("start: %v\nlog:\n%s", err, log)
	}
	t.Cleanup(func() { _ = in.Stop(context.Background(), time.Second) })
	return in
}

func waitExit(t *testing.T, in *Instance) {
	t.Helper()
	select {
	case <-in.Exited():
	case <-time.After(15 * time.Second):
		t.Fatal("instance did not exit within 15s")
	}
}

func readLog(t *testing.T, s Spec) string {
	t.Helper()
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOnlyItsNamespaceInterfaces(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, running as another user")
	ns := testNS(t)
	s := spec(t, ns, "cat /proc/net/dev")
	in := start(t, s)
	waitExit(t, in)
	log := readLog(t, s)
	var ifaces []string
	for _, line := range strings.Split(log, "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "moat:") && !strings.Contains(line, "|") {
			ifaces = append(ifaces, strings.TrimSpace(name))
		}
	}
	if len(ifaces) != 1 || ifaces[0] != "lo" {
		t.Fatalf("interfaces seen by the instance = %v, want only lo; log:\n%s", ifaces, log)
	}
}

func TestUserDataRunsFirstAndFilesAreCopied(t *testing.T) {
	files := baseDir(t)
	if err := os.MkdirAll(filepath.Join(files, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(files, "sub", "app.txt"), []byte("shipped\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := spec(t, anyNS(t), `cat boot.txt sub/app.txt; echo "id=$MOAT_INSTANCE_ID color=$COLOR"`)
	s.FilesDir = files
	s.Env = map[string]string{"COLOR": "blue"}
	s.UserData = "#!/bin/sh\necho booted > boot.txt\necho user data ran\n"
	in := start(t, s)
	waitExit(t, in)
	log := readLog(t, s)
	for _, want := range []string{"user data ran", "booted", "shipped", "id=i-0123456789abcdef0 color=blue"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Index(log, "user data ran") > strings.Index(log, "booted") {
		t.Errorf("user data output after the command's:\n%s", log)
	}
	if code := in.ExitCode(); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if st, reason := in.State(); st != StateTerminated || !strings.Contains(reason, "InstanceInitiatedShutdown") {
		t.Errorf("state %s (%s), want terminated by the instance", st, reason)
	}
}

func TestUserDataFailureFailsLaunch(t *testing.T) {
	s := spec(t, anyNS(t), "echo should not run")
	s.UserData = "echo broken; exit 3"
	_, err := Start(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "user data failed") {
		t.Fatalf("Start error = %v, want user data failed", err)
	}
	if log := readLog(t, s); strings.Contains(log, "should not run") {
		t.Errorf("command ran after failed user data:\n%s", log)
	}
}

func TestNotRoot(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, running as another user")
	s := spec(t, testNS(t), "id -u; id -g; touch ./writable && echo wrote")
	s.Isolation = IsolationProcess
	s.User = "no-such-user-moat"
	in := start(t, s)
	waitExit(t, in)
	log := readLog(t, s)
	if !strings.Contains(log, "65534\n65534\n") || !strings.Contains(log, "wrote") {
		t.Fatalf("want uid/gid 65534 and a writable work dir, log:\n%s", log)
	}
}

func TestKillDetected(t *testing.T) {
	in := start(t, spec(t, anyNS(t), "sleep 600"))
	if err := syscall.Kill(in.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExit(t, in)
	st, reason := in.State()
	if st != StateTerminated || !strings.Contains(reason, "killed") {
		t.Fatalf("state %s (%s), want terminated, killed", st, reason)
	}
	if err := in.Wait(context.Background()); err == nil {
		t.Fatal("Wait returned nil for a killed process")
	}
	// Until Stop the exited command is kept unreaped, so its pid (the
	// group id) cannot be reused by another process.
	if st, err := readStat(strconv.Itoa(in.PID())); err != nil || st.state != 'Z' {
		t.Fatalf("exited command not held as a zombie before Stop: %+v %v", st, err)
	}
	if err := in.Stop(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := readStat(strconv.Itoa(in.PID())); err == nil {
		t.Fatal("command not reaped by Stop")
	}
	if err := in.Stop(context.Background(), time.Second); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestStopKillsTree(t *testing.T) {
	s := spec(t, anyNS(t), `trap '' TERM; (trap '' TERM; sleep 600) & echo child=$!; sleep 600`)
	in := start(t, s)
	child := reportedChild(t, in, s)
	if err := in.Stop(context.Background(), 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if st, reason := in.State(); st != StateTerminated || !strings.Contains(reason, "UserInitiated") {
		t.Errorf("state %s (%s), want terminated by the user", st, reason)
	}
	// The child's parent was the shell; once reparented it is reaped by
	// init, so poll for its disappearance (or zombie state).
	testutil.Eventually(t, 5*time.Second, func() error { return gone(child) })
}

// reportedChild waits for the instance's log to report "child=PID" and
// returns PID as the host sees it (an isolated instance reports its own
// PID namespace's).
func reportedChild(t *testing.T, in *Instance, s Spec) int {
	t.Helper()
	var child int
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, line := range strings.Split(readLog(t, s), "\n") {
			if v, ok := strings.CutPrefix(line, "child="); ok {
				child, _ = strconv.Atoi(v)
				if in.iso == nil {
					return nil
				}
				var err error
				child, err = hostPID(in.PID(), child)
				return err
			}
		}
		return errors.New("the child's pid not reported in the log")
	})
	return child
}

// hostPID is the host's pid of process inner of the PID namespace whose
// init is host pid init (from the NSpid lines in /proc/PID/status).
func hostPID(init, inner int) (int, error) {
	ns, err := os.Readlink("/proc/" + strconv.Itoa(init) + "/ns/pid")
	if err != nil {
		return 0, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if other, _ := os.Readlink("/proc/" + e.Name() + "/ns/pid"); other != ns {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/status")
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				f := strings.Fields(v)
				if len(f) > 1 && f[len(f)-1] == strconv.Itoa(inner) {
					return pid, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no process %d in the PID namespace of %d", inner, init)
}

// gone is nil once process pid is gone or a zombie.
func gone(pid int) error {
	st, err := readStat(strconv.Itoa(pid))
	if err != nil || st.state == 'Z' {
		return nil
	}
	return fmt.Errorf("process %d survived Stop: %+v", pid, st)
}

func TestUsageGrows(t *testing.T) {
	// A bounded busy loop: at most ~10 s of CPU, stopped by the test.
	in := start(t, spec(t, anyNS(t), `end=$(($(date +%s)+10)); while [ $(date +%s) -lt $end ]; do :; done`))
	testutil.Eventually(t, 8*time.Second, func() error {
		if cpu, mem := in.Usage(); cpu < 0.3 || mem == 0 {
			return fmt.Errorf("usage cpu=%.2fs mem=%d in a busy loop, want cpu >= 0.3s and mem > 0", cpu, mem)
		}
		return nil
	})
}

func TestStartValidates(t *testing.T) {
	if _, err := Start(context.Background(), Spec{ID: "i-1"}); err == nil {
		t.Fatal("Start accepted a spec without command")
	}
}

// BenchmarkLaunchToRunning measures moat's own overhead from Start to a
// running instance in its namespace (trivial command, no user data), with
// and without cgroup limits.
func BenchmarkLaunchToRunning(b *testing.B) {
	testutil.RequireRoot(b, "network namespaces, running as another user")
	ns := testNS(b)
	files := baseDir(b)
	_ = os.WriteFile(filepath.Join(files, "app.txt"), []byte("x"), 0o644)
	for _, bc := range []struct {
		name   string
		limits Limits
	}{{"plain", Limits{}}, {"limits", Limits{CPUs: 0.5, MemoryBytes: 256 << 20}}} {
		b.Run(bc.name, func(b *testing.B) {
			d := baseDir(b)
			for i := 0; b.Loop(); i++ {
				s := Spec{ID: "i-bench" + strconv.Itoa(i), NetNSPath: ns, FilesDir: files, Limits: bc.limits,
					WorkDir: filepath.Join(d, strconv.Itoa(i)), LogPath: filepath.Join(d, strconv.Itoa(i)+".log"), Command: "sleep 60"}
				in, err := Start(context.Background(), s)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := in.Stop(context.Background(), time.Second); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

func TestUserDataInterrupted(t *testing.T) {
	s := spec(t, anyNS(t), "echo should not run")
	s.UserData = "sleep 600"
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Start(ctx, s)
	if err == nil || !strings.Contains(err.Error(), "user data interrupted") {
		t.Fatalf("Start error = %v, want user data interrupted", err)
	}
}

func TestStopAfterExit(t *testing.T) {
	in := start(t, spec(t, anyNS(t), "exit 7"))
	waitExit(t, in)
	if code := in.ExitCode(); code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}
	if st, reason := in.State(); st != StateTerminated || !strings.Contains(reason, "exited with status 7") {
		t.Errorf("state %s (%s)", st, reason)
	}
	if err := in.Stop(context.Background(), 100*time.Millisecond); err != nil {
		t.Fatalf("Stop after exit: %v", err)
	}
}

func TestUserAccount(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, running as another user")
	// "nobody" exists on every Linux; naming it must resolve to it, and
	// "root" must never be honoured.
	for _, name := range []string{"nobody", "root", ""} {
		a := resolveAccount(name)
		if a.cred == nil || a.cred.Uid == 0 || a.cred.Gid == 0 {
			t.Errorf("user %q resolved to %+v, want an unprivileged account", name, a.cred)
		}
	}
}

func TestWithoutNamespace(t *testing.T) {
	// Runs as anyone: an empty NetNSPath starts in moat's own namespace.
	d, err := os.MkdirTemp("", "moat-instance-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	_ = os.Chmod(d, 0o755)
	s := Spec{ID: "i-00000000000000001", WorkDir: filepath.Join(d, "w"), LogPath: filepath.Join(d, "l"), Command: "echo $MOAT_INSTANCE_ID", Isolation: IsolationProcess}
	in := start(t, s)
	waitExit(t, in)
	if log := readLog(t, s); !strings.Contains(log, "\ni-00000000000000001\n") {
		t.Fatalf("log:\n%s", log)
	}
}

func TestUnsearchableWorkDirExplained(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, running as another user")
	d := t.TempDir() // 0700, root's: nobody cannot enter
	s := Spec{ID: "i-00000000000000002", WorkDir: filepath.Join(d, "w"), LogPath: filepath.Join(d, "l"), Command: "true", Isolation: IsolationProcess}
	_, err := Start(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "must be searchable by nobody") {
		t.Fatalf("Start error = %v, want the searchable hint", err)
	}
}

func TestExistingUser(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, running as another user")
	u, err := user.Lookup("daemon")
	if err != nil {
		t.Skip("no local account named daemon")
	}
	s := spec(t, "", "id -u")
	s.Isolation = IsolationProcess
	s.User = "daemon"
	in := start(t, s)
	waitExit(t, in)
	if log := readLog(t, s); !strings.Contains(log, "\n"+u.Uid+"\n") {
		t.Fatalf("want uid %s, log:\n%s", u.Uid, log)
	}
}

func TestMemoryMeasured(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, running as another user")
	in := start(t, spec(t, "", "sleep 600"))
	testutil.Eventually(t, 5*time.Second, func() error {
		if _, mem := in.Usage(); mem <= 100<<10 {
			return fmt.Errorf("resident memory of sleep measured as %d bytes, want > 100 KiB", mem)
		}
		return nil
	})
}
