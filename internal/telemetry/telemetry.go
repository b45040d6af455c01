// Package telemetry holds Lethe's Prometheus metrics and its zap logger
// set-up. Metrics live in a registry owned by the process (no global
// registry); their labels are connector names and statuses, never anything
// about a person.
package telemetry

import (
	"context"
	"io"
	"time"

	"github.com/lethe-dev/lethe/internal/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Metrics are the process's metrics. A nil *Metrics records nothing.
type Metrics struct {
	Registry        *prometheus.Registry
	requestsFiled   *prometheus.CounterVec
	taskResults     *prometheus.CounterVec
	taskRetries     *prometheus.CounterVec
	connectorCalls  *prometheus.HistogramVec
	rateLimitWait   *prometheus.CounterVec
	certificates    prometheus.Counter
	outboxPublished prometheus.Counter
	taskLatency     *prometheus.HistogramVec
	loginFailures   *prometheus.CounterVec
	rechecks        *prometheus.CounterVec
	resurrections   *prometheus.CounterVec
}

// NewMetrics registers Lethe's metrics, plus gauges read from st at scrape
// time (requests by status, overdue requests, outbox backlog).
func NewMetrics(st store.Store) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		requestsFiled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lethe_requests_filed_total", Help: "Erasure requests filed, by jurisdiction and source.",
		}, []string{"jurisdiction", "source"}),
		taskResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lethe_task_results_total", Help: "Connector results applied, by connector and status.",
		}, []string{"connector", "status"}),
		taskRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lethe_task_retries_total", Help: "Task attempts scheduled after a failure, by connector.",
		}, []string{"connector"}),
		connectorCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lethe_connector_call_seconds", Help: "Duration of connector Erase/Poll/Verify calls.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 10),
		}, []string{"connector", "call", "outcome"}),
		rateLimitWait: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lethe_connector_rate_limit_wait_seconds_total", Help: "Time workers waited for a connector's rate limit or Retry-After.",
		}, []string{"connector"}),
		certificates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lethe_certificates_issued_total", Help: "Erasure certificates issued.",
		}),
		outboxPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lethe_outbox_published_total", Help: "Outbox messages published to JetStream.",
		}),
		taskLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lethe_task_completion_seconds", Help: "Time from a task's creation to its final state.",
			Buckets: prometheus.ExponentialBuckets(0.05, 4, 12),
		}, []string{"connector", "status"}),
		loginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lethe_login_failures_total",
			Help: "Console sign-ins refused, by reason: wrong_password, unknown_name, or throttled (too many failures from the client).",
		}, []string{"reason"}),
		rechecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lethe_rechecks_total",
			Help: "Re-checks of completed requests recorded, by connector and outcome: clean, found (the person is back), not_checked.",
		}, []string{"connector", "outcome"}),
		resurrections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lethe_resurrections_total",
			Help: "People a re-check or a suppression sweep found again in a system they were erased from, by connector.",
		}, []string{"connector"}),
	}
	reg.MustRegister(m.requestsFiled, m.taskResults, m.taskRetries, m.connectorCalls, m.rateLimitWait,
		m.certificates, m.outboxPublished, m.taskLatency, m.loginFailures, m.rechecks, m.resurrections,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if st != nil {
		reg.MustRegister(&storeCollector{st: st})
	}
	return m
}

// RequestFiled counts a new request.
func (m *Metrics) RequestFiled(jurisdiction, source string) {
	if m != nil {
		m.requestsFiled.WithLabelValues(jurisdiction, source).Inc()
	}
}

// TaskResult counts an applied connector result; final results with the
// task's creation time also feed the completion latency.
func (m *Metrics) TaskResult(connector, status string, created time.Time, final bool) {
	if m == nil {
		return
	}
	m.taskResults.WithLabelValues(connector, status).Inc()
	if final && !created.IsZero() {
		m.taskLatency.WithLabelValues(connector, status).Observe(time.Since(created).Seconds())
	}
}

// Recheck counts a recorded re-check; outcome "found" also counts a
// resurrection.
func (m *Metrics) Recheck(connector, outcome string) {
	if m == nil {
		return
	}
	m.rechecks.WithLabelValues(connector, outcome).Inc()
	if outcome == "found" {
		m.resurrections.WithLabelValues(connector).Inc()
	}
}

// Resurrection counts a person found again by a suppression sweep.
func (m *Metrics) Resurrection(connector string) {
	if m != nil {
		m.resurrections.WithLabelValues(connector).Inc()
	}
}

