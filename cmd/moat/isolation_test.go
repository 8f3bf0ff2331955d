//go:build linux && !portable

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/instance"
	"github.com/moat-dev/moat/internal/testutil"
	"github.com/moat-dev/moat/internal/vpc"
)

// instanceProc is a process of an instance as the host sees it.
type instanceProc struct {
	pid  int
	uid  int
	comm string
}

// instanceProcs lists the processes in the instance's network namespace
// (its init, user data, command and sessions; the daemon's metadata and
// SSH endpoints are sockets there, not processes).
func instanceProcs(t *testing.T, stack, id string) []instanceProc {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(vpc.NetnsDir, "moat-"+stack+"-"+id), &st); err != nil {
		t.Fatalf("namespace of %s: %v", id, err)
	}
	ents, _ := os.ReadDir("/proc")
	var out []instanceProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var ns syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", e.Name(), "ns/net"), &ns) != nil || ns.Ino != st.Ino {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		p := instanceProc{pid: pid, uid: -1}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				p.uid, _ = strconv.Atoi(strings.Fields(v)[0])
			}
			if v, ok := strings.CutPrefix(line, "Name:"); ok {
				p.comm = strings.TrimSpace(v)
			}
		}
		out = append(out, p)
	}
	return out
}

// appPID is the host pid of the instance's app (python3).
func appPID(t *testing.T, stack, id string) int {
	t.Helper()
	for _, p := range instanceProcs(t, stack, id) {
		if strings.HasPrefix(p.comm, "python") {
			return p.pid
		}
	}
	t.Fatalf("no python process in %s: %+v", id, instanceProcs(t, stack, id))
	return 0
}

// instanceUIDs are the uids the instance's processes run under on the
// host, besides its init's (the host's root, which sets it up).
func instanceUIDs(t *testing.T, stack, id string) map[int]bool {
	t.Helper()
	uids := map[int]bool{}
	for _, p := range instanceProcs(t, stack, id) {
		if (p.comm == "init" || p.comm == "nsenter") && p.uid == 0 {
			continue
		}
		uids[p.uid] = true
	}
	return uids
}

