package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/ledger"
)

// loadAverage returns the 1-minute load average, or 0 where the system
// does not tell.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(b), " ")
	v, _ := strconv.ParseFloat(f, 64)
	return v
}

// behindShare is the share of its rate below which a run with a rate is
// reported as behind its schedule.
const behindShare = 0.95

// verifyProblemsMax bounds the problems a report lists.
const verifyProblemsMax = 20

// Report is the outcome of a run: the scrip run's figures at the top level,
// the baseline's under Baseline.
type Report struct {
	Level       string `json:"level"` // engine or http
	Store       string `json:"store"` // sqlite, postgres or http
	Database    string `json:"database,omitempty"`
	Workload    string `json:"workload"`
	Accounts    int    `json:"accounts"`
	Hot         int    `json:"hot,omitempty"`
	Concurrency int    `json:"concurrency"`
	// Priced: charges named an action of the server's catalog.
	Priced bool   `json:"priced,omitempty"`
	Seed   uint64 `json:"seed"`
	// Committers and BatchMax are what the engine ran with, defaults
	// included: at engine level only, where the flags apply.
	Committers int `json:"committers,omitempty"`
	BatchMax   int `json:"batch_max,omitempty"`
	CPUs       int `json:"cpus"`
	// Procs is this process's GOMAXPROCS (scrip bench raises it to 2 at
	// engine level, as scrip serve does).
	Procs     int    `json:"gomaxprocs"`
	GoVersion string `json:"go_version"`
	// LoadAverage is the machine's 1-minute load average before and after
	// the run: figures taken while other work ran are not comparable.
	LoadAverage [2]float64 `json:"load_average"`

	Result

	Baseline          *Result `json:"baseline,omitempty"`
	BaselineOpsPerSec float64 `json:"baseline_ops_per_sec,omitempty"`
	BaselineP99Ms     float64 `json:"baseline_p99_ms,omitempty"`
	// BaselineRatio is scrip's operations per second over the baseline's.
	BaselineRatio float64 `json:"baseline_ratio,omitempty"`
}

