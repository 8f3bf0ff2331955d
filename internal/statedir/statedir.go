// Package statedir says where moat keeps its state on this machine: the
// stacks' state directories, key pairs and keys, ssh_config files.
package statedir

import (
	"os"
	"path/filepath"
	"strconv"
)

// Home is moat's state root: $MOAT_HOME, else $XDG_STATE_HOME/moat, else
// ~/.local/state/moat (a per-user directory under the system's temporary
// directory when there is no home directory).
func Home() string {
	if h := os.Getenv("MOAT_HOME"); h != "" {
		return h
	}
	if x := os.Getenv("XDG_STATE_HOME"); x != "" {
		return filepath.Join(x, "moat")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "moat-"+strconv.Itoa(os.Getuid()))
	}
	return filepath.Join(home, ".local", "state", "moat")
}
