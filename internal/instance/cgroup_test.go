package instance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/testutil"
)

// requireLimited skips a test of instance limits where this host does not
// apply them, and says why: the host's reason, or that moat's own cgroups
// are not writable here.
func requireLimited(t *testing.T, in *Instance) {
	t.Helper()
	if in.Limited() {
		return
	}
	why := "the cgroup v1 cpu and memory hierarchies are there, but moat's cgroups in them are not writable"
	if err := LimitsApplicable(); err != nil {
		why = err.Error()
	}
	t.Skipf("skipping: this host does not apply instance limits: %s", why)
}

func TestLimits(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, running as another user")
	s := spec(t, testNS(t), `exec python3 -c "b = bytearray(256 * 1024 * 1024); print('survived')"`)
	s.ID = "i-0000000000000c9a1"
	s.Limits = Limits{CPUs: 0.2, MemoryBytes: 32 << 20}
	in := start(t, s)
	requireLimited(t, in)
	waitExit(t, in)
	if log := readLog(t, s); strings.Contains(log, "\nsurvived\n") {
		t.Fatalf("a 256 MiB allocation survived a 32 MiB limit:\n%s", log)
	}
	if _, reason := in.State(); !strings.Contains(reason, "killed") {
		t.Errorf("reason %q, want killed (OOM)", reason)
	}
	self, _ := selfCgroup("cpu")
	dir := filepath.Join(cgroupRoot, "cpu", self, "moat-"+s.ID)
	b, err := os.ReadFile(filepath.Join(dir, "cpu.cfs_quota_us"))
	if err != nil || strings.TrimSpace(string(b)) != "20000" {
		t.Errorf("cpu quota %q (%v), want 20000", b, err)
	}
	if err := in.Stop(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cgroup %s left behind after Stop (%v)", dir, err)
	}
}

func TestLimitsInheritedByTheCommand(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, running as another user")
	s := spec(t, testNS(t), "cat /proc/self/cgroup; sleep 600")
	s.ID = "i-0000000000000c9a2"
	s.Limits = Limits{MemoryBytes: 256 << 20}
	in := start(t, s)
	requireLimited(t, in)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(in.PID()) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "moat-"+s.ID) {
		t.Fatalf("command not in its cgroup:\n%s", b)
	}
	// its memory cgroup counts its use, within the limit
	used, limit, ok := in.CgroupMemory()
	if !ok || limit != 256<<20 || used <= 0 || used >= limit {
		t.Errorf("CgroupMemory: used %d, limit %d, ok %v; want some use under a 256 MiB limit", used, limit, ok)
	}
	// moat itself stays where it was.
	self, _ := os.ReadFile("/proc/self/cgroup")
	if strings.Contains(string(self), "moat-i-") {
		t.Fatalf("moat's own threads left in an instance cgroup:\n%s", self)
	}
}

// TestStopReachesSetsid: with limits, Stop also kills a process that left
// the process group with setsid (it stays in the instance's cgroup).
func TestStopReachesSetsid(t *testing.T) {
	testutil.RequireRoot(t, "network namespaces, running as another user")
	s := spec(t, testNS(t), `setsid sleep 600 & echo child=$!; sleep 600`)
	s.ID = "i-0000000000000c9a3"
	s.Limits = Limits{MemoryBytes: 256 << 20}
	in := start(t, s)
	requireLimited(t, in)
	child := reportedChild(t, in, s)
	// Wait until setsid has run (the child leads its own session).
	testutil.Eventually(t, 10*time.Second, func() error {
		if st, err := readStat(strconv.Itoa(child)); err != nil || st.pgrp != child {
			return fmt.Errorf("child %d never left the group: %+v %v", child, st, err)
		}
		return nil
	})
	if err := in.Stop(context.Background(), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error { return gone(child) })
}

func TestCgroupPath(t *testing.T) {
	v1 := "12:pids:/user.slice\n5:cpu,cpuacct:/moat\n4:memory:/moat/mem\n1:name=systemd:/user.slice\n0::/user.slice\n"
	v2 := "0::/user.slice/user-0.slice/session-1.scope\n"
	for _, tc := range []struct {
		content, controller, want string
		ok                        bool
	}{
		{v1, "cpu", "/moat", true},
		{v1, "cpuacct", "/moat", true},
		{v1, "memory", "/moat/mem", true},
		{v1, "blkio", "", false},
		{v2, "cpu", "", false}, // v2 only: no v1 hierarchy holds it
		{v2, "memory", "", false},
		{"", "cpu", "", false},
	} {
		got, ok := cgroupPath(tc.content, tc.controller)
		if got != tc.want || ok != tc.ok {
			t.Errorf("cgroupPath(%q, %s) = %q, %v; want %q, %v", tc.content, tc.controller, got, ok, tc.want, tc.ok)
		}
	}
}

func TestWorkingSet(t *testing.T) {
	for _, tc := range []struct {
		usage int64
		stat  string
		want  int64
	}{
		{100 << 20, "cache 4096\ntotal_inactive_file 10485760\ntotal_active_file 0\n", 90 << 20},
		{100 << 20, "cache 4096\n", 100 << 20},                               // no total_inactive_file: all of it
		{1 << 20, "total_inactive_file 2097152\n", 0},                        // never below zero
		{5 << 20, "inactive_file 1048576\ntotal_inactive_file x\n", 5 << 20}, // unreadable: all of it
	} {
		if got := workingSet(tc.usage, tc.stat); got != tc.want {
			t.Errorf("workingSet(%d, %q) = %d, want %d", tc.usage, tc.stat, got, tc.want)
		}
	}
}
