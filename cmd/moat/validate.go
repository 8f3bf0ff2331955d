package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/fis"
	"github.com/moat-dev/moat/internal/spec"
)

func init() { register(newValidateCommand) }

func newValidateCommand() *cobra.Command {
	var file, output string
	c := &cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check a stack file and report every problem with file:line:column",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				file = args[0]
			}
			path := stackFile(file)
			f, err := spec.LoadFile(path)
			var problems spec.Problems
			if err != nil {
				ps, ok := err.(spec.Problems)
				if !ok {
					return withCode(exitInvalid, err)
				}
				problems = ps
			} else {
				problems = append(spec.Validate(f), experimentProblems(f)...)
			}
			if output == "json" {
				if problems == nil {
					problems = spec.Problems{}
				}
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(problems); err != nil {
					return err
				}
			} else {
				for _, p := range problems {
					fmt.Fprintln(c.ErrOrStderr(), p.String())
				}
			}
			if n := len(problems.Errors()); n > 0 {
				return withCode(exitInvalid, fmt.Errorf("%s: %s, %s", path, count(n, "error"), count(len(problems.Warnings()), "warning")))
			}
			if output != "json" {
				fmt.Fprintf(c.OutOrStdout(), "%s is valid (%s)\n", path, count(len(problems.Warnings()), "warning"))
			}
			return nil
		},
	}
	fileFlag(c, &file)
	outputFlag(c, &output)
	return c
}

// count is "1 error", "2 errors", "no warnings".
func count(n int, noun string) string {
	switch n {
	case 0:
		return "no " + noun + "s"
	case 1:
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// experimentProblems are the problems of the stack file's experiment
// templates (AWS FIS JSON), with their own file:line:column.
func experimentProblems(f *spec.File) spec.Problems {
	var out spec.Problems
	for _, e := range f.Stack.Experiments {
		path := e.Template
		if path == "" {
			continue
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(f.Dir, path)
		}
		t, err := fis.LoadFile(path)
		var ps fis.Problems
		switch {
		case errors.As(err, &ps):
			out = append(out, ps...)
		case err != nil:
			continue // spec.Validate reports a file it cannot read
		default:
			for _, p := range fis.Validate(t) {
				if p.Path != "roleArn" { // moat template renders the role
					out = append(out, p)
				}
			}
		}
	}
	return out
}
