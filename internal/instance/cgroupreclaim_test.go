package instance

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/moat-dev/moat/internal/testutil"
)

func TestOrphanCgroups(t *testing.T) {
	live := func(id string) bool { return id == "i-0aaa" }
	for _, tc := range []struct {
		names []string
		want  []string
	}{
		{nil, nil},
		{[]string{"moat-i-0aaa"}, nil},
		{[]string{"moat-i-0aaa", "moat-i-0bbb"}, []string{"moat-i-0bbb"}},
		// Not an instance's cgroup: left alone.
		{[]string{"user.slice", "moat-", "moat-i-", "moat-lb", "i-0bbb", "xmoat-i-0bbb"}, nil},
	} {
		if got := orphanCgroups(tc.names, live); !slices.Equal(got, tc.want) {
			t.Errorf("orphanCgroups(%q) = %q, want %q", tc.names, got, tc.want)
		}
	}
}

// TestReclaimCgroupsRemovesAnOrphan makes a real orphan cgroup (with one
// below it, as cpu-stress burners make) in moat's own cpu cgroup, and a
// live one holding a process, and reclaims: the orphan goes, the live one
// stays.
func TestReclaimCgroupsRemovesAnOrphan(t *testing.T) {
	testutil.RequireRoot(t, "cgroups")
	self, ok := selfCgroup("cpu")
	if !ok {
		t.Skip("no cgroup v1 cpu hierarchy on this host")
	}
	origin := filepath.Join(cgroupRoot, "cpu", self)
	orphan := fmt.Sprintf("i-0reclaimtest%x", os.Getpid())
	busy := fmt.Sprintf("i-0reclaimbusy%x", os.Getpid())
	dir := filepath.Join(origin, "moat-"+orphan)
	if err := os.MkdirAll(filepath.Join(dir, "burners"), 0o755); err != nil {
		t.Skipf("cannot make a cgroup here: %v", err)
	}
	busyDir := filepath.Join(origin, "moat-"+busy)
	if err := os.Mkdir(busyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sleeper.Process.Kill()
		_ = sleeper.Wait()
		_ = os.WriteFile(filepath.Join(origin, "tasks"), []byte(strconv.Itoa(sleeper.Process.Pid)), 0o644)
		_ = syscall.Rmdir(busyDir)
	})
	if err := os.WriteFile(filepath.Join(busyDir, "tasks"), []byte(strconv.Itoa(sleeper.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	ours := func(id string) bool { return id != orphan && id != busy }
	n, err := ReclaimCgroups(ours)
	if n < 2 {
		t.Errorf("removed %d cgroups, want at least the orphan and the one below it", n)
	}
	if err == nil {
		t.Error("no error for the cgroup that holds a process")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("orphan cgroup %s still there (%v)", dir, err)
	}
	if _, err := os.Stat(busyDir); err != nil {
		t.Errorf("the cgroup holding a process went: %v", err)
	}
}
