// Package console is moat's live web console: the running stack as a
// map (VPC, zones, subnets, load balancer nodes, NAT gateways, bastion,
// instances), with target health, scaling, one timeline and reachability,
// served by the daemon on a loopback address (local.console).
//
// The page is static (web/, embedded) and gets everything over one
// Server-Sent Events stream (/events), resumable with Last-Event-ID. The
// console reads the stack and acts on it only through the control API, the
// CLI's calls (Source); reachability is moat reach's own code
// (secgroup.Reach). Its safety model is in guard.go.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/client"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
)

//go:embed web
var webFS embed.FS

// Options configure a console.
type Options struct {
	// Plan is the stack's plan: the map's fixed part.
	Plan *plan.Plan
	// Source is the running stack's control API.
	Source Source
	// Addr is the console's own loopback address: requests must name it.
	Addr netip.AddrPort
	// Token is the per-start token changes must carry (NewToken).
	Token string
	// Logger; default discard.
	Logger *slog.Logger
}

// Server is one console.
type Server struct {
	opts Options
	hub  *hub
	web  fs.FS
}

// New returns a console; Run follows the stack, Handler serves it.
func New(opts Options) (*Server, error) {
	if !opts.Addr.Addr().IsLoopback() {
		return nil, fmt.Errorf("console on %s: %w", opts.Addr, errLoopback)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	web, err := fs.Sub(webFS, "web")
	if err != nil {
		return nil, err
	}
	epoch := strconv.FormatInt(time.Now().UnixNano(), 36)
	return &Server{opts: opts, hub: newHub(opts.Plan, opts.Source, opts.Logger, epoch), web: web}, nil
}

// Run follows the stack until ctx is done.
func (s *Server) Run(ctx context.Context) { s.hub.run(ctx) }

// Handler serves the page, its stream and its calls; every request must
// name the console in Host.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	files := http.FileServerFS(s.web)
	for _, path := range []string{"/{$}", "/app.js", "/style.css"} {
		mux.Handle("GET "+path, files)
	}
	mux.HandleFunc("GET /events", s.handleEvents)
	mux.HandleFunc("GET /api/reach", s.handleReach)
	mux.HandleFunc("GET /api/exposed", s.handleExposed)
	mux.HandleFunc("POST /api/scale", s.change(s.scale))
	mux.HandleFunc("POST /api/terminate", s.change(s.terminate))
	mux.HandleFunc("POST /api/refresh", s.change(s.refresh))
	mux.HandleFunc("POST /api/protect", s.change(s.protect))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkHost(s.opts.Addr, r.Host); err != nil {
			writeError(w, http.StatusForbidden, err)
			return
		}
		h := w.Header()
		// Nothing the page loads or calls leaves this address; no other
		// site may frame it.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
}

// handleEvents is the page's one stream: what it missed (or everything,
// after a reset), then every message as it comes.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, errors.New("streaming unsupported"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("retry: 1000\n\n"))
	flusher.Flush()
	lastID := r.Header.Get("Last-Event-ID")
	wake, cancel := s.hub.subscribe()
	defer cancel()
	heartbeat := time.NewTicker(15 * time.Second)
	defer heartbeat.Stop()
	for {
		epoch, reset, msgs, head := s.hub.since(lastID)
		if reset {
			if _, err := w.Write(message{kind: KindReset, data: []byte("{}")}.encode(epoch)); err != nil {
				return
			}
		}
		for _, m := range msgs {
			if _, err := w.Write(m.encode(epoch)); err != nil {
				return
			}
		}
		lastID = head
		flusher.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-wake:
		case <-heartbeat.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
		}
	}
}

