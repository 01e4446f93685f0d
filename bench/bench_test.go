package bench_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scriphq/scrip/bench"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/postgres/pgtest"
	"github.com/scriphq/scrip/sqlite"
)

// The tests run tiny loads and check the report and the verification, never
// timings: figures come from `scrip bench` on a quiet machine.

func TestRunSQLite(t *testing.T) {
	t.Parallel()
	for _, w := range bench.Workloads {
		t.Run(w, func(t *testing.T) {
			t.Parallel()
			cfg := bench.Config{
				DatabaseURL: filepath.Join(t.TempDir(), "bench.db"),
				Workload:    w, Accounts: 50, Concurrency: 16, Ops: 2000, Seed: 1, Baseline: true,
			}
			rep := run(t, cfg)
			if rep.Store != "sqlite" || rep.Level != "engine" {
				t.Errorf("store %q level %q, want sqlite engine", rep.Store, rep.Level)
			}
			// The engine's defaults, as the report states them: one writer.
			if rep.Committers != 1 || rep.BatchMax <= 0 {
				t.Errorf("committers %d, batch max %d; want SQLite's one committer and the engine's batch bound", rep.Committers, rep.BatchMax)
			}
		})
	}
}

func TestRunSQLiteHot(t *testing.T) {
	t.Parallel()
	cfg := bench.Config{
		DatabaseURL: filepath.Join(t.TempDir(), "bench.db"),
		Workload:    bench.WorkloadCharge, Accounts: 1000, Hot: 3, Concurrency: 32, Ops: 1000, Seed: 2,
		Committers: 2, BatchMax: 16,
	}
	rep := run(t, cfg)
	if rep.Verify.Accounts != 3 {
		t.Errorf("verified %d accounts, want the 3 hot ones", rep.Verify.Accounts)
	}
	if rep.Batches.Max > 16 {
		t.Errorf("largest batch %d, want at most --batch-max 16", rep.Batches.Max)
	}
	if rep.Committers != 2 || rep.BatchMax != 16 {
		t.Errorf("report says committers %d, batch max %d; want the 2 and 16 asked for", rep.Committers, rep.BatchMax)
	}
	if rep.Baseline != nil {
		t.Error("baseline ran without being asked")
	}
}

func TestRunPostgres(t *testing.T) {
	url := pgtest.URL(t)
	for _, w := range bench.Workloads {
		t.Run(w, func(t *testing.T) {
			cfg := bench.Config{
				DatabaseURL: url, Reuse: true,
				Workload: w, Accounts: 50, Concurrency: 16, Ops: 2000, Seed: 3, Baseline: true,
			}
			rep := run(t, cfg)
			if rep.Store != "postgres" {
				t.Errorf("store %q, want postgres", rep.Store)
			}
			// No --committers: the store's default, as scrip serve runs.
			if rep.Committers != 2 {
				t.Errorf("committers %d, want PostgreSQL's default of 2", rep.Committers)
			}
		})
	}
}

// A run with a rate starts its operations on its schedule, not sooner, on
// either store and over HTTP (runHTTP).
func TestRunWithRateSQLite(t *testing.T) {
	t.Parallel()
	runWithRate(t, bench.Config{DatabaseURL: filepath.Join(t.TempDir(), "bench.db")})
}

func TestRunWithRatePostgres(t *testing.T) {
	runWithRate(t, bench.Config{DatabaseURL: pgtest.URL(t), Reuse: true})
}

func runWithRate(t *testing.T, cfg bench.Config) {
	t.Helper()
	const rate, ops = 500, 300
	cfg.Workload, cfg.Accounts, cfg.Concurrency, cfg.Ops, cfg.Seed, cfg.Rate = bench.WorkloadCharge, 20, 8, ops, 4, rate
	rep := run(t, cfg)
	// The last operation was due (ops-1)/rate seconds in.
	if due := float64(ops-1) / rate; rep.Seconds < due-0.01 {
		t.Errorf("ran %d operations in %.2f s; at %d a second the last was due at %.3f s", ops, rep.Seconds, rate, due)
	}
	if rep.TargetOpsPerSec != rate || rep.LateOps < 0 || rep.LateOps > ops {
		t.Errorf("target_ops_per_sec %.2f, late_ops %d; want the %d asked", rep.TargetOpsPerSec, rep.LateOps, rate)
	}
	var text strings.Builder
	rep.WriteText(&text)
	if want := fmt.Sprintf("schedule     %d ops/s asked", rate); !strings.Contains(text.String(), want) {
		t.Errorf("text report lacks %q:\n%s", want, text.String())
	}
}

