package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/moat-dev/moat/internal/statedir"
)

// Dir is one stack's state directory.
type Dir string

// StackDir returns the state directory of a stack.
func StackDir(stack string) Dir { return Dir(filepath.Join(statedir.Home(), stack)) }

// Path joins elements under the directory.
func (d Dir) Path(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

// Socket is the control API's unix socket.
func (d Dir) Socket() string { return d.Path("moat.sock") }

// Events is the event log file.
func (d Dir) Events() string { return d.Path("events.jsonl") }

// DaemonLog is where a detached daemon's stderr goes.
func (d Dir) DaemonLog() string { return d.Path("daemon.log") }

// PIDFile holds the running daemon's process id.
func (d Dir) PIDFile() string { return d.Path("daemon.pid") }

// Ensure creates the directory, private to the user.
func (d Dir) Ensure() error {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	return nil
}

// ErrLocked means another daemon runs this stack.
var ErrLocked = errors.New("the stack is already running")

// Lock is an exclusive lock on a stack's state directory, held for the
// daemon's lifetime. The kernel drops it when the process dies, so a
// crashed daemon never blocks the next one.
type Lock struct{ f *os.File }

// Acquire takes the lock without waiting.
func (d Dir) Acquire() (*Lock, error) {
	if err := d.Ensure(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(d.Path("lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid, _ := d.PID()
			return nil, fmt.Errorf("%w (daemon pid %d): use moat status, or moat down first", ErrLocked, pid)
		}
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	_ = os.WriteFile(d.PIDFile(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	return &Lock{f: f}, nil
}

// Release drops the lock.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = nil
}

// Held reports whether some process holds the stack's lock (a daemon is
// running), without taking it.
func (d Dir) Held() bool {
	f, err := os.OpenFile(d.Path("lock"), os.O_RDWR, 0o600)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// PID reads the daemon's process id.
func (d Dir) PID() (int, error) {
	b, err := os.ReadFile(d.PIDFile())
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// machineLockDir holds one lock per stack name for the whole machine: the
// stack's namespaces are machine-wide, while state directories are per
// user (MOAT_HOME), so two daemons of one stack name must never run.
const machineLockDir = "/run/moat/locks"

// AcquireMachine takes the machine-wide lock of a stack name without
// waiting, recording which state directory holds it. Without root (no
// namespaces) there is nothing machine-wide to protect and it returns a
// no-op lock.
func AcquireMachine(stack string, holder Dir) (*Lock, error) {
	if os.Geteuid() != 0 {
		return &Lock{}, nil
	}
	if err := os.MkdirAll(machineLockDir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(machineLockDir, stack+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open machine lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			by, _ := os.ReadFile(path)
			return nil, fmt.Errorf("%w on this machine with state in %s (another MOAT_HOME): stop it there with moat down, or give this stack another name",
				ErrLocked, strings.TrimSpace(string(by)))
		}
		return nil, fmt.Errorf("lock stack %s: %w", stack, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(string(holder)+"\n"), 0)
	return &Lock{f: f}, nil
}
