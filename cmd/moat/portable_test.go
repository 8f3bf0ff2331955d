//go:build linux && !portable

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/awscfn/awscfntest"
)

// buildPortable builds the CLI as macOS and Windows get it (-tags
// portable: the commands that need Linux only say so) and returns its path.
func buildPortable(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "moat-portable")
	build := exec.Command("go", "build", "-tags", "portable", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags portable: %v\n%s", err, out)
	}
	return bin
}

// commandNames are the top-level commands a moat binary offers.
func commandNames(t *testing.T, bin string) []string {
	t.Helper()
	out, _, _ := runExe(t, bin, "__complete", "")
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if name, _, ok := strings.Cut(line, "\t"); ok {
			names = append(names, name)
		}
	}
	return names
}

// TestPortableCLI: the CLI that macOS and Windows get has every command
// the Linux one has; those that need Linux say so and exit 1; it depends
// on nothing Linux-only; and it renders the example's template exactly as
// the Linux CLI does, byte for byte.
func TestPortableCLI(t *testing.T) {
	t.Setenv("MOAT_HOME", t.TempDir())
	bin := buildPortable(t)
	if got, want := commandNames(t, bin), commandNames(t, moatBin); !slices.Equal(got, want) || len(want) < 20 {
		t.Errorf("portable commands %v, want the Linux CLI's %v", got, want)
	}
	for _, lo := range linuxOnly {
		_, stderr, code := runExe(t, bin, lo.use, "-f", exampleFile)
		if code != exitFailure || !strings.Contains(stderr, "moat "+lo.use+" needs Linux") {
			t.Errorf("portable moat %s: exit %d, %q; want exit %d saying it needs Linux", lo.use, code, stderr, exitFailure)
		}
	}
	for _, args := range [][]string{{"validate", "-f", exampleFile}, {"plan", "-f", exampleFile}, {"schema"}, {"version"},
		{"keypair", "list"}, {"reach", "-f", exampleFile, "internet", "lb:web", "80"}, {"completion", "bash"}} {
		if _, stderr, code := runExe(t, bin, args...); code != exitOK {
			t.Errorf("portable moat %s: exit %d, %s", strings.Join(args, " "), code, stderr)
		}
	}
	out, err := exec.Command("go", "list", "-deps", "-tags", "portable", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, bad := range []string{"netlink", "nftables", "netns", "moat/internal/daemon", "moat/internal/vpc"} {
			if strings.Contains(pkg, bad) {
				t.Errorf("the portable CLI depends on %s", pkg)
			}
		}
	}
	for _, o := range []string{"yaml", "json"} {
		portable, stderr, code := runExe(t, bin, "template", "-f", exampleFile, "-o", o)
		if code != exitOK {
			t.Fatalf("portable moat template -o %s: exit %d, %s", o, code, stderr)
		}
		linux, _, _ := runExe(t, moatBin, "template", "-f", exampleFile, "-o", o)
		if portable != linux {
			t.Errorf("moat template -o %s differs between the portable and the Linux CLI", o)
		}
	}
}

// TestPortableTemplateMatchesGolden: the example's template from the
// portable CLI is the renderer's golden file, byte for byte, once the app
// bundle and its content version are replaced by the golden file's
// placeholders (they follow app.py, not the renderer).
func TestPortableTemplateMatchesGolden(t *testing.T) {
	bin := buildPortable(t)
	out, stderr, code := runExe(t, bin, "template", "-f", exampleFile, "-o", "json")
	if code != exitOK {
		t.Fatalf("portable moat template: exit %d, %s", code, stderr)
	}
	golden := "../../internal/awscfn/testdata/realtime.golden.json"
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	got, err := awscfntest.GoldenForm([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		line := 1 + bytes.Count(got[:commonPrefix(got, want)], []byte("\n"))
		t.Errorf("the portable CLI's template differs from %s from line %d on (if the renderer changed on purpose, update the golden file: go test ./internal/awscfn -run TestGolden -update)", golden, line)
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
