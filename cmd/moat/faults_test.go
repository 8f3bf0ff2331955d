//go:build linux && !portable

package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/client"
	"github.com/moat-dev/moat/internal/events"
)

// existing counts the paths that exist (the burners' cgroups, outside
// every namespace).
func existing(paths []string) int {
	n := 0
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			n++
		}
	}
	return n
}

// TestCrashWithFaultsIsUndone: kill -9 of the daemon while faults are
// active (a stopped instance, a latency, a disrupted subnet, CPU
// burners), then moat down: nothing faultLeft is left (counted before and
// after), each fault's end is in the event log, and its record is gone.
func TestCrashWithFaultsIsUndone(t *testing.T) {
	s := newE2EStack(t, "e2efault", nil)
	s.mustMoat(120*time.Second, "up", "-d", "--wait")
	dir := filepath.Join(s.home, s.name)
	cl := client.New(filepath.Join(dir, "moat.sock"))
	ctx := context.Background()
	ins := s.instances()
	if len(ins) < 2 {
		t.Fatalf("instances: %+v", ins)
	}
	var ids []string
	for _, r := range []api.FaultRequest{
		{Kind: "stop-instances", Targets: []string{ins[0].ID}, Experiment: "EXPCRASH"},
		{Kind: "network-latency", Targets: []string{ins[1].ID}, DurationSeconds: 600},
		{Kind: "cpu-stress", Targets: []string{ins[1].ID}, Params: map[string]string{"cpu": "1", "loadPercent": "20"}, DurationSeconds: 600},
		{Kind: "disrupt-connectivity", Targets: []string{ins[0].Subnet}, DurationSeconds: 600},
	} {
		f, err := cl.StartFault(ctx, r)
		if err != nil {
			t.Fatalf("%s: %v", r.Kind, err)
		}
		ids = append(ids, f.ID)
	}
	// The burners' cgroup, named after the cpu-stress fault.
	var cgroups []string
	filepath.WalkDir("/sys/fs/cgroup/cpu", func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "moat-fis-"+ids[2] {
			cgroups = append(cgroups, p)
		}
		return nil
	})
	if len(cgroups) != 1 {
		t.Fatalf("burner cgroups of %s: %v, want one", ids[2], cgroups)
	}

	s.killDaemon()
	before, cgBefore := countInjected(t, s.name), existing(cgroups)
	// The stopped instance's processes, a table in the router and one in
	// the second instance, the burners' cgroup.
	if before.frozen < 1 || before.faultTables != 2 || cgBefore != 1 {
		t.Fatalf("after kill -9: %+v and %d burner cgroup(s), want frozen processes, 2 fault tables and 1 burner cgroup: the test proves nothing", before, cgBefore)
	}
	records, _ := os.ReadDir(filepath.Join(dir, "faults"))
	if len(records) != len(ids) {
		t.Errorf("%d fault records after the crash, want %d", len(records), len(ids))
	}

	out := s.mustMoat(60*time.Second, "down")
	after, cgAfter := countInjected(t, s.name), existing(cgroups)
	if after.frozen != 0 || after.faultTables != 0 || after.namespaces != 0 || cgAfter != 0 {
		t.Errorf("after moat down: %+v and %d burner cgroup(s) left (before: %+v)", after, cgAfter, before)
	}
	assertNoLeftovers(t, s.name)
	if records, err := os.ReadDir(filepath.Join(dir, "faults")); err != nil && !errors.Is(err, os.ErrNotExist) || len(records) != 0 {
		t.Errorf("fault records left: %v %v", records, err)
	}
	evs, err := events.ReadFile(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	ended := map[string]bool{}
	for _, e := range evs {
		if e.Component == "fis" && e.Type == "fault.end" && strings.Contains(e.Message, "its daemon had stopped") {
			ended[e.Fields["fault"]] = true
		}
	}
	for _, id := range ids {
		if !ended[id] {
			t.Errorf("no fault.end of %s in the event log after moat down", id)
		}
	}
	t.Logf("kill -9 with 4 faults active: %+v and %d burner cgroup(s) before moat down, %+v and %d after; moat down said %q", before, cgBefore, after, cgAfter, strings.TrimSpace(out))
}
