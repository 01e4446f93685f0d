// Package bench measures scrip's write path: a load generator that drives
// the ledger engine in process or a running server over HTTP, a
// deliberately simple baseline (one database transaction per operation) to
// compare it with, and the report of both.
//
// Every run ends with the ledger's verification and a check of every
// balance against what the load generator knows it spent: a run that loses
// or overspends a credit fails, however fast it was.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/credit"
)

// Bounds of a run.
const (
	accountsMax    = 1_000_000
	concurrencyMax = 4096
	durationMax    = time.Hour
	// rateMax bounds --rate, in operations per second.
	rateMax = 10_000_000
	// lateAfter is how long after its scheduled start an operation of a
	// run with a rate starts before it counts as late.
	lateAfter = time.Millisecond
	// setupConcurrencyMax bounds the goroutines creating and funding
	// accounts before the timed run. Creations and grants are batched, so
	// more of them make larger batches: 50,000 accounts took 4.3 s at 64
	// and 2.9 s at 256 on SQLite, 5.8–6.3 s and 3.7–3.9 s on PostgreSQL.
	setupConcurrencyMax = 256
	// recentChargesMax is how many of its own charges a worker remembers
	// for refunds in the mixed workload.
	recentChargesMax = 64
	// latencyMax is the longest latency the histograms record exactly.
	latencyMax = time.Minute
	// opTimeout bounds one operation; past it the operation is an error.
	opTimeout = 30 * time.Second
)

// Workload names.
const (
	WorkloadCharge      = "charge"
	WorkloadHoldCapture = "hold-capture"
	WorkloadMixed       = "mixed"
)

// Workloads lists the workload names.
var Workloads = []string{WorkloadCharge, WorkloadHoldCapture, WorkloadMixed}

// Amounts the workloads move. Accounts are funded far beyond what any run
// can spend, so insufficient_credits never shows up in the figures.
var (
	chargeAmount  = credit.Credits(1)
	holdAmount    = credit.Credits(4)
	partialAmount = credit.Credits(3)
	fundAmount    = credit.Credits(1_000_000_000)
)

// Config is one run.
type Config struct {
	// DatabaseURL is a SQLite file path or a postgres:// URL (engine level
	// and baseline).
	DatabaseURL string
	// HTTP is the base URL of a running server; set, the run goes end to
	// end over HTTP with APIKey, which needs the admin scope (explicit
	// credits).
	HTTP   string
	APIKey string
	// Priced, over HTTP, charges an action of the server's catalog instead
	// of explicit credits, so that each charge is priced under the
	// account's plan as a platform's would be.
	Priced bool

	Workload string
	// Accounts is the number of accounts traffic spreads over uniformly;
	// Hot, when > 0, puts all traffic on that many accounts instead.
	Accounts    int
	Hot         int
	Concurrency int
	// Duration bounds the run in time, Ops in operations; the first
	// reached ends it. At least one is set.
	Duration time.Duration
	Ops      int64
	Seed     uint64
	// Rate, when > 0, starts operations on a fixed schedule, Rate a second
	// across all clients (open loop), and measures each operation's
	// latency from its scheduled start, so that the time an operation
	// waited for a free client counts. 0: each client starts its next
	// operation as soon as its last one ends (closed loop).
	Rate float64
	// FindRate, when > 0, makes the run a search for the highest fixed
	// rate whose p99 latency stays within it: a closed-loop run, then runs
	// at fixed rates, each for Duration (searchRate).
	FindRate time.Duration

	// Baseline runs the same workload through the per-operation
	// implementation after the engine run and reports the ratio.
	Baseline bool
	// BaselineOnly skips the engine run.
	BaselineOnly bool

	// Engine options (zero: the engine's defaults).
	Committers int
	BatchMax   int
	QueueMax   int

	// Keep keeps the PostgreSQL schema (or SQLite file) the run created;
	// Reuse runs in the database the URL names instead of a fresh schema,
	// and in a SQLite file that is not empty, which is refused without it.
	Keep  bool
	Reuse bool

	// CPUProfile, when set, receives a CPU profile of scrip's timed run
	// (engine level: the engine and the store in this process).
	CPUProfile io.Writer

	// Progress, when set, receives a live progress line once a second.
	Progress io.Writer
	// Log receives setup and verification messages; nil discards them.
	Log io.Writer
}

