//go:build linux && !portable

package main

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
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/browsertest"
	"github.com/moat-dev/moat/internal/instance"
	"github.com/moat-dev/moat/internal/testutil"
	"github.com/vishvananda/netlink"

	"github.com/moat-dev/moat/internal/vpc"
	"golang.org/x/net/websocket"
)

// The end-to-end tests run the real moat binary, as root, on a copy of the
// bundled example: real namespaces, nftables, processes, the load balancer
// on loopback, the bastion and the system's OpenSSH client. Only loopback
// and the test's own stack namespaces are ever contacted.

// freePort returns a loopback port that is free now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// e2eStack is one stack run by the moat binary in a scratch MOAT_HOME.
type e2eStack struct {
	t       *testing.T
	name    string
	file    string
	home    string
	web     string // http://127.0.0.1:PORT
	bastion int
	console int // the console's port
}

// newE2EStack writes a copy of the example under a unique stack name on
// free loopback ports; edit may change the stack file's text.
func newE2EStack(t *testing.T, name string, edit func(string) string) *e2eStack {
	t.Helper()
	// Unique per test process, so that concurrent runs never share a stack.
	name = fmt.Sprintf("%s-%04x", name, os.Getpid()&0xffff)
	dir := t.TempDir()
	src, err := os.ReadFile("../../examples/realtime/moat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	web, ssh, metrics, cons := freePort(t), freePort(t), freePort(t), freePort(t)
	text := strings.Replace(string(src), "name: realtime", "name: "+name, 1)
	text = strings.Replace(text, "address: 127.0.0.1:8080", fmt.Sprintf("address: 127.0.0.1:%d", web), 1)
	text = strings.Replace(text, "bastion: 127.0.0.1:2222", fmt.Sprintf("bastion: 127.0.0.1:%d\n  metrics: 127.0.0.1:%d\n  console: 127.0.0.1:%d", ssh, metrics, cons), 1)
	if edit != nil {
		text = edit(text)
	}
	if err := os.CopyFS(filepath.Join(dir, "app"), os.DirFS("../../examples/realtime/app")); err != nil {
		t.Fatal(err)
	}
	s := newE2EStackFile(t, name, dir, text)
	s.web, s.bastion, s.console = fmt.Sprintf("http://127.0.0.1:%d", web), ssh, cons
	return s
}

// newE2EStackFile writes stack file text (stack name, already unique, in
// it) to dir/moat.yaml; the stack is taken down when the test ends.
func newE2EStackFile(t *testing.T, name, dir, text string) *e2eStack {
	t.Helper()
	testutil.RequireRoot(t, "end-to-end: network namespaces, nftables")
	for _, tool := range []string{"ssh", "scp", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: scripts/deps.sh installs it", tool)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "moat.yaml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &e2eStack{t: t, name: name, file: filepath.Join(dir, "moat.yaml"), home: t.TempDir()}
	t.Cleanup(func() {
		// Whatever happened, leave nothing behind.
		out, _ := s.moat(60*time.Second, "down")
		if left := stackNamespaces(name); len(left) > 0 {
			t.Errorf("namespaces left after moat down: %v\n%s", left, out)
		}
	})
	return s
}

// with is s for a subtest (its failures are the subtest's).
func (s *e2eStack) with(t *testing.T) *e2eStack {
	c := *s
	c.t = t
	return &c
}

// moat runs the binary with the stack's environment.
func (s *e2eStack) moat(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	flag := "-f"
	if args[0] == "events" || args[0] == "logs" { // there -f is --follow
		flag = "--file"
	}
	cmd := exec.CommandContext(ctx, moatBin, append([]string{args[0], flag, s.file}, args[1:]...)...)
	cmd.Env = append(os.Environ(), "MOAT_HOME="+s.home)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// moatSplit runs the binary with the stack's environment, the stack file
// given with -f after the command's words (cmdWords of args), and returns
// stdout and stderr apart, and the exit code.
func (s *e2eStack) moatSplit(timeout time.Duration, cmdWords int, args ...string) (string, string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return runCmd(s.t, s.command(ctx, cmdWords, args...))
}

// command is the binary with the stack's environment and the stack file
// given with -f after the command's words (cmdWords of args), not started
// (moatSplit runs it; a test that acts while it runs starts it).
func (s *e2eStack) command(ctx context.Context, cmdWords int, args ...string) *exec.Cmd {
	full := append(append(slices.Clone(args[:cmdWords]), "-f", s.file), args[cmdWords:]...)
	cmd := exec.CommandContext(ctx, moatBin, full...)
	cmd.Env = append(os.Environ(), "MOAT_HOME="+s.home)
	return cmd
}

func (s *e2eStack) mustMoat(timeout time.Duration, args ...string) string {
	s.t.Helper()
	out, err := s.moat(timeout, args...)
	if err != nil {
		s.t.Fatalf("moat %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (s *e2eStack) instances() []api.Instance {
	s.t.Helper()
	out, err := s.moat(10*time.Second, "ps", "-o", "json")
	if err != nil {
		s.t.Fatalf("moat ps: %v\n%s", err, out)
	}
	var list []api.Instance
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		s.t.Fatalf("moat ps -o json: %v\n%s", err, out)
	}
	return list
}

func (s *e2eStack) targets() []api.Target {
	s.t.Helper()
	out := s.mustMoat(10*time.Second, "targets", "-o", "json")
	var list []api.Target
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		s.t.Fatalf("moat targets -o json: %v\n%s", err, out)
	}
	return list
}

// healthy is a condition for testutil.Eventually: n healthy targets.
func (s *e2eStack) healthy(n int) func() error {
	return func() error {
		if got := s.healthyTargets(); got != n {
			return fmt.Errorf("%d healthy targets, want %d", got, n)
		}
		return nil
	}
}

// healthyTargets counts healthy targets.
func (s *e2eStack) healthyTargets() int {
	n := 0
	for _, tg := range s.targets() {
		if tg.State == "healthy" {
			n++
		}
	}
	return n
}

// assertNoLeftovers counts what a stack could leave: its namespaces,
// links and moat nftables tables in the host namespace, and processes
// whose working directory is one of its instances' (the user's command,
// user data, SSH sessions).
func assertNoLeftovers(t *testing.T, stack string) {
	t.Helper()
	links, tables, procs := 0, 0, 0
	ls, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if strings.HasPrefix(l.Attrs().Name, "mt") || strings.HasPrefix(l.Attrs().Name, "moat") {
			links++
		}
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range ts {
		if strings.HasPrefix(tb.Name, "moat") {
			tables++
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil && strings.HasPrefix(cwd, "/run/moat/"+stack+"/") {
			procs++
		}
	}
	// Isolated instances' processes (their working directory is inside
	// their own mount namespace) by their uid ranges, allocated per stack.
	ranges := 0
	rs, _ := os.ReadDir(instance.UIDRangeDir)
	for _, r := range rs {
		if b, err := os.ReadFile(filepath.Join(instance.UIDRangeDir, r.Name())); err == nil && strings.HasPrefix(string(b), stack+" ") {
			ranges++
		}
	}
	ns := stackNamespaces(stack)
	if len(ns)+links+tables+procs+ranges != 0 {
		t.Errorf("stack %s left %d namespace(s) %v, %d host link(s), %d host nftables table(s), %d process(es), %d uid range(s)", stack, len(ns), ns, links, tables, procs, ranges)
	}
}

// stackNamespaces lists the stack's named namespaces as reclaim finds
// them (vpc.Leftovers: not those of a stack whose name extends this one).
func stackNamespaces(stack string) []string {
	ns, _ := vpc.Leftovers(stack, "")
	return ns
}

var servedBy = regexp.MustCompile(`<b id="who">(i-[0-9a-f]{17})</b>`)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStackEndToEnd brings the example up with the moat binary and checks
// what issues 3-6 must show on the running stack: the load balancer serves
// the app from instances in both private subnets; ssh -J through the
// bastion runs a command and scp copies a file; the bastion refuses a
// destination whose security group does not admit it; "the internet"
// cannot reach an instance's port 22; scale, terminate and health
// replacement; an instance refresh without one failed request; and
// moat down leaves nothing.
func TestStackEndToEnd(t *testing.T) {
	s := newE2EStack(t, "e2e", func(text string) string {
		return strings.Replace(text, "\nlocal:\n", "\nlocal:\n  egress: true\n", 1)
	})
	t0 := time.Now()
	s.mustMoat(120*time.Second, "up", "-d", "--wait")
	t.Logf("moat up -d --wait took %v", time.Since(t0).Round(time.Millisecond))

	ins := s.instances()
	if len(ins) != 2 || ins[0].Zone == ins[1].Zone {
		t.Fatalf("want 2 instances in 2 zones, got %+v", ins)
	}
	testutil.Eventually(t, 30*time.Second, s.healthy(2))

	// The load balancer spreads requests over both instances.
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		code, body := get(t, s.web+"/")
		if code != 200 {
			t.Fatalf("GET / = %d %s", code, body)
		}
		if m := servedBy.FindStringSubmatch(body); m != nil {
			seen[m[1]] = true
		}
	}
	if len(seen) != 2 {
		t.Errorf("20 requests were served by %v, want both instances", seen)
	}

	t.Run("moat top", func(t *testing.T) {
		s := s.with(t)
		// the last second: both targets, named by instance id, and both
		// instances' CPU and memory
		var m api.MetricsSample
		testutil.Eventually(t, 5*time.Second, func() error {
			out, err := s.moat(10*time.Second, "top", "-o", "json")
			if err != nil {
				return err
			}
			m = api.MetricsSample{}
			return json.Unmarshal([]byte(out), &m)
		})
		ids := map[string]bool{ins[0].ID: true, ins[1].ID: true}
		if len(m.LoadBalancers) != 1 || len(m.LoadBalancers[0].Targets) != 2 || !ids[m.LoadBalancers[0].Targets[0].ID] || !ids[m.LoadBalancers[0].Targets[1].ID] {
			t.Errorf("moat top: load balancers %+v, want web with the two instances as targets", m.LoadBalancers)
		}
		if len(m.Instances) != 2 || m.Instances[0].MemoryUsedBytes <= 0 {
			t.Errorf("moat top: instances %+v, want both with their memory", m.Instances)
		}
		text := s.mustMoat(10*time.Second, "top")
		if !strings.Contains(text, "load balancer web: ") || !strings.Contains(text, ins[0].ID) {
			t.Errorf("moat top:\n%s", text)
		}
	})

	t.Run("real-time through the load balancer", func(t *testing.T) {
		s := s.with(t)
		_ = s
		// Server-Sent Events arrive as they are sent, one a second (a
		// buffering proxy would deliver them in a burst).
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", s.web+"/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("Content-Type %q", ct)
		}
		rd := bufio.NewReader(resp.Body)
		var at []time.Time
		for len(at) < 3 {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("SSE stream ended after %d events: %v", len(at), err)
			}
			if strings.HasPrefix(line, "data: ") {
				at = append(at, time.Now())
			}
		}
		for i := 1; i < len(at); i++ {
			if gap := at[i].Sub(at[i-1]); gap < 300*time.Millisecond || gap > 2500*time.Millisecond {
				t.Errorf("SSE event %d arrived %v after the previous one; the app sends one a second", i, gap)
			}
		}

		// A WebSocket echo through the listener.
		testutil.EchoWebSocket(t, strings.TrimPrefix(s.web, "http://"), "hello", strings.Repeat("x", 70000), "bye")
	})

	t.Run("the page in a browser through the load balancer", func(t *testing.T) {
		b := browsertest.Start(t)
		page := b.Open(t, s.web+"/")
		page.WaitFor(t, `document.getElementById("status").textContent === "live"`, 15*time.Second)
		page.WaitFor(t, `document.getElementById("log").children.length >= 2`, 15*time.Second)
		v, err := page.Eval(`document.getElementById("log").children[0].textContent`)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`from i-[0-9a-f]{17} \([a-z0-9-]*[ab], 10\.0\.12[89]\.\d+\)`).Match(v) {
			t.Errorf("live update in the page = %s, want one naming the instance, its zone and private address", v)
		}
	})

	t.Run("ssh through the bastion", func(t *testing.T) {
		s := s.with(t)
		out := s.mustMoat(30*time.Second, "ssh", ins[0].ID, "--", "echo hello from $(cat /proc/sys/kernel/hostname >/dev/null; echo $MOAT_INSTANCE_ID); curl -s -m 2 http://169.254.169.254/latest/meta-data/local-ipv4")
		if !strings.Contains(out, "hello from "+ins[0].ID) || !strings.Contains(out, ins[0].IP) {
			t.Errorf("moat ssh output %q: want the instance id and its address from the metadata service", out)
		}
		cfgPath, alias, bastionAlias := s.sshConfig(ins[0].ID)
		// scp through the jump (the modern SFTP protocol).
		local := filepath.Join(t.TempDir(), "payload.txt")
		payload := "moat scp payload " + strconv.FormatInt(time.Now().UnixNano(), 10)
		if err := os.WriteFile(local, []byte(payload), 0o644); err != nil {
			t.Fatal(err)
		}
		scp := exec.Command("scp", "-F", cfgPath, "-q", local, alias+":payload.txt")
		if out, err := scp.CombinedOutput(); err != nil {
			t.Fatalf("scp through the bastion: %v\n%s", err, out)
		}
		out = s.mustMoat(30*time.Second, "ssh", ins[0].ID, "--", "cat payload.txt")
		if !strings.Contains(out, payload) {
			t.Errorf("file copied with scp reads %q, want %q", out, payload)
		}

		// The app's security group admits port 8000 only from the load
		// balancer's group: the bastion refuses to forward there, and says why.
		out2, err := sshForward(cfgPath, bastionAlias, ins[0].IP+":8000", "")
		if err == nil || !strings.Contains(string(out2), "open failed") {
			t.Errorf("ssh -W %s:8000 through the bastion: err %v, output %q; want a refused channel", ins[0].IP, err, out2)
		}
		audit, _ := os.ReadFile(filepath.Join(s.home, s.name, "ssh-audit.jsonl"))
		if !bytes.Contains(audit, []byte(ins[0].IP+":8000")) {
			t.Errorf("audit log has no entry for the refused forward to %s:8000:\n%s", ins[0].IP, audit)
		}
	})

	t.Run("egress reaches the host's loopback", func(t *testing.T) {
		s := s.with(t)
		host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "host says hi to %s", r.RemoteAddr)
		}))
		defer host.Close()
		port := host.Listener.Addr().(*net.TCPAddr).Port
		// By address: the name host.moat.internal needs the host's
		// resolv.conf to name a non-loopback server (docs/local.md).
		out := s.mustMoat(30*time.Second, "ssh", ins[0].ID, "--", fmt.Sprintf("curl -s -m 5 http://198.18.0.2:%d/", port))
		if !strings.Contains(out, "host says hi to 127.0.0.1:") {
			t.Errorf("GET the host's 127.0.0.1:%d from an instance through local.egress: %q", port, out)
		}
	})

	t.Run("the internet cannot reach an instance's ssh", func(t *testing.T) {
		s := s.with(t)
		dial := vpc.DialFunc(vpc.NamespacePath(s.name, "internet"))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c, err := dial(ctx, "tcp", ins[0].IP+":22")
		if err == nil {
			c.Close()
			t.Fatalf("a connection from the internet namespace to %s:22 succeeded", ins[0].IP)
		}
		out, _ := s.moat(10*time.Second, "reach", "internet", ins[0].ID, "22")
		if !strings.Contains(out, "DENIED") {
			t.Errorf("moat reach internet %s 22 = %q, want denied", ins[0].ID, out)
		}
	})

	t.Run("scale, terminate, health replacement", func(t *testing.T) {
		s := s.with(t)
		s.mustMoat(10*time.Second, "scale", "web", "3")
		testutil.Eventually(t, 30*time.Second, func() error {
			if n := countRunning(s.instances()); n != 3 {
				return fmt.Errorf("%d running instances, want 3", n)
			}
			return nil
		})
		victim := s.instances()[0].ID
		s.mustMoat(10*time.Second, "terminate", victim)
		testutil.Eventually(t, 40*time.Second, func() error {
			if list := s.instances(); countRunning(list) != 3 || hasInstance(list, victim) {
				return fmt.Errorf("the terminated instance %s not replaced: %+v", victim, list)
			}
			return nil
		})
		s.mustMoat(10*time.Second, "terminate", "--decrement-desired", s.instances()[0].ID)
		testutil.Eventually(t, 40*time.Second, func() error {
			if n := len(s.instances()); n != 2 {
				return fmt.Errorf("%d instances after a decrementing terminate, want 2", n)
			}
			return nil
		})

		// Kill an instance's app: the group replaces it. Once zones are
		// balanced (else AZRebalance may terminate instances of its own),
		// the newest instance is the one rebalancing would not pick.
		testutil.Eventually(t, 60*time.Second, func() error {
			if list := s.instances(); countRunning(list) != 2 || len(list) != 2 || list[0].Zone == list[1].Zone {
				return fmt.Errorf("not 2 running instances in 2 zones: %+v", list)
			}
			return nil
		})
		list := s.instances()
		crashed := list[len(list)-1]
		time.Sleep(time.Until(crashed.Launched.Add(31 * time.Second))) // past its grace period
		s.mustMoat(20*time.Second, "ssh", crashed.ID, "--", `kill -9 $(ss -Hltnp "sport = :8000" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)`)
		testutil.Eventually(t, 40*time.Second, func() error {
			if list := s.instances(); countRunning(list) != 2 || hasInstance(list, crashed.ID) {
				return fmt.Errorf("the crashed instance %s not replaced: %+v", crashed.ID, list)
			}
			return nil
		})
		events := s.mustMoat(10*time.Second, "events")
		if !regexp.MustCompile(`Terminating EC2 instance: ` + crashed.ID + `[^\n]*status checks failure[^\n]*Status reason: [^\n]*(signal|exit)`).MatchString(events) {
			t.Errorf("events do not show the replacement of %s with its health reason:\n%s", crashed.ID, events)
		}

		// An instance whose /health starts failing is replaced under ELB
		// health checks (it is past its grace period).
		var sick api.Instance
		for _, in := range s.instances() {
			if time.Since(in.Launched) > 31*time.Second {
				sick = in
			}
		}
		if sick.ID == "" {
			t.Fatalf("no instance past its grace period: %+v", s.instances())
		}
		s.mustMoat(20*time.Second, "ssh", sick.ID, "--", "curl -s -m 2 http://127.0.0.1:8000/health/fail")
		testutil.Eventually(t, 60*time.Second, func() error {
			if list := s.instances(); countRunning(list) != 2 || hasInstance(list, sick.ID) {
				return fmt.Errorf("the instance %s failing /health not replaced: %+v", sick.ID, list)
			}
			return nil
		})
		events = s.mustMoat(10*time.Second, "events")
		if !regexp.MustCompile(`Terminating EC2 instance: ` + sick.ID + `[^\n]*ELB`).MatchString(events) {
			t.Errorf("events do not show the ELB health replacement of %s:\n%s", sick.ID, events)
		}
	})

	t.Run("instance refresh without failed requests", func(t *testing.T) {
		s := s.with(t)
		testutil.Eventually(t, 40*time.Second, s.healthy(2))
		before := s.instances()
		s.mustMoat(10*time.Second, "refresh", "web")
		// A bounded load loop: at most 3000 requests, 120 s.
		failed, total := 0, 0
		deadline := time.Now().Add(120 * time.Second)
		for total < 3000 && time.Now().Before(deadline) {
			code, _ := get(t, s.web+"/health")
			total++
			if code != 200 {
				failed++
			}
			if total%20 == 0 && refreshed(before, s.instances()) {
				break
			}
			time.Sleep(30 * time.Millisecond)
		}
		if !refreshed(before, s.instances()) {
			t.Fatalf("instance refresh did not replace every instance within 120 s: %+v", s.instances())
		}
		t.Logf("instance refresh: %d requests, %d failed", total, failed)
		if failed != 0 {
			t.Errorf("%d of %d requests failed during the instance refresh", failed, total)
		}
	})

	t.Run("re-running moat up applies changes live", func(t *testing.T) {
		s := s.with(t)
		addr := strings.TrimPrefix(s.web, "http://")
		ws, err := websocket.Dial("ws://"+addr+"/ws", "", "http://"+addr+"/")
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		text, err := os.ReadFile(s.file)
		if err != nil {
			t.Fatal(err)
		}
		// A new listener rule, and a changed launch template.
		edited := strings.Replace(string(text), "        defaultAction:\n          forward: {targetGroup: web}",
			"        defaultAction:\n          forward: {targetGroup: web}\n        rules:\n          - priority: 10\n            conditions: {pathPattern: [/hello]}\n            action:\n              fixedResponse: {statusCode: 200, contentType: text/plain, messageBody: hi}", 1)
		edited = strings.Replace(edited, `      PORT: "8000"`, "      PORT: \"8000\"\n      GREETING: v2", 1)
		if edited == string(text) || !strings.Contains(edited, "GREETING") || !strings.Contains(edited, "/hello") {
			t.Fatal("could not edit the stack file")
		}
		if err := os.WriteFile(s.file, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		before := s.instances()
		out := s.mustMoat(30*time.Second, "up", "-d")
		if !strings.Contains(out, "applied live") || !strings.Contains(out, "instance refresh") {
			t.Errorf("moat up on the running stack said %q", out)
		}
		if code, body := get(t, s.web+"/hello"); code != 200 || body != "hi" {
			t.Errorf("GET /hello after the apply = %d %q, want the new rule's 200 hi", code, body)
		}
		// The WebSocket opened before the apply still works.
		if err := websocket.Message.Send(ws, "still here"); err != nil {
			t.Fatal(err)
		}
		var got string
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := websocket.Message.Receive(ws, &got); err != nil || got != "still here" {
			t.Errorf("WebSocket after the apply: %q, %v", got, err)
		}
		// The changed launch template rolls through an instance refresh.
		testutil.Eventually(t, 120*time.Second, func() error {
			if list := s.instances(); !refreshed(before, list) {
				return fmt.Errorf("not every instance replaced with the new launch template: before %+v, now %+v", before, list)
			}
			return nil
		})
		out = s.mustMoat(30*time.Second, "ssh", s.instances()[0].ID, "--", "echo greeting=$GREETING")
		if !strings.Contains(out, "greeting=v2") {
			t.Errorf("a refreshed instance's environment: %q, want GREETING=v2", out)
		}
		// A security group change applies at once, as on AWS: the app's
		// group admits the bastion on 8000, so the forward refused earlier
		// now reaches the app.
		ins := s.instances()
		cfgPath, _, bastionAlias := s.sshConfig(ins[0].ID)
		sgEdited := strings.Replace(edited, "      - {protocol: tcp, port: 22, group: bastion}\n",
			"      - {protocol: tcp, port: 22, group: bastion}\n      - {protocol: tcp, port: 8000, group: bastion}\n", 1)
		if sgEdited == edited {
			t.Fatal("could not edit the app's security group")
		}
		if err := os.WriteFile(s.file, []byte(sgEdited), 0o644); err != nil {
			t.Fatal(err)
		}
		if out := s.mustMoat(30*time.Second, "up", "-d"); !strings.Contains(out, "security group app: rules") {
			t.Errorf("moat up with a changed security group said %q", out)
		}
		// and the timeline names the group
		sgEvent := false
		for line := range strings.Lines(s.mustMoat(10*time.Second, "events", "-o", "json")) {
			var e struct {
				Type   string
				Fields map[string]string
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Type == "vpc.securitygroups" && e.Fields["groups"] == "app" {
				sgEvent = true
			}
		}
		if !sgEvent {
			t.Error("no vpc.securitygroups event naming the app group in moat events")
		}
		out3, err := sshForward(cfgPath, bastionAlias, ins[0].IP+":8000", "GET /health HTTP/1.0\r\n\r\n")
		if err != nil || !strings.Contains(string(out3), "200") {
			t.Errorf("ssh -W %s:8000 through the bastion after the group admits it: %v\n%s", ins[0].IP, err, out3)
		}
		edited = sgEdited

		// A change to the network is refused with what to do.
		if err := os.WriteFile(s.file, []byte(strings.Replace(edited, "cidr: 10.0.0.0/16", "cidr: 10.9.0.0/16", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := s.moat(30*time.Second, "up", "-d"); err == nil || !strings.Contains(out, "moat down") {
			t.Errorf("moat up with a changed VPC block on a running stack: err %v, output %q; want a refusal naming moat down", err, out)
		}
	})

	t0 = time.Now()
	s.mustMoat(60*time.Second, "down")
	t.Logf("moat down took %v", time.Since(t0).Round(time.Millisecond))
	assertNoLeftovers(t, s.name)
	if code, _ := get(t, s.web+"/"); code != 0 {
		t.Errorf("the listener still answers after moat down")
	}
}

func countRunning(list []api.Instance) int {
	n := 0
	for _, in := range list {
		if in.State == "running" {
			n++
		}
	}
	return n
}

func hasInstance(list []api.Instance, id string) bool {
	for _, in := range list {
		if in.ID == id {
			return true
		}
	}
	return false
}

// refreshed reports whether none of before is left and as many run.
func refreshed(before, now []api.Instance) bool {
	for _, b := range before {
		if hasInstance(now, b.ID) {
			return false
		}
	}
	return countRunning(now) == len(before)
}

// killDaemon kills the stack's daemon with SIGKILL, as a crash would, and
// waits (5 s at most) for it to be gone.
func (s *e2eStack) killDaemon() {
	s.t.Helper()
	pidText, err := os.ReadFile(filepath.Join(s.home, s.name, "daemon.pid"))
	if err != nil {
		s.t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if pid <= 1 {
		s.t.Fatalf("bad daemon pid %q", pidText)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		s.t.Fatal(err)
	}
	_ = testutil.Poll(5*time.Second, func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("daemon %d still there", pid)
		}
		return nil
	})
}

// TestCrashedStackIsReclaimed kills the daemon with SIGKILL and checks
// that moat down reclaims its namespaces and processes.
func TestCrashedStackIsReclaimed(t *testing.T) {
	s := newE2EStack(t, "e2ecrash", nil)
	s.mustMoat(120*time.Second, "up", "-d", "--wait")
	s.killDaemon()
	if len(stackNamespaces(s.name)) == 0 {
		t.Fatal("a killed daemon left no namespaces: the test proves nothing")
	}
	out := s.mustMoat(60*time.Second, "down")
	if !strings.Contains(out, "reclaimed") {
		t.Errorf("moat down after a crash says %q, want it to report what it reclaimed", out)
	}
	assertNoLeftovers(t, s.name)
}

// TestFailedUpLeavesNothing: user data that fails makes moat up fail with
// the reason, and nothing of the stack is left.
func TestFailedUpLeavesNothing(t *testing.T) {
	s := newE2EStack(t, "e2efail", func(text string) string {
		return strings.Replace(text, `echo "booted $(date -u +%FT%TZ)" > boot.txt`, `echo "cannot boot" >&2; exit 3`, 1)
	})
	out, err := s.moat(120*time.Second, "up", "-d", "--wait")
	if err == nil {
		t.Fatalf("moat up with failing user data succeeded:\n%s", out)
	}
	if !strings.Contains(out, "user data") {
		t.Errorf("moat up output %q does not name the failing user data", out)
	}
	// Wait (10 s at most) for the namespaces to go; assertNoLeftovers says
	// what is left.
	_ = testutil.Poll(10*time.Second, func() error {
		if ns := stackNamespaces(s.name); len(ns) > 0 {
			return fmt.Errorf("namespaces left: %v", ns)
		}
		return nil
	})
	assertNoLeftovers(t, s.name)
}

// TestInterruptedUpLeavesNothing: Ctrl-C (SIGINT) to a foreground moat up
// tears the whole stack down.
func TestInterruptedUpLeavesNothing(t *testing.T) {
	s := newE2EStack(t, "e2eint", nil)
	up := s.foregroundUp()
	testutil.Eventually(t, 60*time.Second, func() error {
		// The phase itself: "stack X is not running" (no daemon yet)
		// must not pass for running.
		o, err := s.moat(5*time.Second, "status", "-o", "json")
		if err != nil {
			return fmt.Errorf("the stack not running: moat status: %v\n%s", err, o)
		}
		var st api.Status
		if err := json.Unmarshal([]byte(o), &st); err != nil {
			return fmt.Errorf("moat status -o json: %v\n%s", err, o)
		}
		if st.Phase != api.PhaseRunning {
			return fmt.Errorf("the stack is %s, not %s", st.Phase, api.PhaseRunning)
		}
		return nil
	})
	if len(stackNamespaces(s.name)) == 0 {
		t.Fatal("a running stack has no namespaces: the test proves nothing")
	}
	// The foreground moat up prints the console's URL with the token of
	// this start, the one moat console gives.
	url := strings.TrimSpace(s.mustMoat(10*time.Second, "console", "--no-open"))
	testutil.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(up.out.String(), "console   console    "+url+"\n") {
			return fmt.Errorf("moat up's output does not list the console at %s:\n%s", url, up.out.String())
		}
		return nil
	})
	up.interrupt(t)
	assertNoLeftovers(t, s.name)
}

// TestEarlyInterruptedUpLeavesNothing: Ctrl-C (SIGINT) to a foreground
// moat up while it is still starting leaves nothing either: sent a little
// after the process starts (before or while the daemon sets up), or a
// little after the stack's first namespace (while the VPC, load balancer,
// bastion and instances are built).
func TestEarlyInterruptedUpLeavesNothing(t *testing.T) {
	for _, c := range []struct {
		afterNamespace bool
		delay          time.Duration
	}{
		{false, 0}, {false, 20 * time.Millisecond}, {false, 100 * time.Millisecond}, {false, 300 * time.Millisecond},
		{true, 0}, {true, 50 * time.Millisecond}, {true, 200 * time.Millisecond}, {true, 500 * time.Millisecond},
		{true, time.Second}, {true, 2 * time.Second}, {true, 4 * time.Second},
	} {
		name := "start+" + c.delay.String()
		if c.afterNamespace {
			name = "namespace+" + c.delay.String()
		}
		t.Run(name, func(t *testing.T) {
			s := newE2EStack(t, "e2eintx", nil)
			up := s.foregroundUp()
			if c.afterNamespace {
				testutil.Eventually(t, 60*time.Second, func() error {
					select {
					case err := <-up.exited:
						up.exited <- err
						return nil // interrupt reports it
					default:
					}
					if len(stackNamespaces(s.name)) == 0 {
						return errors.New("no namespace of the stack yet")
					}
					return nil
				})
			}
			time.Sleep(c.delay)
			up.interrupt(t)
			assertNoLeftovers(t, s.name)
		})
	}
}

// foregroundUpProc is a foreground moat up of a test stack.
type foregroundUpProc struct {
	cmd    *exec.Cmd
	out    *testutil.Buffer
	exited chan error
}

// foregroundUp starts moat up (foreground, as a user at a terminal would).
func (s *e2eStack) foregroundUp() *foregroundUpProc {
	s.t.Helper()
	p := &foregroundUpProc{cmd: exec.Command(moatBin, "up", "-f", s.file), out: &testutil.Buffer{}, exited: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), "MOAT_HOME="+s.home)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	return p
}

