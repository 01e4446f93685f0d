package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/scriphq/scrip/billing"
	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/event"
	"github.com/scriphq/scrip/httpapi"
	"github.com/scriphq/scrip/httpapi/auth"
	"github.com/scriphq/scrip/internal/rawconn"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/postgres"
	"github.com/scriphq/scrip/stripe"
	"github.com/scriphq/scrip/web"
)

// Bounds of the HTTP server.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	headerBytesMax    = 64 << 10
)

type serveConfig struct {
	addr            string
	databaseURL     string
	catalogFile     string
	logFormat       string
	logLevel        string
	topUpURL        string
	corsOrigins     []string
	dashboard       bool
	adminKey        string
	keyCacheAge     time.Duration
	planCacheAge    time.Duration
	tokenSecret     string
	rateLimit       float64
	rateBurst       int
	holdTTLDefault  time.Duration
	holdTTLMax      time.Duration
	queueMax        int
	batchSizeMax    int
	committers      int
	shutdownTimeout time.Duration
	billingTick     time.Duration
	billingTickMax  int

	stripeSecretKey     string
	stripeWebhookSecret string
	stripeSuccessURL    string
	stripeCancelURL     string
	stripeRefundPolicy  string
	stripeAPIURL        string

	lowBalanceThreshold string
	lowBalanceByPlan    map[string]string
	grantExpiringWithin time.Duration
	eventsSince         string
}

