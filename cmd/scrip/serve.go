package main

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/scriphq/scrip/billing"
	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/httpapi"
	"github.com/scriphq/scrip/ledger"
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
	adminKey        string
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
}

func newServeCmd() *cobra.Command {
	var c serveConfig
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP API",
		Long: `Run the HTTP API on the ledger and the catalog.

With no flags it listens on 127.0.0.1:8080, keeps everything in ./scrip.db
(SQLite) and serves the bundled demo catalog (WZRD Studio). Subscriptions
are renewed by a scheduler in the same process (--billing-tick). SIGHUP
reloads the catalog; SIGTERM and SIGINT stop the scheduler, then drain
in-flight requests and the write queue.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := resolveConfig(cmd); err != nil {
				return err
			}
			return serve(cmd, c)
		},
	}
	f := cmd.Flags()
	addConfigFlag(cmd)
	f.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on")
	addStoreFlags(cmd, &c.databaseURL)
	f.StringVar(&c.catalogFile, "catalog", "", "catalog file (default: the bundled WZRD Studio demo catalog)")
	f.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&c.topUpURL, "top-up-url", "", "top_up_url sent with insufficient_credits; {account_id} is replaced (default: the catalog's top_up_url)")
	f.StringSliceVar(&c.corsOrigins, "cors-origins", nil, "origins browsers may call the API from, comma-separated; * for any")
	f.StringVar(&c.adminKey, "admin-key", "", "a secret accepted as an admin key besides stored keys (prefer the environment: SCRIP_ADMIN_KEY)")
	f.StringVar(&c.tokenSecret, "token-secret", "", "secret that signs account tokens (default: one generated and kept in the store)")
	f.Float64Var(&c.rateLimit, "rate-limit", 100, "requests per second allowed per key or account token; 0 for no limit")
	f.IntVar(&c.rateBurst, "rate-burst", 200, "requests allowed in a burst above --rate-limit")
	f.DurationVar(&c.holdTTLDefault, "hold-ttl", 15*time.Minute, "time-to-live of a hold that asks for none")
	f.DurationVar(&c.holdTTLMax, "hold-ttl-max", 24*time.Hour, "longest time-to-live a hold may ask for")
	f.IntVar(&c.queueMax, "queue-max", 16384, "operations that may wait for the committer before writes answer 503")
	f.IntVar(&c.batchSizeMax, "batch-size-max", 512, "operations committed in one transaction at most")
	f.IntVar(&c.committers, "committers", 1, "batches in flight at once (more helps on PostgreSQL)")
	f.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for in-flight requests and the write queue")
	f.DurationVar(&c.billingTick, "billing-tick", time.Second, "how often the billing scheduler renews due subscriptions and expires credits; 0 runs no scheduler in this process")
	f.IntVar(&c.billingTickMax, "billing-tick-max", 100, "subscriptions one billing tick works on at most (a full tick is followed at once by another)")
	return cmd
}

func serve(cmd *cobra.Command, c serveConfig) error {
	out := cmd.OutOrStdout()
	log, err := newLogger(cmd.ErrOrStderr(), c.logFormat, c.logLevel)
	if err != nil {
		return err
	}
	ctx := context.Background()
	st, storeDesc, err := openStore(ctx, c.databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()

	bundled := c.catalogFile == ""
	holder, err := httpapi.NewCatalogHolder(func() (*catalog.Catalog, error) { return loadCatalog(c.catalogFile) })
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := httpapi.NewMetrics(reg, reg)
	if err != nil {
		return err
	}
	engine := ledger.NewEngine(st, ledger.Options{
		HoldTTLDefault: c.holdTTLDefault, HoldTTLMax: c.holdTTLMax, QueueMax: c.queueMax,
		BatchSizeMax: c.batchSizeMax, Committers: c.committers, Logger: log, Observer: metrics,
	})
	// Stop the engine last: it commits everything acknowledged or queued.
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
		defer cancel()
		if err := engine.Close(dctx); err != nil {
			log.Error("draining the write queue", "err", err)
		}
	}()

	svc := billing.New(engine, st, holder.Current, billing.Options{Logger: log})
	api, err := httpapi.New(ctx, httpapi.Config{
		Engine: engine, Catalog: holder, Keys: st, Logger: log, Metrics: metrics, Billing: svc,
		AdminKey: c.adminKey, TokenSecret: []byte(c.tokenSecret), TopUpURL: c.topUpURL,
		CORSOrigins: c.corsOrigins, RateLimit: c.rateLimit, RateBurst: c.rateBurst,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    headerBytesMax,
		ErrorLog:          slogErrorLog(log),
	}

	cat := holder.Current()
	fmt.Fprintf(out, "scrip is listening on http://%s\n", ln.Addr())
	fmt.Fprintf(out, "  store:   %s\n", storeDesc)
	if bundled {
		fmt.Fprintf(out, "  catalog: %s %s (bundled demo; --catalog FILE to use yours)\n", cat.Name, cat.Version)
	} else {
		fmt.Fprintf(out, "  catalog: %s %s (%s)\n", cat.Name, cat.Version, c.catalogFile)
	}
	fmt.Fprintf(out, "  API:     http://%s/openapi.json\n", ln.Addr())
	if err := printKeyHint(ctx, cmd, st, c); err != nil {
		return err
	}

	// The scheduler stops before the engine drains (the deferred Close
	// above): its work in flight either commits or is redone by the next
	// process, since the schedule is durable.
	schedCtx, stopSched := context.WithCancel(ctx)
	schedDone := make(chan struct{})
	if c.billingTick > 0 {
		sched := svc.NewScheduler(billing.SchedulerOptions{Every: c.billingTick, ItemsMax: c.billingTickMax,
			Observe: metrics.ObserveTick, Logger: log})
		go func() {
			defer close(schedDone)
			sched.Run(schedCtx)
		}()
	} else {
		close(schedDone)
		fmt.Fprintln(out, "  billing: no scheduler in this process (--billing-tick 0)")
	}
	defer func() {
		stopSched()
		<-schedDone
	}()

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
				old, cur, err := holder.Reload()
				if err != nil {
					log.Error("catalog reload failed; keeping the old catalog", "version", old, "err", err)
				} else {
					log.Info("catalog reloaded", "previous_version", old, "version", cur)
				}
				continue
			}
			log.Info("shutting down: stopping the billing scheduler, draining requests and the write queue", "signal", sig.String())
			stopSched()
			<-schedDone
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

// printKeyHint tells the operator how to get an admin key when there is none.
func printKeyHint(ctx context.Context, cmd *cobra.Command, st store, c serveConfig) error {
	if c.adminKey != "" {
		fmt.Fprintln(cmd.OutOrStdout(), "  keys:    SCRIP_ADMIN_KEY is accepted as an admin key")
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
	fmt.Fprintf(cmd.OutOrStdout(), "  keys:    none yet; create an admin key with\n             scrip keys create --scope admin --name ops%s\n           (or set SCRIP_ADMIN_KEY before starting)\n", db)
	return nil
}

// slogErrorLog routes net/http's own errors into the structured log.
func slogErrorLog(l *slog.Logger) *stdlog.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelWarn)
}
