package console

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/browsertest"
	"github.com/moat-dev/moat/internal/testutil"
)

// startConsole serves a console of src on a free loopback port; it stops
// when the test ends.
func startConsole(t *testing.T, src Source, token string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(ln.Addr().String())
	cs, err := New(Options{Plan: examplePlan(t), Source: src, Addr: addr, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); cs.Run(ctx) }()
	srv := &http.Server{Handler: cs.Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { cancel(); srv.Close(); <-done })
	return addr
}

// js evaluates expr in the page and decodes its value into out.
func js(t *testing.T, p *browsertest.Page, expr string, out any) {
	t.Helper()
	v, err := p.Eval(expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	if out != nil {
		if err := json.Unmarshal(v, out); err != nil {
			t.Fatalf("%s = %s: %v", expr, v, err)
		}
	}
}

// mapInstances is the instances the page's map draws (not fading out):
// id subnet zone ip.
const mapInstances = `[...document.querySelectorAll('#map .node.instance:not(.gone)')].map(n => [n.dataset.name, n.dataset.subnet, n.dataset.zone, n.dataset.ip].join(' '))`

func TestConsoleInBrowser(t *testing.T) {
	p := examplePlan(t)
	src := newFakeStack(p, 3)
	token := NewToken()
	addr := startConsole(t, src, token)
	b := browsertest.Start(t)
	page := b.Open(t, URL(addr, token))

	// Every instance is on the map with its subnet and zone.
	want := func() []string {
		insts, _ := src.Instances(context.Background(), false)
		var out []string
		for _, in := range insts {
			out = append(out, strings.Join([]string{in.ID, in.Subnet, in.Zone, in.IP}, " "))
		}
		return out
	}
	page.WaitFor(t, fmt.Sprintf(`%s.length === 3`, mapInstances), 10*time.Second)
	var got []string
	js(t, page, mapInstances, &got)
	slices.Sort(got)
	if !slices.Equal(got, want()) {
		t.Fatalf("map instances %q, want %q", got, want())
	}
	// The rest of the map: the load balancer's nodes, NAT, bastion, the
	// subnets in their zones, and an edge from the load balancer to each
	// target.
	var nodes []string
	js(t, page, `[...document.querySelectorAll('#map .node:not(.instance)')].map(n => n.dataset.name + ' ' + (n.dataset.subnet || '-'))`, &nodes)
	slices.Sort(nodes)
	if !slices.Equal(nodes, []string{"bastion public-a", "igw -", "internet -", "lb-web-0 public-a", "lb-web-1 public-b", "nat-a public-a"}) {
		t.Errorf("map nodes %q", nodes)
	}
	// Target health with the last checks, newest first.
	var checks []string
	js(t, page, `[...document.querySelectorAll('#targets tbody tr')[0].querySelectorAll('.check')].map(c => c.dataset.ok + ' ' + c.dataset.latency)`, &checks)
	if !slices.Equal(checks, []string{"true 1.5", "true 2.25"}) {
		t.Errorf("last health checks %q", checks)
	}
	var targetEdges int
	js(t, page, `document.querySelectorAll('#map line.edge.target').length`, &targetEdges)
	if targetEdges != 3 {
		t.Errorf("%d target edges, want 3", targetEdges)
	}

	// Route tables on demand.
	js(t, page, `document.getElementById('show-routes').click()`, nil)
	page.WaitFor(t, `!document.getElementById('routes').hidden && document.getElementById('routes').innerText.includes('Route table private-a') &&
		document.getElementById('routes').innerText.includes('nat nat-a')`, 5*time.Second)
	// Nothing the page loaded came from anywhere but the console.
	var foreign []string
	js(t, page, `performance.getEntriesByType('resource').map(e => e.name).filter(u => !u.startsWith(location.origin + '/'))`, &foreign)
	if len(foreign) != 0 {
		t.Errorf("the page loaded %q from elsewhere", foreign)
	}

	// Protect one from scale-in, then terminate it with the button: it
	// leaves, its replacement appears and turns healthy.
	victim := strings.Fields(got[0])[0]
	js(t, page, fmt.Sprintf(`document.querySelector('#map .node[data-name=%q]').dispatchEvent(new MouseEvent('click', {bubbles: true}))`, victim), nil)
	page.WaitFor(t, `!!document.getElementById('protect')`, 5*time.Second)
	js(t, page, `document.getElementById('protect').click()`, nil)
	page.WaitFor(t, fmt.Sprintf(`document.querySelector('#map .node[data-name=%q]').textContent.includes('protected') &&
		document.getElementById('protect').innerText === 'Remove scale-in protection'`, victim), 5*time.Second)
	js(t, page, `document.getElementById('terminate').click()`, nil)
	page.WaitFor(t, fmt.Sprintf(`!%s.some(s => s.startsWith(%q))`, mapInstances, victim), 5*time.Second)
	page.WaitFor(t, fmt.Sprintf(`%s.length === 3`, mapInstances), 5*time.Second)
	page.WaitFor(t, `[...document.querySelectorAll('#map .node.instance:not(.gone)')].every(n => n.dataset.health === 'healthy')`, 5*time.Second)
	if calls := src.callLog(); !slices.Equal(calls, []string{"protect " + victim + " true", "terminate " + victim + " false"}) {
		t.Errorf("calls %q", calls)
	}
	// The timeline tells it.
	page.WaitFor(t, fmt.Sprintf(`document.getElementById('timeline').innerText.includes('Terminating EC2 instance: %s')`, victim), 5*time.Second)

	// Change the desired capacity.
	js(t, page, `document.getElementById('desired-web').value = '5'; document.getElementById('set-desired-web').click()`, nil)
	page.WaitFor(t, `document.querySelector('.group[data-group=web] .counts').dataset.desired === '5'`, 5*time.Second)
	// Start an instance refresh; terminate one more, decrementing the
	// desired capacity: it is not replaced.
	js(t, page, `document.getElementById('refresh-web').click()`, nil)
	testutil.Eventually(t, 5*time.Second, func() error {
		if calls := src.callLog(); !slices.Contains(calls, "refresh web") {
			return fmt.Errorf("calls %q: want an instance refresh of web", calls)
		}
		return nil
	})
	insts, _ := src.Instances(context.Background(), false)
	second := insts[0].ID
	js(t, page, fmt.Sprintf(`document.querySelector('#map .node[data-name=%q]').dispatchEvent(new MouseEvent('click', {bubbles: true}))`, second), nil)
	page.WaitFor(t, fmt.Sprintf(`document.getElementById('detail-table').innerText.includes(%q)`, second), 5*time.Second)
	js(t, page, `document.getElementById('terminate-decrement').click()`, nil)
	page.WaitFor(t, fmt.Sprintf(`%s.length === 2 && document.querySelector('.group[data-group=web] .counts').dataset.desired === '4'`, mapInstances), 5*time.Second)
	// Out of range: refused with the control API's words, nothing changed.
	js(t, page, `document.getElementById('desired-web').value = '99'; document.getElementById('set-desired-web').click()`, nil)
	page.WaitFor(t, `document.getElementById('notice').innerText.includes('must be between min 2 and max 60')`, 5*time.Second)

	// Reachability: an allowed pair and a denied one, with the rule.
	reach := func(from, to, port string) {
		js(t, page, fmt.Sprintf(`document.getElementById('reach-from').value = %q; document.getElementById('reach-to').value = %q;
			document.getElementById('reach-port').value = %q; document.getElementById('reach-result').replaceChildren();
			document.getElementById('reach-go').click()`, from, to, port), nil)
		page.WaitFor(t, `!!document.querySelector('#reach-result .verdict')`, 5*time.Second)
	}
	reach("internet", "lb-web-0", "80")
	var verdict string
	js(t, page, `document.getElementById('reach-result').innerText`, &verdict)
	if !strings.Contains(verdict, "ALLOWED") || !strings.Contains(verdict, "allowed by sg lb ingress #1: tcp 80 0.0.0.0/0") {
		t.Errorf("internet -> lb-web-0 80:\n%s", verdict)
	}
	insts, _ = src.Instances(context.Background(), false)
	reach("internet", insts[0].ID, "22")
	js(t, page, `document.getElementById('reach-result').innerText`, &verdict)
	if !strings.Contains(verdict, "DENIED") || !strings.Contains(verdict, "IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS") {
		t.Errorf("internet -> %s 22:\n%s", insts[0].ID, verdict)
	}
	reach("bastion", insts[0].ID, "22")
	js(t, page, `document.getElementById('reach-result').innerText`, &verdict)
	if !strings.Contains(verdict, "ALLOWED") || !strings.Contains(verdict, "allowed by sg app ingress #2: tcp 22 sg:bastion") {
		t.Errorf("bastion -> %s 22:\n%s", insts[0].ID, verdict)
	}
}

// TestConsoleWithoutTokenIsReadOnly: the console's URL without its token
// shows everything and changes nothing.
func TestConsoleWithoutTokenIsReadOnly(t *testing.T) {
	src := newFakeStack(examplePlan(t), 2)
	addr := startConsole(t, src, NewToken())
	b := browsertest.Start(t)
	page := b.Open(t, URL(addr, ""))
	page.WaitFor(t, fmt.Sprintf(`%s.length === 2`, mapInstances), 10*time.Second)
	page.WaitFor(t, `document.getElementById('set-desired-web').disabled && document.getElementById('mode').innerText === 'read-only'`, 5*time.Second)
	// Even a page script that tries: refused.
	js(t, page, `fetch('/api/scale', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-Moat-Token': 'guess'},
		body: JSON.stringify({group: 'web', desired: 3})}).then(r => r.json()).then(j => { window.answer = j.error; })`, nil)
	page.WaitFor(t, `(window.answer || '').includes('missing or wrong console token')`, 5*time.Second)
	if calls := src.callLog(); len(calls) != 0 {
		t.Errorf("calls %q", calls)
	}
}

// TestConsoleRefuses: a foreign Host (DNS rebinding) and cross-origin
// changes are refused; nothing reaches the stack.
func TestConsoleRefuses(t *testing.T) {
	src := newFakeStack(examplePlan(t), 2)
	token := NewToken()
	addr := startConsole(t, src, token)
	base := "http://" + addr.String()
	do := func(method, path, host string, h map[string]string, body string) (int, string) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, string(b)
	}
	same := map[string]string{"Origin": base, "Content-Type": "application/json", TokenHeader: token}
	cross := map[string]string{"Origin": "http://evil.example", "Content-Type": "application/json", TokenHeader: token}
	for _, c := range []struct {
		name, method, path, host string
		h                        map[string]string
		code                     int
		want                     string
	}{
		{"page", "GET", "/", "", nil, 200, "<title>moat console</title>"},
		{"page by localhost", "GET", "/", "localhost:" + fmt.Sprint(addr.Port()), nil, 200, "moat console"},
		{"page, rebound name", "GET", "/", "evil.example:" + fmt.Sprint(addr.Port()), nil, 403, "foreign Host"},
		{"stream, rebound name", "GET", "/events", "evil.example", nil, 403, "foreign Host"},
		{"reach, rebound name", "GET", "/api/reach?from=internet&to=bastion&port=22", "evil.example", nil, 403, "foreign Host"},
		{"change, rebound name", "POST", "/api/scale", "evil.example", same, 403, "foreign Host"},
		{"change, cross origin", "POST", "/api/scale", "", cross, 403, "cross-origin"},
		{"change, no token", "POST", "/api/scale", "", map[string]string{"Origin": base, "Content-Type": "application/json"}, 403, "console token"},
		{"change, form", "POST", "/api/scale", "", map[string]string{"Origin": base, "Content-Type": "application/x-www-form-urlencoded", TokenHeader: token}, 403, "JSON body"},
		{"change as GET", "GET", "/api/scale", "", same, 405, ""},
		{"unknown file", "GET", "/secret", "", nil, 404, ""},
	} {
		code, body := do(c.method, c.path, c.host, c.h, `{"group":"web","desired":3}`)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, code, body, c.code, c.want)
		}
	}
	if calls := src.callLog(); len(calls) != 0 {
		t.Errorf("refused requests reached the stack: %q", calls)
	}
	// The same change, same-origin with the token, goes through.
	if code, body := do("POST", "/api/scale", "", same, `{"group":"web","desired":3}`); code != 200 {
		t.Errorf("same-origin change: %d %s", code, body)
	}
	if calls := src.callLog(); !slices.Equal(calls, []string{"scale web 3"}) {
		t.Errorf("calls %q", calls)
	}
}

