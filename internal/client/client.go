// Package client is the typed client of a running stack's control API
// (package api), spoken over the stack's unix socket. The CLI uses it; it
// never touches the kernel itself, and it builds on every platform.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
	"github.com/moat-dev/moat/internal/sshconfig"
)

// ErrNotRunning means no daemon answers on the stack's socket.
var ErrNotRunning = errors.New("the stack is not running")

// ErrPermission means the stack's control socket exists, or may, but this
// user may not reach it: the daemon runs as root and its state directory
// is root's alone.
var ErrPermission = errors.New("permission denied on the stack's control socket")

// Client talks to one stack's daemon.
type Client struct {
	socket string
	http   *http.Client
}

// New returns a client of the daemon listening on the unix socket path
// (a stack state directory's moat.sock).
func New(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// Error is an error answer of the daemon.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// NotFound reports whether err is the daemon's 404.
func NotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// Status returns the stack's status.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var s api.Status
	err := c.call(ctx, api.GetStatus, nil, "", nil, &s)
	return s, err
}

// Shutdown asks the daemon to tear the stack down and exit.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.call(ctx, api.PostShutdown, nil, "", nil, nil)
}

// Events calls fn for every event in the log, then, when follow is set,
// for new events until ctx is done or the daemon exits.
func (c *Client) Events(ctx context.Context, follow bool, fn func(events.Event)) error {
	return c.EventsAfter(ctx, 0, follow, fn)
}

// EventsAfter is Events from the event after Seq after on: a reader that
// saw events up to Seq N resumes with N and gets each later event once.
func (c *Client) EventsAfter(ctx context.Context, after uint64, follow bool, fn func(events.Event)) error {
	var q []string
	if after > 0 {
		q = append(q, api.After+"="+strconv.FormatUint(after, 10))
	}
	if follow {
		q = append(q, api.Follow)
	}
	return c.stream(ctx, api.GetEvents, strings.Join(q, "&"), nil, func(line []byte) {
		var e events.Event
		if json.Unmarshal(line, &e) == nil {
			fn(e)
		}
	})
}

// Instances lists the stack's instances in moat ps order; all adds the
// recently terminated ones.
func (c *Client) Instances(ctx context.Context, all bool) ([]api.Instance, error) {
	return list[api.Instance](ctx, c, api.GetInstances, nil, query(all, api.All))
}

// Targets lists every target of every load balancer's target groups.
func (c *Client) Targets(ctx context.Context) ([]api.Target, error) {
	return list[api.Target](ctx, c, api.GetTargets, nil, "")
}

// Scale sets an auto scaling group's desired capacity.
func (c *Client) Scale(ctx context.Context, group string, desired int) error {
	return c.call(ctx, api.PostScale, []string{group}, "", api.ScaleRequest{Desired: desired}, nil)
}

// Refresh starts an instance refresh of an auto scaling group.
func (c *Client) Refresh(ctx context.Context, group string) error {
	return c.call(ctx, api.PostRefresh, []string{group}, "", struct{}{}, nil)
}

// Activities lists an auto scaling group's scaling activities, newest
// first.
func (c *Client) Activities(ctx context.Context, group string) ([]api.Activity, error) {
	return list[api.Activity](ctx, c, api.GetActivities, []string{group}, "")
}

// Terminate terminates an instance; decrementDesired lowers its group's
// desired capacity instead of replacing it.
func (c *Client) Terminate(ctx context.Context, id string, decrementDesired bool) error {
	return c.call(ctx, api.PostTerminate, []string{id}, "", api.TerminateRequest{DecrementDesired: decrementDesired}, nil)
}

// StartFault injects a fault into the stack's local data plane (package
// fault says what each kind does); it returns the fault, active (or, for
// one-shot kinds, ended). A fault refused or failed is an *Error whose
// message says why; nothing of it is left behind.
func (c *Client) StartFault(ctx context.Context, req api.FaultRequest) (api.Fault, error) {
	var f api.Fault
	err := c.call(ctx, api.PostFault, nil, "", req, &f)
	return f, err
}

// ListFaults lists the stack's faults, active and recently ended, oldest
// first.
func (c *Client) ListFaults(ctx context.Context) ([]api.Fault, error) {
	return list[api.Fault](ctx, c, api.GetFaults, nil, "")
}

// StopFault undoes a fault now (a fault ended already is returned as it
// is).
func (c *Client) StopFault(ctx context.Context, id string) (api.Fault, error) {
	var f api.Fault
	err := c.call(ctx, api.DeleteFault, []string{id}, "", nil, &f)
	return f, err
}