// handleReach answers ?from=&to=&port=[&proto=] with moat reach's
// verdict, on the live membership.
func (s *Server) handleReach(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	port, err := strconv.Atoi(q.Get("port"))
	if err != nil || port < 0 || port > 65535 {
		writeError(w, http.StatusBadRequest, fmt.Errorf("port %q: want a number from 0 to 65535", q.Get("port")))
		return
	}
	proto := q.Get("proto")
	if proto == "" {
		proto = plan.ProtoTCP
	}
	switch proto {
	case plan.ProtoTCP, plan.ProtoUDP, plan.ProtoICMP:
	default:
		writeError(w, http.StatusBadRequest, fmt.Errorf("protocol %q: use tcp, udp or icmp", proto))
		return
	}
	m, err := s.opts.Source.Membership(r.Context())
	if err != nil {
		m = secgroup.OfflineMembership(s.opts.Plan)
	}
	from, err := secgroup.ResolveEndpoint(s.opts.Plan, m, q.Get("from"))
	if err != nil {
		writeError(w, http.StatusNotFound, err)
		return
	}
	to, err := secgroup.ResolveEndpoint(s.opts.Plan, m, q.Get("to"))
	if err != nil {
		writeError(w, http.StatusNotFound, err)
		return
	}
	writeJSON(w, http.StatusOK, secgroup.Reach(s.opts.Plan, m, from, to, proto, port))
}

// handleExposed answers what the internet can reach (moat reach
// --exposed), on the live membership.
func (s *Server) handleExposed(w http.ResponseWriter, r *http.Request) {
	m, err := s.opts.Source.Membership(r.Context())
	if err != nil {
		m = secgroup.OfflineMembership(s.opts.Plan)
	}
	out := secgroup.Exposed(s.opts.Plan, m)
	if out == nil {
		out = []secgroup.Exposure{}
	}
	writeJSON(w, http.StatusOK, out)
}

// change wraps an action: it must pass checkChange; its JSON body is
// decoded into the action's request.
func (s *Server) change(do func(ctx context.Context, body json.RawMessage) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := checkChange(s.opts.Addr, s.opts.Token, r.Header); err != nil {
			writeError(w, http.StatusForbidden, err)
			return
		}
		var body json.RawMessage
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("read the request: %w", err))
			return
		}
		out, err := do(r.Context(), body)
		if err != nil {
			code := http.StatusBadGateway
			var ce *client.Error
			if errors.As(err, &ce) {
				code = ce.Status
			} else if errors.Is(err, errBadRequest) {
				code = http.StatusBadRequest
			}
			writeError(w, code, err)
			return
		}
		s.hub.poke()
		writeJSON(w, http.StatusOK, out)
	}
}

var errBadRequest = errors.New("bad request")

func decode[T any](body json.RawMessage) (T, error) {
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		return v, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	return v, nil
}

// ScaleRequest is the body of POST /api/scale.
type ScaleRequest struct {
	Group   string `json:"group"`
	Desired int    `json:"desired"`
}

// TerminateRequest is the body of POST /api/terminate.
type TerminateRequest struct {
	ID               string `json:"id"`
	DecrementDesired bool   `json:"decrementDesired"`
}

// RefreshRequest is the body of POST /api/refresh.
type RefreshRequest struct {
	Group string `json:"group"`
}

func (s *Server) scale(ctx context.Context, body json.RawMessage) (any, error) {
	req, err := decode[ScaleRequest](body)
	if err != nil {
		return nil, err
	}
	return api.ScaleRequest{Desired: req.Desired}, s.opts.Source.Scale(ctx, req.Group, req.Desired)
}

func (s *Server) terminate(ctx context.Context, body json.RawMessage) (any, error) {
	req, err := decode[TerminateRequest](body)
	if err != nil {
		return nil, err
	}
	return api.Accepted{Status: "terminating"}, s.opts.Source.Terminate(ctx, req.ID, req.DecrementDesired)
}

func (s *Server) refresh(ctx context.Context, body json.RawMessage) (any, error) {
	req, err := decode[RefreshRequest](body)
	if err != nil {
		return nil, err
	}
	return api.Accepted{Status: "refreshing"}, s.opts.Source.Refresh(ctx, req.Group)
}

// ProtectRequest is the body of POST /api/protect.
type ProtectRequest struct {
	ID                   string `json:"id"`
	ProtectedFromScaleIn bool   `json:"protectedFromScaleIn"`
}

func (s *Server) protect(ctx context.Context, body json.RawMessage) (any, error) {
	req, err := decode[ProtectRequest](body)
	if err != nil {
		return nil, err
	}
	return api.ProtectionRequest{ProtectedFromScaleIn: req.ProtectedFromScaleIn}, s.opts.Source.SetProtection(ctx, req.ID, req.ProtectedFromScaleIn)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, api.Error{Error: err.Error()})
}
