package daemon

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/plan"
)

// TestServesExactlyTheAPIRoutes: the daemon answers every route of
// package api and no other.
func TestServesExactlyTheAPIRoutes(t *testing.T) {
	d := &Daemon{plan: &plan.Plan{Stack: "routes"}, phase: api.PhaseStarting, stopCh: make(chan struct{})}
	h := d.handlers()
	for _, r := range api.Routes {
		if h[r] == nil {
			t.Errorf("no handler for %s", r.ServeMuxPattern())
		}
	}
	if len(h) != len(api.Routes) {
		t.Errorf("%d handlers for %d routes: %v", len(h), len(api.Routes), h)
	}
	mux := d.routes()
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1/status", http.StatusOK},
		{"GET", "/v1/instances", http.StatusServiceUnavailable}, // the stack is starting
		{"GET", "/v1/nope", http.StatusNotFound},
		{"GET", "/v1/groups/web", http.StatusNotFound},
		{"DELETE", "/v1/instances", http.StatusMethodNotAllowed},
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, rec.Code, c.want)
		}
	}
}
