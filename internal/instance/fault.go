package instance

import (
	"context"
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

// This file holds the effects of fault injection (package fault) on an
// instance: freezing it, rebooting it, burners inside its limits, and
// signalling its processes by name.

// Freeze stops every process of the instance with SIGSTOP (its process
// group and, with limits, its cgroup), as a stopped EC2 instance keeps its
// address but runs nothing; it returns the processes stopped, all in
// state T. Processes forked while it works are stopped too (it scans until
// none is left running). Undo with SIGCONT to the same processes.
func (in *Instance) Freeze() ([]int, error) {
	stopped := map[int]bool{}
	for range 100 {
		running := 0
		err := scanGroup(in.pid, in.cg.procs(), func(pid int, st procStat) {
			stopped[pid] = true
			if st.state != 'T' && st.state != 't' {
				running++
				_ = syscall.Kill(pid, syscall.SIGSTOP)
			}
		})
		if err != nil {
			return keys(stopped), fmt.Errorf("freeze instance %s: %w", in.spec.ID, err)
		}
		if running == 0 && len(stopped) > 0 {
			return keys(stopped), nil
		}
		if len(stopped) == 0 {
			return nil, fmt.Errorf("freeze instance %s: it has no process", in.spec.ID)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return keys(stopped), fmt.Errorf("freeze instance %s: processes keep running after SIGSTOP", in.spec.ID)
}

func keys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Reboot stops the instance's processes (as Stop) and starts its command
// again in the same namespace, working directory and limits, as an EC2
// reboot does: the user data does not run again and the files are not
// copied again. It returns the new instance; the old one is stopped.
func (in *Instance) Reboot(ctx context.Context, grace time.Duration) (*Instance, error) {
	if err := in.Stop(ctx, grace); err != nil {
		return nil, fmt.Errorf("reboot instance %s: %w", in.spec.ID, err)
	}
	spec := in.spec
	spec.UserData, spec.FilesDir = "", ""
	if f, err := os.OpenFile(spec.LogPath, os.O_WRONLY|os.O_APPEND, 0); err == nil {
		fmt.Fprintf(f, "moat: %s rebooting\n", time.Now().UTC().Format(time.RFC3339))
		f.Close()
	}
	next, err := Start(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("reboot instance %s: %w", in.spec.ID, err)
	}
	return next, nil
}

// Signal sends sig to the instance's live processes whose name is name:
// their /proc/PID/comm, or the base name of their program (argv[0]), as
// killall matches them. It returns the processes signalled; none is an
// error that says which names run.
func (in *Instance) Signal(name string, sig syscall.Signal) ([]int, error) {
	var hit []int
	seen := map[string]bool{}
	err := scanGroup(in.pid, in.cg.procs(), func(pid int, _ procStat) {
		comm, argv0 := processNames(pid)
		seen[comm] = true
		if comm == name || argv0 == name || (len(name) > 15 && strings.HasPrefix(name, comm) && comm != "") {
			hit = append(hit, pid)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("signal %s on instance %s: %w", name, in.spec.ID, err)
	}
	if len(hit) == 0 {
		names := make([]string, 0, len(seen))
		for n := range seen {
			names = append(names, n)
		}
		return nil, fmt.Errorf("no process named %s on instance %s: it runs %s", name, in.spec.ID, strings.Join(names, ", "))
	}
	for _, pid := range hit {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return hit, fmt.Errorf("signal %s (%d) on instance %s: %w", name, pid, in.spec.ID, err)
		}
	}
	return hit, nil
}

// processNames are a process's comm and the base name of its argv[0].
func processNames(pid int) (comm, argv0 string) {
	p := "/proc/" + strconv.Itoa(pid)
	if b, err := os.ReadFile(p + "/comm"); err == nil {
		comm = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(p + "/cmdline"); err == nil {
		first, _, _ := strings.Cut(string(b), "\x00")
		argv0 = filepath.Base(first)
	}
	return comm, argv0
}

// Burners are stress processes inside an instance: in its namespace, as
// its user, in its cgroups (so within its limits), the CPU burners
// together held to a CPU quota by a cgroup of their own below the
// instance's cpu cgroup.
type Burners struct {
	// PIDs are the burners' processes.
	PIDs []int
	// Cgroups were made for the burners; Stop removes them.
	Cgroups []string
	cmds    []*exec.Cmd
}

// burnerCgroupPrefix starts the name of a burners' cgroup.
const burnerCgroupPrefix = "moat-fis-"

// BurnSpec says what burners to start.
type BurnSpec struct {
	// Name names the burners' cgroup (moat-fis-<Name>), e.g. a fault id.
	Name string
	// Workers CPU burners, together held to CPUs cores (0: no quota).
	Workers int
	CPUs    float64
	// MemoryBytes held by one memory burner (0: none).
	MemoryBytes int64
}

// memoryBurner holds its argument's bytes, every page touched, until
// killed.
const memoryBurner = `import sys, time
n = int(sys.argv[1])
b = bytearray(n)
for i in range(0, n, 4096):
    b[i] = 1
sys.stdout.write("moat: memory burner holds %d bytes\n" % n)
sys.stdout.flush()
while True:
    time.sleep(3600)
`

// StartBurners starts burners inside the instance. On failure nothing is
// left running.
func (in *Instance) StartBurners(b BurnSpec) (_ *Burners, err error) {
	acct := resolveAccount(in.spec.User)
	out := &Burners{}
	defer func() {
		if err != nil {
			_ = out.Stop()
		}
	}()
	cg, made, err := burnerCgroups(in.cg, burnerCgroupPrefix+b.Name, b.CPUs)
	out.Cgroups = made
	if err != nil {
		return nil, fmt.Errorf("burners on instance %s: %w", in.spec.ID, err)
	}
	logf, err := os.OpenFile(in.spec.LogPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("burners on instance %s: %w", in.spec.ID, err)
	}
	defer logf.Close()
	env := environ(in.spec, acct)
	var cmds []*exec.Cmd
	for range b.Workers {
		cmds = append(cmds, command(in.spec, acct, env, logf, "-c", "while :; do :; done"))
	}
	if b.MemoryBytes > 0 {
		// python3 as the instance finds it on its PATH (moat's own may be
		// in a directory the instance's user cannot read).
		c := command(in.spec, acct, env, logf, "-c", `exec python3 -c "$0" "$1"`, memoryBurner, strconv.FormatInt(b.MemoryBytes, 10))
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		if in.iso != nil {
			// Inside the instance, as its user (the host's account
			// cannot enter its home).
			if err := in.inside(c, false); err != nil {
				return nil, fmt.Errorf("burners on instance %s: %w", in.spec.ID, err)
			}
		}
		if err := startIn(in.spec.NetNSPath, cg, c); err != nil {
			return nil, fmt.Errorf("burners on instance %s: %w", in.spec.ID, err)
		}
		out.cmds = append(out.cmds, c)
		out.PIDs = append(out.PIDs, c.Process.Pid)
		go func() { _ = c.Wait() }() // reaped as they die
	}
	return out, nil
}

// Stop kills the burners and removes their cgroups.
func (b *Burners) Stop() error {
	for _, c := range b.cmds {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}
	return RemoveCgroups(b.Cgroups)
}

// RemoveCgroups removes cgroups made for burners once their processes
// are gone (retrying briefly); a missing one is no error.
func RemoveCgroups(dirs []string) error {
	cs := &cgroupSet{dirs: dirs}
	return cs.remove()
}

// burnerCgroups is the cgroup set burners start in: a new cpu cgroup
// below the instance's (or moat's own, without limits) holding them to
// cpus cores, and the instance's other cgroups (memory). made lists the
// cgroups it created.
func burnerCgroups(inst *cgroupSet, name string, cpus float64) (cs *cgroupSet, made []string, err error) {
	cs = &cgroupSet{}
	var cpuParent string
	if inst != nil {
		for i, d := range inst.dirs {
			if strings.HasPrefix(d, filepath.Join(cgroupRoot, "cpu")+"/") {
				cpuParent = d
				continue
			}
			cs.dirs = append(cs.dirs, d)
			cs.origins = append(cs.origins, inst.origins[i])
		}
	}
	if cpus <= 0 {
		if inst != nil && cpuParent != "" {
			for i, d := range inst.dirs {
				if d == cpuParent {
					cs.dirs = append(cs.dirs, d)
					cs.origins = append(cs.origins, inst.origins[i])
				}
			}
		}
		if len(cs.dirs) == 0 {
			return nil, nil, nil
		}
		return cs, nil, nil
	}
	self, ok := selfCgroup("cpu")
	if !ok {
		return nil, nil, errors.New("a CPU load needs the cgroup v1 cpu hierarchy (cgroup v2-only hosts are not supported yet)")
	}
	origin := filepath.Join(cgroupRoot, "cpu", self)
	if cpuParent == "" {
		cpuParent = origin
	}
	dir := filepath.Join(cpuParent, name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, nil, fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	made = append(made, dir)
	for file, v := range map[string]string{
		"cpu.cfs_period_us": "100000",
		"cpu.cfs_quota_us":  strconv.FormatInt(max(1000, int64(cpus*100000)), 10),
	} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644); err != nil {
			return nil, made, fmt.Errorf("set %s of cgroup %s: %w", file, dir, err)
		}
	}
	cs.dirs = append(cs.dirs, dir)
	cs.origins = append(cs.origins, origin)
	return cs, made, nil
}

// MemoryLimit is the instance's memory limit in bytes, 0 without one.
func (in *Instance) MemoryLimit() int64 {
	if in.cg == nil {
		return 0
	}
	return in.spec.Limits.MemoryBytes
}

// CPUs is the instance's CPU limit in cores (0 without one).
func (in *Instance) CPUs() float64 { return in.spec.Limits.CPUs }

// Cgroups are the instance's cgroup directories (none without limits).
func (in *Instance) Cgroups() []string {
	if in.cg == nil {
		return nil
	}
	in.cg.mu.Lock()
	defer in.cg.mu.Unlock()
	return append([]string(nil), in.cg.dirs...)
}
