package albconformance

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"golang.org/x/net/websocket"
)

// Backend is the application the checks run behind the load balancer. It
// answers every request with what it received, as JSON (Echo), and takes
// orders in the query string:
//
//	sleep=MS       answer after MS milliseconds
//	setcookie=NAME set cookie NAME (an application cookie)
//	close=1        close the connection without answering
//	malformed=1    answer with bytes that are not HTTP
//	hints=1        send 103 Early Hints before the response
//
// GET /health answers 200 while Healthy reports true, else 503; /ws is a
// WebSocket echo.
type Backend struct {
	Healthy func() bool // nil: always healthy
}

// Echo is what Backend answers.
type Echo struct {
	Backend   string              `json:"backend"` // the address the request arrived on
	Method    string              `json:"method"`
	Host      string              `json:"host"`
	Path      string              `json:"path"`
	Query     string              `json:"query"`
	Header    map[string][]string `json:"header"`
	BodyBytes int64               `json:"bodyBytes"`
}

// BackendHeader names the backend that answered, on every response.
const BackendHeader = "X-Backend"

var wsEcho = websocket.Handler(func(c *websocket.Conn) { io.Copy(c, c) })

func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	self := ""
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		self = a.String()
	}
	w.Header().Set(BackendHeader, self)
	if r.URL.Path == "/health" {
		if b.Healthy != nil && !b.Healthy() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
		return
	}
	if r.URL.Path == "/ws" {
		wsEcho.ServeHTTP(w, r)
		return
	}
	q := r.URL.Query()
	if ms, err := strconv.Atoi(q.Get("sleep")); err == nil {
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	}
	if q.Get("close") != "" || q.Get("malformed") != "" {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if q.Get("malformed") != "" {
			io.WriteString(c, "THIS IS NOT HTTP\r\n\r\n")
		}
		c.Close()
		return
	}
	if q.Get("hints") != "" {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
	}
	if name := q.Get("setcookie"); name != "" {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "app-" + strconv.FormatInt(time.Now().UnixNano(), 36), Path: "/"})
	}
	n, _ := io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(Echo{Backend: self, Method: r.Method, Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery,
		Header: r.Header, BodyBytes: n})
}

// BackendEnv names the environment variable that turns a test binary into
// a Backend (see ServeBackendFromEnv): its value is the address to listen
// on.
const BackendEnv = "MOAT_ALBCONFORMANCE_BACKEND"

// UnhealthyFile, in a backend's working directory, makes it fail its
// health checks while it exists.
const UnhealthyFile = "unhealthy"

// ServeBackendFromEnv serves Backend on $MOAT_ALBCONFORMANCE_BACKEND,
// failing health checks while ./unhealthy exists, and does not return;
// without the variable it returns at once. A test binary's TestMain
// calls it first, so that the binary can be a stack's instance command.
func ServeBackendFromEnv() {
	addr := os.Getenv(BackendEnv)
	if addr == "" {
		return
	}
	// An application takes a moment to boot: the target is seen in its
	// initial state, failing its first health check.
	time.Sleep(time.Second)
	b := &Backend{Healthy: func() bool { _, err := os.Stat(UnhealthyFile); return err != nil }}
	srv := &http.Server{Addr: addr, Handler: b, ReadHeaderTimeout: 10 * time.Second}
	err := srv.ListenAndServe()
	os.Stderr.WriteString("albconformance backend: " + err.Error() + "\n")
	os.Exit(1)
}