func (c *Config) check() error {
	switch {
	case !contains(Workloads, c.Workload):
		return fmt.Errorf("unknown workload %q (want %s)", c.Workload, strings.Join(Workloads, ", "))
	case c.Accounts < 1 || c.Accounts > accountsMax:
		return fmt.Errorf("accounts must be from 1 to %d, got %d", accountsMax, c.Accounts)
	case c.Hot < 0 || c.Hot > accountsMax:
		return fmt.Errorf("hot must be from 0 to %d, got %d", accountsMax, c.Hot)
	case c.Concurrency < 1 || c.Concurrency > concurrencyMax:
		return fmt.Errorf("concurrency must be from 1 to %d, got %d", concurrencyMax, c.Concurrency)
	case c.Duration < 0 || c.Duration > durationMax:
		return fmt.Errorf("duration must be from 0 to %s, got %s", durationMax, c.Duration)
	case c.Ops < 0:
		return fmt.Errorf("ops must not be negative, got %d", c.Ops)
	case !(c.Rate >= 0 && c.Rate <= rateMax):
		return fmt.Errorf("rate must be from 0 to %d operations per second, got %g", rateMax, c.Rate)
	case c.Rate > 0 && c.Baseline:
		return errors.New("a fixed rate sets the operations per second that the baseline ratio compares: run the baseline without --rate, or alone with --baseline-only")
	case c.FindRate < 0 || c.FindRate > latencyMax:
		return fmt.Errorf("the p99 bound of a rate search must be from 0 to %s, got %s", latencyMax, c.FindRate)
	case c.FindRate > 0 && c.Rate > 0:
		return errors.New("a rate search sets its own rates: give --find-rate or --rate, not both")
	case c.FindRate > 0 && (c.Baseline || c.BaselineOnly):
		return errors.New("a rate search measures scrip alone: run the baseline without --find-rate")
	case c.FindRate > 0 && (c.Duration == 0 || c.Ops > 0):
		return errors.New("a rate search runs each of its steps for the duration: give --duration, without --ops")
	case c.Duration == 0 && c.Ops == 0:
		return errors.New("give a duration or a number of operations")
	case c.HTTP == "" && c.DatabaseURL == "":
		return errors.New("give --database-url (a SQLite file such as bench.db, or a postgres:// URL) to run the engine in this process, or --http with a server's URL to run end to end")
	case c.HTTP != "" && c.BaselineOnly:
		return errors.New("the baseline runs against a database, not over HTTP")
	case c.HTTP != "" && c.Baseline && c.DatabaseURL == "":
		return errors.New("a baseline next to an HTTP run needs the server's database URL")
	case c.Priced && c.HTTP == "":
		return errors.New("priced charges are priced by a server's catalog: give --http")
	}
	return nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// activeAccounts is how many accounts the run sends traffic to.
func (c *Config) activeAccounts() int {
	if c.Hot > 0 {
		return c.Hot
	}
	return c.Accounts
}

// target is what a run drives: the engine, a server over HTTP, or the
// baseline. Methods are safe for concurrent use and return *scrip.Error for
// application errors.
type target interface {
	name() string
	// fund creates the account and grants it amount under key.
	fund(ctx context.Context, account, key string, amount credit.Amount) error
	charge(ctx context.Context, account, key string, amount credit.Amount) (chargeID string, err error)
	hold(ctx context.Context, account, key string, amount credit.Amount) (holdID string, err error)
	capture(ctx context.Context, holdID, key string, amount credit.Amount) error
	release(ctx context.Context, holdID, key string) error
	refund(ctx context.Context, chargeID, key string, amount credit.Amount) error
	balance(ctx context.Context, account string) (available credit.Amount, err error)
	quote(ctx context.Context) error
	// verify checks the target's own invariants; progress, where the
	// target can tell, receives the accounts checked so far.
	verify(ctx context.Context, progress func(accounts int)) (Verify, error)
	// batches returns the batch sizes seen so far, if the target knows.
	batches() *BatchStats
	close(ctx context.Context) error
}

// Run performs the run the config describes and returns its report. The
// error is set when the run could not be carried out or its verification
// failed; the report is returned in both cases when there is one.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	rep := &Report{
		Workload: cfg.Workload, Accounts: cfg.Accounts, Hot: cfg.Hot, Concurrency: cfg.Concurrency,
		Seed: cfg.Seed, CPUs: runtime.NumCPU(), Procs: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
		Priced: cfg.Priced,
	}
	rep.LoadAverage[0] = loadAverage()
	defer func() { rep.LoadAverage[1] = loadAverage() }()
	db, err := openDatabase(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := db.cleanup(context.WithoutCancel(ctx)); cerr != nil {
			fmt.Fprintf(cfg.Log, "cleanup: %v\n", cerr)
		}
	}()
	rep.Store = db.kind
	// Found once: both the run and its baseline read the server's CPU time.
	db.postmaster = db.localServer(ctx)
	if db.kind != "" && db.kind != "http" {
		rep.Database = db.describe()
	}

	var failures []string
	if !cfg.BaselineOnly {
		var t target
		if cfg.HTTP != "" {
			rep.Level = "http"
			t, err = newHTTPTarget(ctx, cfg)
		} else {
			rep.Level = "engine"
			var et *engineTarget
			if et, err = newEngineTarget(ctx, db, cfg); err == nil {
				// The engine's own figures, defaults included.
				opt := et.engine.Options()
				rep.Committers, rep.BatchMax = opt.Committers, opt.BatchSizeMax
				t = et
			}
		}
		if err != nil {
			return nil, err
		}
		res, err := runTarget(ctx, cfg, db, t)
		if err != nil {
			return nil, err
		}
		rep.Result = *res
		failures = append(failures, res.failures("scrip")...)
	}
	if cfg.Baseline || cfg.BaselineOnly {
		if rep.Level == "" {
			rep.Level = "engine"
		}
		t, err := newBaselineTarget(ctx, db, cfg)
		if err != nil {
			return rep, err
		}
		res, err := runTarget(ctx, cfg, db, t)
		if err != nil {
			return rep, err
		}
		rep.Baseline = res
		rep.BaselineOpsPerSec = res.OpsPerSec
		rep.BaselineP99Ms = res.P99Ms
		if rep.OpsPerSec > 0 && res.OpsPerSec > 0 {
			rep.BaselineRatio = round2(rep.OpsPerSec / res.OpsPerSec)
		}
		failures = append(failures, res.failures("baseline")...)
	}
	if len(failures) > 0 {
		return rep, fmt.Errorf("verification failed: %s", strings.Join(failures, "; "))
	}
	return rep, nil
}

