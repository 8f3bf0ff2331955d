package vpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// stateFile records every namespace a VPC creates, written before the
// namespace is made, so Reclaim finds them after a crash.
const stateFile = "vpc.json"

type state struct {
	Stack      string   `json:"stack"`
	Namespaces []string `json:"namespaces"`
}

func readState(dir string) (state, error) {
	var s state
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read vpc state: %w", err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("read vpc state %s: %w", filepath.Join(dir, stateFile), err)
	}
	return s, nil
}

func writeState(dir string, s state) error {
	if dir == "" {
		return nil
	}
	data, _ := json.MarshalIndent(s, "", "  ")
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write vpc state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, stateFile)); err != nil {
		return fmt.Errorf("write vpc state: %w", err)
	}
	return nil
}

// Leftovers lists the namespaces of a stack that exist now: those in the
// state file under stateDir (may be empty) and those whose name starts with
// moat-<stack>- — except names that belong to another stack whose name
// extends this one (moat-<stack>-x-... when moat-<stack>-x-router exists).
func Leftovers(stack, stateDir string) ([]string, error) {
	var names []string
	if stateDir != "" {
		s, err := readState(stateDir)
		if err != nil {
			return nil, err
		}
		names = append(names, s.Namespaces...)
	}
	entries, err := os.ReadDir(NetnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list %s: %w", NetnsDir, err)
	}
	var all []string
	for _, e := range entries {
		all = append(all, e.Name())
	}
	prefix := NamespaceName(stack, "")
	for _, n := range all {
		if !strings.HasPrefix(n, prefix) {
			continue
		}
		other := false
		for _, r := range all {
			if o, ok := strings.CutSuffix(r, "-router"); ok && strings.HasPrefix(o, prefix) && strings.HasPrefix(n, o+"-") {
				other = true
			}
		}
		if !other {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	var out []string
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(NetnsDir, n)); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// Reclaim deletes every namespace a previous run of the stack left behind
// (after a kill -9) and the state file; with them go their links, routes
// and nftables tables, which live only inside them. The caller must have
// killed the previous run's processes first: a namespace with a live
// process survives its name's deletion. It returns how many namespaces it
// deleted.
func Reclaim(ctx context.Context, stack, stateDir string) (int, error) {
	names, err := Leftovers(stack, stateDir)
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if err := deleteNamed(name); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if len(errs) == 0 && stateDir != "" {
		if err := os.Remove(filepath.Join(stateDir, stateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove vpc state: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("reclaim stack %s: %w", stack, err)
	}
	return n, nil
}