// Metrics returns the per-second samples after since (the last ten
// minutes' for a zero since), oldest first.
func (c *Client) Metrics(ctx context.Context, since time.Time) (api.Metrics, error) {
	q := ""
	if !since.IsZero() {
		q = api.Since + "=" + strconv.FormatInt(since.UnixMilli(), 10)
	}
	var m api.Metrics
	err := c.call(ctx, api.GetMetrics, nil, q, nil, &m)
	return m, err
}

// SetProtection sets an instance's scale-in protection.
func (c *Client) SetProtection(ctx context.Context, id string, protected bool) error {
	return c.call(ctx, api.PostProtection, []string{id}, "", api.ProtectionRequest{ProtectedFromScaleIn: protected}, nil)
}

// Logs calls fn with each line of an instance's console output (without
// its newline); with follow, until ctx is done or the daemon exits.
func (c *Client) Logs(ctx context.Context, id string, follow bool, fn func(line []byte)) error {
	return c.stream(ctx, api.GetLogs, query(follow, api.Follow), []string{id}, fn)
}

// Apply applies a changed plan to the running stack.
func (c *Client) Apply(ctx context.Context, p *plan.Plan) (api.ApplyResult, error) {
	var res api.ApplyResult
	err := c.call(ctx, api.PostApply, nil, "", p, &res)
	return res, err
}

// Membership is the running stack's live security group membership.
func (c *Client) Membership(ctx context.Context) (secgroup.Membership, error) {
	var m secgroup.Membership
	err := c.call(ctx, api.GetMembership, nil, "", nil, &m)
	return m, err
}

// SSHAccess is what OpenSSH needs to reach the stack's instances through
// its bastion.
func (c *Client) SSHAccess(ctx context.Context) (sshconfig.Access, error) {
	var a sshconfig.Access
	err := c.call(ctx, api.GetSSHAccess, nil, "", nil, &a)
	return a, err
}

// WaitReady polls until the daemon answers with a phase other than
// starting, or the timeout passes.
func (c *Client) WaitReady(ctx context.Context, timeout time.Duration) (api.Status, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := c.Status(ctx)
		if err == nil && s.Phase != api.PhaseStarting {
			return s, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("the stack is still %s after %s", s.Phase, timeout)
			}
			return s, err
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func query(on bool, q string) string {
	if on {
		return q
	}
	return ""
}

// list GETs a JSON list; none is an empty list, never nil.
func list[T any](ctx context.Context, c *Client, r api.Route, args []string, query string) ([]T, error) {
	var out []T
	if err := c.call(ctx, r, args, query, nil, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}

// call sends a request on route r (args fill its wildcards), with in as
// its JSON body when set, and decodes the JSON answer into out when set.
func (c *Client) call(ctx context.Context, r api.Route, args []string, query string, in, out any) error {
	resp, err := c.send(ctx, r, args, query, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode the daemon's answer to %s %s: %w", r.Method, r.Pattern, err)
	}
	return nil
}

// stream sends a GET on route r and calls fn with each line of the
// answer, until it ends or ctx is done.
func (c *Client) stream(ctx context.Context, r api.Route, query string, args []string, fn func([]byte)) error {
	resp, err := c.send(ctx, r, args, query, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		fn(sc.Bytes())
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// send sends one request and returns a 2xx answer, or the daemon's error
// (*Error), ErrNotRunning or ErrPermission.
func (c *Client) send(ctx context.Context, r api.Route, args []string, query string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	u := "http://moat" + r.Path(args...)
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, ErrPermission
		}
		if _, serr := os.Stat(c.socket); serr != nil || errors.Is(err, os.ErrNotExist) || isConnRefused(err) {
			return nil, ErrNotRunning
		}
		return nil, fmt.Errorf("call daemon: %w", err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var ae api.Error
		if json.NewDecoder(resp.Body).Decode(&ae) == nil && ae.Error != "" {
			return nil, &Error{Status: resp.StatusCode, Message: ae.Error}
		}
		return nil, &Error{Status: resp.StatusCode, Message: resp.Status}
	}
	return resp, nil
}

func isConnRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Probe opens a real TCP connection from one node of the running stack
// (or "internet") to another and says what the kernel did.
func (c *Client) Probe(ctx context.Context, req api.ProbeRequest) (api.ProbeResult, error) {
	var res api.ProbeResult
	err := c.call(ctx, api.PostProbe, nil, "", req, &res)
	return res, err
}
