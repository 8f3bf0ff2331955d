package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
)

// fileFlag adds -f/--file to a command.
func fileFlag(c *cobra.Command, file *string) {
	c.Flags().StringVarP(file, "file", "f", "", "stack file (default $MOAT_FILE, then ./moat.yaml)")
}

// stackFile finds the stack file: -f, then MOAT_FILE, then ./moat.yaml.
func stackFile(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv("MOAT_FILE"); env != "" {
		return env
	}
	return "moat.yaml"
}

// loadPlan loads, validates and resolves the stack file. Warnings go to
// stderr; errors come back with exit code exitInvalid.
func loadPlan(flag string, stderr io.Writer) (*plan.Plan, error) {
	path := stackFile(flag)
	f, err := spec.LoadFile(path)
	if err != nil {
		var ps spec.Problems
		if errors.As(err, &ps) {
			return nil, withCode(exitInvalid, ps)
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil, withCode(exitInvalid, fmt.Errorf("%s: no such stack file; pass -f FILE, set MOAT_FILE, or run moat init", path))
		}
		return nil, withCode(exitInvalid, err)
	}
	p, problems := plan.Build(f)
	for _, w := range problems.Warnings() {
		fmt.Fprintln(stderr, w.String())
	}
	if len(problems.Errors()) > 0 {
		return nil, withCode(exitInvalid, problems)
	}
	return p, nil
}

// stackFlags registers -f FILE and --stack NAME, which name a stack.
func stackFlags(c *cobra.Command, file, stack *string) {
	fileFlag(c, file)
	c.Flags().StringVar(stack, "stack", "", "stack name (default: the stack file's name)")
}