func newServeCmd() *cobra.Command {
	var c serveConfig
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP API",
		Long: `Run the HTTP API on the ledger and the catalog.

With no flags it listens on 127.0.0.1:8080, keeps everything in ./scrip.db
(SQLite) and serves the bundled demo catalog (WZRD Studio). Subscriptions
are renewed by a scheduler in the same process (--billing-tick). Outgoing
events are derived from the journal and delivered to the endpoints
registered with scrip events endpoints. With SCRIP_STRIPE_SECRET_KEY and
SCRIP_STRIPE_WEBHOOK_SECRET set, packs and plans are sold through Stripe
Checkout and Stripe's webhooks are applied at /v1/webhooks/stripe.

SIGHUP reloads the catalog; SIGTERM and SIGINT stop the scheduler, the
event watcher and the dispatcher, then drain in-flight requests and the
write queue.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := resolveConfig(cmd); err != nil {
				return err
			}
			tuneRuntime()
			return serve(cmd, c)
		},
	}
	addServeFlags(cmd, &c)
	return cmd
}

// addServeFlags adds serve's flags to cmd, with their defaults in c.
func addServeFlags(cmd *cobra.Command, c *serveConfig) {
	f := cmd.Flags()
	addConfigFlag(cmd)
	f.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on")
	addStoreFlags(cmd, &c.databaseURL)
	f.StringVar(&c.catalogFile, "catalog", "", "catalog file (default: the bundled WZRD Studio demo catalog)")
	f.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&c.topUpURL, "top-up-url", "", "top_up_url sent with insufficient_credits; {account_id} is replaced (default: the catalog's top_up_url)")
	f.StringSliceVar(&c.corsOrigins, "cors-origins", nil, "origins browsers may call the API from, comma-separated; * for any")
	f.BoolVar(&c.dashboard, "dashboard", true, "serve the dashboard at "+web.Path+" (pages that call this API with the key an operator signs in with)")
	f.DurationVar(&c.keyCacheAge, "key-cache-age", 5*time.Second, "how long a verified secret key is trusted before the store is read again (revocations take this long to apply); 0 reads it on every request")
	f.DurationVar(&c.planCacheAge, "plan-cache-age", 5*time.Second, "how long an account's plan, read to price a request, is used before the store is read again (changes made by another process take this long to apply; this process's own apply at once); 0 reads it on every request")
	f.StringVar(&c.adminKey, "admin-key", "", "a secret accepted as an admin key besides stored keys (prefer the environment: SCRIP_ADMIN_KEY)")
	f.StringVar(&c.tokenSecret, "token-secret", "", "secret that signs account tokens (default: one generated and kept in the store)")
	f.Float64Var(&c.rateLimit, "rate-limit", 1000, "requests per second allowed per key or account token; 0 for no limit")
	f.IntVar(&c.rateBurst, "rate-burst", 2000, "requests allowed in a burst above --rate-limit")
	f.DurationVar(&c.holdTTLDefault, "hold-ttl", 15*time.Minute, "time-to-live of a hold that asks for none")
	f.DurationVar(&c.holdTTLMax, "hold-ttl-max", 24*time.Hour, "longest time-to-live a hold may ask for")
	f.IntVar(&c.queueMax, "queue-max", 16384, "operations that may wait for the committer before writes answer 503")
	f.IntVar(&c.batchSizeMax, "batch-size-max", 512, "operations committed in one transaction at most")
	f.IntVar(&c.committers, "committers", 0, "batches in flight at once; 0 picks 2 on PostgreSQL, 1 on SQLite (one writer)")
	f.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for in-flight requests and the write queue")
	f.DurationVar(&c.billingTick, "billing-tick", time.Second, "how often the billing scheduler renews due subscriptions and expires credits; 0 runs no scheduler in this process")
	f.IntVar(&c.billingTickMax, "billing-tick-max", 100, "subscriptions one billing tick works on at most (a full tick is followed at once by another)")
	f.StringVar(&c.stripeSecretKey, "stripe-secret-key", "", "Stripe secret key; with --stripe-webhook-secret turns payments on (prefer the environment: SCRIP_STRIPE_SECRET_KEY)")
	f.StringVar(&c.stripeWebhookSecret, "stripe-webhook-secret", "", "signing secret of the Stripe webhook endpoint (prefer the environment: SCRIP_STRIPE_WEBHOOK_SECRET)")
	f.StringVar(&c.stripeSuccessURL, "stripe-success-url", "", "where Checkout sends the user after paying when the request names none; {account_id} is replaced")
	f.StringVar(&c.stripeCancelURL, "stripe-cancel-url", "", "where Checkout sends the user who cancels when the request names none; {account_id} is replaced")
	f.StringVar(&c.stripeRefundPolicy, "stripe-refund-policy", string(stripe.RefundRevoke), "what a refunded pack takes back: revoke (its unspent credits) or claw_back (also the spent part, from other credits)")
	f.StringVar(&c.stripeAPIURL, "stripe-api-url", "", "another Stripe API base URL (stripe-mock)")
	f.StringVar(&c.lowBalanceThreshold, "low-balance-threshold", "0", "balance.low fires when available credits fall below this; 0 for none (an account's metadata low_balance_threshold overrides it)")
	f.StringToStringVar(&c.lowBalanceByPlan, "low-balance-thresholds", nil, "balance.low thresholds by plan, plan=credits, comma-separated (pro=100,max=500)")
	f.DurationVar(&c.grantExpiringWithin, "grant-expiring-within", 72*time.Hour, "how long before a grant expires grant.expiring is sent")
	f.StringVar(&c.eventsSince, "events-since", "", "RFC 3339 time from which a database's journal is announced as events when its watcher has no cursor yet (default: its first start; an existing cursor wins)")
}

func serve(cmd *cobra.Command, c serveConfig) error {
	out := cmd.OutOrStdout()
	log, err := newLogger(cmd.ErrOrStderr(), c.logFormat, c.logLevel)
	if err != nil {
		return err
	}
	ctx := context.Background()
	st, storeDesc, err := openStore(ctx, c.databaseURL, postgres.Options{WarmPool: true})
	if err != nil {
		return err
	}
	defer st.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := httpapi.NewMetrics(reg, reg)
	if err != nil {
		return err
	}
	app, err := newServer(ctx, c, st, log, metrics)
	if err != nil {
		return err
	}
	// Close the server last: the engine commits everything acknowledged
	// or queued.
	defer app.close(c.shutdownTimeout)

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	ln = rawconn.Listen(ln)
	srv := &http.Server{
		Handler:           app.api,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    headerBytesMax,
		ErrorLog:          slogErrorLog(log),
	}

	cat := app.catalog.Current()
	fmt.Fprintf(out, "scrip is listening on http://%s\n", ln.Addr())
	fmt.Fprintf(out, "  store:     %s\n", storeDesc)
	if c.catalogFile == "" {
		fmt.Fprintf(out, "  catalog:   %s %s (bundled demo; --catalog FILE to use yours)\n", cat.Name, cat.Version)
	} else {
		fmt.Fprintf(out, "  catalog:   %s %s (%s)\n", cat.Name, cat.Version, c.catalogFile)
	}
	fmt.Fprintf(out, "  API:       http://%s/openapi.json\n", ln.Addr())
	if c.dashboard {
		fmt.Fprintf(out, "  dashboard: http://%s%s (sign in with an API key)\n", ln.Addr(), web.Path)
	}
	if app.payments != nil {
		fmt.Fprintf(out, "  payments:  Stripe Checkout; webhook endpoint http://%s%s\n", ln.Addr(), strings.TrimPrefix(stripe.WebhookPattern, "POST "))
	} else {
		fmt.Fprintf(out, "  payments:  off (checkout answers 503); set %s and %s to sell packs and plans\n", stripe.EnvSecretKey, stripe.EnvWebhookSecret)
	}
	if err := printEventsHint(ctx, out, st); err != nil {
		return err
	}
	if err := printKeyHint(ctx, cmd, st, c); err != nil {
		return err
	}
	if c.billingTick <= 0 {
		fmt.Fprintln(out, "  billing:  no scheduler in this process (--billing-tick 0)")
	}

	// The background work stops before the engine drains (the deferred
	// close above): its work in flight either commits or is redone by the
	// next process, since the schedule, the journal cursor and the outbox
	// are durable.
	stopWork := app.start(ctx)
	defer stopWork()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	for {
		select {
		case err := <-serveErr:
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				old, cur, err := app.catalog.Reload()
				if err != nil {
					log.Error("catalog reload failed; keeping the old catalog", "version", old, "err", err)
				} else {
					log.Info("catalog reloaded", "previous_version", old, "version", cur)
				}
				continue
			}
			log.Info("shutting down: stopping background work, draining requests and the write queue", "signal", sig.String())
			stopWork()
			sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
			err := srv.Shutdown(sctx)
			cancel()
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("shutdown", "err", err)
			}
			return nil
		}
	}
}

// server is what scrip serve runs on an open store: the HTTP API with
// billing, payments (when configured) and the outbox's admin routes, and
// the background work: the billing scheduler, the journal watcher and the
// event dispatcher.
type server struct {
	api        *httpapi.Server
	catalog    *httpapi.CatalogHolder
	engine     *ledger.Engine
	billing    *billing.Service
	payments   *stripe.Service // nil: payments are off
	scheduler  *billing.Scheduler
	watcher    *event.Watcher
	dispatcher *event.Dispatcher
	log        *slog.Logger
}

// newServer wires scrip serve on st. Close it to drain the write queue.
func newServer(ctx context.Context, c serveConfig, st store, log *slog.Logger, metrics *httpapi.Metrics) (*server, error) {
	thresholds, err := c.thresholds()
	if err != nil {
		return nil, err
	}
	var since time.Time
	if c.eventsSince != "" {
		if since, err = time.Parse(time.RFC3339Nano, c.eventsSince); err != nil {
			return nil, fmt.Errorf("--events-since %q: want an RFC 3339 time, like 2026-01-02T15:04:05Z", c.eventsSince)
		}
	}
	pay := c.stripeConfig()
	if !pay.Enabled() && (pay.SecretKey != "" || pay.WebhookSecret != "") {
		return nil, fmt.Errorf("payments need both %s and %s (or --stripe-secret-key and --stripe-webhook-secret); only one is set",
			stripe.EnvSecretKey, stripe.EnvWebhookSecret)
	}
	holder, err := httpapi.NewCatalogHolder(func() (*catalog.Catalog, error) { return loadCatalog(c.catalogFile) })
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	engine := ledger.NewEngine(st, ledger.Options{
		HoldTTLDefault: c.holdTTLDefault, HoldTTLMax: c.holdTTLMax, QueueMax: c.queueMax,
		BatchSizeMax: c.batchSizeMax, Committers: c.committers, Logger: log, Observer: metrics,
	})
	s := &server{catalog: holder, engine: engine, log: log}
	s.billing = billing.New(engine, st, holder.Current, billing.Options{Logger: log, PlanCacheAge: c.planCacheAge})
	thresholds.Plan = s.billing.Plan

	cfg := httpapi.Config{
		Engine: engine, Catalog: holder, Keys: st, Logger: log, Metrics: metrics, Billing: s.billing,
		AdminKey: c.adminKey, KeyCacheAge: c.keyCacheAge, TokenSecret: []byte(c.tokenSecret), TopUpURL: c.topUpURL,
		CORSOrigins: c.corsOrigins, RateLimit: c.rateLimit, RateBurst: c.rateBurst,
		Public: map[string]http.Handler{},
	}
	if pay.Enabled() {
		s.payments, err = stripe.New(stripe.Options{Config: pay, Engine: engine, Catalog: holder.Current,
			Subscriptions: stripe.Billing(s.billing), Store: st.StripeStore(), Outbox: st.Outbox(), Logger: log})
		if err != nil {
			s.close(c.shutdownTimeout)
			return nil, err
		}
		cfg.Payments = s.payments
		cfg.Public[stripe.WebhookPattern] = s.payments.Handler()
	}
	if c.dashboard {
		cfg.Public["GET "+web.Path] = web.Handler()
		cfg.Public["GET /{$}"] = web.Redirect()
	}
	for p, h := range (&event.API{Store: st.Outbox()}).Handlers() {
		cfg.Routes = append(cfg.Routes, httpapi.Route{Pattern: p, Scope: auth.ScopeAdmin, Handle: h})
	}
	if s.api, err = httpapi.New(ctx, cfg); err != nil {
		s.close(c.shutdownTimeout)
		return nil, err
	}

	if c.billingTick > 0 {
		s.scheduler = s.billing.NewScheduler(billing.SchedulerOptions{Every: c.billingTick, ItemsMax: c.billingTickMax,
			Observe: metrics.ObserveTick, Logger: log})
	}
	s.watcher = event.NewWatcher(st.Outbox(), engine, event.WatcherOptions{Thresholds: thresholds,
		ExpiringWithin: c.grantExpiringWithin, Since: since, Logger: log})
	s.dispatcher = event.NewDispatcher(st.Outbox(), event.DispatcherOptions{Logger: log})
	return s, nil
}

// start runs the background work until ctx ends or the returned stop is
// called; stop waits for it to finish and may be called more than once.
func (s *server) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	run := func(name string, fn func(context.Context) error) {
		wg.Go(func() {
			if err := fn(ctx); err != nil {
				s.log.Error("background work stopped", "work", name, "err", err)
			}
		})
	}
	if s.scheduler != nil {
		run("billing scheduler", s.scheduler.Run)
	}
	run("event watcher", s.watcher.Run)
	run("event dispatcher", s.dispatcher.Run)
	return func() {
		cancel()
		wg.Wait()
	}
}

// close drains the engine's write queue, waiting at most timeout.
func (s *server) close(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.engine.Close(ctx); err != nil {
		s.log.Error("draining the write queue", "err", err)
	}
}

// printEventsHint says where outgoing events go.
func printEventsHint(ctx context.Context, out io.Writer, st store) error {
	eps, err := st.Outbox().Endpoints(ctx)
	if err != nil {
		return err
	}
	n := 0
	for _, ep := range eps {
		if !ep.Disabled {
			n++
		}
	}
	if n == 0 {
		fmt.Fprintln(out, "  events:    recorded, no endpoint to deliver to (scrip events endpoints add --url URL)")
		return nil
	}
	fmt.Fprintf(out, "  events:    delivered to %d endpoint(s) (scrip events endpoints list)\n", n)
	return nil
}

// stripeConfig is the Stripe side of the configuration.
func (c *serveConfig) stripeConfig() stripe.Config {
	return stripe.Config{SecretKey: c.stripeSecretKey, WebhookSecret: c.stripeWebhookSecret,
		SuccessURL: c.stripeSuccessURL, CancelURL: c.stripeCancelURL, APIURL: c.stripeAPIURL,
		RefundPolicy: stripe.RefundPolicy(c.stripeRefundPolicy)}
}

// thresholds reads the balance.low thresholds; plan thresholds follow the
// account's plan (billing's Plan is set by newServer).
func (c *serveConfig) thresholds() (event.Thresholds, error) {
	var t event.Thresholds
	def, err := credit.Parse(c.lowBalanceThreshold)
	if err != nil || def < 0 {
		return t, fmt.Errorf("--low-balance-threshold %q: want credits, 0 or more", c.lowBalanceThreshold)
	}
	t.Default = def
	for plan, v := range c.lowBalanceByPlan {
		amt, err := credit.Parse(v)
		if err != nil || amt < 0 {
			return t, fmt.Errorf("--low-balance-thresholds %s=%q: want credits, 0 or more", plan, v)
		}
		if t.ByPlan == nil {
			t.ByPlan = map[string]credit.Amount{}
		}
		t.ByPlan[plan] = amt
	}
	return t, nil
}

// printKeyHint tells the operator how to get an admin key when there is none.
func printKeyHint(ctx context.Context, cmd *cobra.Command, st store, c serveConfig) error {
	if c.adminKey != "" {
		fmt.Fprintln(cmd.OutOrStdout(), "  keys:      SCRIP_ADMIN_KEY is accepted as an admin key")
		return nil
	}
	keys, err := st.Keys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if !k.Revoked() {
			return nil
		}
	}
	db := ""
	if c.databaseURL != "" {
		db = " --database-url '" + redactURL(c.databaseURL) + "'"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "  keys:      none yet; create an admin key with\n               scrip keys create --scope admin --name ops%s\n             (or set SCRIP_ADMIN_KEY before starting)\n", db)
	return nil
}

// slogErrorLog routes net/http's own errors into the structured log.
func slogErrorLog(l *slog.Logger) *stdlog.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelWarn)
}
