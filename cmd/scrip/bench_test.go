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
