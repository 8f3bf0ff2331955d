package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/albconformance"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// moatBin is the moat binary built once for tests that check real exit codes.
var moatBin string

func TestMain(m *testing.M) {
	// The ALB conformance test runs this binary as its stack's backend.
	albconformance.ServeBackendFromEnv()
	flag.Parse()
	dir, err := os.MkdirTemp("", "moat-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	moatBin = filepath.Join(dir, "moat")
	build := exec.Command("go", "build", "-o", moatBin, ".")
	if !linuxCommands {
		build = exec.Command("go", "build", "-tags", "portable", "-o", moatBin, ".")
	}
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if os.Getenv("MOAT_TEST_RACE") == "1" {
		// The end-to-end tests then run the daemon under the race
		// detector (needs cgo and a C compiler).
		build = exec.Command("go", "build", "-race", "-o", moatBin, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=1")
	}
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build moat: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs moat in-process and returns stdout, stderr and the exit code
// main would use.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	err := root.Execute()
	code := exitOK
	if err != nil {
		fmt.Fprintln(&stderr, "moat:", err)
		code = exitFailure
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
	}
	return stdout.String(), stderr.String(), code
}

// runBin runs the built binary.
func runBin(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runExe(t, moatBin, args...)
}

// runExe runs the moat binary bin and returns stdout, stderr and the exit
// code.
func runExe(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "MOAT_FILE=")
	return runCmd(t, cmd)
}

// runCmd runs a command and returns its stdout, stderr and exit code; it
// fails the test when the command cannot run at all.
func runCmd(t testing.TB, cmd *exec.Cmd) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

const exampleFile = "../../examples/realtime/moat.yaml"

// copyExample copies the example stack into a temporary directory, applying
// old→new edits to moat.yaml, and returns the stack file's path.
func copyExample(t *testing.T, edits ...string) string {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(s, edits[i]) {
			t.Fatalf("edit: %q not found", edits[i])
		}
		s = strings.Replace(s, edits[i], edits[i+1], 1)
	}
	if err := os.MkdirAll(filepath.Join(dir, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	app, err := os.ReadFile("../../examples/realtime/app/app.py")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app", "app.py"), app, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "moat.yaml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// lineOf returns the 1-based line and column where needle starts in the file.
func lineOf(t *testing.T, path, needle string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, needle)
	if i < 0 {
		t.Fatalf("%q not in %s", needle, path)
	}
	return fmt.Sprintf("%d:%d", strings.Count(s[:i], "\n")+1, i-strings.LastIndex(s[:i], "\n"))
}

// stubbed reports whether this build only stubs command name (it needs
// Linux); tests of it are then skipped.
func stubbed(name string) bool {
	if linuxCommands {
		return false
	}
	for _, lo := range linuxOnly {
		if lo.use == name {
			return true
		}
	}
	return false
}
