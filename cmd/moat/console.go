//go:build linux && !portable

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/plan"
)

func init() { register(newConsoleCommand) }

func newConsoleCommand() *cobra.Command {
	var file, stack string
	var noOpen bool
	c := &cobra.Command{
		Use:   "console",
		Short: "Print the live web console's URL and open it",
		Long: `Print the URL of the running stack's live web console (local.console,
default 127.0.0.1:9465): the map of the VPC with traffic, target health,
scaling, one timeline and reachability. The URL carries the console's
per-start token after # (the browser keeps it; it is what allows changes).

A browser is opened only when one can be: a display is set (DISPLAY or
WAYLAND_DISPLAY) and xdg-open exists; --no-open never opens one.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, _, err := connect(c.Context(), stack, file)
			if err != nil {
				return err
			}
			st, err := cl.Status(c.Context())
			if err != nil {
				return err
			}
			url := ""
			for _, e := range st.Endpoints {
				if e.Kind == plan.EndpointConsole {
					url = e.URL
				}
			}
			if url == "" {
				return withCode(exitNotFound, errors.New("the stack has no console: it was started by a moat without one; restart it with moat down and moat up"))
			}
			fmt.Fprintln(c.OutOrStdout(), url)
			if opener, ok := browserOpener(noOpen, os.Getenv, exec.LookPath); ok {
				if err := exec.Command(opener, url).Start(); err != nil {
					fmt.Fprintf(c.ErrOrStderr(), "could not open a browser: %v\n", err)
				}
			}
			return nil
		},
	}
	stackFlags(c, &file, &stack)
	c.Flags().BoolVar(&noOpen, "no-open", false, "only print the URL")
	return c
}

// browserOpener is the command that opens a URL in the user's browser,
// when there is a display and such a command; never with noOpen.
func browserOpener(noOpen bool, getenv func(string) string, lookPath func(string) (string, error)) (string, bool) {
	if noOpen || (getenv("DISPLAY") == "" && getenv("WAYLAND_DISPLAY") == "") {
		return "", false
	}
	path, err := lookPath("xdg-open")
	if err != nil {
		return "", false
	}
	return path, true
}
