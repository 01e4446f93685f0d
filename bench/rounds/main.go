// Command rounds prints the table of docs/performance.md ("Latest figures")
// from the JSON reports of `scrip bench` that bench/rounds/run.sh leaves in
// a directory: for each run, the median of its rounds with every round
// beside it.
//
// Usage:
//
//	rounds DIR NAME[=LABEL]...
//
// Each NAME names the reports DIR/NAME-1.json, DIR/NAME-2.json, ...; the
// table has one row per NAME, in the order given, labelled LABEL or, by
// default, by what the reports say was run. Each figure is the median of
// its own over the rounds (operations per second, the baseline's, the
// ratio), so one row's figures may come from different rounds; the p50,
// p99 and CPU are those of the round with the median operations per
// second. The median of an even
// number of rounds is the lower middle one, so that every figure in the
// table is one a run gave. It exits with status 1 when a report is
// missing, unreadable or failed its verification.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/scriphq/scrip/bench"
)

// roundsMax bounds the reports read for one run.
const roundsMax = 100

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: rounds DIR NAME[=LABEL]...")
		os.Exit(2)
	}
	if err := printTable(os.Stdout, os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "rounds:", err)
		os.Exit(1)
	}
}

// printTable writes the table of the runs' reports under dir to w.
func printTable(w io.Writer, dir string, runs []string) error {
	if len(runs) == 0 {
		return errors.New("no run to print")
	}
	fmt.Fprintln(w, "| run | ops/s, median (runs) | p50 / p99 ms | CPU µs per op: process / PostgreSQL / machine | baseline ops/s, median (runs) | ratio, median (runs) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	var (
		steal   float64
		reports int
		first   *bench.Report
	)
	for _, run := range runs {
		name, title, _ := strings.Cut(run, "=")
		reps, err := readRounds(dir, name)
		if err != nil {
			return err
		}
		if first == nil {
			first = reps[0]
		}
		reports += len(reps)
		for _, r := range reps {
			steal = max(steal, stealCores(&r.Result))
			if r.Baseline != nil {
				steal = max(steal, stealCores(r.Baseline))
			}
		}
		fmt.Fprintln(w, row(reps, title))
	}
	fmt.Fprintf(w, "\n%d reports; %d CPUs, %s; the most CPU taken by the hypervisor (steal) in any run: %.2f cores.\n",
		reports, first.CPUs, first.GoVersion, steal)
	return nil
}

// readRounds reads the reports of one run, round by round, and checks
// that each passed its verification and had no errors.
func readRounds(dir, run string) ([]*bench.Report, error) {
	var reps []*bench.Report
	for i := 1; i <= roundsMax; i++ {
		path := filepath.Join(dir, run+"-"+strconv.Itoa(i)+".json")
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, err
		}
		var r bench.Report
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if !r.Verify.OK || (r.Baseline != nil && !r.Baseline.Verify.OK) {
			return nil, fmt.Errorf("%s: the run failed its verification: %v", path, r.Verify.Problems)
		}
		// Its rate would count refused operations as done.
		for _, res := range []*bench.Result{&r.Result, r.Baseline} {
			if res != nil && res.ErrorCount > 0 {
				return nil, fmt.Errorf("%s: %d operations of the %s run failed (%v); the table takes runs without errors", path, res.ErrorCount, res.Target, res.Errors)
			}
		}
		reps = append(reps, &r)
	}
	if len(reps) == 0 {
		return nil, fmt.Errorf("no report %s-1.json in %s", run, dir)
	}
	return reps, nil
}

// row is the table's line for the rounds of one run, labelled title
// unless it is empty.
func row(reps []*bench.Report, title string) string {
	med := median(reps, func(r *bench.Report) float64 { return r.OpsPerSec })
	if title == "" {
		title = label(med)
	}
	cols := []string{
		title,
		fmt.Sprintf("**%s** (%s)", thousands(med.OpsPerSec), each(reps, func(r *bench.Report) string { return thousands(r.OpsPerSec) })),
		fmt.Sprintf("%.2f / %.2f", med.P50Ms, med.P99Ms),
		cpu(med),
		"", "",
	}
	if med.Baseline != nil {
		b := median(reps, func(r *bench.Report) float64 { return r.BaselineOpsPerSec })
		cols[4] = fmt.Sprintf("%s (%s)", thousands(b.BaselineOpsPerSec), each(reps, func(r *bench.Report) string { return thousands(r.BaselineOpsPerSec) }))
		x := median(reps, func(r *bench.Report) float64 { return r.BaselineRatio })
		cols[5] = fmt.Sprintf("%.2f× (%s)", x.BaselineRatio, each(reps, func(r *bench.Report) string { return fmt.Sprintf("%.2f", r.BaselineRatio) }))
	}
	return "| " + strings.Join(cols, " | ") + " |"
}

// median returns the report whose figure is the median, the lower middle
// one of an even number.
func median(reps []*bench.Report, figure func(*bench.Report) float64) *bench.Report {
	sorted := slices.Clone(reps)
	slices.SortStableFunc(sorted, func(a, b *bench.Report) int {
		switch fa, fb := figure(a), figure(b); {
		case fa < fb:
			return -1
		case fa > fb:
			return 1
		}
		return 0
	})
	return sorted[(len(sorted)-1)/2]
}

// label names a run by what it ran.
func label(r *bench.Report) string {
	store := map[string]string{"postgres": "PostgreSQL", "sqlite": "SQLite", "http": "a server"}[r.Store]
	if r.Level == "http" {
		store = "HTTP end to end, " + store
	} else {
		store = "engine, " + store
	}
	work := map[string]string{
		bench.WorkloadCharge: "charges", bench.WorkloadHoldCapture: "hold+capture pairs", bench.WorkloadMixed: "mixed",
	}[r.Workload]
	dist := "uniform"
	if r.Hot > 0 {
		dist = fmt.Sprintf("%d hot accounts", r.Hot)
	}
	return fmt.Sprintf("%s, %s, %s, %d clients", store, work, dist, r.Concurrency)
}

// cpu gives the CPU per operation of a run: this process's (over HTTP the
// server's), PostgreSQL's when it was measured, and the machine's.
func cpu(r *bench.Report) string {
	c := r.CPU
	if c == nil {
		return ""
	}
	own := c
	if c.Server != nil {
		own = c.Server
	}
	parts := []string{fmt.Sprintf("%.1f", own.PerOpUs), "–", "–"}
	if c.Database != nil {
		parts[1] = fmt.Sprintf("%.1f", c.Database.PerOpUs)
	}
	if c.Machine != nil {
		parts[2] = fmt.Sprintf("%.1f", c.Machine.PerOpUs)
	}
	return strings.Join(parts, " / ")
}

// stealCores is the CPU the hypervisor took during a run, in cores (0
// where the report does not tell).
func stealCores(r *bench.Result) float64 {
	if r.CPU == nil || r.CPU.Machine == nil {
		return 0
	}
	return r.CPU.Machine.StealCores
}

// each lists a figure of every round, in round order.
func each(reps []*bench.Report, figure func(*bench.Report) string) string {
	out := make([]string, len(reps))
	for i, r := range reps {
		out[i] = figure(r)
	}
	return strings.Join(out, " · ")
}

// thousands writes a rate as a whole number with commas: 23973.4 is
// "23,973".
func thousands(f float64) string {
	s := strconv.FormatInt(int64(f+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
