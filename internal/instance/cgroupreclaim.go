package instance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ReclaimCgroups removes the cgroups that instances which no longer exist
// left behind (a daemon killed before Stop, or a Stop whose removal timed
// out): every cgroup named moat-i-* below moat's own cgroup in the v1 cpu
// and memory hierarchies whose instance live does not report, cgroups
// below it first. The kernel refuses to remove a cgroup that still holds
// a process, so a live instance never loses its cgroup; live guards the
// short window in which a new instance's cgroup exists before its first
// process. It returns how many cgroups it removed.
func ReclaimCgroups(live func(id string) bool) (int, error) {
	n := 0
	var errs []error
	for _, c := range []string{"cpu", "memory"} {
		self, ok := selfCgroup(c)
		if !ok {
			continue
		}
		origin := filepath.Join(cgroupRoot, c, self)
		ents, err := os.ReadDir(origin)
		if err != nil {
			continue // no hierarchy we may read: nothing of ours there
		}
		var names []string
		for _, e := range ents {
			if e.IsDir() {
				names = append(names, e.Name())
			}
		}
		for _, name := range orphanCgroups(names, live) {
			k, err := removeCgroupTree(filepath.Join(origin, name))
			n += k
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return n, errors.Join(errs...)
}

// orphanCgroups picks, from the names of the cgroups in moat's own
// cgroup, the instances' cgroups (moat-i-...) whose instance is not live
// (pure).
func orphanCgroups(names []string, live func(id string) bool) []string {
	var out []string
	for _, name := range names {
		id, ok := strings.CutPrefix(name, "moat-")
		if !ok || !strings.HasPrefix(id, "i-") || len(id) < 3 {
			continue
		}
		if !live(id) {
			out = append(out, name)
		}
	}
	return out
}

// removeCgroupTree removes dir and the cgroups below it, deepest first. A
// cgroup that still holds a process stays (EBUSY) and is an error.
func removeCgroupTree(dir string) (int, error) {
	n := 0
	var errs []error
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			k, err := removeCgroupTree(filepath.Join(dir, e.Name()))
			n += k
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	switch err := syscall.Rmdir(dir); {
	case err == nil:
		n++
	case errors.Is(err, syscall.ENOENT):
	default:
		errs = append(errs, fmt.Errorf("remove leftover cgroup %s: %w", dir, err))
	}
	return n, errors.Join(errs...)
}
