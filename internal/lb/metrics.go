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

// Metrics is the engine's Prometheus registry (names moat_*).
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	retries  *prometheus.CounterVec
	ejects   *prometheus.CounterVec
	active   prometheus.Gauge

	mu     sync.Mutex
	groups map[string]*groupMetrics
}

type groupMetrics struct {
	name      string
	m         *Metrics
	latency   prometheus.Observer
	retries   prometheus.Counter
	ejections prometheus.Counter
	codes     [600]atomic.Pointer[prometheus.Counter]
}

func newMetrics(e *Engine) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), groups: map[string]*groupMetrics{}}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "moat_lb_requests_total",
		Help: "Requests forwarded, by target group and HTTP status code."}, []string{"target_group", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "moat_lb_request_duration_seconds",
		Help: "Time from request head to response relayed, by target group.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)},
		[]string{"target_group"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "moat_lb_retries_total",
		Help: "Requests retried on another target after a connection failure."}, []string{"target_group"})
	m.ejects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "moat_lb_ejections_total",
		Help: "Targets ejected passively after a failed connection."}, []string{"target_group"})
	m.active = prometheus.NewGauge(prometheus.GaugeOpts{Name: "moat_lb_active_connections", Help: "Open client connections."})
	m.reg.MustRegister(m.requests, m.latency, m.retries, m.ejects, m.active, &healthCollector{e: e})
	return m
}

func (m *Metrics) group(name string) *groupMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if g := m.groups[name]; g != nil {
		return g
	}
	g := &groupMetrics{name: name, m: m, latency: m.latency.WithLabelValues(name),
		retries: m.retries.WithLabelValues(name), ejections: m.ejects.WithLabelValues(name)}
	m.groups[name] = g
	return g
}

func (m *Metrics) observe(g *group, code int, start time.Time) {
	gm := g.m
	if code < 0 || code >= len(gm.codes) {
		code = 0
	}
	cp := gm.codes[code].Load()
	if cp == nil {
		c := m.requests.WithLabelValues(gm.name, strconv.Itoa(code))
		cp = &c
		gm.codes[code].Store(cp)
	}
	(*cp).Inc()
	gm.latency.Observe(time.Since(start).Seconds())
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