// interrupt sends SIGINT and waits (60 s at most) for moat up to exit.
func (p *foregroundUpProc) interrupt(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.exited:
		t.Fatalf("moat up exited before the SIGINT (%v):\n%s", err, p.out.String())
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Fatalf("moat up did not exit within 60 s of SIGINT:\n%s", p.out.String())
	}
}

// TestSameStackNameFromTwoHomes: a second moat up of a stack name that
// runs from another MOAT_HOME is refused, and a moat down there does not
// touch the running stack (namespaces are machine-wide).
func TestSameStackNameFromTwoHomes(t *testing.T) {
	a := newE2EStack(t, "e2etwin", nil)
	b := newE2EStack(t, "e2etwin", nil)
	a.mustMoat(120*time.Second, "up", "-d", "--wait")
	out, err := b.moat(60*time.Second, "up", "-d", "--wait")
	if err == nil || !strings.Contains(out, "another MOAT_HOME") {
		t.Errorf("second moat up of the same stack name: err %v, output %q; want a refusal", err, out)
	}
	if out, err := b.moat(60*time.Second, "down"); err == nil && strings.Contains(out, "reclaimed") {
		t.Errorf("moat down from the other MOAT_HOME reclaimed the running stack: %q", out)
	}
	if code, _ := get(t, a.web+"/health"); code != 200 {
		t.Errorf("the first stack stopped serving (%d) after the refused up and down", code)
	}
	a.mustMoat(60*time.Second, "down")
	assertNoLeftovers(t, a.name)
}