// Result is one target's figures. An operation is one unit of the
// workload: a charge, a hold with its capture or release, a quote, ...
type Result struct {
	Target    string  `json:"target,omitempty"`
	Ops       int64   `json:"ops"`
	Calls     int64   `json:"calls"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	// OKOpsPerSec counts only the operations that succeeded: below
	// OpsPerSec when the run had errors.
	OKOpsPerSec float64 `json:"ok_ops_per_sec"`
	CallsPerSec float64 `json:"calls_per_sec"`
	// TargetOpsPerSec is the rate asked for (--rate): operations started on
	// a fixed schedule, their latencies counted from their scheduled
	// starts. LateOps counts those that started over a millisecond late,
	// every client being busy. Both absent in a closed-loop run.
	TargetOpsPerSec float64          `json:"target_ops_per_sec,omitempty"`
	LateOps         int64            `json:"late_ops,omitempty"`
	P50Ms           float64          `json:"p50_ms"`
	P90Ms           float64          `json:"p90_ms"`
	P99Ms           float64          `json:"p99_ms"`
	MaxMs           float64          `json:"max_ms"`
	MeanMs          float64          `json:"mean_ms"`
	ErrorCount      int64            `json:"error_count"`
	Errors          map[string]int64 `json:"errors"`
	// Kinds breaks a mixed workload down by kind of operation.
	Kinds   map[string]KindStats `json:"kinds,omitempty"`
	Batches *BatchStats          `json:"batches,omitempty"`
	CPU     *CPU                 `json:"cpu,omitempty"`
	Funding *Funding             `json:"funding,omitempty"`
	Verify  Verify               `json:"verify"`
	// Timeline is the timed part second by second: where in the run the
	// slow operations and the errors were.
	Timeline []Second `json:"timeline,omitempty"`
	// RateSearch is the search of a run with --find-rate, whose figures
	// above are those of the highest rate it found within its bound.
	RateSearch *RateSearch `json:"rate_search,omitempty"`
}

// Funding is the set-up before the timed run: each account created and
// granted its credits, by up to setupConcurrencyMax clients at once.
type Funding struct {
	Accounts       int     `json:"accounts"`
	Seconds        float64 `json:"seconds"`
	AccountsPerSec float64 `json:"accounts_per_sec"`
}

func newFunding(accounts int, d time.Duration) *Funding {
	f := &Funding{Accounts: accounts, Seconds: round3(d.Seconds())}
	if d > 0 {
		f.AccountsPerSec = math.Round(float64(accounts) / d.Seconds())
	}
	return f
}

// CPU is the CPU time spent during the timed run, which is steadier than
// operations per second on a machine whose speed drifts.
type CPU struct {
	// Seconds is this process's CPU time, user and system: at engine level
	// the engine, the store's driver and the load generator (PostgreSQL is
	// a process of its own); over HTTP the load generator alone.
	Seconds float64 `json:"seconds"`
	Cores   float64 `json:"cores"`
	PerOpUs float64 `json:"per_op_us"`
	// FaultsPerOp is the minor page faults per operation: memory mapped
	// in at its first touch, which a process that gives memory back and
	// takes it again pays for every time. Absent where unknown (the
	// server's over HTTP).
	FaultsPerOp *float64 `json:"faults_per_op,omitempty"`
	// Server is the server's over HTTP, from process_cpu_seconds_total on
	// its /metrics (to 0.01 s); nil at engine level.
	Server *CPU `json:"server,omitempty"`
	// Database is the PostgreSQL server's when it runs on this machine:
	// every process of the server alive at the end of the run (backends,
	// WAL writer, checkpointer, ...), read from /proc.
	Database *CPU `json:"database,omitempty"`
	// Machine is the whole machine's, from /proc/stat.
	Machine *MachineCPU `json:"machine,omitempty"`
}

// MachineCPU is how the machine's CPUs spent a run, in cores: busy (in
// processes or the kernel), idle (or waiting for the disk), or taken by
// the hypervisor for other machines (steal), which slows every figure
// of the run by as much.
type MachineCPU struct {
	CPUs       int     `json:"cpus"`
	Cores      float64 `json:"cores"`
	PerOpUs    float64 `json:"per_op_us"`
	IdleCores  float64 `json:"idle_cores"`
	StealCores float64 `json:"steal_cores"`
}

// newCPU returns the figures of seconds of CPU over a run.
func newCPU(seconds float64, r *Result) *CPU {
	c := &CPU{Seconds: round3(seconds)}
	if r.Seconds > 0 {
		c.Cores = round2(seconds / r.Seconds)
	}
	if r.Ops > 0 {
		c.PerOpUs = round2(seconds * 1e6 / float64(r.Ops))
	}
	return c
}

// setFaults records n minor page faults over the run's operations.
func (c *CPU) setFaults(n uint64, r *Result) {
	if r.Ops > 0 {
		f := round3(float64(n) / float64(r.Ops))
		c.FaultsPerOp = &f
	}
}

// perOp says what c cost each operation: its CPU time, and its page
// faults where known.
func (c *CPU) perOp() string {
	if c.FaultsPerOp == nil {
		return fmt.Sprintf("%.1f µs per operation", c.PerOpUs)
	}
	return fmt.Sprintf("%.1f µs and %.2f page faults per operation", c.PerOpUs, *c.FaultsPerOp)
}

// KindStats is one kind of operation within a workload.
type KindStats struct {
	Ops   int64   `json:"ops"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
}

// Verify is what the checks after a run found.
type Verify struct {
	OK           bool  `json:"ok"`
	Accounts     int   `json:"accounts"`
	Transactions int64 `json:"transactions"`
	// BalancesChecked counts accounts whose available balance matched what
	// the run spent; BalancesSkipped those with an operation of unknown
	// outcome.
	BalancesChecked int      `json:"balances_checked"`
	BalancesSkipped int      `json:"balances_skipped"`
	Problems        []string `json:"problems"`
	Seconds         float64  `json:"seconds"`
}

func (v *Verify) addProblem(p string) {
	if len(v.Problems) < verifyProblemsMax {
		v.Problems = append(v.Problems, p)
	}
	v.OK = false
}

func (r *Result) failures(name string) []string {
	if r.Verify.OK {
		return nil
	}
	ps := r.Verify.Problems
	if len(ps) > 3 {
		ps = append(slices.Clone(ps[:3]), fmt.Sprintf("and %d more", len(r.Verify.Problems)-3))
	}
	return []string{name + ": " + strings.Join(ps, "; ")}
}

