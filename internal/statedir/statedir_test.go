package statedir

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestHome(t *testing.T) {
	for _, tc := range []struct {
		name                string
		moatHome, xdg, home string
		want                string
	}{
		{"MOAT_HOME wins", "/srv/moat", "/x/state", "/home/u", "/srv/moat"},
		{"XDG_STATE_HOME", "", "/x/state", "/home/u", "/x/state/moat"},
		{"the home directory", "", "", "/home/u", "/home/u/.local/state/moat"},
		{"no home directory", "", "", "", filepath.Join(os.TempDir(), "moat-"+strconv.Itoa(os.Getuid()))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MOAT_HOME", tc.moatHome)
			t.Setenv("XDG_STATE_HOME", tc.xdg)
			t.Setenv("HOME", tc.home)
			if got := Home(); got != tc.want {
				t.Errorf("Home() = %q, want %q", got, tc.want)
			}
		})
	}
}