// sshConfig writes moat ssh-config to a file and returns its path, the
// Host alias of the instance and that of the bastion.
func (s *e2eStack) sshConfig(id string) (path, alias, bastionAlias string) {
	s.t.Helper()
	cfg := s.mustMoat(10*time.Second, "ssh-config")
	path = filepath.Join(s.home, "ssh_config")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		s.t.Fatal(err)
	}
	for _, line := range strings.Split(cfg, "\n") {
		if h, ok := strings.CutPrefix(strings.TrimSpace(line), "Host "); ok {
			if strings.Contains(h, id) {
				alias = h
			} else if !strings.Contains(h, "i-") && !strings.Contains(h, "*") {
				bastionAlias = h
			}
		}
	}
	if alias == "" || bastionAlias == "" {
		s.t.Fatalf("ssh-config has no Host for %s and the bastion:\n%s", id, cfg)
	}
	return path, alias, bastionAlias
}

// sshForward runs ssh -W DEST through the bastion (what ssh -J does) with
// stdin as the bytes sent, and returns what came back.
func sshForward(cfgPath, bastionAlias, dest, stdin string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w := exec.CommandContext(ctx, "ssh", "-F", cfgPath, "-W", dest, bastionAlias)
	w.Stdin = strings.NewReader(stdin)
	return w.CombinedOutput()
}
