package bench_test

import (
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/bench"
	"github.com/scriphq/scrip/examples/catalogs"
	"github.com/scriphq/scrip/httpapi"
	"github.com/scriphq/scrip/httpapi/auth"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/postgres"
	"github.com/scriphq/scrip/postgres/pgtest"
	"github.com/scriphq/scrip/sqlite"
)

const adminKey = "sk_bench_test_admin_key_0123456789"

type serverStore interface {
	ledger.Store
	auth.KeyStore
	Close() error
}

// serve runs scrip's API on st, as scrip serve does with --rate-limit 0,
// and returns its URL.
func serve(t *testing.T, st serverStore) string {
	t.Helper()
	return serveWith(t, st, nil)
}

// serveWith is serve with the API's configuration changed by set.
func serveWith(t *testing.T, st serverStore, set func(*httpapi.Config)) string {
	t.Helper()
	// The process's CPU time, as scrip serve exports it.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := httpapi.NewMetrics(reg, reg)
	if err != nil {
		t.Fatal(err)
	}
	eng := ledger.NewEngine(st, ledger.Options{Observer: metrics})
	holder, err := httpapi.NewCatalogHolder(catalogs.LoadDemo)
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpapi.Config{Engine: eng, Catalog: holder, Keys: st, AdminKey: adminKey, Metrics: metrics}
	if set != nil {
		set(&cfg)
	}
	api, err := httpapi.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(func() {
		srv.Close()
		eng.Close(context.Background())
		st.Close()
	})
	return srv.URL
}

func TestRunHTTPSQLite(t *testing.T) {
	t.Parallel()
	runHTTP(t, serve(t, serverStores[0].open(t)))
}

func TestRunHTTPPostgres(t *testing.T) {
	db := pgtest.URL(t)
	st, err := postgres.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, st)
	runHTTP(t, url)

	// The server's database, given without a baseline, only shows its CPU
	// time: the run makes no schema in it.
	t.Run("database", func(t *testing.T) {
		rep := run(t, bench.Config{
			HTTP: url, APIKey: adminKey, DatabaseURL: db,
			Workload: bench.WorkloadCharge, Accounts: 20, Concurrency: 8, Ops: 400, Seed: 6,
		})
		if rep.Level != "http" || rep.Store != "postgres" || strings.Contains(rep.Database, "schema") {
			t.Errorf("level %q, store %q, database %q: want http, postgres and no schema of the run's own", rep.Level, rep.Store, rep.Database)
		}
	})
}

// runHTTP runs every workload end to end against the server at url.
func runHTTP(t *testing.T, url string) {
	t.Helper()
	for _, w := range bench.Workloads {
		t.Run(w, func(t *testing.T) {
			cfg := bench.Config{
				HTTP: url, APIKey: adminKey,
				Workload: w, Accounts: 20, Concurrency: 8, Ops: 400, Seed: 4,
			}
			rep := run(t, cfg)
			if rep.Level != "http" {
				t.Errorf("level %q, want http", rep.Level)
			}
			if rep.CPU == nil || rep.CPU.Server == nil {
				t.Errorf("the server's CPU time is not in the report: %+v", rep.CPU)
			}
		})
	}
	t.Run("rate", func(t *testing.T) {
		runWithRate(t, bench.Config{HTTP: url, APIKey: adminKey})
	})
	// Priced charges cost the action's 3 credits, not the 1 credit of an
	// explicit charge: the balances verified after the run show which.
	for _, w := range []string{bench.WorkloadCharge, bench.WorkloadMixed} {
		t.Run(w+"-priced", func(t *testing.T) {
			cfg := bench.Config{
				HTTP: url, APIKey: adminKey, Priced: true,
				Workload: w, Accounts: 20, Concurrency: 8, Ops: 400, Seed: 5,
			}
			if rep := run(t, cfg); !rep.Priced {
				t.Error("the report does not say the charges were priced")
			}
		})
	}
}