// runTarget funds the accounts, runs the timed load against t, and
// verifies the result.
func runTarget(ctx context.Context, cfg Config, db *database, t target) (res *Result, err error) {
	defer func() {
		if cerr := t.close(context.WithoutCancel(ctx)); cerr != nil && err == nil {
			err = cerr
		}
	}()
	run := newRunID()
	accounts := make([]string, cfg.activeAccounts())
	for i := range accounts {
		accounts[i] = fmt.Sprintf("bench-%s-%06d", run, i)
	}
	fmt.Fprintf(cfg.Log, "%s: funding %d accounts\n", t.name(), len(accounts))
	start := time.Now()
	if err := fund(patient(ctx), t, accounts, run, cfg.Progress); err != nil {
		return nil, fmt.Errorf("fund the accounts of the %s run: %w", t.name(), err)
	}
	funding := newFunding(len(accounts), time.Since(start))
	if err := db.analyze(ctx); err != nil {
		return nil, fmt.Errorf("analyze the tables of the %s run: %w", t.name(), err)
	}
	fmt.Fprintf(cfg.Log, "%s: funded in %s; running %s\n", t.name(), time.Since(start).Round(time.Millisecond), cfg.Workload)

	l := newLoad(cfg, t, accounts, run)
	profiling := cfg.CPUProfile != nil && t.name() == "scrip"
	if profiling {
		if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
	}
	if cfg.FindRate > 0 {
		res = searchRate(ctx, db, l)
	} else {
		res = timedRun(ctx, db, l)
	}
	res.Funding = funding
	if profiling {
		pprof.StopCPUProfile()
	}

	fmt.Fprintf(cfg.Log, "%s: verifying\n", t.name())
	start = time.Now()
	var verified atomic.Int64
	stop := phaseProgress(cfg.Progress, "verifying", 0, verified.Load)
	v, err := t.verify(patient(ctx), func(accounts int) { verified.Store(int64(accounts)) })
	stop()
	if err != nil {
		return nil, fmt.Errorf("verify the %s run: %w", t.name(), err)
	}
	l.checkBalances(patient(ctx), &v)
	v.Seconds = round2(time.Since(start).Seconds())
	res.Verify = v
	return res, nil
}

