package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/client"
	"github.com/moat-dev/moat/internal/daemon"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/testutil"
	"github.com/moat-dev/moat/internal/vpc"
)

// faultStack runs the example stack with a long health check grace
// period (instances a fault makes unhealthy stay, so that the test sees
// them come back) and returns its client.
func faultStack(t *testing.T, name string) (*client.Client, string) {
	cl, p, _ := faultStackPlan(t, name)
	return cl, p.Stack
}

// faultStackPlan is faultStack with the stack's plan and a function that
// shuts the stack down (once; the test's clean-up does it otherwise).
func faultStackPlan(t *testing.T, name string) (*client.Client, *plan.Plan, func()) {
	t.Helper()
	testutil.RequireRoot(t, "faults act on a running stack: network namespaces, nftables, processes")
	p := exampleStack(t, name)
	for i := range p.AutoScalingGroups {
		p.AutoScalingGroups[i].HealthCheckGracePeriod = 10 * time.Minute
	}
	dir := daemon.StackDir(p.Stack)
	ready := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(context.Background(), p, daemon.Options{Dir: dir, Ready: func(err error) { ready <- err }})
	}()
	cl := client.New(dir.Socket())
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("the stack did not start within 3 minutes")
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			shutdown(t, cl, done, 90*time.Second)
			if ns, _ := vpc.Leftovers(p.Stack, ""); len(ns) > 0 {
				t.Errorf("namespaces left after shutdown: %v", ns)
			}
		})
	}
	t.Cleanup(stop)
	testutil.Eventually(t, 60*time.Second, func() error { return healthyTargets(cl, 2) })
	return cl, p, stop
}

func healthyTargets(cl *client.Client, n int) error {
	ts, err := cl.Targets(context.Background())
	if err != nil {
		return err
	}
	h := 0
	for _, t := range ts {
		if t.State == "healthy" {
			h++
		}
	}
	if h < n {
		return fmt.Errorf("%d healthy targets, want %d: %+v", h, n, ts)
	}
	return nil
}

func targetState(cl *client.Client, ip string) string {
	ts, _ := cl.Targets(context.Background())
	for _, t := range ts {
		if strings.HasPrefix(t.Address, ip+":") {
			return t.State
		}
	}
	return ""
}

