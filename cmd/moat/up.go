//go:build linux && !portable

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/client"
	"github.com/moat-dev/moat/internal/console"
	"github.com/moat-dev/moat/internal/daemon"
	"github.com/moat-dev/moat/internal/egress"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
	"github.com/moat-dev/moat/internal/vpc"
)

func init() {
	register(newUpCommand)
	register(newDownCommand)
	register(newStatusCommand)
	register(newEventsCommand)
}

func newUpCommand() *cobra.Command {
	var file string
	var detach, wait bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "up",
		Short: "Run the stack on this machine (foreground; Ctrl-C tears it down)",
		Long: `Run the stack on this machine: the VPC's namespaces and bridges, the security
groups in nftables, the instances, the load balancer and the bastion.

In the foreground (the default) Ctrl-C tears everything down. With -d the
control plane runs detached; stop it with moat down.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := loadPlan(file, c.ErrOrStderr())
			if err != nil {
				return err
			}
			path := stackFile(file)
			dir := daemon.StackDir(p.Stack)
			if os.Geteuid() != 0 {
				return withCode(exitFailure, fmt.Errorf("moat up needs root: it creates network namespaces, bridges and nftables rules; run it with sudo (sudo %s)", strings.Join(os.Args, " ")))
			}
			if dir.Held() {
				return applyRunning(c, p, dir)
			}
			if detach {
				return upDetached(c, path, dir, wait, timeout)
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
			defer stop()
			// The events tell what happens; the log adds only warnings.
			logger := slog.New(slog.NewTextHandler(c.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			errOut := c.ErrOrStderr()
			token := console.NewToken()
			return daemon.Run(ctx, p, daemon.Options{File: path, Dir: dir, Logger: logger, Echo: errOut, ConsoleToken: token, Ready: func(err error) {
				if err != nil {
					return
				}
				fmt.Fprintf(errOut, "stack %s is up (Ctrl-C to tear it down)\n", p.Stack)
				for _, e := range console.WithToken(p.Endpoints, token) {
					fmt.Fprintf(c.OutOrStdout(), "%-9s %-10s %s\n", e.Kind, e.Name, endpointURL(e))
				}
			}})
		},
	}
	fileFlag(c, &file)
	c.Flags().BoolVarP(&detach, "detach", "d", false, "run the control plane in the background")
	c.Flags().BoolVar(&wait, "wait", false, "with -d: wait until the stack is running")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "with --wait: how long to wait")
	return c
}

// applyRunning sends a re-run's plan to the running stack, which applies
// what it can live (listeners and rules, target groups, launch templates
// through an instance refresh, group settings) and refuses the rest.
func applyRunning(c *cobra.Command, p *plan.Plan, dir daemon.Dir) error {
	res, err := client.New(dir.Socket()).Apply(c.Context(), p)
	if err != nil {
		return withCode(exitFailure, fmt.Errorf("stack %s is running; %w", p.Stack, apiErr(err)))
	}
	if len(res.Changes) == 0 {
		fmt.Fprintf(c.ErrOrStderr(), "stack %s is running and up to date\n", p.Stack)
		return nil
	}
	fmt.Fprintf(c.ErrOrStderr(), "stack %s is running; applied live:\n", p.Stack)
	for _, ch := range res.Changes {
		fmt.Fprintf(c.ErrOrStderr(), "  %s\n", ch)
	}
	return nil
}

// endpointURL is how a user reaches a published endpoint.
func endpointURL(e plan.Endpoint) string {
	if e.URL != "" {
		return e.URL
	}
	return e.Publish.String()
}

// upDetached starts `moat up` again as a background process in its own
// session, its output in the state directory's daemon.log, and waits for
// its control socket.
func upDetached(c *cobra.Command, path string, dir daemon.Dir, wait bool, timeout time.Duration) error {
	if dir.Held() {
		return withCode(exitFailure, fmt.Errorf("%w: use moat status, or moat down first", daemon.ErrLocked))
	}
	if err := dir.Ensure(); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(dir.DaemonLog(), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, "up", "-f", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	cl := client.New(dir.Socket())
	deadline := time.Now().Add(timeout)
	fmt.Fprintf(c.ErrOrStderr(), "started daemon (pid %d), log %s\n", cmd.Process.Pid, dir.DaemonLog())
	for {
		select {
		case err := <-exited:
			tail, _ := os.ReadFile(dir.DaemonLog())
			return withCode(exitFailure, fmt.Errorf("the daemon exited (%v):\n%s", err, lastLines(tail, 20)))
		case <-time.After(100 * time.Millisecond):
		}
		st, err := cl.Status(c.Context())
		if err == nil && (!wait || st.Phase != api.PhaseStarting) {
			if st.Phase == api.PhaseFailed || st.Phase == api.PhaseStopping {
				// Wait for the teardown, so that nothing is left when up returns.
				select {
				case <-exited:
				case <-time.After(90 * time.Second):
				}
				if st.Error == "" {
					st.Error = "it is being torn down"
				}
				return withCode(exitFailure, fmt.Errorf("the stack failed to start: %s", st.Error))
			}
			fmt.Fprintf(c.ErrOrStderr(), "stack %s is %s\n", st.Stack, st.Phase)
			for _, e := range st.Endpoints {
				fmt.Fprintf(c.OutOrStdout(), "%-9s %-10s %s\n", e.Kind, e.Name, endpointURL(e))
			}
			_ = cmd.Process.Release()
			return nil
		}
		if time.Now().After(deadline) {
			return withCode(exitFailure, fmt.Errorf("the stack did not come up within %s; see %s", timeout, dir.DaemonLog()))
		}
	}
}

func lastLines(b []byte, n int) string {
	lines := 0
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			lines++
			if lines > n {
				return string(b[i+1:])
			}
		}
	}
	return string(b)
}

// stackName finds the stack to act on: --stack, or the stack file's name.
func stackName(stackFlag, fileFlag string) (string, error) {
	if stackFlag != "" {
		return stackFlag, nil
	}
	path := stackFile(fileFlag)
	f, err := spec.LoadFile(path)
	if err != nil {
		var ps spec.Problems
		if errors.As(err, &ps) {
			return "", withCode(exitInvalid, ps)
		}
		if fileFlag != "" {
			// The user named the file; it is the file that is wrong.
			return "", withCode(exitUsage, fmt.Errorf("which stack? %v", err))
		}
		return "", withCode(exitUsage, fmt.Errorf("which stack? %v; pass --stack NAME or -f FILE", err))
	}
	if f.Stack.Name == "" {
		return "", withCode(exitInvalid, fmt.Errorf("%s has no stack name", path))
	}
	return f.Stack.Name, nil
}

// connect returns a client of the running stack, or exitNotFound.
func connect(ctx context.Context, stackFlag, fileFlag string) (*client.Client, daemon.Dir, error) {
	name, err := stackName(stackFlag, fileFlag)
	if err != nil {
		return nil, "", err
	}
	dir := daemon.StackDir(name)
	cl := client.New(dir.Socket())
	if _, err := cl.Status(ctx); err != nil {
		return nil, dir, daemonErr(name, dir, err)
	}
	return cl, dir, nil
}

// daemonErr says what to do when the stack's daemon cannot be reached: it
// does not run, or it runs as root and this user may not reach its socket
// (which is not the same as not running).
func daemonErr(name string, dir daemon.Dir, err error) error {
	switch {
	case errors.Is(err, client.ErrPermission):
		return withCode(exitFailure, fmt.Errorf("cannot reach stack %s: permission denied on %s (moat up runs as root): run this with sudo", name, dir.Socket()))
	case errors.Is(err, client.ErrNotRunning):
		hint := ""
		if os.Geteuid() != 0 {
			hint = " (a stack started with sudo is found with sudo)"
		}
		return withCode(exitNotFound, fmt.Errorf("stack %s is not running: start it with moat up%s", name, hint))
	}
	return err
}

func newDownCommand() *cobra.Command {
	var file, stack string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "down",
		Short: "Tear the running stack down, or reclaim a crashed one's leftovers",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			name, err := stackName(stack, file)
			if err != nil {
				return err
			}
			dir := daemon.StackDir(name)
			cl := client.New(dir.Socket())
			if err := cl.Shutdown(c.Context()); err == nil {
				fmt.Fprintf(c.ErrOrStderr(), "tearing down stack %s\n", name)
				deadline := time.Now().Add(timeout)
				for dir.Held() {
					if time.Now().After(deadline) {
						return withCode(exitFailure, fmt.Errorf("the daemon did not stop within %s; see %s", timeout, dir.DaemonLog()))
					}
					time.Sleep(100 * time.Millisecond)
				}
			} else if !errors.Is(err, client.ErrNotRunning) {
				return daemonErr(name, dir, err)
			} else if dir.Held() {
				return withCode(exitFailure, fmt.Errorf("a daemon holds stack %s but does not answer; stop pid from %s", name, dir.PIDFile()))
			}
			if os.Geteuid() != 0 {
				// Reclaiming kills processes in the stack's namespaces and
				// deletes them, which only root may do; with nothing left
				// there is nothing to do.
				if left, err := vpc.Leftovers(name, ""); err == nil && len(left) == 0 {
					fmt.Fprintf(c.ErrOrStderr(), "stack %s is not running and left nothing behind\n", name)
					return nil
				}
				return withCode(exitFailure, fmt.Errorf("moat down needs root: it deletes the stack's network namespaces and processes; run it with sudo (sudo %s)", strings.Join(os.Args, " ")))
			}
			n, err := daemon.Reclaim(c.Context(), name, dir)
			if err != nil {
				return withCode(exitFailure, fmt.Errorf("reclaim leftovers of stack %s: %w", name, err))
			}
			if n > 0 {
				fmt.Fprintf(c.ErrOrStderr(), "reclaimed %d leftover object(s) of a crashed run\n", n)
			}
			fmt.Fprintf(c.ErrOrStderr(), "stack %s is down\n", name)
			return nil
		},
	}
	stackFlags(c, &file, &stack)
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the teardown")
	return c
}

func newStatusCommand() *cobra.Command {
	var file, stack, output string
	c := &cobra.Command{
		Use:   "status",
		Short: "Show whether the stack runs, its endpoints and groups",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, _, err := connect(c.Context(), stack, file)
			if err != nil {
				return err
			}
			st, err := cl.Status(c.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(c.OutOrStdout(), st)
			}
			w := c.OutOrStdout()
			fmt.Fprintf(w, "stack %s: %s (pid %d, up %s)\n", st.Stack, st.Phase, st.PID, time.Since(st.Started).Round(time.Second))
			if st.Error != "" {
				fmt.Fprintf(w, "error: %s\n", st.Error)
			}
			for _, e := range st.Endpoints {
				fmt.Fprintf(w, "  %-9s %-10s %s\n", e.Kind, e.Name, endpointURL(e))
			}
			for _, g := range st.Groups {
				fmt.Fprintf(w, "  group %s: desired %d (min %d, max %d), in service %d, healthy %d\n", g.Name, g.Desired, g.Min, g.Max, g.InService, g.Healthy)
			}
			if st.Egress {
				fmt.Fprintf(w, "  egress on: TCP and DNS from the VPC reach the host's network; %s is the host's loopback\n", egress.HostAddr)
			}
			return nil
		},
	}
	stackFlags(c, &file, &stack)
	outputFlag(c, &output)
	return c
}

func newEventsCommand() *cobra.Command {
	var file, stack, output string
	var follow bool
	var after uint64
	c := &cobra.Command{
		Use:   "events",
		Short: "Show what the control plane did (-f to follow)",
		Args:  followArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			cl, _, err := connect(c.Context(), stack, file)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			w := c.OutOrStdout()
			return cl.EventsAfter(ctx, after, follow, func(e eventT) { printEvent(w, e, output) })
		},
	}
	c.Flags().StringVar(&file, "file", "", "stack file (default $MOAT_FILE, then ./moat.yaml)")
	c.Flags().StringVar(&stack, "stack", "", "stack name (default: the stack file's name)")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events")
	c.Flags().Uint64Var(&after, "after", 0, "only the events after this sequence number (the seq of -o json)")
	outputFlag(c, &output)
	return c
}

func printEvent(w io.Writer, e eventT, output string) {
	if output == "json" {
		_ = writeJSONLine(w, e)
		return
	}
	fmt.Fprintln(w, e.String())
}
