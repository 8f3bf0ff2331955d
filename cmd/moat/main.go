// Command moat runs an AWS-style web architecture on one Linux machine
// (moat up) or renders it as a CloudFormation stack (moat deploy).
//
// This package is wiring only: flags, output, and calls into internal/.
// Each subcommand lives in its own file and registers itself with
// register() from an init function, so files can be added without
// touching this one.
package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes, documented in the README.
const (
	exitOK       = 0
	exitFailure  = 1 // the command ran and failed (e.g. a daemon error)
	exitUsage    = 2 // bad flags or arguments
	exitInvalid  = 3 // the stack file is invalid
	exitNotFound = 4 // no stack running, no such instance, ...
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode wraps err so that main exits with code.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

var subcommands []func() *cobra.Command

// register adds a subcommand constructor; call it from an init function.
func register(f func() *cobra.Command) { subcommands = append(subcommands, f) }

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "moat",
		Short:         "Run an AWS web architecture on one Linux machine, or deploy it to AWS",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// "moat scale web -1" reaches the flag parser as flag -1.
		if m := negativeNumberFlag.FindStringSubmatch(err.Error()); m != nil {
			err = fmt.Errorf("%w (a negative number such as -%s is not a valid argument here)", err, m[1])
		}
		return withCode(exitUsage, err)
	})
	for _, f := range subcommands {
		root.AddCommand(f())
	}
	usageArgs(root)
	return root
}

// usageArgs makes wrong positional arguments exit with exitUsage, as bad
// flags do, on every command.
func usageArgs(c *cobra.Command) {
	groupArgs(c)
	if args := c.Args; args != nil {
		c.Args = func(c *cobra.Command, a []string) error {
			if err := args(c, a); err != nil {
				var ee *exitError
				if errors.As(err, &ee) {
					return err
				}
				return withCode(exitUsage, err)
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		usageArgs(sub)
	}
}

// groupArgs makes a command that only groups subcommands (moat, moat
// keypair) refuse an unknown subcommand with exitUsage; cobra would exit 1
// at the root and print help with exit 0 below it. Without arguments it
// still prints its help.
func groupArgs(c *cobra.Command) {
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		if c.SuggestionsMinimumDistance <= 0 {
			c.SuggestionsMinimumDistance = 2 // cobra's default
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return fmt.Errorf("%s (see %s --help)", msg, c.CommandPath())
	}
	c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	c.DisableFlagsInUseLine = true
	if !c.HasParent() {
		// Being runnable now, a group would show a bare "moat" usage
		// line above "moat [command]"; commands with subcommands show
		// only the latter (the template is inherited by every command).
		c.SetUsageTemplate(strings.Replace(c.UsageTemplate(), "{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	}
}

var negativeNumberFlag = regexp.MustCompile(`unknown shorthand flag: '([0-9])'`)

func main() {
	err := newRootCommand().Execute()
	if err == nil {
		os.Exit(exitOK)
	}
	fmt.Fprintln(os.Stderr, "moat:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(exitFailure)
}