// TestEventStreamResumes: a stream opened again with Last-Event-ID gets
// only what came after it; with an unknown id, a reset and everything.
func TestEventStreamResumes(t *testing.T) {
	src := newFakeStack(examplePlan(t), 2)
	addr := startConsole(t, src, NewToken())
	type msg struct{ id, event string }
	read := func(lastID string, n int) []msg {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr.String()+"/events", nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("Content-Type %q", ct)
		}
		var out []msg
		var cur msg
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<22)
		for len(out) < n && sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				cur.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				cur.event = strings.TrimPrefix(line, "event: ")
			case line == "" && cur.event != "":
				out = append(out, cur)
				cur = msg{}
			}
		}
		return out
	}
	// Two events before the page comes.
	src.mu.Lock()
	src.addLocked("activity", "one")
	src.addLocked("activity", "two")
	src.mu.Unlock()
	first := read("", 4) // reset, event, event, snapshot (in some order after reset)
	if len(first) != 4 || first[0].event != KindReset {
		t.Fatalf("first stream %+v", first)
	}
	var kinds []string
	for _, m := range first[1:] {
		kinds = append(kinds, m.event)
	}
	slices.Sort(kinds)
	if !slices.Equal(kinds, []string{KindEvent, KindEvent, KindSnapshot}) {
		t.Fatalf("first stream %+v", first)
	}
	last := first[3].id
	// A third event; resume from what the page saw.
	src.mu.Lock()
	src.addLocked("activity", "three")
	src.mu.Unlock()
	testutil.Eventually(t, 5*time.Second, func() error {
		again := read(last, 1)
		if len(again) != 1 || again[0].event != KindEvent || again[0].id <= last {
			return fmt.Errorf("resumed stream %+v after %s: want the third event only", again, last)
		}
		return nil
	})
	// An id of another start: start over.
	if again := read("0-5", 1); len(again) != 1 || again[0].event != KindReset {
		t.Errorf("stream with a foreign id %+v: want a reset first", again)
	}
}

