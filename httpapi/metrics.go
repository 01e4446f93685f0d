package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/scriphq/scrip/billing"
	"github.com/scriphq/scrip/ledger"
)

// Metrics are the server's Prometheus series. It is also the ledger's
// Observer (a StepObserver), for operations, batches and their steps: build it first, pass it to
// ledger.NewEngine in Options.Observer and to the server in Config.Metrics.
// ObserveTick takes the billing scheduler's ticks
// (billing.SchedulerOptions.Observe).
type Metrics struct {
	reg       prometheus.Registerer
	handler   http.Handler
	latency   *prometheus.HistogramVec
	ops       *prometheus.CounterVec
	batch     prometheus.Histogram
	batchTime prometheus.Histogram
	stepTime  map[ledger.Step]prometheus.Observer
	holdsOpen prometheus.Gauge

	renewals   *prometheus.CounterVec
	expired    prometheus.Counter
	due        prometheus.Gauge
	tickTime   prometheus.Histogram
	tickErrors prometheus.Counter
}

// NewMetrics registers scrip's series with reg and serves gat at /metrics.
// With both nil it uses a fresh registry.
func NewMetrics(reg prometheus.Registerer, gat prometheus.Gatherer) (*Metrics, error) {
	if reg == nil || gat == nil {
		r := prometheus.NewRegistry()
		reg, gat = r, r
	}
	m := &Metrics{
		reg:     reg,
		handler: promhttp.HandlerFor(gat, promhttp.HandlerOpts{}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scrip_http_request_duration_seconds",
			Help:    "HTTP request latency by route and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "code"}),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scrip_operations_total",
			Help: "Ledger operations by type and result (ok or the error code).",
		}, []string{"type", "result"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scrip_batch_size",
			Help:    "Operations per committed batch.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
		}),
		batchTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scrip_batch_duration_seconds",
			Help:    "Time from a batch's first load to its commit.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		holdsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scrip_holds_open",
			Help: "Holds opened minus holds settled by this process since it started.",
		}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scrip_billing_renewals_total",
			Help: "Subscriptions the billing scheduler worked on, by result (ok, or failed and put off).",
		}, []string{"result"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scrip_billing_expired_total",
			Help: "Grants and holds the billing scheduler expired.",
		}),
		due: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scrip_billing_due",
			Help: "Subscriptions with scheduled work due after the last tick: the backlog.",
		}),
		tickTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scrip_billing_tick_duration_seconds",
			Help:    "Time one billing scheduler tick took.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		tickErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scrip_billing_tick_errors_total",
			Help: "Billing scheduler ticks that stopped on an error (retried on the next tick).",
		}),
	}
	steps := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "scrip_batch_step_duration_seconds",
		Help: "Time each step of a batch took: begin, load (or lock_accounts, load_holds, load_charges, load_grants, " +
			"load_keyed), apply (in memory), write, commit, rollback.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"step"})
	m.stepTime = make(map[ledger.Step]prometheus.Observer, len(ledger.Steps))
	for _, s := range ledger.Steps {
		// Every step's series is there from the start, at zero.
		m.stepTime[s] = steps.WithLabelValues(string(s))
	}
	for _, c := range []prometheus.Collector{m.latency, m.ops, m.batch, m.batchTime, steps, m.holdsOpen,
		m.renewals, m.expired, m.due, m.tickTime, m.tickErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// watchEngine adds the engine's queue depth.
func (m *Metrics) watchEngine(e *ledger.Engine) error {
	return m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "scrip_queue_depth",
		Help: "Operations waiting for the ledger's committer.",
	}, func() float64 { return float64(e.QueueDepth()) }))
}

func (m *Metrics) request(route string, status int, d time.Duration) {
	m.latency.WithLabelValues(route, strconv.Itoa(status)).Observe(d.Seconds())
}

// ObserveBatch implements ledger.Observer.
func (m *Metrics) ObserveBatch(size int, elapsed time.Duration, err error) {
	m.batch.Observe(float64(size))
	m.batchTime.Observe(elapsed.Seconds())
}

var _ ledger.StepObserver = (*Metrics)(nil)

// ObserveStep implements ledger.StepObserver.
func (m *Metrics) ObserveStep(step ledger.Step, elapsed time.Duration) {
	if o, ok := m.stepTime[step]; ok {
		o.Observe(elapsed.Seconds())
	}
}

// ObserveOp implements ledger.Observer.
func (m *Metrics) ObserveOp(op ledger.TxType, code string) {
	result := code
	if result == "" {
		result = "ok"
		switch op {
		case ledger.TxHold:
			m.holdsOpen.Inc()
		case ledger.TxCapture, ledger.TxRelease, ledger.TxHoldExpiry:
			m.holdsOpen.Dec()
		}
	}
	m.ops.WithLabelValues(string(op), result).Inc()
}

// ObserveTick records one billing scheduler tick; pass it as
// billing.SchedulerOptions.Observe.
func (m *Metrics) ObserveTick(st billing.TickStats) {
	m.renewals.WithLabelValues("ok").Add(float64(st.Processed - st.Failed))
	m.renewals.WithLabelValues("failed").Add(float64(st.Failed))
	m.expired.Add(float64(st.Expired))
	m.tickTime.Observe(st.Elapsed.Seconds())
	if st.Err != nil {
		m.tickErrors.Inc()
		return
	}
	// A tick that failed did not count the backlog.
	m.due.Set(float64(st.Due))
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	s.metrics.handler.ServeHTTP(w, r)
	return nil
}
