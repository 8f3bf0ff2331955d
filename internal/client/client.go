// Package client is the typed client of a running stack's control API
// (package daemon), spoken over the stack's unix socket. The CLI uses it;
// it never touches the kernel itself.
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
	"time"

	"github.com/moat-dev/moat/internal/daemon"
	"github.com/moat-dev/moat/internal/events"
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

// New returns a client for the daemon of the state directory.
func New(dir daemon.Dir) *Client {
	sock := dir.Socket()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}
	return &Client{socket: sock, http: &http.Client{Transport: tr}}
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://moat"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return ErrPermission
		}
		if _, serr := os.Stat(c.socket); serr != nil || errors.Is(err, os.ErrNotExist) || isConnRefused(err) {
			return ErrNotRunning
		}
		return fmt.Errorf("call daemon: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var ae daemon.APIError
		if json.NewDecoder(resp.Body).Decode(&ae) == nil && ae.Error != "" {
			return &Error{Status: resp.StatusCode, Message: ae.Error}
		}
		return &Error{Status: resp.StatusCode, Message: resp.Status}
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func isConnRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
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

// Get calls GET path and decodes the JSON answer into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

// Post calls POST path with in as JSON and decodes the answer into out.
func (c *Client) Post(ctx context.Context, path string, in, out any) error {
	return c.do(ctx, http.MethodPost, path, in, out)
}

// Status returns the stack's status.
func (c *Client) Status(ctx context.Context) (daemon.Status, error) {
	var s daemon.Status
	err := c.Get(ctx, "/v1/status", &s)
	return s, err
}

// Shutdown asks the daemon to tear the stack down and exit.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.Post(ctx, "/v1/shutdown", nil, nil)
}

// Events calls fn for every event in the log, then, when follow is set,
// for new events until ctx is done or the daemon exits.
func (c *Client) Events(ctx context.Context, follow bool, fn func(events.Event)) error {
	path := "/v1/events"
	if follow {
		path += "?follow=1"
	}
	return c.stream(ctx, path, func(line []byte) {
		var e events.Event
		if json.Unmarshal(line, &e) == nil {
			fn(e)
		}
	})
}

// Stream calls fn with each line of a streaming GET answer.
func (c *Client) stream(ctx context.Context, path string, fn func([]byte)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://moat"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return ErrPermission
		}
		if isConnRefused(err) {
			return ErrNotRunning
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var ae daemon.APIError
		_ = json.NewDecoder(resp.Body).Decode(&ae)
		return &Error{Status: resp.StatusCode, Message: ae.Error}
	}
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

// Stream calls fn with each line of a streaming GET answer (e.g. logs).
func (c *Client) Stream(ctx context.Context, path string, fn func([]byte)) error {
	return c.stream(ctx, path, fn)
}

// WaitReady polls until the daemon answers with a phase other than
// starting, or the timeout passes.
func (c *Client) WaitReady(ctx context.Context, timeout time.Duration) (daemon.Status, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := c.Status(ctx)
		if err == nil && s.Phase != daemon.PhaseStarting {
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
