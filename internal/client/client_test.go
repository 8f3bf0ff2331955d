package client

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/plan"
)

// TestEveryRouteIsTyped calls every method of the client against a server
// on a unix socket that answers every route of package api, and checks
// that together they call each route once, with its arguments escaped, and
// decode its answer.
func TestEveryRouteIsTyped(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "moat.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		hits = map[api.Route][]string{}
	)
	answers := map[api.Route]string{
		api.GetStatus:     `{"stack":"s","phase":"running"}`,
		api.GetEvents:     `{"type":"a"}` + "\n" + `{"type":"b"}` + "\n",
		api.GetInstances:  `null`,
		api.GetTargets:    `[{"targetGroup":"web","id":"i-1"}]`,
		api.GetActivities: `[{"group":"web g"}]`,
		api.GetLogs:       "line 1\nline 2\n",
		api.PostApply:     `{"changes":["x"]}`,
		api.GetMembership: `{"members":[{"name":"bastion"}]}`,
		api.GetSSHAccess:  `{"stack":"s"}`,
		api.PostProbe:     `{"reached":true,"outcome":"connected"}`,
		api.PostFault:     `{"id":"f-1","state":"active"}`,
		api.GetFaults:     `[{"id":"f-1"}]`,
		api.DeleteFault:   `{"id":"f-1","state":"ended"}`,
		api.GetMetrics:    `{"samples":[{"time":"2026-12-02T09:00:01Z","loadBalancers":[{"name":"web","RequestCount":7}]}]}`,
	}
	mux := http.NewServeMux()
	for _, r := range api.Routes {
		mux.HandleFunc(r.ServeMuxPattern(), func(w http.ResponseWriter, req *http.Request) {
			mu.Lock()
			hits[r] = append(hits[r], req.URL.RequestURI())
			mu.Unlock()
			if a, ok := answers[r]; ok {
				w.Write([]byte(a))
				return
			}
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte(`{"status":"ok"}`))
		})
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()

	ctx := context.Background()
	c := New(sock)
	check := func(what string, err error, ok bool) {
		t.Helper()
		if err != nil || !ok {
			t.Errorf("%s: err %v, answer not as served", what, err)
		}
	}
	st, err := c.Status(ctx)
	check("Status", err, st.Phase == "running")
	check("Shutdown", c.Shutdown(ctx), true)
	var evs []string
	err = c.Events(ctx, true, func(e events.Event) { evs = append(evs, e.Type) })
	check("Events", err, slices.Equal(evs, []string{"a", "b"}))
	ins, err := c.Instances(ctx, true)
	check("Instances", err, ins != nil && len(ins) == 0)
	ts, err := c.Targets(ctx)
	check("Targets", err, len(ts) == 1 && ts[0].ID == "i-1")
	check("Scale", c.Scale(ctx, "web g", 3), true)
	check("Refresh", c.Refresh(ctx, "web g"), true)
	acts, err := c.Activities(ctx, "web g")
	check("Activities", err, len(acts) == 1)
	check("Terminate", c.Terminate(ctx, "i-1", true), true)
	check("SetProtection", c.SetProtection(ctx, "i-1", true), true)
	var lines []string
	err = c.Logs(ctx, "i-1", false, func(l []byte) { lines = append(lines, string(l)) })
	check("Logs", err, slices.Equal(lines, []string{"line 1", "line 2"}))
	res, err := c.Apply(ctx, &plan.Plan{Stack: "s"})
	check("Apply", err, len(res.Changes) == 1)
	m, err := c.Membership(ctx)
	check("Membership", err, len(m.Members) == 1)
	a, err := c.SSHAccess(ctx)
	check("SSHAccess", err, a.Stack == "s")
	pr, err := c.Probe(ctx, api.ProbeRequest{From: "internet", To: "bastion", Port: 22})
	check("Probe", err, pr.Reached && pr.Outcome == "connected")
	f, err := c.StartFault(ctx, api.FaultRequest{Kind: "stop-instances", Targets: []string{"i-1"}})
	check("StartFault", err, f.ID == "f-1" && f.State == "active")
	fs, err := c.ListFaults(ctx)
	check("ListFaults", err, len(fs) == 1 && fs[0].ID == "f-1")
	f, err = c.StopFault(ctx, "f 1")
	check("StopFault", err, f.State == "ended")
	mt, err := c.Metrics(ctx, time.UnixMilli(1764666000123))
	check("Metrics", err, len(mt.Samples) == 1 && mt.Samples[0].LoadBalancers[0].RequestCount == 7)

	want := map[api.Route]string{
		api.GetEvents:     "/v1/events?follow=1",
		api.GetInstances:  "/v1/instances?all=1",
		api.PostScale:     "/v1/groups/web%20g/scale",
		api.GetActivities: "/v1/groups/web%20g/activities",
		api.DeleteFault:   "/v1/faults/f%201",
		api.GetMetrics:    "/v1/metrics?since=1764666000123",
	}
	for _, r := range api.Routes {
		if len(hits[r]) != 1 {
			t.Errorf("%s called %d times, want once", r.ServeMuxPattern(), len(hits[r]))
			continue
		}
		if w, ok := want[r]; ok && hits[r][0] != w {
			t.Errorf("%s called as %s, want %s", r.ServeMuxPattern(), hits[r][0], w)
		}
	}
}

func TestErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "moat.sock")
	if _, err := New(sock).Status(context.Background()); err != ErrNotRunning {
		t.Errorf("no socket: %v, want ErrNotRunning", err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(api.Error{Error: "no such group"})
	})}
	go srv.Serve(ln)
	defer srv.Close()
	err = New(sock).Scale(context.Background(), "x", 1)
	if !NotFound(err) || err.Error() != "no such group" {
		t.Errorf("404: %v, want NotFound with the daemon's message", err)
	}
}

// TestImportsNothingLinuxOnly: the client (and so the platform-neutral
// CLI) must build on macOS and Windows, so it may not depend on netlink,
// nftables or network namespaces, even on Linux.
func TestImportsNothingLinuxOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, bad := range []string{"netlink", "nftables", "netns"} {
			if strings.Contains(pkg, bad) {
				t.Errorf("internal/client depends on %s (Linux-only)", pkg)
			}
		}
	}
}

// TestEventsAfter: a resumed read says after which Seq, with or without
// follow.
func TestEventsAfter(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "moat.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.RequestURI())
		mu.Unlock()
		w.Write([]byte(`{"seq":8,"type":"a"}` + "\n"))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	c := New(sock)
	var seqs []uint64
	fn := func(e events.Event) { seqs = append(seqs, e.Seq) }
	for _, follow := range []bool{false, true} {
		if err := c.EventsAfter(context.Background(), 7, follow, fn); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Events(context.Background(), false, fn); err != nil {
		t.Fatal(err)
	}
	want := []string{"/v1/events?after=7", "/v1/events?after=7&follow=1", "/v1/events"}
	if !slices.Equal(got, want) || !slices.Equal(seqs, []uint64{8, 8, 8}) {
		t.Fatalf("requests %q (seqs %v), want %q", got, seqs, want)
	}
}
