//go:build linux && !portable

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/browsertest"
	"github.com/moat-dev/moat/internal/testutil"
)

// screenshot saves a PNG of the page's element selector as name in
// $MOAT_SCREENSHOTS, when set (the README's pictures come from here).
func screenshot(t *testing.T, page *browsertest.Page, selector, name string) {
	dir := os.Getenv("MOAT_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := page.Screenshot(selector)
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Error(err)
	}
}

// consoleInstances is what the console's map draws of the instances
// (not fading out): "id subnet zone ip", sorted.
const consoleInstances = `[...document.querySelectorAll('#map .node.instance:not(.gone)')].map(n => [n.dataset.name, n.dataset.subnet, n.dataset.zone, n.dataset.ip].join(' ')).sort()`

// TestConsoleEndToEnd opens the console of a running stack in Chromium
// and drives it: the map shows every instance of moat ps in its subnet and
// zone; the terminate button replaces an instance (it leaves, its
// replacement appears and turns healthy, moat events says so); the
// desired capacity changes; reach answers an allowed and a denied pair
// with the rule.
func TestConsoleEndToEnd(t *testing.T) {
	s := newE2EStack(t, "e2econ", nil)
	s.mustMoat(120*time.Second, "up", "-d", "--wait")
	testutil.Eventually(t, 60*time.Second, s.healthy(2))

	// moat console prints the URL with its token; moat status lists it.
	url := strings.TrimSpace(s.mustMoat(10*time.Second, "console", "--no-open"))
	prefix := fmt.Sprintf("http://127.0.0.1:%d/#token=", s.console)
	if !strings.HasPrefix(url, prefix) || len(url) != len(prefix)+32 {
		t.Fatalf("moat console printed %q, want %s<32 hex digits>", url, prefix)
	}
	if st := s.mustMoat(10*time.Second, "status"); !strings.Contains(st, url) {
		t.Errorf("moat status does not show the console URL %s:\n%s", url, st)
	}
	// The console is the daemon's: a foreign Host is refused there too.
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/", s.console), nil)
	req.Host = "rebound.example"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign Host: %v %v, want 403", resp, err)
	} else {
		resp.Body.Close()
	}

	b := browsertest.Start(t)
	page := b.Open(t, url)
	if err := page.SetViewport(1280, 900); err != nil {
		t.Fatal(err)
	}
	want := func() []string {
		var out []string
		for _, in := range s.instances() {
			out = append(out, strings.Join([]string{in.ID, in.Subnet, in.Zone, in.IP}, " "))
		}
		sort.Strings(out)
		return out
	}
	onMap := func() []string {
		v, err := page.Eval(consoleInstances)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		_ = json.Unmarshal(v, &out)
		return out
	}
	sameAsPS := func() error {
		if got, want := onMap(), want(); !slices.Equal(got, want) {
			return fmt.Errorf("map shows %q, moat ps %q", got, want)
		}
		return nil
	}
	testutil.Eventually(t, 15*time.Second, sameAsPS)
	page.WaitFor(t, `[...document.querySelectorAll('#map .node.instance')].every(n => n.dataset.health === 'healthy')`, 15*time.Second)

	t.Run("traffic on the map", func(t *testing.T) {
		// A bounded load through the load balancer (loopback only): 200
		// requests over at most 10 seconds, while the map shows it.
		done := make(chan struct{})
		go func() {
			defer close(done)
			deadline := time.Now().Add(10 * time.Second)
			for i := 0; i < 200 && time.Now().Before(deadline); i++ {
				if resp, err := http.Get(s.web + "/whoami"); err == nil {
					resp.Body.Close()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		defer func() { <-done }()
		page.WaitFor(t, `[...document.querySelectorAll('#map line.edge.target')].filter(e => Number(e.dataset.rps) > 0).length === 2`, 15*time.Second)
		page.WaitFor(t, `Number((document.querySelector('#metrics .leg[data-series=RequestCount]') || {dataset: {}}).dataset.value) > 0`, 5*time.Second)
		page.WaitFor(t, `document.querySelectorAll('#instance-metrics tr[data-instance]').length === 2`, 5*time.Second)
		screenshot(t, page, "#map-panel", "console-map.png")
	})

	t.Run("terminate with the button", func(t *testing.T) {
		s := s.with(t)
		before := s.instances()
		victim := before[0].ID
		page.WaitFor(t, fmt.Sprintf(`(() => { const n = document.querySelector('#map .node[data-name=%q]');
			n.dispatchEvent(new MouseEvent('click', {bubbles: true})); return !!document.getElementById('terminate'); })()`, victim), 10*time.Second)
		if _, err := page.Eval(`document.getElementById('terminate').click()`); err != nil {
			t.Fatal(err)
		}
		// It leaves the map, a replacement appears and turns healthy.
		page.WaitFor(t, fmt.Sprintf(`!%s.some(s => s.startsWith(%q))`, consoleInstances, victim), 60*time.Second)
		page.WaitFor(t, fmt.Sprintf(`(() => { const l = [...document.querySelectorAll('#map .node.instance:not(.gone)')];
			return l.length === 2 && l.every(n => n.dataset.name !== %q && n.dataset.health === 'healthy'); })()`, victim), 90*time.Second)
		testutil.Eventually(t, 15*time.Second, sameAsPS)
		// The action went through the control API: moat events tells it.
		testutil.Eventually(t, 10*time.Second, func() error {
			out := s.mustMoat(10*time.Second, "events")
			if !strings.Contains(out, "Terminating EC2 instance: "+victim) {
				return fmt.Errorf("moat events does not tell the termination of %s:\n%s", victim, out)
			}
			return nil
		})
		// The timeline too, each event within a second of it happening:
		// the termination, the target draining, the replacement healthy.
		page.WaitFor(t, fmt.Sprintf(`document.getElementById('timeline').innerText.includes(%q)`, victim), 10*time.Second)
		health := `[...document.querySelectorAll('#timeline li[data-type="target.health"]')].map(l => l.innerText)`
		page.WaitFor(t, fmt.Sprintf(`%s.some(s => s.includes(%q) && s.includes('healthy -> draining'))`, health, victim), 10*time.Second)
		page.WaitFor(t, fmt.Sprintf(`%s.some(s => !s.includes(%q) && s.includes('initial -> healthy'))`, health, victim), 10*time.Second)
		// Target health shows each target's last checks with their latency.
		page.WaitFor(t, `[...document.querySelectorAll('#targets tbody tr')].filter(r => r.querySelector('.check.pass')).length >= 2`, 15*time.Second)
		screenshot(t, page, "#timeline-panel", "console-timeline.png")
		v, err := page.Eval(`window.moatLatencies`)
		if err != nil {
			t.Fatal(err)
		}
		var lat []float64
		_ = json.Unmarshal(v, &lat)
		if len(lat) == 0 {
			t.Fatal("no live event reached the timeline")
		}
		slices.Sort(lat)
		t.Logf("event -> DOM latency over %d events: median %.0f ms, max %.0f ms", len(lat), lat[len(lat)/2], lat[len(lat)-1])
		if lat[len(lat)-1] >= 1000 {
			t.Errorf("event -> DOM latency %v ms, want under 1 s", lat)
		}
	})

	t.Run("change desired capacity", func(t *testing.T) {
		s := s.with(t)
		if _, err := page.Eval(`document.getElementById('desired-web').value = '3'; document.getElementById('set-desired-web').click()`); err != nil {
			t.Fatal(err)
		}
		page.WaitFor(t, `document.querySelector('.group[data-group=web] .counts').dataset.desired === '3'`, 10*time.Second)
		page.WaitFor(t, `document.querySelectorAll('#map .node.instance:not(.gone)').length === 3`, 60*time.Second)
		testutil.Eventually(t, 15*time.Second, sameAsPS)
		if st := s.mustMoat(10*time.Second, "status"); !strings.Contains(st, "group web: desired 3") {
			t.Errorf("moat status after the console set desired capacity 3:\n%s", st)
		}
	})

	t.Run("scale-in protection", func(t *testing.T) {
		s := s.with(t)
		id := s.instances()[0].ID
		page.WaitFor(t, fmt.Sprintf(`(() => { const n = document.querySelector('#map .node[data-name=%q]');
			n.dispatchEvent(new MouseEvent('click', {bubbles: true})); return !!document.getElementById('protect'); })()`, id), 10*time.Second)
		if _, err := page.Eval(`document.getElementById('protect').click()`); err != nil {
			t.Fatal(err)
		}
		page.WaitFor(t, fmt.Sprintf(`document.querySelector('#map .node[data-name=%q]').textContent.includes('protected')`, id), 10*time.Second)
		for _, in := range s.instances() {
			if in.ID == id && !in.Protected {
				t.Errorf("moat ps: %s is not protected from scale-in", id)
			}
		}
		if out := s.mustMoat(10*time.Second, "events"); !strings.Contains(out, "scale-in protection of instance "+id+" in group web on") {
			t.Errorf("moat events does not tell the protection of %s", id)
		}
	})

	t.Run("reach", func(t *testing.T) {
		ask := func(from, to, port string) string {
			t.Helper()
			if _, err := page.Eval(fmt.Sprintf(`document.getElementById('reach-from').value = %q; document.getElementById('reach-to').value = %q;
				document.getElementById('reach-port').value = %q; document.getElementById('reach-result').replaceChildren();
				document.getElementById('reach-go').click()`, from, to, port)); err != nil {
				t.Fatal(err)
			}
			page.WaitFor(t, `!!document.querySelector('#reach-result .verdict')`, 10*time.Second)
			v, _ := page.Eval(`document.getElementById('reach-result').innerText`)
			var out string
			_ = json.Unmarshal(v, &out)
			return out
		}
		id := s.with(t).instances()[0].ID
		if v := ask("lb-web-0", id, "8000"); !strings.Contains(v, "ALLOWED") || !strings.Contains(v, "allowed by sg app ingress #1: tcp 8000 sg:lb") {
			t.Errorf("lb-web-0 -> %s 8000:\n%s", id, v)
		}
		if v := ask("internet", id, "22"); !strings.Contains(v, "DENIED") || !strings.Contains(v, "IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS") {
			t.Errorf("internet -> %s 22:\n%s", id, v)
		}
		if v := ask("lb-web-0", id, "22"); !strings.Contains(v, "DENIED") || !strings.Contains(v, "ENI_SG_RULES_MISMATCH") {
			t.Errorf("lb-web-0 -> %s 22:\n%s", id, v)
		}
	})

	s.mustMoat(60*time.Second, "down")
	assertNoLeftovers(t, s.name)
}