// TestRunHTTPRefusesKeys: a key the server does not know, or one without
// the admin scope, stops the run before it creates anything, with what the
// key lacks.
func TestRunHTTPRefusesKeys(t *testing.T) {
	t.Parallel()
	for _, store := range serverStores {
		t.Run(store.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := store.open(t)
			url := serve(t, st)
			charge, secret := auth.NewKey("jobs", []auth.Scope{auth.ScopeCharge}, time.Now())
			if err := st.CreateKey(ctx, charge); err != nil {
				t.Fatal(err)
			}
			for key, want := range map[string]string{
				"sk_wrong": "check the API key: GET /v1/me: invalid API key",
				secret:     `the API key "jobs" has the scopes [charge]; over HTTP the run needs the admin scope`,
			} {
				cfg := bench.Config{HTTP: url, APIKey: key, Workload: bench.WorkloadCharge, Accounts: 2, Concurrency: 1, Ops: 1}
				if _, err := bench.Run(ctx, cfg); err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("key %.8s…: Run = %v, want an error saying %q", key, err, want)
				}
			}
			if ids, err := st.AccountIDs(ctx, "", 10); err != nil || len(ids) != 0 {
				t.Errorf("accounts after the refused runs: %v (%v), want none", ids, err)
			}
		})
	}
}

// serverStores open a store of each kind for a server, SQLite first.
var serverStores = []struct {
	name string
	open func(t *testing.T) serverStore
}{
	{"sqlite", func(t *testing.T) serverStore {
		st, err := sqlite.Open(filepath.Join(t.TempDir(), "scrip.db"))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}},
	{"postgres", func(t *testing.T) serverStore {
		st, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}},
}

// TestRunHTTPRateLimited: against a server that limits the key, the funding
// and the checks after the run wait out the limit and succeed; the timed
// part counts what the limit refused, and the report says where it came
// from.
func TestRunHTTPRateLimited(t *testing.T) {
	t.Parallel()
	for _, store := range serverStores {
		t.Run(store.name, func(t *testing.T) {
			t.Parallel()
			url := serveWith(t, store.open(t), func(c *httpapi.Config) { c.RateLimit, c.RateBurst = 100, 10 })
			// 30 accounts take 60 requests to fund and 30 to check, far
			// past the burst.
			cfg := bench.Config{HTTP: url, APIKey: adminKey, Workload: bench.WorkloadCharge, Accounts: 30, Concurrency: 8, Ops: 200, Seed: 7}
			rep, err := bench.Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !rep.Verify.OK || rep.Verify.Accounts != 30 {
				t.Errorf("verification %+v, want 30 accounts checked and matching", rep.Verify)
			}
			refused := rep.Errors[scrip.ERateLimited]
			if refused == 0 || refused != rep.ErrorCount {
				t.Errorf("errors %v, want only rate_limited ones: 200 charges at 8 clients outrun 100 a second", rep.Errors)
			}
			// The same time divides both counts.
			share := float64(rep.Ops-rep.ErrorCount) / float64(rep.Ops)
			if got := rep.OKOpsPerSec / rep.OpsPerSec; math.Abs(got-share) > 0.001 {
				t.Errorf("%.2f ops/s succeeded of %.2f, a share of %.4f; %d of %d operations succeeded",
					rep.OKOpsPerSec, rep.OpsPerSec, got, rep.Ops-rep.ErrorCount, rep.Ops)
			}
			var text strings.Builder
			rep.WriteText(&text)
			if want := fmt.Sprintf("; %d succeeded: ", rep.Ops-rep.ErrorCount); !strings.Contains(text.String(), want) {
				t.Errorf("the report's operations line lacks %q:\n%s", want, text.String())
			}
			if !strings.Contains(text.String(), "refused by the server's rate limit, not by the ledger: run scrip serve with --rate-limit 0") {
				t.Errorf("the report does not say where the rate_limited errors come from:\n%s", text.String())
			}
		})
	}
}