// BatchStats is the distribution of batch sizes the committer formed.
type BatchStats struct {
	Count  int64   `json:"count"`
	Ops    int64   `json:"ops"`
	Mean   float64 `json:"mean"`
	P50    int     `json:"p50"`
	P90    int     `json:"p90"`
	P99    int     `json:"p99"`
	Max    int     `json:"max"`
	Failed int64   `json:"failed"`
	// MeanMs is the mean time from a batch's first load to its commit.
	MeanMs float64 `json:"mean_ms"`
	// Buckets counts batches by size: up to 1, 2, 4, ... operations.
	Buckets []Bucket `json:"buckets"`
	// Phases is where the batches spent their time, step by step (over
	// HTTP from the server's scrip_batch_step_duration_seconds).
	Phases []Phase `json:"phases,omitempty"`
}

// Bucket counts batches of at most Le operations (and more than the
// previous bucket's Le).
type Bucket struct {
	Le      int   `json:"le"`
	Batches int64 `json:"batches"`
}

// batchObserver is the engine's Observer during a run.
type batchObserver struct {
	mu      sync.Mutex
	sizes   map[int]int64
	elapsed time.Duration
	failed  int64
	steps   stepTotals
}

var _ ledger.StepObserver = (*batchObserver)(nil)

func newBatchObserver() *batchObserver {
	return &batchObserver{sizes: map[int]int64{}, steps: newStepTotals()}
}

func (o *batchObserver) ObserveStep(step ledger.Step, elapsed time.Duration) {
	o.mu.Lock()
	o.steps.add(step, elapsed)
	o.mu.Unlock()
}

func (o *batchObserver) ObserveBatch(size int, elapsed time.Duration, err error) {
	o.mu.Lock()
	o.sizes[size]++
	o.elapsed += elapsed
	if err != nil {
		o.failed++
	}
	o.mu.Unlock()
}

func (o *batchObserver) ObserveOp(ledger.TxType, string) {}

// reset forgets the batches so far (those of the setup).
func (o *batchObserver) reset() {
	o.mu.Lock()
	o.sizes = map[int]int64{}
	o.elapsed, o.failed = 0, 0
	o.steps = newStepTotals()
	o.mu.Unlock()
}

func (o *batchObserver) stats() *BatchStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := batchStats(o.sizes, o.elapsed, o.failed)
	s.Phases = o.steps.phases()
	return s
}

func batchStats(sizes map[int]int64, elapsed time.Duration, failed int64) *BatchStats {
	s := &BatchStats{Failed: failed}
	keys := make([]int, 0, len(sizes))
	for k, n := range sizes {
		keys = append(keys, k)
		s.Count += n
		s.Ops += int64(k) * n
	}
	if s.Count == 0 {
		return s
	}
	sort.Ints(keys)
	s.Mean = round2(float64(s.Ops) / float64(s.Count))
	s.MeanMs = round3(float64(elapsed.Microseconds()) / 1000 / float64(s.Count))
	s.Max = keys[len(keys)-1]
	var seen int64
	for _, k := range keys {
		seen += sizes[k]
		if s.P50 == 0 && seen*100 >= s.Count*50 {
			s.P50 = k
		}
		if s.P90 == 0 && seen*100 >= s.Count*90 {
			s.P90 = k
		}
		if s.P99 == 0 && seen*100 >= s.Count*99 {
			s.P99 = k
		}
	}
	le := 1
	i := 0
	for i < len(keys) {
		var n int64
		for i < len(keys) && keys[i] <= le {
			n += sizes[keys[i]]
			i++
		}
		if n > 0 {
			s.Buckets = append(s.Buckets, Bucket{Le: le, Batches: n})
		}
		le *= 2
	}
	return s
}

