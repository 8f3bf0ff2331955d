package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/fault"
	"github.com/moat-dev/moat/internal/instance"
	"github.com/moat-dev/moat/internal/vpc"
)

// Reclaim removes whatever a crashed daemon of the stack left behind and
// returns how many namespaces it removed. The processes go first: every
// process that lives in one of the stack's namespaces (only moat puts
// processes there) is killed, since a namespace with a live process
// survives its name's deletion; then the namespaces (with their links,
// routes and nftables tables) and the instances' working directories. It
// must only run while no daemon holds the stack's lock; it takes the
// machine-wide lock of the stack name, so that it never touches a stack of
// the same name that runs from another state directory.
func Reclaim(ctx context.Context, stack string, dir Dir) (int, error) {
	l, err := AcquireMachine(stack, dir)
	if err != nil {
		return 0, err
	}
	defer l.Release()
	return reclaim(ctx, stack, dir)
}

// reclaim is Reclaim for a daemon that holds the machine lock already.
// The crashed daemon's active faults are undone first, from their
// records (see undoFaultRecords), and their end goes to the event log.
// Last go the cgroups of instances whose namespace no longer exists, this
// stack's or any other's: a daemon killed before it stopped its instances
// leaves them, and nothing else would ever remove them. That is best
// effort: a cgroup that still holds a process (another stack's instance
// on its way down) stays for a later run, and never fails this one.
func reclaim(ctx context.Context, stack string, dir Dir) (int, error) {
	ferr := undoFaultRecords(dir)
	n, err := reclaimNamespaces(ctx, stack, dir)
	if os.Geteuid() == 0 {
		_, _ = instance.ReclaimCgroups(instanceHasNamespace())
	}
	return n, errors.Join(ferr, err)
}

// instanceHasNamespace reports whether an instance id names a node of a
// namespace that exists now (moat-<stack>-<id>), for any stack.
func instanceHasNamespace() func(id string) bool {
	ents, _ := os.ReadDir(vpc.NetnsDir)
	return func(id string) bool {
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), "-"+id) {
				return true
			}
		}
		return false
	}
}

// reclaimNamespaces kills the processes in the stack's namespaces, then
// deletes the namespaces and the instances' working directories.
func reclaimNamespaces(ctx context.Context, stack string, dir Dir) (int, error) {
	names, err := vpc.Leftovers(stack, string(dir))
	if err != nil {
		return 0, err
	}
	if len(names) > 0 {
		if err := killNamespaceProcesses(ctx, names); err != nil {
			return 0, err
		}
	}
	n, err := vpc.Reclaim(ctx, stack, string(dir))
	if os.Geteuid() == 0 {
		err = errors.Join(err, os.RemoveAll(filepath.Join("/run/moat", stack)))
		// The uid ranges of the crashed run's instances, now that none
		// of its processes is left.
		_, rerr := instance.ReleaseUIDRanges(stack)
		err = errors.Join(err, rerr)
	}
	return n, err
}

// killNamespaceProcesses SIGKILLs every process whose network namespace is
// one of the named ones (as `ip netns pids` finds them) and waits until
// they are gone.
func killNamespaceProcesses(ctx context.Context, names []string) error {
	inodes := map[uint64]bool{}
	for _, name := range names {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(vpc.NetnsDir, name), &st); err == nil {
			inodes[st.Ino] = true
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := pidsIn(inodes)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v in the stack's namespaces do not die", pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pidsIn lists the processes whose network namespace has one of inodes.
func pidsIn(inodes map[uint64]bool) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) != nil {
			continue
		}
		if inodes[st.Ino] {
			out = append(out, pid)
		}
	}
	return out
}

// undoFaultRecords undoes the faults a crashed daemon left active, from
// the undo records in the state directory (their frozen processes
// continue, their tables and qdiscs go, their burners are killed and
// their cgroups removed), records each fault's end in the event log, and
// removes the records. A record that cannot be read, or whose undo
// fails, is an error; the first is removed (it says nothing more), the
// second kept for the next reclaim (by then its namespaces are gone, and
// with them what it could not undo).
func undoFaultRecords(dir Dir) error {
	ents, err := os.ReadDir(dir.faultDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read fault records: %w", err)
	}
	var log *events.Log
	defer func() {
		if log != nil {
			log.Close()
		}
	}()
	var errs []error
	for _, e := range ents {
		path := filepath.Join(dir.faultDir(), e.Name())
		if strings.HasSuffix(e.Name(), ".tmp") {
			_ = os.Remove(path) // a record being written: the previous one stands
			continue
		}
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("read fault record %s: %w", path, err))
			continue
		}
		rec, err := fault.DecodeRecord(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w (removed)", path, err))
			_ = os.Remove(path)
			continue
		}
		var uerrs []error
		for _, st := range fault.UndoOrder(rec.Undo) {
			if err := undoStep(st); err != nil {
				uerrs = append(uerrs, err)
			}
		}
		if err := errors.Join(uerrs...); err != nil {
			errs = append(errs, fmt.Errorf("undo fault %s: %w", rec.Fault.ID, err))
			continue
		}
		if log == nil {
			log, _ = events.Open(dir.Events())
		}
		if log != nil {
			f := rec.Fault
			fields := map[string]string{"fault": f.ID, "kind": f.Kind, "targets": strings.Join(f.Targets, ",")}
			if f.Experiment != "" {
				fields["experiment"] = f.Experiment
			}
			log.Add(events.Event{Component: "fis", Type: "fault.end", Fields: fields,
				Message: fmt.Sprintf("Fault %s ended (its daemon had stopped without undoing it): %s on %s undone", f.ID, f.Kind, strings.Join(f.Targets, ", "))})
		}
		if err := os.Remove(path); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
