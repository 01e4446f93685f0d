package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/scriphq/scrip/bench"
)

// exitBenchFailed is the exit code of a run whose verification failed.
const exitBenchFailed = 3

func newBenchCmd() *cobra.Command {
	cfg := bench.Config{}
	var jsonPath string
	var quiet bool
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the ledger's throughput and latency, against a per-operation baseline",
		Long: `bench drives the ledger with concurrent clients and reports operations per
second, latency percentiles (HDR histogram), errors by code, the
committer's batch sizes and the time of each step of a batch (reads,
work in memory, writes, commit; over HTTP from the server's /metrics), and
the CPU time per operation (over HTTP the
server's too, from its /metrics; on Linux also the whole machine's and
that of a PostgreSQL server on the same machine), with the page faults
per operation of this process and of that server. It runs the engine in
process on --database-url (a SQLite file or a PostgreSQL URL, where each
run gets a fresh schema), or end to end against a running server with
--http (with --database-url the server's database, for --baseline and
PostgreSQL's CPU time).

--baseline runs the same workload, store and concurrency through a
deliberately simple implementation (one database transaction per
operation, UPDATE ... WHERE balance >= amount) and prints the ratio.

--rate starts operations on a fixed schedule and counts each latency from
the operation's scheduled start; --find-rate searches for the highest such
rate whose p99 stays within a bound, a run of --duration per rate tried.

Every run ends with the ledger's verification and a check of each
account's balance against what the run spent; any difference fails the
run (exit code 3).`,
		Example: `  scrip bench --database-url bench.db --workload charge --accounts 10000 --concurrency 64 --duration 10s --baseline
  scrip bench --database-url postgres://postgres@127.0.0.1:5432/test --hot 10 --duration 10s --baseline
  scrip bench --http http://127.0.0.1:8080 --api-key $SCRIP_ADMIN_KEY --concurrency 64 --duration 10s
  scrip bench --http http://127.0.0.1:8080 --api-key $SCRIP_ADMIN_KEY --find-rate 25ms --duration 5s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.APIKey == "" {
				cfg.APIKey = os.Getenv("SCRIP_API_KEY")
			}
			if cfg.DatabaseURL == "" && cfg.HTTP == "" {
				cfg.DatabaseURL = os.Getenv("SCRIP_DATABASE_URL")
			}
			cfg.Log = cmd.ErrOrStderr()
			if !quiet && isTerminal(os.Stderr) {
				cfg.Progress = os.Stderr
			}
			if quiet {
				cfg.Log = nil
			}
			// A report with nowhere to go fails before the run, not after.
			if jsonPath != "" && jsonPath != "-" {
				if err := bench.CheckReportPath(jsonPath); err != nil {
					return fmt.Errorf("--json: cannot write the report: %w", err)
				}
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				cfg.CPUProfile = f
			}
			// The collector settings of scrip serve; at engine level, where
			// the engine runs in this process, its GOMAXPROCS too.
			tuneGC()
			if cfg.HTTP == "" {
				tuneProcs()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := bench.Run(ctx, cfg)
			if rep != nil {
				// With the JSON on standard output the text goes to
				// standard error, so that the output parses.
				text := cmd.OutOrStdout()
				if jsonPath == "-" {
					text = cmd.ErrOrStderr()
				}
				rep.WriteText(text)
				var werr error
				switch jsonPath {
				case "":
				case "-":
					werr = rep.WriteJSON(cmd.OutOrStdout())
				default:
					werr = rep.SaveJSON(jsonPath)
				}
				if werr != nil {
					return fmt.Errorf("write report: %w", werr)
				}
			}
			if err != nil && rep != nil && strings.HasPrefix(err.Error(), "verification failed") {
				return &exitError{code: exitBenchFailed, err: err}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DatabaseURL, "database-url", "", "SQLite file path or postgres:// URL (default $SCRIP_DATABASE_URL); with --http, the server's database")
	f.StringVar(&cfg.HTTP, "http", "", "base URL of a running scrip server: measure end to end over HTTP")
	f.StringVar(&cfg.APIKey, "api-key", "", "API key with the admin scope for --http (default $SCRIP_API_KEY)")
	f.StringVar(&cfg.Workload, "workload", bench.WorkloadCharge, "charge, hold-capture or mixed")
	f.IntVar(&cfg.Accounts, "accounts", 10_000, "accounts traffic spreads over uniformly")
	f.IntVar(&cfg.Hot, "hot", 0, "put all traffic on this many accounts (0: uniform over --accounts)")
	f.IntVar(&cfg.Concurrency, "concurrency", 64, "concurrent clients")
	f.DurationVar(&cfg.Duration, "duration", 0, "how long to run (default 10s unless --ops is given)")
	f.Int64Var(&cfg.Ops, "ops", 0, "operations to run (with --duration: whichever ends first)")
	f.Float64Var(&cfg.Rate, "rate", 0, "start operations on a fixed schedule, this many a second across all clients, and count each latency from the operation's scheduled start (0: each client starts its next operation when its last ends)")
	f.DurationVar(&cfg.FindRate, "find-rate", 0, "find the highest fixed rate whose p99 latency stays within this bound (e.g. 25ms): a closed-loop run for the ceiling, then up to 10 runs at fixed rates narrowing down on it, each --duration long")
	f.Uint64Var(&cfg.Seed, "seed", 0, "random seed (0: a random one, printed in the report)")
	f.BoolVar(&cfg.Baseline, "baseline", false, "also run the per-operation baseline and report the ratio")
	f.BoolVar(&cfg.BaselineOnly, "baseline-only", false, "run only the baseline")
	f.BoolVar(&cfg.Priced, "priced", false, "with --http: charges name an action of the server's catalog, priced under the account's plan, instead of explicit credits")
	f.IntVar(&cfg.Committers, "committers", 0, "engine: batches in flight at once (0: as scrip serve, 2 on PostgreSQL and 1 on SQLite)")
	f.IntVar(&cfg.BatchMax, "batch-max", 0, "engine: operations per batch at most (0: the engine's default)")
	f.IntVar(&cfg.QueueMax, "queue-max", 0, "engine: queued operations at most (0: the engine's default)")
	f.BoolVar(&cfg.Keep, "keep", false, "keep the PostgreSQL schema or SQLite file the run created")
	f.BoolVar(&cfg.Reuse, "reuse", false, "run in the URL's PostgreSQL schema instead of a fresh one, or in a SQLite file that is not empty (refused without it)")
	f.StringVar(&jsonPath, "json", "", "also write the report as JSON to this file (-: standard output, with the text report on standard error)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of scrip's timed run (engine level) to this file")
	f.BoolVar(&quiet, "quiet", false, "no progress line or setup messages")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if cfg.Duration == 0 && cfg.Ops == 0 {
			cfg.Duration = benchDurationDefault
		}
		return nil
	}
	return cmd
}

// benchDurationDefault is how long a run lasts when neither --duration nor
// --ops is given.
const benchDurationDefault = 10 * time.Second
