package instance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Limits caps an instance's resources (per instance type) where this
// machine allows it: with cgroup v1 cpu and memory hierarchies mounted
// writable under /sys/fs/cgroup. Zero values mean no limit. The cgroups
// are made below moat's own cgroup, named moat-<instance id>, and removed
// by Stop. On cgroup v2 only hosts limits are not applied yet
// (Instance.Limited reports it).
type Limits struct {
	// CPUs is the CPU bandwidth in cores (0.5: half a core).
	CPUs float64
	// MemoryBytes is the memory limit; the kernel's OOM killer ends the
	// instance's processes beyond it.
	MemoryBytes int64
}

// cgroupRoot is where the v1 hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroupSet is one instance's cgroups, one per hierarchy.
type cgroupSet struct {
	mu      sync.Mutex // guards dirs against concurrent Stops
	dirs    []string   // the instance's cgroups
	origins []string   // moat's own cgroup in the same hierarchies
}

// selfCgroup is moat's path in the v1 hierarchy holding controller.
//
// It reads the calling thread's cgroups, not the process's: /proc/self
// is the main thread, which may be, at that moment, locked in another
// instance's cgroups to start its processes (startIn), and a new
// instance's cgroup would then be made below that instance's. A thread
// that runs this code is never inside an instance's cgroups: startIn
// keeps such a thread locked until it has left them.
func selfCgroup(controller string) (string, bool) {
	b, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		return "", false
	}
	return cgroupPath(string(b), controller)
}

// cgroupPath finds, in /proc/<pid>/cgroup content, the path in the v1
// hierarchy that holds controller (pure). The v2 line ("0::/path") names
// no controller, so a v2-only host has none.
func cgroupPath(procCgroup, controller string) (string, bool) {
	for _, line := range strings.Split(procCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				return parts[2], true
			}
		}
	}
	return "", false
}

// LimitsApplicable says whether this host can apply Limits: it needs the
// cgroup v1 cpu and memory hierarchies. On a cgroup v2-only host instances
// run without limits (v2 is not supported yet).
func LimitsApplicable() error {
	for _, c := range []string{"cpu", "memory"} {
		if _, ok := selfCgroup(c); !ok {
			return fmt.Errorf("no cgroup v1 %s hierarchy on this host (cgroup v2-only hosts are not supported yet)", c)
		}
	}
	return nil
}

// newCgroups creates the instance's cgroups with the limits; nil without
// limits or where cgroup v1 is not available.
func newCgroups(id string, l Limits) (*cgroupSet, error) {
	if l.CPUs <= 0 && l.MemoryBytes <= 0 {
		return nil, nil
	}
	type want struct {
		controller string
		files      map[string]string
	}
	var wants []want
	if l.CPUs > 0 {
		wants = append(wants, want{"cpu", map[string]string{
			"cpu.cfs_period_us": "100000",
			"cpu.cfs_quota_us":  strconv.FormatInt(max(1000, int64(l.CPUs*100000)), 10),
		}})
	}
	if l.MemoryBytes > 0 {
		wants = append(wants, want{"memory", map[string]string{
			"memory.limit_in_bytes": strconv.FormatInt(l.MemoryBytes, 10),
		}})
	}
	cs := &cgroupSet{}
	for _, w := range wants {
		self, ok := selfCgroup(w.controller)
		if !ok {
			cs.remove()
			return nil, nil // no v1 hierarchy for it: not applied
		}
		origin := filepath.Join(cgroupRoot, w.controller, self)
		dir := filepath.Join(origin, "moat-"+id)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			cs.remove()
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
				return nil, nil
			}
			return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		cs.dirs = append(cs.dirs, dir)
		cs.origins = append(cs.origins, origin)
		for name, v := range w.files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644); err != nil {
				cs.remove()
				return nil, fmt.Errorf("set %s of cgroup %s: %w", name, dir, err)
			}
		}
	}
	return cs, nil
}

// enter moves the calling thread (locked by the caller) into the
// instance's cgroups; v1 moves a single thread when its id is written to
// "tasks", and a forked child starts in its parent thread's cgroups.
func (cs *cgroupSet) enter() error {
	tid := []byte(strconv.Itoa(syscall.Gettid()))
	for _, d := range cs.dirs {
		if err := os.WriteFile(filepath.Join(d, "tasks"), tid, 0o644); err != nil {
			return fmt.Errorf("enter cgroup %s: %w", d, err)
		}
	}
	return nil
}

// leave moves the calling thread back to moat's own cgroups.
func (cs *cgroupSet) leave() error {
	tid := []byte(strconv.Itoa(syscall.Gettid()))
	var errs []error
	for _, d := range cs.origins {
		if err := os.WriteFile(filepath.Join(d, "tasks"), tid, 0o644); err != nil {
			errs = append(errs, fmt.Errorf("return to cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// remove deletes the cgroups once empty (retrying briefly while the
// kernel finishes tearing the processes down).
func (cs *cgroupSet) remove() error {
	if cs == nil {
		return nil
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var errs []error
	var dirs []string
	for _, d := range cs.dirs {
		// Cgroups below the instance's (burners) go first.
		if subs, err := os.ReadDir(d); err == nil {
			for _, e := range subs {
				if e.IsDir() && strings.HasPrefix(e.Name(), burnerCgroupPrefix) {
					dirs = append(dirs, filepath.Join(d, e.Name()))
				}
			}
		}
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		deadline := time.Now().Add(2 * time.Second)
		for {
			err := syscall.Rmdir(d)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cs.dirs = nil
	return errors.Join(errs...)
}

// procs is the set of processes in the instance's cgroup (nil without
// cgroups).
func (cs *cgroupSet) procs() map[int]bool {
	if cs == nil {
		return nil
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.dirs) == 0 {
		return nil
	}
	out := map[int]bool{}
	// The instance's cgroup and the burners' below it (StartBurners).
	dirs := []string{cs.dirs[0]}
	if subs, err := os.ReadDir(cs.dirs[0]); err == nil {
		for _, e := range subs {
			if e.IsDir() && strings.HasPrefix(e.Name(), burnerCgroupPrefix) {
				dirs = append(dirs, filepath.Join(cs.dirs[0], e.Name()))
			}
		}
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out[pid] = true
			}
		}
	}
	return out
}

// memory reads the instance's memory cgroup: its working set (usage less
// the inactive page cache the kernel reclaims first, as kubelet and
// docker stats count it) and its limit. ok is false without one.
func (cs *cgroupSet) memory() (used, limit int64, ok bool) {
	if cs == nil {
		return 0, 0, false
	}
	cs.mu.Lock()
	var dir string
	for _, d := range cs.dirs {
		if strings.HasPrefix(d, filepath.Join(cgroupRoot, "memory")+"/") {
			dir = d
		}
	}
	cs.mu.Unlock()
	if dir == "" {
		return 0, 0, false
	}
	usage, err1 := readInt(filepath.Join(dir, "memory.usage_in_bytes"))
	limit, err2 := readInt(filepath.Join(dir, "memory.limit_in_bytes"))
	stat, err3 := os.ReadFile(filepath.Join(dir, "memory.stat"))
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, false
	}
	return workingSet(usage, string(stat)), limit, true
}

// workingSet is a memory cgroup's usage less its inactive file cache
// (total_inactive_file in memory.stat), never below zero (pure).
func workingSet(usage int64, stat string) int64 {
	for _, line := range strings.Split(stat, "\n") {
		if v, ok := strings.CutPrefix(line, "total_inactive_file "); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return max(0, usage-n)
			}
		}
	}
	return usage
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}
