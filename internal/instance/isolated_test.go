package instance

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/moat-dev/moat/internal/testutil"
)

// TestIsolatedLikeAMachine: an instance sees only its own processes, its
// own hostname, a private /tmp and /run, its home; the host's files are
// read-only; user data runs as root inside and the command as the user,
// both under the instance's uid range on the host.
func TestIsolatedLikeAMachine(t *testing.T) {
	testutil.RequireRoot(t, "namespaces")
	hostFile, err := os.CreateTemp("", "moat-isolated-host-")
	if err != nil {
		t.Fatal(err)
	}
	hostFile.Close()
	t.Cleanup(func() { os.Remove(hostFile.Name()) })
	_ = os.Chmod(hostFile.Name(), 0o644)
	s := spec(t, testNS(t), strings.Join([]string{
		`echo "uid=$(id -u) user=$(id -un) home=$HOME pwd=$(pwd)"`,
		`echo "hostname=$(hostname) resolves=$(getent hosts $(hostname) | cut -d' ' -f1)"`,
		`echo "procs=$(ls /proc | grep -c '^[0-9]')"`,
		`cat ` + hostFile.Name() + ` 2>/dev/null && echo "reads-host-tmp"`,
		`ls -A /run/moat 2>/dev/null | sed 's/^/sees: /'`,
		`ls -A /home | grep -v '^ec2-user$' | sed 's/^/sees: /'`,
		`touch /usr/moat-isolated 2>/dev/null && echo "wrote-usr"`,
		`touch /tmp/x && echo "tmp-ok"`,
		`cat boot.txt`,
		`echo child=$$; sleep 600`,
	}, "\n"))
	s.UserData = "echo userdata-uid=$(id -u); echo booted > boot.txt"
	s.Hostname, s.IP = "ip-10-0-128-4.ec2.internal", "10.0.128.4"
	in := start(t, s)
	child := reportedChild(t, in, s)
	log := readLog(t, s)
	// The command's output, after the script echoed in the log.
	log = log[strings.LastIndex(log, "sleep 600\n")+len("sleep 600\n"):]
	if !strings.HasPrefix(readLog(t, s), "moat: ") || !strings.Contains(readLog(t, s), "userdata-uid=0\n") {
		t.Errorf("user data did not run as uid 0 inside:\n%s", readLog(t, s))
	}
	for _, want := range []string{
		"user=ec2-user home=/home/ec2-user pwd=/home/ec2-user\n",
		"hostname=ip-10-0-128-4 resolves=10.0.128.4\n",
		"procs=5\n", // init, sh, the subshell, ls, grep
		"tmp-ok\n", "booted\n",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	for _, bad := range []string{"reads-host-tmp", "sees: ", "wrote-usr", "uid=0 "} {
		if strings.Contains(log, bad) {
			t.Errorf("log has %q:\n%s", bad, log)
		}
	}
	// On the host: the command runs in the instance's range, its init as
	// root; the home's files belong to the user's uid in the range.
	base := in.UIDBase()
	if base < UIDRangeBase {
		t.Fatalf("uid base %d", base)
	}
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(child) + "/status")
	if !strings.Contains(string(b), "\nUid:\t"+strconv.Itoa(int(base+in.iso.inner.uid))+"\t") {
		t.Errorf("the command's host uid is not in its range from %d:\n%s", base, b)
	}
	var st os.FileInfo
	if st, err = os.Stat(filepath.Join(s.WorkDir, "boot.txt")); err != nil {
		t.Fatal(err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != base {
		t.Errorf("boot.txt (written by user data as root) owned by host uid %d, want %d", uid, base)
	}
	// A login (StartSession) sees what the instance sees.
	var out strings.Builder
	cmd := exec.Command("/bin/sh", "-c", "hostname; id -un; pwd; ls /proc | grep -c '^[0-9]'")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := in.StartSession(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("session: %v\n%s", err, out.String())
	}
	if got := out.String(); !strings.HasPrefix(got, "ip-10-0-128-4\nec2-user\n/home/ec2-user\n") {
		t.Errorf("session output:\n%s", got)
	}
	// Stop gives the range back.
	if err := in.Stop(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(slotPath(in.iso.uids.slot)); !os.IsNotExist(err) {
		t.Errorf("uid range %d not released by Stop: %v", in.iso.uids.slot, err)
	}
}
