package spec_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
)

// FuzzParse feeds arbitrary bytes to the stack file parser, validates what
// parses, and resolves what validates into a plan. Nothing may panic, every
// problem must carry a position, and a file without errors must give a plan.
// The seed corpus is in testdata/fuzz/FuzzParse (the example and broken
// variants); crashers found by go test -fuzz are kept there as regressions.
func FuzzParse(f *testing.F) {
	// Relative paths (files:, publicKeyFile:) resolve against a directory
	// holding only app/, so the host's files do not change the outcome and
	// the example's files: app resolves.
	dir := f.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "app"), 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := spec.Parse("moat.yaml", data)
		if err != nil {
			var ps spec.Problems
			if !errors.As(err, &ps) || len(ps.Errors()) == 0 {
				t.Fatalf("Parse error %v is not Problems with errors", err)
			}
			checkPositions(t, ps)
			return
		}
		file.Dir = dir
		ps := spec.Validate(file)
		checkPositions(t, ps)
		_ = spec.WithDefaults(file.Stack)
		p, bps := plan.Build(file)
		if (p == nil) != (len(bps.Errors()) > 0) {
			t.Fatalf("Build gave plan %v with %d errors", p != nil, len(bps.Errors()))
		}
	})
}

func checkPositions(t *testing.T, ps spec.Problems) {
	t.Helper()
	for _, p := range ps {
		if p.Pos.File != "moat.yaml" || p.Message == "" {
			t.Fatalf("problem without file or message: %+v", p)
		}
	}
}

// TestFuzzSeedsBuild makes sure the seed corpus reaches the plan: the
// example seed must validate and resolve.
func TestFuzzSeedsBuild(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../examples/realtime/moat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file, err := spec.Parse("moat.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	file.Dir = dir
	if p, ps := plan.Build(file); p == nil {
		t.Fatal(ps)
	}
}
