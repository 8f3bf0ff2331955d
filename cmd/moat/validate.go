package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

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
				problems = spec.Validate(f)
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