// TestPageWeight: the page and its assets are small, and reference
// nothing outside the console.
func TestPageWeight(t *testing.T) {
	total := 0
	err := fs.WalkDir(webFS, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := webFS.ReadFile(path)
		if err != nil {
			return err
		}
		total += len(b)
		for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
			if i := strings.Index(string(b), bad); i >= 0 && !strings.Contains(string(b[max(0, i-40):i+40]), "www.w3.org/2000/svg") {
				t.Errorf("%s references %q: %s", path, bad, b[max(0, i-40):min(len(b), i+40)])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("page weight: %d bytes", total)
	if total > 300*1024 {
		t.Errorf("page weight %d bytes, want under 300 KB", total)
	}
}

// TestConsoleTrafficAndExposure: each second's metrics go on the map
// (request rate and 5XX per target edge, CPU per instance) and into the
// charts under CloudWatch's names; "what can the internet reach" marks
// exactly the load balancer's nodes and the bastion.
func TestConsoleTrafficAndExposure(t *testing.T) {
	src := newFakeStack(examplePlan(t), 3)
	src.traffic = true
	addr := startConsole(t, src, NewToken())
	b := browsertest.Start(t)
	page := b.Open(t, URL(addr, ""))
	page.WaitFor(t, fmt.Sprintf(`%s.length === 3`, mapInstances), 10*time.Second)
	insts, _ := src.Instances(context.Background(), false)
	first := insts[0].ID
	page.WaitFor(t, fmt.Sprintf(`(() => { const e = document.querySelector('#map line.edge.target[data-to=%q]');
		return e && e.dataset.rps === '10' && e.dataset.errors === '2' && e.classList.contains('erroring'); })()`, first), 10*time.Second)
	page.WaitFor(t, fmt.Sprintf(`document.querySelector('#map line.edge.target[data-to=%q]').dataset.errors === '0'`, insts[1].ID), 5*time.Second)
	page.WaitFor(t, fmt.Sprintf(`document.querySelector('#map .node[data-name=%q] text.cpu').textContent === 'CPU 10%%'`, first), 5*time.Second)
	page.WaitFor(t, `document.querySelector('#map line.edge[data-kind=ingress][data-to=bastion]').dataset.sessions === '1'`, 5*time.Second)
	for metric, value := range map[string]string{"RequestCount": "30", "Target_5XX": "2", "Target_2XX": "28", "HealthyHostCount": "3", "p99": "20"} {
		page.WaitFor(t, fmt.Sprintf(`(() => { const l = document.querySelector('#metrics .leg[data-series=%q]'); return !!l && l.dataset.value === %q; })()`, metric, value), 5*time.Second)
	}
	page.WaitFor(t, `document.querySelectorAll('#instance-metrics tr[data-instance]').length === 3`, 5*time.Second)

	js(t, page, `document.getElementById('exposed-go').click()`, nil)
	page.WaitFor(t, `!!document.getElementById('exposed-table')`, 5*time.Second)
	var exposed, rows []string
	js(t, page, `[...document.querySelectorAll('#map .node.exposed')].map(n => n.dataset.name).sort()`, &exposed)
	if !slices.Equal(exposed, []string{"bastion", "lb-web-0", "lb-web-1"}) {
		t.Errorf("exposed nodes %q, want the bastion and the load balancer's nodes", exposed)
	}
	js(t, page, `[...document.querySelectorAll('#exposed-table tr[data-target]')].map(r => r.cells[0].innerText + ' ' + r.cells[1].innerText)`, &rows)
	if !slices.Equal(rows, []string{"bastion tcp 22", "lb:web tcp 80"}) {
		t.Errorf("exposed %q", rows)
	}
}

// TestConsoleWith50Instances: the page stays responsive with 50
// instances and their traffic: each snapshot and each second of metrics
// is drawn in well under a second (the longest is logged).
func TestConsoleWith50Instances(t *testing.T) {
	src := newFakeStack(examplePlan(t), 50)
	src.traffic = true
	addr := startConsole(t, src, NewToken())
	b := browsertest.Start(t)
	page := b.Open(t, URL(addr, ""))
	page.WaitFor(t, fmt.Sprintf(`%s.length === 50`, mapInstances), 20*time.Second)
	page.WaitFor(t, `document.querySelectorAll('#instance-metrics tr[data-instance]').length === 50`, 10*time.Second)
	// A few more seconds of metrics, each redrawn.
	page.WaitFor(t, `document.querySelectorAll('#map line.edge.target').length === 50 &&
		[...document.querySelectorAll('#map line.edge.target')].every(e => e.dataset.rps === '10')`, 10*time.Second)
	time.Sleep(3 * time.Second)
	var longest float64
	js(t, page, `window.moatRenderMs`, &longest)
	t0 := time.Now()
	js(t, page, `1 + 1`, nil)
	t.Logf("50 instances: longest draw of one message %.1f ms; a script answers in %v", longest, time.Since(t0))
	if longest > 500 {
		t.Errorf("drawing one message took %.0f ms with 50 instances; the page must stay responsive", longest)
	}
}