// TestInstancesIsolated logs in to instance A of one stack with the
// OpenSSH client (moat ssh, through the bastion) and shows that A is a
// machine of its own: it cannot see, read, signal or write what belongs
// to instance B of its stack, to instance C of another running stack or
// to the host; its hostname is EC2's name for its address; user data ran
// as root inside, while on the host every instance runs under uids of its
// own, none of them root.
func TestInstancesIsolated(t *testing.T) {
	testutil.RequireRoot(t, "end-to-end: namespaces, nftables")
	userData := func(text string) string {
		return strings.Replace(text, `echo "booted $(date -u +%FT%TZ)" > boot.txt`,
			`echo "booted $(date -u +%FT%TZ)" > boot.txt; echo "userdata-uid=$(id -u)"`, 1)
	}
	s := newE2EStack(t, "iso", userData)
	other := newE2EStack(t, "isoc", func(text string) string {
		text = strings.Replace(text, "minSize: 2", "minSize: 1", 1)
		return strings.Replace(userData(text), "desiredCapacity: 2", "desiredCapacity: 1", 1)
	})
	s.mustMoat(120*time.Second, "up", "-d", "--wait")
	other.mustMoat(120*time.Second, "up", "-d", "--wait")
	ins := s.instances()
	cs := other.instances()
	if len(ins) != 2 || len(cs) != 1 {
		t.Fatalf("instances: %+v and %+v", ins, cs)
	}
	a, b, c := ins[0], ins[1], cs[0]
	bPID, cPID := appPID(t, s.name, b.ID), appPID(t, other.name, c.ID)

	// What the host holds: a file in its /tmp, one in a home directory,
	// one in B's home; B's app's environment has a variable of its own.
	secret := fmt.Sprintf("moat-isolation-%d", os.Getpid())
	hostTmp := filepath.Join("/tmp", secret)
	hostHome := filepath.Join("/home", secret)
	if err := os.WriteFile(hostTmp, []byte("host tmp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(hostTmp); os.RemoveAll(hostHome) })
	if err := os.MkdirAll(hostHome, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hostHome, "secret.txt"), []byte("host home\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bHome := filepath.Join("/run/moat", s.name, "instances", b.ID)
	if err := os.WriteFile(filepath.Join(bHome, "secret.txt"), []byte("b's file\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	script := strings.Join([]string{
		`echo "hostname=$(hostname)"`,
		`echo "resolves=$(getent hosts $(hostname) | cut -d' ' -f1)"`,
		`echo "uid=$(id -u)"`,
		`echo "who=$(id -un) home=$HOME pwd=$(pwd)"`,
		`echo "procs=$(ls /proc | grep -c '^[0-9]')"`,
		`ps -eo comm= | sed 's/^/ps: /'`,
		fmt.Sprintf(`for p in %d %d; do ls /proc/$p >/dev/null 2>&1 && echo "sees-proc=$p"; cat /proc/$p/environ >/dev/null 2>&1 && echo "reads-environ=$p"; kill -0 $p 2>/dev/null && echo "signals=$p"; kill -9 $p 2>/dev/null && echo "killed=$p"; done`, bPID, cPID),
		fmt.Sprintf(`for f in %s %s %s /run/moat/%s/instances/%s/secret.txt /run/moat/%s/instances/%s/app.py /root/.bashrc; do cat $f >/dev/null 2>&1 && echo "reads=$f"; done`,
			hostTmp, filepath.Join(hostHome, "secret.txt"), filepath.Join(bHome, "secret.txt"), s.name, b.ID, other.name, c.ID),
		`ls -A /home | sed 's/^/home: /'`,
		`ls -A /root 2>/dev/null | sed 's/^/root: /'`,
		`test -e /run/moat && echo "sees=/run/moat"`,
		fmt.Sprintf(`for d in / /etc /usr /usr/local/bin /var /var/lib /opt /srv /mnt /sys/fs/cgroup /dev %s; do touch $d/%s 2>/dev/null && echo "wrote=$d"; done`, filepath.Dir(s.file), secret),
		fmt.Sprintf(`touch $HOME/%s && touch /tmp/%s-written && echo "wrote-own=ok"`, secret, secret),
		`awk '$6 ~ /^rw/ {print "rw-mount=" $5}' /proc/self/mountinfo`,
	}, "\n")
	out := s.mustMoat(60*time.Second, "ssh", a.ID, "--", script)
	t.Logf("inside %s:\n%s", a.ID, out)
	lines := strings.Split(out, "\n")
	has := func(prefix string) []string {
		var got []string
		for _, l := range lines {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), prefix); ok {
				got = append(got, v)
			}
		}
		return got
	}

	wantHost := "ip-" + strings.ReplaceAll(a.IP, ".", "-")
	if got := has("hostname="); len(got) != 1 || got[0] != wantHost {
		t.Errorf("hostname inside = %v, want %s", got, wantHost)
	}
	if got := has("resolves="); len(got) != 1 || got[0] != a.IP {
		t.Errorf("the hostname resolves to %v, want %s", got, a.IP)
	}
	if got := has("uid="); len(got) != 1 || got[0] == "0" || got[0] == "" {
		t.Errorf("login's uid %v, want ec2-user's, not root", got)
	}
	if got := has("who="); len(got) != 1 || got[0] != "ec2-user home=/home/ec2-user pwd=/home/ec2-user" {
		t.Errorf("login: %v, want ec2-user in /home/ec2-user", got)
	}
	// Only A's own processes: init, the app (and its shell), the session.
	if got := has("procs="); len(got) != 1 {
		t.Errorf("process count: %v", got)
	} else if n, _ := strconv.Atoi(got[0]); n == 0 || n > 8 {
		t.Errorf("the login sees %d processes, want only the instance's own (at most 8)", n)
	}
	for _, what := range []string{"sees-proc=", "reads-environ=", "signals=", "killed=", "reads=", "wrote=", "sees=", "root: "} {
		if got := has(what); len(got) > 0 {
			t.Errorf("from inside %s: %s%v", a.ID, what, got)
		}
	}
	if got := has("home: "); len(got) != 1 || got[0] != "ec2-user" {
		t.Errorf("/home lists %v inside, want only the instance's own home", got)
	}
	if got := has("wrote-own="); len(got) != 1 {
		t.Errorf("the instance cannot write its home and /tmp")
	}
	// The only writable mounts are the instance's own: its home, its
	// private temporary directories and /run, and /proc.
	for _, m := range has("rw-mount=") {
		if !slices.Contains([]string{"/home/ec2-user", "/tmp", "/var/tmp", "/dev/shm", "/run", "/root", "/home"}, m) && !strings.HasPrefix(m, "/proc") {
			t.Errorf("writable mount %s inside the instance", m)
		}
	}
	for _, p := range []string{filepath.Join(filepath.Dir(s.file), secret), filepath.Join("/tmp", secret+"-written")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("the instance's write reached the host: %s", p)
		}
	}
	if _, err := os.Stat(filepath.Join("/run/moat", s.name, "instances", a.ID, secret)); err != nil {
		t.Errorf("the instance's write to its home is not in its directory on the host: %v", err)
	}
	// B and C live on.
	for _, p := range []int{bPID, cPID} {
		if err := syscall.Kill(p, 0); err != nil {
			t.Errorf("process %d: %v", p, err)
		}
	}

	// An interactive login (a terminal, ssh -tt) is the same machine, and
	// its terminal belongs to the user.
	cfgPath, alias, _ := s.sshConfig(a.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tty, err := exec.CommandContext(ctx, "ssh", "-F", cfgPath, "-tt", alias, `echo "tty=$(stat -c %U $(tty)) host=$(hostname)"; exit`).CombinedOutput()
	if want := "tty=ec2-user host=" + wantHost; err != nil || !strings.Contains(string(tty), want) {
		t.Errorf("ssh -tt: %v; output %q, want %q", err, tty, want)
	}

	// User data ran as root inside (moat logs shows its output).
	if logs := s.mustMoat(20*time.Second, "logs", a.ID); !strings.Contains(logs, "userdata-uid=0\n") {
		t.Errorf("user data did not run as uid 0 inside:\n%s", logs)
	}
	// On the host: never root, never shared.
	owner := map[int]string{}
	for _, in := range []struct {
		stack string
		i     api.Instance
	}{{s.name, a}, {s.name, b}, {other.name, c}} {
		uids := instanceUIDs(t, in.stack, in.i.ID)
		if len(uids) == 0 {
			t.Errorf("%s: no process found", in.i.ID)
		}
		for uid := range uids {
			if uid < instance.UIDRangeBase {
				t.Errorf("%s runs a process as host uid %d, want one of its range (from %d)", in.i.ID, uid, instance.UIDRangeBase)
			}
			if prev, ok := owner[uid/instance.UIDRangeSize]; ok && prev != in.i.ID {
				t.Errorf("host uid %d of %s is in the range of %s", uid, in.i.ID, prev)
			}
			owner[uid/instance.UIDRangeSize] = in.i.ID
		}
	}

	// moat down gives the ranges back.
	s.mustMoat(60*time.Second, "down")
	other.mustMoat(60*time.Second, "down")
	assertNoLeftovers(t, s.name)
	assertNoLeftovers(t, other.name)
}
