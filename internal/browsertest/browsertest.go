// Package browsertest drives a real headless Chromium through the Chrome
// DevTools protocol, for tests of pages moat serves. It speaks just enough
// of the protocol to open a page, evaluate JavaScript in it, and send any
// other command (Call), such as a screenshot.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// Browser is a running headless Chromium.
type Browser struct {
	port string
}

// Start launches Chromium for the test; it skips when Chromium is missing,
// unless CI=true, where it fails.
func Start(t *testing.T) *Browser {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed; scripts/deps.sh installs it")
		}
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	// Not t.TempDir: Chromium's helper processes may still write while
	// it is removed, which t.TempDir reports as a failure.
	dir, err := os.MkdirTemp("", "moat-browser-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", "--remote-allow-origins=*",
		"--user-data-dir="+filepath.Join(dir, "profile"), "about:blank")
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		_ = os.RemoveAll(dir)
	})
	portFile := filepath.Join(dir, "profile", "DevToolsActivePort")
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(portFile)
		if err == nil && strings.Contains(string(b), "\n") {
			return &Browser{port: strings.SplitN(string(b), "\n", 2)[0]}
		}
		if time.Now().After(deadline) {
			t.Fatal("chromium did not open its DevTools port")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Page is one tab.
type Page struct {
	ws   *websocket.Conn
	mu   sync.Mutex
	next int
}

// Open opens a new tab on url (which may have a #fragment).
func (b *Browser) Open(t *testing.T, url string) *Page {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://127.0.0.1:"+b.port+"/json/new?about:blank", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var target struct {
		WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&target); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	ws, err := websocket.Dial(target.WebSocketDebuggerURL, "", "http://127.0.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	p := &Page{ws: ws}
	if _, err := p.Call("Page.navigate", map[string]any{"url": url}); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return p
}

// Call sends one DevTools protocol command and returns its result.
func (p *Page) Call(method string, params any) (json.RawMessage, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	id := p.next
	if err := websocket.JSON.Send(p.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return nil, err
	}
	_ = p.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var resp struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := websocket.JSON.Receive(p.ws, &resp); err != nil {
			return nil, err
		}
		if resp.ID != id {
			continue // an event
		}
		if resp.Error != nil {
			return nil, fmt.Errorf("%s: %s", method, resp.Error.Message)
		}
		return resp.Result, nil
	}
}

// Eval evaluates a JavaScript expression and returns its JSON value.
func (p *Page) Eval(expr string) (json.RawMessage, error) {
	raw, err := p.Call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true})
	if err != nil {
		return nil, err
	}
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails json.RawMessage `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, err
	}
	if len(res.ExceptionDetails) > 0 {
		return nil, fmt.Errorf("javascript: %s", res.ExceptionDetails)
	}
	return res.Result.Value, nil
}

// SetViewport sets the page's viewport in CSS pixels.
func (p *Page) SetViewport(width, height int) error {
	_, err := p.Call("Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height,
		"deviceScaleFactor": 1, "mobile": false})
	return err
}

// Screenshot is a PNG of the element selector matches (the whole page for
// "").
func (p *Page) Screenshot(selector string) ([]byte, error) {
	params := map[string]any{"format": "png", "captureBeyondViewport": true}
	if selector != "" {
		v, err := p.Eval(fmt.Sprintf(`(() => { const r = document.querySelector(%q).getBoundingClientRect();
			return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height, scale: 1}; })()`, selector))
		if err != nil {
			return nil, err
		}
		var clip map[string]float64
		if err := json.Unmarshal(v, &clip); err != nil {
			return nil, err
		}
		params["clip"] = clip
	}
	raw, err := p.Call("Page.captureScreenshot", params)
	if err != nil {
		return nil, err
	}
	var shot struct {
		Data []byte `json:"data"` // base64 in JSON: decoded by encoding/json
	}
	if err := json.Unmarshal(raw, &shot); err != nil {
		return nil, err
	}
	return shot.Data, nil
}

// WaitFor polls a JavaScript expression until it is true or the timeout passes.
func (p *Page) WaitFor(t *testing.T, expr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, err := p.Eval(expr)
		if err == nil && string(v) == "true" {
			return
		}
		if time.Now().After(deadline) {
			body, _ := p.Eval("document.body ? document.body.innerText : ''")
			t.Fatalf("timed out waiting for %s (last error %v); page text: %s", expr, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
