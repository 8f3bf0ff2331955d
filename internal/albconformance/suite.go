// Package albconformance checks a load balancer against the behaviour of
// an AWS Application Load Balancer as AWS documents it: headers, status
// codes, stickiness, draining, slow start, health states, redirect and
// fixed-response actions, idle timeout, WebSocket, 1xx and limits.
//
// The checks are data (Checks): each is named after the documented
// behaviour it checks and links the page that documents it. They run
// against a Target: the load balancer's HTTP and HTTPS listeners,
// configured as StackFile describes, in front of targets that run
// Backend, and a way to change those targets (Targets). The same checks
// run against the load balancer on its own (moat lb's engine, targets on
// loopback) and against a running stack (moat up).
package albconformance

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/testutil"
)

// Check is one documented ALB behaviour.
type Check struct {
	Name string // the behaviour, as the AWS documentation states it
	Doc  string // the page (and section) that documents it
	// Group marks a target-group behaviour (health, draining, slow start):
	// it runs once per target, on the first listener, not per listener.
	Group bool
	Run   func(ctx context.Context, l *Listener) error
}

// Target is a load balancer under test, configured as StackFile
// describes.
type Target struct {
	HTTP, HTTPS string // listener base URLs, e.g. http://127.0.0.1:8080
	Targets     Targets

	// the healthy targets steady last saw, and when it first saw them
	settled   []string
	settledAt time.Time
}

// Targets changes and reports the targets behind the load balancer. The
// targets run Backend and are registered in the target groups echo,
// sticky, appsticky and slowstart.
type Targets interface {
	// Health lists the targets of a target group with their state
	// (initial, healthy, unhealthy, draining).
	Health(ctx context.Context, group string) ([]TargetHealth, error)
	// SetHealthy makes the target at addr pass or fail its health checks.
	SetHealthy(ctx context.Context, addr string, healthy bool) error
	// Terminate deregisters the target at addr from every target group
	// and returns once it is draining (or gone) in group sticky; as an
	// auto scaling group replaces a terminated instance, a new target
	// then registers on its own.
	Terminate(ctx context.Context, addr string) error
	// AccessLog returns the load balancer's access log so far: JSON
	// lines with at least "target" (the request target) and "status".
	AccessLog(ctx context.Context) ([]byte, error)
}

// TargetHealth is one target of a target group.
type TargetHealth struct {
	Addr  string // host:port, as the target sees its own address
	State string
}

// Listener is one listener of the target, as a check sees it.
type Listener struct {
	Target *Target
	URL    *url.URL // base URL
	Proto  string   // http or https
	Port   string   // the port clients connect to
	Client *http.Client
}

// Dial opens a raw connection to the listener (TLS with ALPN http/1.1 on
// an HTTPS listener), for requests a client library will not send.
func (l *Listener) Dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if l.Proto == "https" {
		td := &tls.Dialer{NetDialer: d, Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}
		return td.DialContext(ctx, "tcp", l.URL.Host)
	}
	return d.DialContext(ctx, "tcp", l.URL.Host)
}

// newListener describes base for the checks. HTTPS clients negotiate
// HTTP/2 when the listener offers it; the certificate is not verified
// (it is self-signed).
func newListener(t *Target, base string) (*Listener, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("listener url %q: %w", base, err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Second}
	return &Listener{Target: t, URL: u, Proto: u.Scheme, Port: u.Port(),
		Client: &http.Client{Transport: tr, Timeout: 20 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// Result is the outcome of one check on one listener.
type Result struct {
	Check    *Check
	Listener string // http or https
	Err      error
	Took     time.Duration
}

// Run runs checks against t: per-listener checks on both listeners,
// target-group checks once. report is called after each check.
func Run(ctx context.Context, t *Target, checks []Check, report func(Result)) []Result {
	var out []Result
	var ls []*Listener
	for _, base := range []string{t.HTTP, t.HTTPS} {
		l, err := newListener(t, base)
		if err != nil {
			r := Result{Listener: base, Err: err}
			if report != nil {
				report(r)
			}
			return append(out, r)
		}
		ls = append(ls, l)
	}
	for i := range checks {
		c := &checks[i]
		for j, l := range ls {
			if c.Group && j > 0 {
				break
			}
			start := time.Now()
			cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			err := c.Run(cctx, l)
			cancel()
			l.Client.Transport.(*http.Transport).CloseIdleConnections()
			r := Result{Check: c, Listener: l.Proto, Err: err, Took: time.Since(start)}
			if report != nil {
				report(r)
			}
			out = append(out, r)
		}
	}
	return out
}

// poll is testutil.Poll with the limit in its error.
func poll(limit time.Duration, cond func() error) error {
	if err := testutil.Poll(limit, cond); err != nil {
		return fmt.Errorf("after %v: %w", limit, err)
	}
	return nil
}

// Test runs every check against target as a subtest of t named after
// the listener and the check.
func Test(t *testing.T, target *Target) {
	Run(context.Background(), target, Checks, func(r Result) {
		name := r.Listener
		if r.Check != nil {
			name += "/" + r.Check.Name
		}
		t.Run(name, func(t *testing.T) {
			if r.Check != nil {
				t.Logf("%s (%v)", r.Check.Doc, r.Took.Round(time.Millisecond))
			}
			if r.Err != nil {
				t.Error(r.Err)
			}
		})
	})
}