// WriteJSON writes the report as indented JSON to w.
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// SaveJSON writes the report as JSON to the file at path, whole or not at
// all: into a new file beside it, renamed over path once complete.
func (r *Report) SaveJSON(path string) error {
	f, err := createBeside(path)
	if err != nil {
		return err
	}
	err = r.WriteJSON(f)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// CheckReportPath reports whether SaveJSON could write path, so that a run
// whose report has nowhere to go fails before it starts rather than after.
func CheckReportPath(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	f, err := createBeside(path)
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// createBeside creates a new, hidden file in the directory of path.
func createBeside(path string) (*os.File, error) {
	return os.CreateTemp(filepath.Dir(path), ".scrip-bench-*.json")
}

// WriteText writes the human report.
func (r *Report) WriteText(w io.Writer) {
	dist := fmt.Sprintf("uniform over %d accounts", r.Accounts)
	if r.Hot > 0 {
		dist = fmt.Sprintf("hot: all traffic on %d accounts", r.Hot)
	}
	fmt.Fprintf(w, "workload %s, %s, %d clients, %s level, store %s", r.Workload, dist, r.Concurrency, r.Level, r.Store)
	if r.Database != "" {
		fmt.Fprintf(w, " (%s)", r.Database)
	}
	if r.Priced {
		fmt.Fprint(w, ", charges priced by the catalog")
	}
	fmt.Fprintf(w, "\n%d CPUs (GOMAXPROCS %d), %s, seed %d, load average %.2f before, %.2f after", r.CPUs, r.Procs, r.GoVersion, r.Seed, r.LoadAverage[0], r.LoadAverage[1])
	if r.Committers > 0 || r.BatchMax > 0 {
		fmt.Fprintf(w, ", committers %d, batch max %d", r.Committers, r.BatchMax)
	}
	fmt.Fprintln(w)
	if r.Target != "" {
		r.Result.writeText(w)
	}
	if r.Baseline != nil {
		r.Baseline.writeText(w)
		if r.BaselineRatio > 0 {
			fmt.Fprintf(w, "\nscrip / baseline: %.2f× the operations per second (%.0f vs %.0f)\n",
				r.BaselineRatio, r.OpsPerSec, r.BaselineOpsPerSec)
		}
	}
}

func (r *Result) writeText(w io.Writer) {
	fmt.Fprintf(w, "\n%s\n", r.Target)
	fmt.Fprintf(w, "  operations   %d in %.2fs: %.0f ops/s (%.0f ledger calls/s)", r.Ops, r.Seconds, r.OpsPerSec, r.CallsPerSec)
	if r.ErrorCount > 0 {
		fmt.Fprintf(w, "; %d succeeded: %.0f ops/s", r.Ops-r.ErrorCount, r.OKOpsPerSec)
	}
	fmt.Fprintln(w)
	if r.TargetOpsPerSec > 0 {
		fmt.Fprintf(w, "  schedule     %.0f ops/s asked, each latency counted from the operation's scheduled start; %d started over %d ms late\n",
			r.TargetOpsPerSec, r.LateOps, lateAfter.Milliseconds())
		if r.LateOps > 0 && r.OpsPerSec < behindShare*r.TargetOpsPerSec {
			fmt.Fprintf(w, "               the run fell behind its schedule (%.0f of %.0f ops/s): more clients (--concurrency) may keep up, unless the target can go no faster\n",
				r.OpsPerSec, r.TargetOpsPerSec)
		}
	}
	if r.RateSearch != nil {
		r.RateSearch.writeText(w)
	}
	fmt.Fprintf(w, "  latency      p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms  mean %.3f ms\n",
		r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs, r.MeanMs)
	if slowest, n := slowestSecond(r.Timeline); n > 1 && slowest.Ops > 0 {
		fmt.Fprintf(w, "  per second   highest p99 %.3f ms, in the second ending at %.0f s (%d ops, max %.3f ms); the JSON report's timeline has all %d\n",
			slowest.P99Ms, slowest.AtS, slowest.Ops, slowest.MaxMs, len(r.Timeline))
	}
	if len(r.Kinds) > 1 {
		kinds := make([]string, 0, len(r.Kinds))
		for k := range r.Kinds {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			s := r.Kinds[k]
			fmt.Fprintf(w, "    %-13s %9d ops  p50 %.3f ms  p99 %.3f ms\n", k, s.Ops, s.P50Ms, s.P99Ms)
		}
	}
	if r.ErrorCount == 0 {
		fmt.Fprintf(w, "  errors       none\n")
	} else {
		codes := make([]string, 0, len(r.Errors))
		for c := range r.Errors {
			codes = append(codes, c)
		}
		sort.Strings(codes)
		parts := make([]string, len(codes))
		for i, c := range codes {
			parts[i] = fmt.Sprintf("%s %d", c, r.Errors[c])
		}
		fmt.Fprintf(w, "  errors       %d: %s\n", r.ErrorCount, strings.Join(parts, ", "))
		if n := r.Errors[scrip.ERateLimited]; n > 0 {
			fmt.Fprintf(w, "               %d requests were refused by the server's rate limit, not by the ledger: run scrip serve with --rate-limit 0 to measure the ledger\n", n)
		}
	}
	if b := r.Batches; b != nil && b.Count > 0 {
		fmt.Fprintf(w, "  batches      %d, %.1f ops each on average (p50 %d, p90 %d, p99 %d, max %d), %.3f ms each",
			b.Count, b.Mean, b.P50, b.P90, b.P99, b.Max, b.MeanMs)
		if b.Failed > 0 {
			fmt.Fprintf(w, ", %d failed", b.Failed)
		}
		fmt.Fprintln(w)
		parts := make([]string, len(b.Buckets))
		for i, k := range b.Buckets {
			parts[i] = fmt.Sprintf("≤%d: %d", k.Le, k.Batches)
		}
		fmt.Fprintf(w, "    sizes      %s\n", strings.Join(parts, "  "))
		if len(b.Phases) > 0 {
			parts = parts[:0]
			for _, p := range b.Phases {
				parts = append(parts, fmt.Sprintf("%s %.3f", p.Name, p.MeanMs))
			}
			fmt.Fprintf(w, "    ms/batch   %s\n", strings.Join(parts, "  "))
		}
	}
	if c := r.CPU; c != nil {
		if c.Server != nil {
			fmt.Fprintf(w, "  cpu          load generator %.2f cores, %s; server %.2f cores, %s\n",
				c.Cores, c.perOp(), c.Server.Cores, c.Server.perOp())
		} else {
			fmt.Fprintf(w, "  cpu          %.2f cores, %s (this process: %s and load generator)\n",
				c.Cores, c.perOp(), r.Target)
		}
		var parts []string
		if d := c.Database; d != nil {
			parts = append(parts, fmt.Sprintf("PostgreSQL %.2f cores, %s", d.Cores, d.perOp()))
		}
		if m := c.Machine; m != nil {
			parts = append(parts, fmt.Sprintf("machine %.2f of %d CPUs busy, %.1f µs per operation, %.2f idle, %.2f stolen",
				m.Cores, m.CPUs, m.PerOpUs, m.IdleCores, m.StealCores))
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "               %s\n", strings.Join(parts, "; "))
		}
	}
	if f := r.Funding; f != nil {
		fmt.Fprintf(w, "  funding      %d accounts created and granted credits in %.2fs: %.0f accounts/s\n",
			f.Accounts, f.Seconds, f.AccountsPerSec)
	}
	v := r.Verify
	status := "ok"
	if !v.OK {
		status = "FAILED"
	}
	fmt.Fprintf(w, "  verify       %s: %d accounts, %d transactions, %d balances match the credits spent",
		status, v.Accounts, v.Transactions, v.BalancesChecked)
	if v.BalancesSkipped > 0 {
		fmt.Fprintf(w, " (%d with operations of unknown outcome skipped)", v.BalancesSkipped)
	}
	fmt.Fprintf(w, " (%.1fs)\n", v.Seconds)
	for _, p := range v.Problems {
		fmt.Fprintf(w, "    %s\n", p)
	}
}

func (s *RateSearch) writeText(w io.Writer) {
	if s.MaxOpsPerSec > 0 {
		fmt.Fprintf(w, "  rate search  highest rate with p99 within %.3f ms: %.0f ops/s (closed loop: %.0f ops/s); the figures here are that run's\n",
			s.P99MaxMs, s.MaxOpsPerSec, s.CeilingOpsPerSec)
	} else {
		fmt.Fprintf(w, "  rate search  no rate tried kept p99 within %.3f ms (closed loop: %.0f ops/s); the figures here are the last run's\n",
			s.P99MaxMs, s.CeilingOpsPerSec)
	}
	fmt.Fprintf(w, "    %-11s %9s %10s %10s %7s %7s\n", "asked ops/s", "reached", "p50 ms", "p99 ms", "late", "errors")
	for _, st := range s.Steps {
		asked, late := "closed loop", "-"
		if st.TargetOpsPerSec > 0 {
			asked, late = strconv.FormatFloat(st.TargetOpsPerSec, 'f', 0, 64), strconv.FormatInt(st.LateOps, 10)
		}
		if st.Again {
			asked += " again"
		}
		verdict := "within"
		if !st.Within {
			verdict = st.Miss
		}
		fmt.Fprintf(w, "    %-11s %9.0f %10.3f %10.3f %7s %7d  %s\n", asked, st.OpsPerSec, st.P50Ms, st.P99Ms, late, st.ErrorCount, verdict)
	}
}