// A rate search on either store: its steps share the run's accounts under
// idempotency keys of their own, and the checks after it count what all of
// them spent.
func TestRunFindRateSQLite(t *testing.T) {
	t.Parallel()
	runFindRate(t, bench.Config{DatabaseURL: filepath.Join(t.TempDir(), "bench.db")})
}

func TestRunFindRatePostgres(t *testing.T) {
	runFindRate(t, bench.Config{DatabaseURL: pgtest.URL(t), Reuse: true})
}

func runFindRate(t *testing.T, cfg bench.Config) {
	t.Helper()
	cfg.Workload, cfg.Accounts, cfg.Concurrency, cfg.Duration, cfg.Seed = bench.WorkloadMixed, 20, 8, 200*time.Millisecond, 5
	search := func(bound time.Duration) *bench.Report {
		t.Helper()
		cfg.FindRate = bound
		rep, err := bench.Run(context.Background(), cfg)
		if err != nil {
			t.Fatalf("Run with --find-rate %s: %v", bound, err)
		}
		if rep.RateSearch == nil || len(rep.RateSearch.Steps) < 2 {
			t.Fatalf("--find-rate %s: search %+v, want the closed loop and at least one fixed rate", bound, rep.RateSearch)
		}
		if v := rep.Verify; !v.OK || v.BalancesChecked != cfg.Accounts || v.Transactions <= rep.Ops {
			t.Errorf("--find-rate %s: verify %+v after %d operations in the run found; want all %d balances checked against every step's spending",
				bound, v, rep.Ops, cfg.Accounts)
		}
		return rep
	}

	// A bound no run keeps: every run misses by its p99 and is run again,
	// and the rate halves after each pair, down to 1 a second at most.
	rep := search(time.Microsecond)
	s := rep.RateSearch
	if last := s.Steps[len(s.Steps)-1]; s.MaxOpsPerSec != 0 || len(s.Steps) != 1+10 && (len(s.Steps) > 1+10 || last.TargetOpsPerSec != 1) {
		t.Errorf("found %.0f ops/s in %d steps, want nothing after the closed loop and 10 runs: %+v", s.MaxOpsPerSec, len(s.Steps), s.Steps)
	}
	for i, st := range s.Steps[2:] {
		prev := s.Steps[i+1]
		switch {
		case st.Within:
			t.Errorf("step %+v within a bound of 1 µs", st)
		case st.Again && (i == 0 || st.TargetOpsPerSec != prev.TargetOpsPerSec || prev.Again || !strings.HasPrefix(prev.Miss, "p99 ")):
			t.Errorf("step %+v runs again after %+v", st, prev)
		case !st.Again && st.TargetOpsPerSec >= prev.TargetOpsPerSec:
			t.Errorf("step %+v after one at %.0f ops/s over the bound", st, prev.TargetOpsPerSec)
		}
	}
	var text strings.Builder
	rep.WriteText(&text)
	if want := "rate search  no rate tried kept p99 within 0.001 ms"; !strings.Contains(text.String(), want) {
		t.Errorf("text report lacks %q:\n%s", want, text.String())
	}

	// A bound every run keeps: what the search found is the figures' rate.
	rep = search(time.Minute)
	if s := rep.RateSearch; s.MaxOpsPerSec <= 0 || rep.TargetOpsPerSec != s.MaxOpsPerSec || s.P99MaxMs != 60000 {
		t.Errorf("found %.0f ops/s (bound %.0f ms), figures at %.0f; want a rate within a minute's bound, and its run's figures",
			s.MaxOpsPerSec, s.P99MaxMs, rep.TargetOpsPerSec)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for want, cfg := range map[string]bench.Config{
		`unknown workload "nope"`:                                         {DatabaseURL: "x.db", Workload: "nope", Accounts: 1, Concurrency: 1, Ops: 1},
		"accounts must be from 1 to":                                      {DatabaseURL: "x.db", Workload: bench.WorkloadCharge, Accounts: 0, Concurrency: 1, Ops: 1},
		"hot must be from 0 to":                                           {DatabaseURL: "x.db", Workload: bench.WorkloadCharge, Accounts: 1, Hot: -1, Concurrency: 1, Ops: 1},
		"concurrency must be from 1 to":                                   {DatabaseURL: "x.db", Workload: bench.WorkloadCharge, Accounts: 1, Concurrency: 0, Ops: 1},
		"duration must be from 0 to 1h0m0s, got -1s":                      {DatabaseURL: "x.db", Workload: bench.WorkloadCharge, Accounts: 1, Concurrency: 1, Duration: -time.Second},
		"ops must not be negative":                                        {DatabaseURL: "x.db", Workload: bench.WorkloadCharge, Accounts: 1, Concurrency: 1, Ops: -1},
		"give a duration or a number of operations":                       {DatabaseURL: "x.db", Workload: bench.WorkloadCharge, Accounts: 1, Concurrency: 1},
		"give --database-url (a SQLite file such as bench.db":             {Workload: bench.WorkloadCharge, Accounts: 1, Concurrency: 1, Ops: 1},
		"priced charges are priced by a server's":                         {DatabaseURL: "x.db", Priced: true, Workload: bench.WorkloadCharge, Accounts: 1, Concurrency: 1, Ops: 1},
		"a baseline next to an HTTP run needs":                            {HTTP: "http://127.0.0.1:1", Baseline: true, Workload: bench.WorkloadCharge, Accounts: 1, Concurrency: 1, Ops: 1},
		"the baseline runs against a database, not ov":                    {HTTP: "http://127.0.0.1:1", BaselineOnly: true, Workload: bench.WorkloadCharge, Accounts: 1, Concurrency: 1, Ops: 1},
		"rate must be from 0 to 10000000 operations per second, got -1":   {DatabaseURL: "x.db", Workload: bench.WorkloadCharge, Accounts: 1, Concurrency: 1, Ops: 1, Rate: -1},
		"rate must be from 0 to 10000000 operations per second, got NaN":  {DatabaseURL: "x.db", Workload: bench.WorkloadCharge, Accounts: 1, Concurrency: 1, Ops: 1, Rate: math.NaN()},
		"a fixed rate sets the operations per second that the baseline":   {DatabaseURL: "x.db", Workload: bench.WorkloadCharge, Accounts: 1, Concurrency: 1, Ops: 1, Rate: 10, Baseline: true},
		"the p99 bound of a rate search must be from 0 to 1m0s, got -1ms": {DatabaseURL: "x.db", Workload: bench.WorkloadCharge, Accounts: 1, Concurrency: 1, Duration: time.Second, FindRate: -time.Millisecond},
		"a rate search sets its own rates":                                {DatabaseURL: "x.db", Workload: bench.WorkloadCharge, Accounts: 1, Concurrency: 1, Duration: time.Second, FindRate: time.Millisecond, Rate: 10},
		"a rate search measures scrip alone":                              {DatabaseURL: "x.db", Workload: bench.WorkloadCharge, Accounts: 1, Concurrency: 1, Duration: time.Second, FindRate: time.Millisecond, BaselineOnly: true},
		"a rate search runs each of its steps for the duration":           {DatabaseURL: "x.db", Workload: bench.WorkloadCharge, Accounts: 1, Concurrency: 1, Ops: 10, FindRate: time.Millisecond},
	} {
		_, err := bench.Run(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Run(%+v) = %v, want an error saying %q", cfg, err, want)
		}
	}
}

// run performs a run and checks what every report must say.
func run(t *testing.T, cfg bench.Config) *bench.Report {
	t.Helper()
	rep, err := bench.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.CPUs != runtime.NumCPU() || rep.Procs != runtime.GOMAXPROCS(0) {
		t.Errorf("report says %d CPUs, GOMAXPROCS %d; the process has %d, %d", rep.CPUs, rep.Procs, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	}
	funded := cfg.Accounts
	if cfg.Hot > 0 {
		funded = cfg.Hot
	}
	var text strings.Builder
	rep.WriteText(&text)
	for _, want := range []string{
		fmt.Sprintf("%d CPUs (GOMAXPROCS %d)", rep.CPUs, rep.Procs),
		fmt.Sprintf("funding      %d accounts created and granted credits in", funded),
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	check := func(name string, r *bench.Result) {
		t.Helper()
		if r.Ops != cfg.Ops {
			t.Errorf("%s: %d operations, want %d", name, r.Ops, cfg.Ops)
		}
		if r.ErrorCount != 0 {
			t.Errorf("%s: errors %v", name, r.Errors)
		}
		if r.OKOpsPerSec != r.OpsPerSec {
			t.Errorf("%s: %.2f ops/s succeeded of %.2f with no errors", name, r.OKOpsPerSec, r.OpsPerSec)
		}
		if r.OpsPerSec <= 0 || r.P99Ms <= 0 || r.P50Ms > r.P99Ms || r.P99Ms > r.MaxMs {
			t.Errorf("%s: implausible figures: %.0f ops/s, p50 %.3f ms, p99 %.3f ms, max %.3f ms",
				name, r.OpsPerSec, r.P50Ms, r.P99Ms, r.MaxMs)
		}
		if c := r.CPU; c == nil || c.Seconds <= 0 || c.Cores <= 0 || c.PerOpUs <= 0 {
			t.Errorf("%s: no CPU time in the report: %+v", name, c)
		} else {
			checkMachineCPU(t, name, c)
			if runtime.GOOS == "linux" && c.FaultsPerOp == nil {
				t.Errorf("%s: this process's page faults are not in the report", name)
			}
			if rep.Store == "postgres" && postgresRunsHere(t, cfg.DatabaseURL) {
				if d := c.Database; d == nil || d.Seconds <= 0 || d.PerOpUs <= 0 || d.FaultsPerOp == nil {
					t.Errorf("%s: PostgreSQL runs on this machine, but its CPU time and page faults are not in the report: %+v", name, d)
				}
			}
		}
		if !r.Verify.OK || len(r.Verify.Problems) > 0 {
			t.Errorf("%s: verification failed: %v", name, r.Verify.Problems)
		}
		if f := r.Funding; f == nil || f.Accounts != funded || f.Seconds <= 0 || f.AccountsPerSec <= 0 {
			t.Errorf("%s: funding of %d accounts not in the report: %+v", name, funded, f)
		}
		if want := cfg.Accounts; cfg.Hot > 0 {
			want = cfg.Hot
			if r.Verify.BalancesChecked != want {
				t.Errorf("%s: %d balances checked, want %d", name, r.Verify.BalancesChecked, want)
			}
		} else if r.Verify.BalancesChecked != want {
			t.Errorf("%s: %d balances checked, want %d", name, r.Verify.BalancesChecked, want)
		}
	}
	check("scrip", &rep.Result)
	if rep.Batches == nil || rep.Batches.Count == 0 || rep.Batches.Ops == 0 {
		t.Errorf("batch sizes not recorded: %+v", rep.Batches)
	} else {
		checkPhases(t, rep.Batches, text.String())
	}
	if cfg.Baseline {
		if rep.Baseline == nil {
			t.Fatal("no baseline in the report")
		}
		check("baseline", rep.Baseline)
		if rep.BaselineOpsPerSec <= 0 || rep.BaselineRatio <= 0 {
			t.Errorf("baseline_ops_per_sec %.0f, baseline_ratio %.2f", rep.BaselineOpsPerSec, rep.BaselineRatio)
		}
	}
	if c := rep.CPU; c != nil && c.Machine != nil && !strings.Contains(text.String(), fmt.Sprintf("machine %.2f of %d CPUs busy", c.Machine.Cores, c.Machine.CPUs)) {
		t.Errorf("text report lacks the machine's CPU time:\n%s", text.String())
	}
	if c := rep.CPU; c != nil && c.Server == nil && c.FaultsPerOp != nil && !strings.Contains(text.String(), fmt.Sprintf("%.1f µs and %.2f page faults per operation (this process", c.PerOpUs, *c.FaultsPerOp)) {
		t.Errorf("text report lacks this process's page faults:\n%s", text.String())
	}
	return rep
}

// checkPhases checks that the report gives the steps of the run's batches:
// each began and applied its operations, and they wrote and committed
// (every workload changes balances), in no more time than the batches took.
func checkPhases(t *testing.T, b *bench.BatchStats, text string) {
	t.Helper()
	calls := map[string]int64{}
	var spent float64
	for _, p := range b.Phases {
		if p.Calls <= 0 || p.MeanMs < 0 {
			t.Errorf("step %s: %d calls, %.3f ms each", p.Name, p.Calls, p.MeanMs)
		}
		calls[p.Name] = p.Calls
		spent += p.MeanMs * float64(p.Calls)
	}
	for _, step := range []string{"begin", "apply"} {
		if calls[step] < b.Count {
			t.Errorf("%d batches, but step %s ran %d times: %+v", b.Count, step, calls[step], b.Phases)
		}
	}
	for _, step := range []string{"write", "commit"} {
		if calls[step] == 0 {
			t.Errorf("no step %s in %+v", step, b.Phases)
		}
	}
	// Means are rounded to the microsecond.
	if total := b.MeanMs * float64(b.Count); spent > total*1.01+0.001*float64(len(b.Phases))*float64(b.Count) {
		t.Errorf("the steps took %.3f ms, the batches %.3f ms", spent, total)
	}
	if !strings.Contains(text, "    ms/batch   begin ") || !strings.Contains(text, " commit ") {
		t.Errorf("text report lacks the steps:\n%s", text)
	}
}

// checkMachineCPU checks the machine's share of a run, which Linux tells.
func checkMachineCPU(t *testing.T, name string, c *bench.CPU) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return
	}
	m := c.Machine
	if m == nil {
		t.Errorf("%s: the machine's CPU time is not in the report", name)
		return
	}
	// The process may run on some of the machine's CPUs only.
	if m.CPUs < runtime.NumCPU() || m.Cores <= 0 || m.Cores > float64(m.CPUs) || m.PerOpUs <= 0 {
		t.Errorf("%s: implausible machine figures: %+v", name, m)
	}
	// This process ran on the machine's CPUs: at least its time was busy.
	// The kernel counts the machine's time by sampling each CPU 100 times
	// a second, where this process's is exact, so on a run of a fraction
	// of a second the machine's figure may fall short by chance: allow
	// three standard deviations of that sampling.
	if m.Cores < c.Cores-0.05-3*tickSamplingError(m, c.Seconds/c.Cores) {
		t.Errorf("%s: machine busy %.2f cores, less than this process's %.2f", name, m.Cores, c.Cores)
	}
}

// tickSamplingError is the standard deviation, in cores, of the busy cores
// the kernel's 100 samples a second per CPU give over seconds.
func tickSamplingError(m *bench.MachineCPU, seconds float64) float64 {
	const ticksPerSecond = 100
	samples := seconds * ticksPerSecond * float64(m.CPUs)
	busy := min(max(m.Cores/float64(m.CPUs), 0), 1)
	return math.Sqrt(samples*busy*(1-busy)) / (seconds * ticksPerSecond)
}

// postgresRunsHere reports whether the PostgreSQL server at url runs on
// this machine: the URL names this machine, and a PostgreSQL server
// process runs here.
func postgresRunsHere(t *testing.T, url string) bool {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	switch h := cfg.Host; {
	case h == "localhost", h == "::1", strings.HasPrefix(h, "/"), net.ParseIP(h) != nil && net.ParseIP(h).IsLoopback():
	default:
		return false
	}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		if b, err := os.ReadFile(f); err == nil && strings.HasPrefix(string(b), "postgres:") {
			return true
		}
	}
	return false
}