// TaskRetry counts a retry.
func (m *Metrics) TaskRetry(connector string) {
	if m != nil {
		m.taskRetries.WithLabelValues(connector).Inc()
	}
}

// ConnectorCall observes one connector call.
func (m *Metrics) ConnectorCall(connector, call, outcome string, d time.Duration) {
	if m != nil {
		m.connectorCalls.WithLabelValues(connector, call, outcome).Observe(d.Seconds())
	}
}

// RateLimitWait adds time spent waiting for a connector's rate limit.
func (m *Metrics) RateLimitWait(connector string, d time.Duration) {
	if m != nil && d > 0 {
		m.rateLimitWait.WithLabelValues(connector).Add(d.Seconds())
	}
}

// LoginFailure counts a refused console sign-in. reason is one of
// wrong_password, unknown_name and throttled; no name or address is a
// label.
func (m *Metrics) LoginFailure(reason string) {
	if m != nil {
		m.loginFailures.WithLabelValues(reason).Inc()
	}
}

// CertificateIssued counts a certificate.
func (m *Metrics) CertificateIssued() {
	if m != nil {
		m.certificates.Inc()
	}
}

// OutboxPublished counts published outbox messages.
func (m *Metrics) OutboxPublished(n int) {
	if m != nil {
		m.outboxPublished.Add(float64(n))
	}
}

var (
	requestsDesc = prometheus.NewDesc("lethe_requests", "Erasure requests by status.", []string{"status"}, nil)
	overdueDesc  = prometheus.NewDesc("lethe_requests_overdue", "Requests past their legal deadline and not final.", nil, nil)
	outboxDesc   = prometheus.NewDesc("lethe_outbox_pending", "Outbox messages not yet published.", nil, nil)
)

// storeCollector reads gauges from the store at scrape time, so every
// replica reports the same truth.
type storeCollector struct{ st store.Store }

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	ch <- overdueDesc
	ch <- outboxDesc
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.st.Stats(ctx, time.Now())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(requestsDesc, err)
		return
	}
	for status, n := range st.Requests {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.GaugeValue, float64(n), string(status))
	}
	ch <- prometheus.MustNewConstMetric(overdueDesc, prometheus.GaugeValue, float64(st.Overdue))
	ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(st.OutboxPending))
}

var queueDesc = prometheus.NewDesc("lethe_tasks_pending",
	"Task messages in NATS per connector instance, waiting for a worker or being worked on: the queue depth to scale workers on.",
	[]string{"connector"}, nil)

// QueueDepth counts task messages per connector instance.
type QueueDepth func(ctx context.Context) (map[string]uint64, error)

// WatchQueues exports lethe_tasks_pending for the named connector
// instances, read through depth at scrape time (0 when none are queued).
func (m *Metrics) WatchQueues(connectors []string, depth QueueDepth) {
	m.Registry.MustRegister(&perConnector[uint64]{desc: queueDesc, names: connectors, read: depth, zero: true})
}

var uncoveredDesc = prometheus.NewDesc("lethe_uncovered_columns",
	"Places (columns, key patterns) holding personal data that no erasure rule of the connector instance covers, as its last discovery found.",
	[]string{"connector"}, nil)

// WatchCoverage exports lethe_uncovered_columns for the named connector
// instances, read through uncovered at scrape time. An instance without a
// discovery report has no sample: zero would claim a check never made.
func (m *Metrics) WatchCoverage(connectors []string, uncovered func(ctx context.Context) (map[string]int, error)) {
	m.Registry.MustRegister(&perConnector[int]{desc: uncoveredDesc, names: connectors, read: uncovered})
}

// perConnector is a gauge per connector instance read at scrape time;
// zero: instances missing from what read returns count 0 (else they are
// left out).
type perConnector[N int | uint64] struct {
	desc  *prometheus.Desc
	names []string
	read  func(ctx context.Context) (map[string]N, error)
	zero  bool
}

func (c *perConnector[N]) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *perConnector[N]) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	n, err := c.read(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, name := range c.names {
		if v, ok := n[name]; ok || c.zero {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(v), name)
		}
	}
}

// NewLogger builds a zap logger writing to w at level ("debug", "info",
// "warn", "error") in format "json" or "console".
func NewLogger(w io.Writer, level, format string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, err
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	var encoder zapcore.Encoder
	if format == "console" {
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
		encoder = zapcore.NewConsoleEncoder(enc)
	} else {
		encoder = zapcore.NewJSONEncoder(enc)
	}
	core := zapcore.NewCore(encoder, zapcore.AddSync(w), lvl)
	return zap.New(core), nil
}