// cpuProbe holds the CPU times and page faults read at the start of a
// timed run: this process's, the machine's, and those of a PostgreSQL
// server on this machine.
type cpuProbe struct {
	self       procUsage
	selfOK     bool
	machine    machineTimes
	machineOK  bool
	postmaster int // 0 for none
	server     map[int]procUsage
}

// startCPUProbe reads the times; postmaster is a local PostgreSQL server's
// (0 for none).
func startCPUProbe(postmaster int) *cpuProbe {
	p := &cpuProbe{}
	if postmaster != 0 {
		if u, ok := treeUsage(procRoot, postmaster); ok {
			p.postmaster, p.server = postmaster, u
		}
	}
	p.self, p.selfOK = processUsage()
	p.machine, p.machineOK = readMachineTimes(procRoot)
	return p
}

// finish reads the times again at the end of the run and puts the
// differences in res.
func (p *cpuProbe) finish(res *Result, t target) {
	machine, machineOK := readMachineTimes(procRoot)
	self, ok := processUsage()
	if !ok || !p.selfOK {
		return
	}
	res.CPU = newCPU((self.cpu - p.self.cpu).Seconds(), res)
	res.CPU.setFaults(self.faults-p.self.faults, res)
	if machineOK && p.machineOK {
		res.CPU.Machine = machineCPU(p.machine, machine, res)
	}
	if p.postmaster != 0 {
		if now, ok := treeUsage(procRoot, p.postmaster); ok && ran(now) {
			u := treeUsageSince(p.server, now)
			res.CPU.Database = newCPU(u.cpu.Seconds(), res)
			res.CPU.Database.setFaults(u.faults, res)
		}
	}
	if s, ok := t.(interface{ serverCPU() (float64, bool) }); ok {
		if secs, ok := s.serverCPU(); ok {
			res.CPU.Server = newCPU(secs, res)
		}
	}
}

// fund creates and funds the accounts concurrently, so the engine batches
// the creations and the grants.
func fund(ctx context.Context, t target, accounts []string, run string, progress io.Writer) error {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	defer phaseProgress(progress, "funding", len(accounts), next.Load)()
	for range min(setupConcurrencyMax, len(accounts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(accounts) {
					return
				}
				if err := t.fund(ctx, accounts[i], "fund-"+run+"-"+accounts[i], fundAmount); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("account %s: %w", accounts[i], err)
					}
					mu.Unlock()
					next.Store(int64(len(accounts)))
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func newRunID() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 6)
	for i := range b {
		b[i] = digits[rand.IntN(len(digits))]
	}
	return string(b)
}

// errorCode is the code a failed operation is counted under.
func errorCode(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	if c := scrip.ErrorCode(err); c != "" {
		return c
	}
	return "internal"
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
