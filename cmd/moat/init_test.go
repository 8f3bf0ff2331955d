package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "stack")
	stdout, stderr, code := run(t, "init", dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, f := range []string{"moat.yaml", "app/app.py"} {
		want, err := os.ReadFile(filepath.Join("../../examples/realtime", f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: differs from the example (%v)", f, err)
		}
		if !strings.Contains(stdout, filepath.Join(dir, f)) {
			t.Errorf("stdout does not list %s: %q", f, stdout)
		}
	}
	if !strings.Contains(stderr, "next steps") || !strings.Contains(stderr, "moat up -f "+filepath.Join(dir, "moat.yaml")) {
		t.Errorf("stderr %q", stderr)
	}
	// The written stack is valid where it lands.
	if _, stderr, code := run(t, "validate", filepath.Join(dir, "moat.yaml")); code != exitOK {
		t.Errorf("validate: exit %d: %s", code, stderr)
	}

	// A second init refuses and writes nothing, even to missing files.
	if err := os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "app", "app.py")); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = run(t, "init", dir)
	if code == exitOK || !strings.Contains(stderr, "moat.yaml already exists: nothing written") || !strings.Contains(stderr, "--force") {
		t.Fatalf("second init: exit %d: %s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "moat.yaml")); string(b) != "mine\n" {
		t.Error("init overwrote moat.yaml without --force")
	}
	if _, err := os.Stat(filepath.Join(dir, "app", "app.py")); err == nil {
		t.Error("a refused init wrote app/app.py")
	}

	// --force overwrites.
	if _, stderr, code := run(t, "init", "--force", dir); code != exitOK {
		t.Fatalf("init --force: exit %d: %s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "moat.yaml")); string(b) == "mine\n" {
		t.Error("--force did not overwrite moat.yaml")
	}
}

func TestInitDefaultDir(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if _, stderr, code := run(t, "init"); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "moat.yaml")); err != nil {
		t.Error(err)
	}
	if _, _, code := run(t, "init", "a", "b"); code == exitOK {
		t.Error("two arguments accepted")
	}
}