func instanceByID(t *testing.T, cl *client.Client, id string) api.Instance {
	t.Helper()
	list, err := cl.Instances(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range list {
		if in.ID == id {
			return in
		}
	}
	t.Fatalf("instance %s is not listed: %+v", id, list)
	return api.Instance{}
}

// nsProc is a process of a network namespace.
type nsProc struct {
	pid   int
	state byte
	comm  string
}

// procsIn lists the processes whose network namespace is the one at
// nsPath, with their state (R, S, T, ...) and name.
func procsIn(t *testing.T, nsPath string) []nsProc {
	t.Helper()
	var ns syscall.Stat_t
	if err := syscall.Stat(nsPath, &ns); err != nil {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	var out []nsProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) != nil || st.Ino != ns.Ino {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if i < 0 || j < 0 || j+2 >= len(s) {
			continue
		}
		out = append(out, nsProc{pid: pid, state: s[j+2], comm: s[i+1 : j]})
	}
	return out
}

// countStopped counts the processes in state T (stopped) in the
// namespaces at paths.
func countStopped(t *testing.T, paths ...string) int {
	n := 0
	for _, p := range paths {
		for _, pr := range procsIn(t, p) {
			if pr.state == 'T' || pr.state == 't' {
				n++
			}
		}
	}
	return n
}

// routerFaultTables lists the router's nftables tables of faults.
func routerFaultTables(t *testing.T, stack string) []string {
	t.Helper()
	h, err := netns.GetFromPath(vpc.NamespacePath(stack, vpc.RouterNode))
	if err != nil {
		return nil
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tb := range ts {
		if strings.HasPrefix(tb.Name, "moat-fis-") {
			out = append(out, tb.Name)
		}
	}
	return out
}

// fisEvents are the event log's fis events of a fault.
func fisEvents(t *testing.T, cl *client.Client, id string) []string {
	t.Helper()
	var out []string
	if err := cl.Events(context.Background(), false, func(e events.Event) {
		if e.Component == "fis" && e.Fields["fault"] == id {
			out = append(out, e.Type)
		}
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// dialTime is how long a TCP connect from the namespace at from to addr
// takes (or its error).
func dialTime(from, addr string, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	t0 := time.Now()
	c, err := vpc.DialFunc(from)(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	d := time.Since(t0)
	c.Close()
	return d, nil
}

// TestStopAndRebootInstances: stop-instances freezes an instance's
// processes (state T), moat ps says stopped and its target is unused at
// once (Target.InvalidState, as ALB has a stopped instance's target: no
// request goes to it, none hangs on its frozen app); ending the fault lets them run and the target heal. Then
// reboot-instances restarts the command (a new process) without running
// the user data again. Errors say what to give.
func TestStopAndRebootInstances(t *testing.T) {
	cl, stack := faultStack(t, "fltstop")
	ctx := context.Background()
	list, err := cl.Instances(ctx, false)
	if err != nil || len(list) < 2 {
		t.Fatalf("instances: %v %+v", err, list)
	}
	in := list[0]
	nsPath := vpc.NamespacePath(stack, in.ID)
	if n := len(procsIn(t, nsPath)); n == 0 {
		t.Fatalf("no process in %s: the test proves nothing", nsPath)
	}

	// Bad requests are refused, with what to give, and leave nothing.
	for _, bad := range []struct {
		req  api.FaultRequest
		code int
		want string
	}{
		{api.FaultRequest{Kind: "stop-instance", Targets: []string{in.ID}}, 400, `kind "stop-instance" is unknown`},
		{api.FaultRequest{Kind: "stop-instances", Targets: []string{"i-nope"}}, 404, "instance i-nope is not running in any auto scaling group: give instance ids from moat ps"},
		{api.FaultRequest{Kind: "stop-instances", Targets: []string{in.ID}, Params: map[string]string{"startAfter": "1"}}, 400, "parameter startAfter is unknown: stop-instances takes startAfterSeconds"},
	} {
		_, err := cl.StartFault(ctx, bad.req)
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != bad.code || !strings.Contains(ce.Message, bad.want) {
			t.Errorf("StartFault(%+v) = %v, want %d with %q", bad.req, err, bad.code, bad.want)
		}
	}

	f, err := cl.StartFault(ctx, api.FaultRequest{Kind: "stop-instances", Targets: []string{in.ID}, Experiment: "EXP1"})
	if err != nil {
		t.Fatal(err)
	}
	if f.State != api.FaultActive || f.ID == "" || !f.Ends.IsZero() {
		t.Fatalf("fault = %+v, want active until stopped", f)
	}
	procs := procsIn(t, nsPath)
	for _, p := range procs {
		if p.state != 'T' {
			t.Errorf("process %d (%s) of the stopped instance is in state %c, want T", p.pid, p.comm, p.state)
		}
	}
	if got := instanceByID(t, cl, in.ID).State; got != "stopped" {
		t.Errorf("moat ps says %s for the stopped instance, want stopped", got)
	}
	if st := targetState(cl, in.IP); st != "unused" {
		t.Errorf("the stopped instance's target is %q, want unused (Target.InvalidState)", st)
	}
	// A stopped instance cannot be rebooted until it runs.
	if _, err := cl.StartFault(ctx, api.FaultRequest{Kind: "reboot-instances", Targets: []string{in.ID}}); err == nil || !strings.Contains(err.Error(), "is stopped by fault "+f.ID) {
		t.Errorf("reboot of a stopped instance: %v, want a conflict naming %s", err, f.ID)
	}
	ended, err := cl.StopFault(ctx, f.ID)
	if err != nil || ended.State != api.FaultEnded || ended.Ended == nil || ended.Error != "" {
		t.Fatalf("StopFault = %+v, %v", ended, err)
	}
	if again, err := cl.StopFault(ctx, f.ID); err != nil || !again.Ended.Equal(*ended.Ended) {
		t.Errorf("StopFault again = %+v, %v; want the same ended fault", again, err)
	}
	if n := countStopped(t, nsPath); n != 0 {
		t.Errorf("%d processes still stopped after the fault ended", n)
	}
	if got := instanceByID(t, cl, in.ID).State; got != "running" {
		t.Errorf("moat ps says %s after the fault, want running", got)
	}
	testutil.Eventually(t, 40*time.Second, func() error {
		if st := targetState(cl, in.IP); st != "healthy" {
			return fmt.Errorf("the instance's target is %q after the fault, want healthy", st)
		}
		return nil
	})
	if ev := fisEvents(t, cl, f.ID); strings.Join(ev, ",") != "fault.start,fault.end" {
		t.Errorf("fis events of %s: %v, want fault.start, fault.end", f.ID, ev)
	}

	// With startAfterSeconds the instance runs again by itself.
	f2, err := cl.StartFault(ctx, api.FaultRequest{Kind: "stop-instances", Targets: []string{in.ID}, Params: map[string]string{"startAfterSeconds": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if countStopped(t, nsPath) == 0 {
		t.Error("no process stopped by the second fault")
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := countStopped(t, nsPath); n != 0 {
			return fmt.Errorf("%d processes stopped after startAfterSeconds", n)
		}
		fs, err := cl.ListFaults(ctx)
		if err != nil {
			return err
		}
		for _, x := range fs {
			if x.ID == f2.ID && x.State != api.FaultEnded {
				return fmt.Errorf("fault %s is %s", x.ID, x.State)
			}
		}
		return nil
	})

	// Reboot: a new process, user data not run again.
	before := map[int]bool{}
	for _, p := range procsIn(t, nsPath) {
		before[p.pid] = true
	}
	logBefore, _ := os.ReadFile(filepath.Join(string(daemon.StackDir(stack)), "instances", in.ID, "console.log"))
	r, err := cl.StartFault(ctx, api.FaultRequest{Kind: "reboot-instances", Targets: []string{in.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if r.State != api.FaultEnded {
		t.Errorf("reboot fault is %s, want ended (one-shot)", r.State)
	}
	after := procsIn(t, nsPath)
	if len(after) == 0 {
		t.Fatal("no process after the reboot")
	}
	for _, p := range after {
		if before[p.pid] {
			t.Errorf("process %d (%s) survived the reboot", p.pid, p.comm)
		}
	}
	logAfter, _ := os.ReadFile(filepath.Join(string(daemon.StackDir(stack)), "instances", in.ID, "console.log"))
	added := strings.TrimPrefix(string(logAfter), string(logBefore))
	if !strings.Contains(added, "rebooting") || strings.Contains(added, "running user data") {
		t.Errorf("console log after the reboot: %q; want a reboot without user data", added)
	}
	testutil.Eventually(t, 40*time.Second, func() error {
		if st := targetState(cl, in.IP); st != "healthy" {
			return fmt.Errorf("the rebooted instance's target is %q, want healthy", st)
		}
		return nil
	})
	if got := instanceByID(t, cl, in.ID); got.State != "running" {
		t.Errorf("after the reboot the instance is %s", got.State)
	}
	t.Logf("stopped %d processes; rebooted into %d", len(procs), len(after))
}

// TestNetworkFaults: network-latency adds 200 ms to a connection from the
// load balancer's namespace to the instance, packet-loss of 100% cuts it,
// disrupt-connectivity drops a subnet's traffic (scope all) or only its
// traffic with other zones (availability-zone), in a router table of its
// own; each is gone when its fault ends (qdiscs and tables counted).
func TestNetworkFaults(t *testing.T) {
	cl, p, _ := faultStackPlan(t, "fltnet")
	ctx := context.Background()
	list, err := cl.Instances(ctx, false)
	if err != nil || len(list) < 2 {
		t.Fatalf("instances: %v %+v", err, list)
	}
	in, other := list[0], list[1]
	if in.Zone == other.Zone {
		t.Fatalf("both instances in zone %s: the test needs two zones", in.Zone)
	}
	nsPath := vpc.NamespacePath(p.Stack, in.ID)
	// The load balancer's node in the instance's zone, and one in another.
	var lbSame, lbOther string
	for i, n := range p.LoadBalancers[0].Nodes {
		sn, _ := p.Subnet(n.Subnet)
		path := vpc.NamespacePath(p.Stack, fmt.Sprintf("lb-%s-%d", p.LoadBalancers[0].Name, i))
		if sn.Zone == in.Zone {
			lbSame = path
		} else {
			lbOther = path
		}
	}
	if lbSame == "" || lbOther == "" {
		t.Fatalf("load balancer nodes %+v: want one in zone %s and one elsewhere", p.LoadBalancers[0].Nodes, in.Zone)
	}
	addr := in.IP + ":8000"
	otherAddr := other.IP + ":8000"
	baseline, err := dialTime(lbSame, addr, 2*time.Second)
	if err != nil {
		t.Fatalf("connect from the load balancer to %s before any fault: %v", addr, err)
	}

	// Latency.
	f, err := cl.StartFault(ctx, api.FaultRequest{Kind: "network-latency", Targets: []string{in.ID},
		Params: map[string]string{"delayMilliseconds": "200", "jitterMilliseconds": "0"}, DurationSeconds: 120})
	if err != nil {
		t.Fatal(err)
	}
	if tables, err := vpc.FaultTables(nsPath); err != nil || len(tables) != 1 {
		t.Errorf("fault tables in the instance's namespace: %v, %v; want 1", tables, err)
	}
	// A second netem fault on the instance is refused.
	if _, err := cl.StartFault(ctx, api.FaultRequest{Kind: "packet-loss", Targets: []string{in.ID}}); err == nil || !strings.Contains(err.Error(), "already has fault "+f.ID) {
		t.Errorf("packet-loss on an instance with latency: %v, want a conflict", err)
	}
	slow, err := dialTime(lbSame, addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if slow < 190*time.Millisecond || slow > 600*time.Millisecond {
		t.Errorf("connect with 200 ms latency took %v (baseline %v), want about 200 ms", slow, baseline)
	}
	if _, err := cl.StopFault(ctx, f.ID); err != nil {
		t.Fatal(err)
	}
	if tables, err := vpc.FaultTables(nsPath); err != nil || len(tables) != 0 {
		t.Errorf("fault tables in the instance's namespace after the fault: %v, %v; want none", tables, err)
	}
	fast, err := dialTime(lbSame, addr, 2*time.Second)
	if err != nil || fast > 100*time.Millisecond {
		t.Errorf("connect after the latency fault: %v, %v; want fast again", fast, err)
	}
	t.Logf("connect from the load balancer: %v before, %v with 200 ms latency, %v after", baseline, slow, fast)

	// Loss.
	f, err = cl.StartFault(ctx, api.FaultRequest{Kind: "packet-loss", Targets: []string{in.ID}, Params: map[string]string{"lossPercent": "100"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialTime(lbSame, addr, 1500*time.Millisecond); err == nil {
		t.Error("connected to an instance that loses every packet")
	}
	if _, err := cl.StopFault(ctx, f.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := dialTime(lbSame, addr, 2*time.Second); err != nil {
		t.Errorf("connect after the loss fault: %v", err)
	}
	// A share: of 40 connects with 1 s each, some fail and some pass
	// (the SYN-ACK, or the SYN's retransmission, is lost with 50%).
	f, err = cl.StartFault(ctx, api.FaultRequest{Kind: "packet-loss", Targets: []string{in.ID}, Params: map[string]string{"lossPercent": "50"}})
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for range 40 {
		if _, err := dialTime(lbSame, addr, 300*time.Millisecond); err != nil {
			failed++
		}
	}
	if _, err := cl.StopFault(ctx, f.ID); err != nil {
		t.Fatal(err)
	}
	if failed == 0 || failed == 40 {
		t.Errorf("with 50%% loss %d of 40 connects failed, want some", failed)
	}
	t.Logf("50%% loss: %d of 40 connects failed within 300 ms", failed)

	// Disrupt connectivity, scope all: nothing enters or leaves the
	// instance's subnet; the other subnet is reached.
	if n := len(routerFaultTables(t, p.Stack)); n != 0 {
		t.Fatalf("%d fault tables in the router before any disruption", n)
	}
	f, err = cl.StartFault(ctx, api.FaultRequest{Kind: "disrupt-connectivity", Targets: []string{in.Subnet}, DurationSeconds: 120})
	if err != nil {
		t.Fatal(err)
	}
	if tables := routerFaultTables(t, p.Stack); len(tables) != 1 || tables[0] != "moat-fis-"+f.ID {
		t.Errorf("router fault tables %v, want moat-fis-%s", tables, f.ID)
	}
	if _, err := dialTime(lbSame, addr, time.Second); err == nil {
		t.Errorf("connected into disrupted subnet %s", in.Subnet)
	}
	if _, err := dialTime(lbSame, otherAddr, 2*time.Second); err != nil {
		t.Errorf("connect to the other subnet during the disruption of %s: %v", in.Subnet, err)
	}
	if _, err := cl.StopFault(ctx, f.ID); err != nil {
		t.Fatal(err)
	}
	if tables := routerFaultTables(t, p.Stack); len(tables) != 0 {
		t.Errorf("router fault tables after the fault: %v", tables)
	}
	if _, err := dialTime(lbSame, addr, 2*time.Second); err != nil {
		t.Errorf("connect after the disruption: %v", err)
	}

	// Scope availability-zone: the subnet's own zone still reaches it,
	// another zone does not.
	f, err = cl.StartFault(ctx, api.FaultRequest{Kind: "disrupt-connectivity", Targets: []string{in.Subnet},
		Params: map[string]string{"scope": "availability-zone"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialTime(lbSame, addr, 2*time.Second); err != nil {
		t.Errorf("connect from the same zone during an availability-zone disruption: %v", err)
	}
	if _, err := dialTime(lbOther, addr, time.Second); err == nil {
		t.Errorf("connected from another zone into %s during an availability-zone disruption", in.Subnet)
	}
	if _, err := cl.StopFault(ctx, f.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := dialTime(lbOther, addr, 2*time.Second); err != nil {
		t.Errorf("connect from another zone after the disruption: %v", err)
	}
	if tables := routerFaultTables(t, p.Stack); len(tables) != 0 {
		t.Errorf("router fault tables after the faults: %v", tables)
	}
	// Unknown subnets are named.
	if _, err := cl.StartFault(ctx, api.FaultRequest{Kind: "disrupt-connectivity", Targets: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), `subnet "nope" does not exist: the stack's subnets are`) {
		t.Errorf("disrupt an unknown subnet: %v", err)
	}
}

// cgroupOf is the directory of a process's cgroup in a v1 hierarchy.
func cgroupOf(t *testing.T, pid int, controller string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && slicesContains(strings.Split(parts[1], ","), controller) {
			return filepath.Join("/sys/fs/cgroup", controller, parts[2])
		}
	}
	t.Fatalf("process %d is in no %s cgroup", pid, controller)
	return ""
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func readInt(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newProcs are the processes in the namespace that are not in before.
func newProcs(t *testing.T, nsPath string, before []nsProc) []nsProc {
	old := map[int]bool{}
	for _, p := range before {
		old[p.pid] = true
	}
	var out []nsProc
	for _, p := range procsIn(t, nsPath) {
		if !old[p.pid] {
			out = append(out, p)
		}
	}
	return out
}

// TestStressAndKillFaults: cpu-stress runs burners in a cgroup below the
// instance's, held to their quota (throttled) and counted in its CPU
// utilisation; memory-stress holds a share of the instance's memory limit
// in its memory cgroup; both are gone (processes and cgroups) when their
// fault ends. kill-process signals the named process.
func TestStressAndKillFaults(t *testing.T) {
	cl, stack := faultStack(t, "fltburn")
	ctx := context.Background()
	list, err := cl.Instances(ctx, false)
	if err != nil || len(list) == 0 {
		t.Fatalf("instances: %v %+v", err, list)
	}
	in := list[0]
	nsPath := vpc.NamespacePath(stack, in.ID)
	before := procsIn(t, nsPath)
	if len(before) == 0 {
		t.Fatal("no process in the instance")
	}
	instCPU := cgroupOf(t, before[0].pid, "cpu")
	instMem := cgroupOf(t, before[0].pid, "memory")
	if !strings.HasSuffix(instCPU, "moat-"+in.ID) || !strings.HasSuffix(instMem, "moat-"+in.ID) {
		t.Fatalf("the instance's cgroups are %s and %s: the test needs its limits (cgroup v1 cpu and memory)", instCPU, instMem)
	}

	// CPU: one burner at 50% of a CPU, on a t3.micro (2 vCPUs): 25%.
	f, err := cl.StartFault(ctx, api.FaultRequest{Kind: "cpu-stress", Targets: []string{in.ID},
		Params: map[string]string{"cpu": "1", "loadPercent": "50"}, DurationSeconds: 120})
	if err != nil {
		t.Fatal(err)
	}
	burners := newProcs(t, nsPath, before)
	if len(burners) != 1 {
		t.Fatalf("burners: %+v, want one", burners)
	}
	burnCG := cgroupOf(t, burners[0].pid, "cpu")
	if burnCG != filepath.Join(instCPU, "moat-fis-"+f.ID) {
		t.Errorf("the burner is in cpu cgroup %s, want one below the instance's %s", burnCG, instCPU)
	}
	if q := readInt(t, filepath.Join(burnCG, "cpu.cfs_quota_us")); q != 50000 {
		t.Errorf("burner quota %d µs per 100 ms, want 50000", q)
	}
	var cpu float64
	testutil.Eventually(t, 20*time.Second, func() error {
		cpu = instanceByID(t, cl, in.ID).CPUPercent
		if cpu < 18 || cpu > 35 {
			return fmt.Errorf("the instance's CPU utilisation is %.1f%%, want about 25%%", cpu)
		}
		return nil
	})
	stat, _ := os.ReadFile(filepath.Join(burnCG, "cpu.stat"))
	if !strings.Contains(string(stat), "nr_throttled") || strings.Contains(string(stat), "nr_throttled 0\n") {
		t.Errorf("the burner's cgroup was never throttled: %s", stat)
	}
	if _, err := cl.StopFault(ctx, f.ID); err != nil {
		t.Fatal(err)
	}
	if left := newProcs(t, nsPath, before); len(left) != 0 {
		t.Errorf("processes left after the cpu-stress fault: %+v", left)
	}
	if _, err := os.Stat(burnCG); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("burner cgroup %s left: %v", burnCG, err)
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		if c := instanceByID(t, cl, in.ID).CPUPercent; c > 10 {
			return fmt.Errorf("CPU utilisation %.1f%% after the fault", c)
		}
		return nil
	})
	t.Logf("cpu-stress 1 burner at 50%% on 2 vCPUs: CPUUtilization %.1f%%", cpu)

	// Memory: 25% of the t3.micro's 1 GiB.
	memBefore := readInt(t, filepath.Join(instMem, "memory.usage_in_bytes"))
	f, err = cl.StartFault(ctx, api.FaultRequest{Kind: "memory-stress", Targets: []string{in.ID}, Params: map[string]string{"percent": "25"}})
	if err != nil {
		t.Fatal(err)
	}
	var held int64
	testutil.Eventually(t, 20*time.Second, func() error {
		held = readInt(t, filepath.Join(instMem, "memory.usage_in_bytes")) - memBefore
		if held < 250<<20 {
			return fmt.Errorf("the instance's memory cgroup holds %d MiB more, want 256", held>>20)
		}
		return nil
	})
	if _, err := cl.StopFault(ctx, f.ID); err != nil {
		t.Fatal(err)
	}
	if left := newProcs(t, nsPath, before); len(left) != 0 {
		t.Errorf("processes left after the memory-stress fault: %+v", left)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if now := readInt(t, filepath.Join(instMem, "memory.usage_in_bytes")); now-memBefore > 64<<20 {
			return fmt.Errorf("the memory cgroup still holds %d MiB more", (now-memBefore)>>20)
		}
		return nil
	})
	t.Logf("memory-stress 25%%: the instance's memory cgroup held %d MiB more", held>>20)

	// Kill: a name that does not run is refused with what runs.
	if _, err := cl.StartFault(ctx, api.FaultRequest{Kind: "kill-process", Targets: []string{in.ID}, Params: map[string]string{"processName": "nginx"}}); err == nil || !strings.Contains(err.Error(), "no process named nginx on instance "+in.ID+": it runs") {
		t.Errorf("kill-process of a name that does not run: %v", err)
	}
	var py int
	for _, p := range procsIn(t, nsPath) {
		if p.comm == "python3" {
			py = p.pid
		}
	}
	if py == 0 {
		t.Fatalf("no python3 in the instance: %+v", procsIn(t, nsPath))
	}
	f, err = cl.StartFault(ctx, api.FaultRequest{Kind: "kill-process", Targets: []string{in.ID}, Params: map[string]string{"processName": "python3"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.State != api.FaultEnded {
		t.Errorf("kill-process is %s, want ended (one-shot)", f.State)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		for _, p := range procsIn(t, nsPath) {
			if p.pid == py && p.state != 'Z' {
				return fmt.Errorf("python3 (%d) still runs", py)
			}
		}
		return nil
	})
}

// TestInsufficientCapacity: with insufficient-capacity on a zone, the
// replacement of an instance terminated there fails in AWS's words
// (StatusMessage) and is launched in the other zone at once. The fault
// still active at shutdown is undone then (its end is in the event log).
func TestInsufficientCapacity(t *testing.T) {
	cl, p, stop := faultStackPlan(t, "fltice")
	ctx := context.Background()
	list, err := cl.Instances(ctx, false)
	if err != nil || len(list) != 2 {
		t.Fatalf("instances: %v %+v", err, list)
	}
	victim := list[0]
	var awsZone, otherZone string
	for _, z := range p.Zones {
		if z.Name == victim.Zone {
			awsZone = z.AWSName
		} else {
			otherZone = z.Name
		}
	}
	if _, err := cl.StartFault(ctx, api.FaultRequest{Kind: "insufficient-capacity", Targets: []string{"web"}, Params: map[string]string{"zones": "nowhere"}}); err == nil || !strings.Contains(err.Error(), `zone "nowhere" is not one of the stack's`) {
		t.Errorf("insufficient-capacity in an unknown zone: %v", err)
	}
	f, err := cl.StartFault(ctx, api.FaultRequest{Kind: "insufficient-capacity", Targets: []string{"web"},
		Params: map[string]string{"zones": awsZone}, Experiment: "EXPICE"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Terminate(ctx, victim.ID, false); err != nil {
		t.Fatal(err)
	}
	var failed api.Activity
	testutil.Eventually(t, 60*time.Second, func() error {
		acts, err := cl.Activities(ctx, "web")
		if err != nil {
			return err
		}
		for _, a := range acts {
			if a.Status == "Failed" && failed.Description == "" {
				failed = a
			}
		}
		if failed.Description == "" {
			return errors.New("no failed launch yet")
		}
		ins, err := cl.Instances(ctx, false)
		if err != nil {
			return err
		}
		running := 0
		for _, in := range ins {
			if in.ID == victim.ID {
				return fmt.Errorf("%s is still there", victim.ID)
			}
			if in.State == "running" {
				if in.Zone != otherZone {
					return fmt.Errorf("instance %s runs in zone %s during the fault", in.ID, in.Zone)
				}
				running++
			}
		}
		if running != 2 {
			return fmt.Errorf("%d instances running, want 2 (in zone %s)", running, otherZone)
		}
		return nil
	})
	want := "We currently do not have sufficient t3.micro capacity in the Availability Zone you requested (" + awsZone + "). Our system will be working on provisioning additional capacity. You can currently get t3.micro capacity by not specifying an Availability Zone in your request or choosing "
	if !strings.HasPrefix(failed.StatusMessage, want) || !strings.HasSuffix(failed.StatusMessage, ". Launching EC2 instance failed.") {
		t.Errorf("failed launch's StatusMessage = %q, want AWS's InsufficientInstanceCapacity message", failed.StatusMessage)
	}
	t.Logf("activity: %s / %s", failed.Description, failed.Cause)

	// Still active at shutdown: undone then, and said so.
	dir := daemon.StackDir(p.Stack)
	stop()
	evs, err := events.ReadFile(dir.Events())
	if err != nil {
		t.Fatal(err)
	}
	var end *events.Event
	for i, e := range evs {
		if e.Component == "fis" && e.Type == "fault.end" && e.Fields["fault"] == f.ID {
			end = &evs[i]
		}
	}
	if end == nil || !strings.Contains(end.Message, "the stack is stopping") || end.Fields["experiment"] != "EXPICE" || end.Fields["kind"] != "insufficient-capacity" {
		t.Errorf("fault.end of %s at shutdown: %+v", f.ID, end)
	}
	if ents, _ := os.ReadDir(filepath.Join(string(dir), "faults")); len(ents) != 0 {
		t.Errorf("fault records left after shutdown: %v", ents)
	}
}