// TestRunRefusesAFileInUse: an engine-level run on a SQLite file that holds
// something is refused, unless --reuse asks for it, and then leaves what
// was there.
func TestRunRefusesAFileInUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scrip.db")
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	eng := ledger.NewEngine(st, ledger.Options{})
	if _, _, err := eng.CreateAccount(ctx, "acct_kept", nil); err != nil {
		t.Fatal(err)
	}
	eng.Close(ctx)
	st.Close()
	accounts := func() []string {
		t.Helper()
		st, err := sqlite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		ids, err := st.AccountIDs(ctx, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}

	// Enough operations for the report's CPU figures, which run checks:
	// the kernel counts the machine's time in ticks of 10 ms, and a run
	// of 10 operations took 3 ms.
	cfg := bench.Config{DatabaseURL: path, Workload: bench.WorkloadCharge, Accounts: 3, Concurrency: 2, Ops: 1000, Seed: 8}
	if _, err := bench.Run(ctx, cfg); err == nil || !strings.Contains(err.Error(), "exists and is not empty") || !strings.Contains(err.Error(), "--reuse") {
		t.Errorf("Run on a file in use = %v, want it refused, naming --reuse", err)
	}
	if ids := accounts(); len(ids) != 1 {
		t.Errorf("after the refused run the file holds %v, want only acct_kept", ids)
	}

	cfg.Reuse = true
	rep := run(t, cfg)
	if rep.Verify.Accounts != 4 {
		t.Errorf("verified %d accounts, want acct_kept and the run's 3", rep.Verify.Accounts)
	}
	if ids := accounts(); len(ids) != 4 || !slices.Contains(ids, "acct_kept") {
		t.Errorf("after the run with --reuse the file holds %v, want acct_kept and the run's 3", ids)
	}
}
