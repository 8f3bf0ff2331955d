package targetgroup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// DialFunc opens a connection; the checker and the proxy dial targets
// through it (in the full stack, from inside the load balancer's network
// namespace).
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Probe performs one HTTP health check of addr (host:port) with hc and
// returns its result and how long it took. It never returns an error:
// failures are results.
func Probe(ctx context.Context, dial DialFunc, addr string, hc HealthCheck) Result {
	start := time.Now()
	r := probe(ctx, dial, addr, hc)
	r.Latency = time.Since(start)
	return r
}

func probe(ctx context.Context, dial DialFunc, addr string, hc HealthCheck) Result {
	hc = hc.WithDefaults()
	if hc.Port != "traffic-port" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = net.JoinHostPort(host, hc.Port)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		if isTimeout(err) {
			return Result{Reason: ReasonTimeout, Detail: "Request timed out"}
		}
		return Result{Reason: ReasonFailedHealthChecks, Detail: fmt.Sprintf("Health checks failed: %v", err)}
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req := "GET " + hc.Path + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUser-Agent: ELB-HealthChecker/2.0\r\nConnection: close\r\nAccept: */*\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return failFromErr(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return failFromErr(err)
	}
	resp.Body.Close()
	if !hc.accepts(resp.StatusCode) {
		return Result{Reason: ReasonResponseCodeMismatch,
			Detail: fmt.Sprintf("Health checks failed with these codes: [%d]", resp.StatusCode)}
	}
	return Result{OK: true}
}

func failFromErr(err error) Result {
	if isTimeout(err) {
		return Result{Reason: ReasonTimeout, Detail: "Request timed out"}
	}
	return Result{Reason: ReasonFailedHealthChecks, Detail: fmt.Sprintf("Health checks failed: %v", err)}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// Checker runs active health checks of one group's targets, each on its
// own schedule of HealthCheck.Interval, the first one right away.
type Checker struct {
	group  *Group
	dial   DialFunc
	log    *slog.Logger
	onDone func(id string, r Result) // optional observer, called after each check

	mu      sync.Mutex
	running map[*Target]context.CancelFunc
	wg      sync.WaitGroup
}

// NewChecker returns a checker for g. onResult may be nil.
func NewChecker(g *Group, dial DialFunc, log *slog.Logger, onResult func(id string, r Result)) *Checker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Checker{group: g, dial: dial, log: log, onDone: onResult, running: map[*Target]context.CancelFunc{}}
}

// Sync starts a probe loop for every target of the group that has none and
// stops the loops of targets that are gone. Call it after Register,
// Deregister and Expire.
func (c *Checker) Sync(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	present := map[*Target]bool{}
	c.group.mu.Lock()
	targets := append([]*Target(nil), c.group.targets...)
	c.group.mu.Unlock()
	for _, t := range targets {
		present[t] = true
		if _, ok := c.running[t]; ok {
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		c.running[t] = cancel
		c.wg.Add(1)
		go c.loop(lctx, t)
	}
	for t, cancel := range c.running {
		if !present[t] {
			cancel()
			delete(c.running, t)
		}
	}
}

// Stop stops every probe loop and waits for them.
func (c *Checker) Stop() {
	c.mu.Lock()
	for t, cancel := range c.running {
		cancel()
		delete(c.running, t)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *Checker) loop(ctx context.Context, t *Target) {
	defer c.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("health check loop panicked", "target", t.ID, "panic", r)
		}
	}()
	for {
		hc := c.group.Config().HealthCheck
		r := Probe(ctx, c.dial, t.Addr, hc)
		if ctx.Err() != nil {
			return
		}
		c.group.Observe(t.ID, r)
		if c.onDone != nil {
			c.onDone(t.ID, r)
		}
		timer := time.NewTimer(hc.Interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}
