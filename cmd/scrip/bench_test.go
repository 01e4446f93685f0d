package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runBench runs scrip bench with args and returns its standard output,
// its standard error and its error.
func runBench(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := newBenchCmd()
	// As under the root command of main.
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	var stdout, stderr bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return stdout.String(), stderr.String(), err
}

// TestBenchJSON: --json - prints only JSON on standard output, with the text
// report on standard error; --json FILE writes the file and nothing beside
// it; a file that cannot be written is refused before the run.
func TestBenchJSON(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			url := db.url(t)
			load := []string{"--database-url", url, "--accounts", "5", "--concurrency", "2", "--ops", "20", "--seed", "1", "--quiet"}
			ops := func(name string, b []byte) {
				t.Helper()
				var rep struct {
					Ops       int64   `json:"ops"`
					OpsPerSec float64 `json:"ops_per_sec"`
				}
				if err := json.Unmarshal(b, &rep); err != nil {
					t.Fatalf("%s is not a JSON report: %v\n%s", name, err, b)
				}
				if rep.Ops != 20 || rep.OpsPerSec <= 0 {
					t.Errorf("%s: %d operations at %.0f/s, want the 20 asked for", name, rep.Ops, rep.OpsPerSec)
				}
			}

			stdout, stderr, err := runBench(t, append(load, "--json", "-")...)
			if err != nil {
				t.Fatalf("--json -: %v\n%s", err, stderr)
			}
			ops("standard output", []byte(stdout))
			if !strings.Contains(stderr, "operations   20 in") {
				t.Errorf("--json -: the text report is not on standard error:\n%s", stderr)
			}

			file := filepath.Join(dir, "report.json")
			stdout, stderr, err = runBench(t, append(load, "--json", file)...)
			if err != nil {
				t.Fatalf("--json %s: %v\n%s", file, err, stderr)
			}
			if !strings.Contains(stdout, "operations   20 in") {
				t.Errorf("--json FILE: no text report on standard output:\n%s", stdout)
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			ops(file, b)
			if left, _ := filepath.Glob(filepath.Join(dir, ".scrip-bench-*")); len(left) > 0 {
				t.Errorf("files left beside the report: %v", left)
			}

			for path, want := range map[string]string{
				filepath.Join(dir, "missing", "report.json"): "no such file or directory",
				dir: "is a directory",
			} {
				stdout, _, err := runBench(t, append(load, "--json", path)...)
				if err == nil || !strings.Contains(err.Error(), "--json: cannot write the report") || !strings.Contains(err.Error(), want) {
					t.Errorf("--json %s: %v, want it refused (%q)", path, err, want)
				}
				if stdout != "" {
					t.Errorf("--json %s: the run went ahead:\n%s", path, stdout)
				}
			}
		})
	}
}

// TestBenchRate: --rate reaches the run and its JSON report; a rate out of
// range is refused before the run.
func TestBenchRate(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			load := []string{"--database-url", db.url(t), "--accounts", "5", "--concurrency", "2", "--ops", "20", "--seed", "1", "--quiet"}
			stdout, stderr, err := runBench(t, append(load, "--rate", "2000", "--json", "-")...)
			if err != nil {
				t.Fatalf("--rate 2000: %v\n%s", err, stderr)
			}
			var rep struct {
				Ops    int64   `json:"ops"`
				Target float64 `json:"target_ops_per_sec"`
			}
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("not a JSON report: %v\n%s", err, stdout)
			}
			if rep.Ops != 20 || rep.Target != 2000 {
				t.Errorf("%d operations, target_ops_per_sec %.0f; want 20 at the 2000 asked", rep.Ops, rep.Target)
			}
			if !strings.Contains(stderr, "schedule     2000 ops/s asked") {
				t.Errorf("the text report does not give the schedule:\n%s", stderr)
			}

			stdout, _, err = runBench(t, append(load, "--rate", "-5")...)
			if err == nil || !strings.Contains(err.Error(), "rate must be from 0 to") {
				t.Errorf("--rate -5: %v, want it refused", err)
			}
			if stdout != "" {
				t.Errorf("--rate -5: the run went ahead:\n%s", stdout)
			}
		})
	}
}

// TestBenchFindRate: --find-rate reaches the run and its reports; with
// --ops instead of a duration it is refused before the run.
func TestBenchFindRate(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			load := []string{"--database-url", db.url(t), "--accounts", "5", "--concurrency", "2", "--seed", "1", "--quiet"}
			stdout, stderr, err := runBench(t, append(load, "--find-rate", "1m", "--duration", "200ms", "--json", "-")...)
			if err != nil {
				t.Fatalf("--find-rate 1m: %v\n%s", err, stderr)
			}
			var rep struct {
				Target float64 `json:"target_ops_per_sec"`
				Search struct {
					P99MaxMs float64           `json:"p99_max_ms"`
					Max      float64           `json:"max_ops_per_sec"`
					Steps    []json.RawMessage `json:"steps"`
				} `json:"rate_search"`
			}
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("not a JSON report: %v\n%s", err, stdout)
			}
			if s := rep.Search; s.P99MaxMs != 60000 || s.Max <= 0 || rep.Target != s.Max || len(s.Steps) < 2 {
				t.Errorf("rate_search %+v, target_ops_per_sec %.0f; want a rate found within 60000 ms, and its run's figures", s, rep.Target)
			}
			if !strings.Contains(stderr, "rate search  highest rate with p99 within 60000.000 ms:") {
				t.Errorf("the text report does not give the search:\n%s", stderr)
			}

			stdout, _, err = runBench(t, append(load, "--find-rate", "25ms", "--ops", "20")...)
			if err == nil || !strings.Contains(err.Error(), "a rate search runs each of its steps for the duration") {
				t.Errorf("--find-rate with --ops: %v, want it refused", err)
			}
			if stdout != "" {
				t.Errorf("--find-rate with --ops: the run went ahead:\n%s", stdout)
			}
		})
	}
}
