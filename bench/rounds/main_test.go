package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scriphq/scrip/bench"
)

// writeReport writes a report of ops/s and a baseline's under dir as name.
func writeReport(t *testing.T, dir, name string, ops, baseline float64, ok bool) {
	t.Helper()
	r := bench.Report{Level: "engine", Store: "postgres", Workload: bench.WorkloadCharge, Accounts: 100, Concurrency: 16, CPUs: 2, GoVersion: "go1.x"}
	r.OpsPerSec, r.P50Ms, r.P99Ms = ops, ops/1000, ops/100
	r.Verify.OK = ok
	r.CPU = &bench.CPU{PerOpUs: 20, Machine: &bench.MachineCPU{PerOpUs: 60, StealCores: ops / 1e5}}
	if baseline > 0 {
		r.Baseline = &bench.Result{OpsPerSec: baseline, Verify: bench.Verify{OK: true}}
		r.BaselineOpsPerSec, r.BaselineRatio = baseline, ops/baseline
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeReport(t, dir, "pg-1.json", 26505, 3124, true)
	writeReport(t, dir, "pg-2.json", 22638, 2750, true)
	writeReport(t, dir, "pg-3.json", 23973, 2838, true)
	writeReport(t, dir, "one-1.json", 716, 0, true)
	writeReport(t, dir, "one-2.json", 563, 0, true)
	var out strings.Builder
	if err := printTable(&out, dir, []string{"pg=uniform charges", "one"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		// The median run's rate, p50 and p99; the baseline's and the
		// ratio's medians, each of its own rounds.
		"| uniform charges | **23,973** (26,505 · 22,638 · 23,973) | 23.97 / 239.73 | 20.0 / – / 60.0 | 2,838 (3,124 · 2,750 · 2,838) | 8.45× (8.48 · 8.23 · 8.45) |",
		// Two rounds: the lower one; no label given: what the report ran.
		"| engine, PostgreSQL, charges, uniform, 16 clients | **563** (716 · 563) | 0.56 / 5.63 | 20.0 / – / 60.0 |  |  |",
		"5 reports; 2 CPUs, go1.x; the most CPU taken by the hypervisor (steal) in any run: 0.27 cores.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks\n%s\nin\n%s", want, out.String())
		}
	}
}

func TestTableRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeReport(t, dir, "bad-1.json", 100, 0, false)
	if err := os.WriteFile(filepath.Join(dir, "broken-1.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A run with errors, in its baseline's second round.
	writeReport(t, dir, "failing-1.json", 100, 10, true)
	writeReport(t, dir, "failing-2.json", 100, 10, true)
	b, err := os.ReadFile(filepath.Join(dir, "failing-2.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r bench.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	r.Baseline.Target, r.Baseline.ErrorCount, r.Baseline.Errors = "baseline", 3, map[string]int64{"rate_limited": 3}
	if b, err = json.Marshal(r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "failing-2.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	for run, want := range map[string]string{
		"bad":     "bad-1.json: the run failed its verification",
		"broken":  "broken-1.json: unexpected end of JSON input",
		"none":    "no report none-1.json in",
		"failing": "failing-2.json: 3 operations of the baseline run failed (map[rate_limited:3]); the table takes runs without errors",
	} {
		err := printTable(&strings.Builder{}, dir, []string{run})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one saying %q", run, err, want)
		}
	}
}

func TestThousands(t *testing.T) {
	t.Parallel()
	for f, want := range map[float64]string{0: "0", 999.4: "999", 999.5: "1,000", 23973.4: "23,973", 1234567: "1,234,567"} {
		if got := thousands(f); got != want {
			t.Errorf("thousands(%v) = %q, want %q", f, got, want)
		}
	}
}
