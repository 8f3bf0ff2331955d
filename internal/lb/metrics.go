package lb

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/moat-dev/moat/internal/targetgroup"
)

// Metrics is the engine's Prometheus registry (names moat_*). Request
// counts and open connections are read from the engine's own counts
// (stats.go) when scraped, not counted a second time.
type Metrics struct {
	reg     *prometheus.Registry
	latency *prometheus.HistogramVec
	retries *prometheus.CounterVec
	ejects  *prometheus.CounterVec
	// activeConns are the open client connections.
	activeConns atomic.Int64

	mu     sync.Mutex
	groups map[string]*groupMetrics
}

type groupMetrics struct {
	name      string
	latency   prometheus.Observer
	retries   prometheus.Counter
	ejections prometheus.Counter
}

func newMetrics(e *Engine) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), groups: map[string]*groupMetrics{}}
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "moat_lb_request_duration_seconds",
		Help: "Time from request head to response relayed, by target group.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)},
		[]string{"target_group"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "moat_lb_retries_total",
		Help: "Requests retried on another target after a connection failure."}, []string{"target_group"})
	m.ejects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "moat_lb_ejections_total",
		Help: "Targets ejected passively after a failed connection."}, []string{"target_group"})
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "moat_lb_active_connections", Help: "Open client connections."},
		func() float64 { return float64(m.activeConns.Load()) })
	m.reg.MustRegister(m.latency, m.retries, m.ejects, active, &healthCollector{e: e}, &requestsCollector{e: e})
	return m
}

func (m *Metrics) group(name string) *groupMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if g := m.groups[name]; g != nil {
		return g
	}
	g := &groupMetrics{name: name, latency: m.latency.WithLabelValues(name),
		retries: m.retries.WithLabelValues(name), ejections: m.ejects.WithLabelValues(name)}
	m.groups[name] = g
	return g
}

// observe records a forwarded request's duration (its response is
// counted in a cell).
func (m *Metrics) observe(g *group, start time.Time) {
	g.m.latency.Observe(time.Since(start).Seconds())
}

// requestsCollector reports moat_lb_requests_total from the cells at
// scrape time: every response of a target group, whoever made it.
type requestsCollector struct{ e *Engine }

var requestsDesc = prometheus.NewDesc("moat_lb_requests_total",
	"Requests forwarded, by target group and HTTP status code.", []string{"target_group", "code"}, nil)

func (r *requestsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- requestsDesc }

func (r *requestsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, g := range r.e.sortedGroups() {
		var t totals
		g.none.addTo(&t)
		g.mu.Lock()
		for _, p := range g.pools {
			p.cell.addTo(&t)
		}
		for i := range t.target {
			t.target[i] += g.gone.target[i]
			t.elb[i] += g.gone.elb[i]
		}
		g.mu.Unlock()
		for code := range t.target {
			if n := t.target[code] + t.elb[code]; n > 0 {
				ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(n), g.name, strconv.Itoa(code))
			}
		}
	}
}

// Registry returns the Prometheus registry with every moat_lb_* metric.
func (e *Engine) Registry() *prometheus.Registry { return e.metrics.reg }

// MetricsHandler serves the registry in the Prometheus text format.
func (e *Engine) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(e.metrics.reg, promhttp.HandlerOpts{})
}

// ServeMetrics serves /metrics on ln until ln is closed.
func (e *Engine) ServeMetrics(ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", e.MetricsHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	err := srv.Serve(ln)
	if err == http.ErrServerClosed {
		return nil
	}
	return err
}

// healthCollector reports target health at scrape time.
type healthCollector struct{ e *Engine }

var healthDesc = prometheus.NewDesc("moat_lb_target_healthy",
	"1 when the target is healthy, by target group, target and state.", []string{"target_group", "target", "state"}, nil)

func (h *healthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- healthDesc }

func (h *healthCollector) Collect(ch chan<- prometheus.Metric) {
	h.e.mu.Lock()
	gs := make([]*group, 0, len(h.e.groups))
	for _, g := range h.e.groups {
		gs = append(gs, g)
	}
	h.e.mu.Unlock()
	for _, g := range gs {
		for _, t := range g.tg.Targets() {
			v := 0.0
			if t.State == targetgroup.StateHealthy {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(healthDesc, prometheus.GaugeValue, v, g.name, t.Addr, string(t.State))
		}
	}
}
