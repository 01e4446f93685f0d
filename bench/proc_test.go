package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fakeProc writes a /proc with the machine's times and the processes given
// as pid: {parent pid, run time in ns, minor page faults, command line}.
// Every process started 123.45 s after boot.
func fakeProc(t *testing.T, stat string, procs map[string][4]string) string {
	t.Helper()
	root := t.TempDir()
	write := func(name, content string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("stat", stat)
	for pid, p := range procs {
		// A command name may hold spaces and parentheses.
		write(pid+"/stat", pid+" (a (b) c) S "+p[0]+" 1 1 0 -1 4194560 "+p[2]+" 0 0 0 7 3 0 0 20 0 1 0 12345 1000 10\n")
		write(pid+"/schedstat", p[1]+" 5000 12\n")
		write(pid+"/cmdline", p[3])
	}
	return root
}

func TestMachineTimes(t *testing.T) {
	t.Parallel()
	before := fakeProc(t, "cpu  100 5 50 800 20 3 2 10 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\ncpu1 1 2 3 4 5 6 7 8 0 0\n"+
		"cpu2 1 2 3 4 5 6 7 8 0 0\ncpu3 1 2 3 4 5 6 7 8 0 0\nintr 1 2 3\nbtime 1700000000\n", nil)
	after := fakeProc(t, "cpu  250 5 110 900 40 5 8 30 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\ncpu1 1 2 3 4 5 6 7 8 0 0\n"+
		"cpu2 1 2 3 4 5 6 7 8 0 0\ncpu3 1 2 3 4 5 6 7 8 0 0\n", nil)
	a, ok := readMachineTimes(before)
	if !ok {
		t.Fatal("the first reading failed")
	}
	if want := (machineTimes{busy: 160, idle: 820, steal: 10, cpus: 4}); a != want {
		t.Errorf("read %+v, want %+v", a, want)
	}
	b, ok := readMachineTimes(after)
	if !ok {
		t.Fatal("the second reading failed")
	}
	// 218 ticks busy, 120 idle, 20 stolen, of 358, on 4 CPUs: 2.4358
	// cores busy; 1,000 operations in 2 s.
	m := machineCPU(a, b, &Result{Ops: 1000, Seconds: 2})
	want := MachineCPU{CPUs: 4, Cores: 2.44, IdleCores: 1.34, StealCores: 0.22, PerOpUs: 4871.51}
	if m == nil || *m != want {
		t.Errorf("machine %+v, want %+v", m, want)
	}
	if m := machineCPU(b, a, &Result{Ops: 1, Seconds: 1}); m != nil {
		t.Errorf("times that went backwards gave %+v", m)
	}
	if m := machineCPU(a, a, &Result{Ops: 1, Seconds: 1}); m != nil {
		t.Errorf("no time at all gave %+v", m)
	}
	for _, bad := range []string{"", "intr 1 2 3\n", "cpu 1 2 x 4 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n",
		"cpu 1 2 3\ncpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3 4 5 6 7 8\n"} {
		if _, ok := readMachineTimes(fakeProc(t, bad, nil)); ok {
			t.Errorf("read times from %q", bad)
		}
	}
	if _, ok := readMachineTimes(filepath.Join(t.TempDir(), "none")); ok {
		t.Error("read times without a /proc")
	}

	root := fakeProc(t, "cpu 0 0 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0\nbtime 1700000000\n", map[string][4]string{"7": {"1", "1", "0", ""}})
	if got, ok := startTime(root, 7); !ok || !got.Equal(time.Unix(1700000123, 450_000_000)) {
		t.Errorf("start time %s, %v; want 123.45 s after boot", got, ok)
	}
	if _, ok := startTime(before, 7); ok {
		t.Error("start time of a process that is not there")
	}
	if _, ok := startTime(after, 7); ok {
		t.Error("start time without the boot time")
	}
}

func TestTreeUsage(t *testing.T) {
	t.Parallel()
	before := fakeProc(t, "cpu 0 0 0 0 0 0 0 0\n", map[string][4]string{
		"100": {"1", "1000000", "900", "/usr/lib/postgresql/15/bin/postgres\x00-D\x00/data\x00"},
		"101": {"100", "5000000", "40", "postgres: checkpointer\x00"},
		"102": {"100", "7000000", "300", "postgres: postgres test 127.0.0.1(5000) idle\x00"},
		"103": {"100", "9000000", "50", "postgres: postgres test 127.0.0.1(5001) idle\x00"},  // ends before the second reading
		"105": {"100", "3000000", "500", "postgres: postgres test 127.0.0.1(5002) idle\x00"}, // ends; its id is taken again
		"200": {"1", "50000000", "10", "other\x00"},
		"201": {"200", "60000000", "10", "postgres: of another server\x00"},
	})
	after := fakeProc(t, "cpu 0 0 0 0 0 0 0 0\n", map[string][4]string{
		"100": {"1", "1500000", "900", ""},
		"101": {"100", "6000000", "41", ""},
		"102": {"100", "17000000", "2300", ""},
		"104": {"100", "2000000", "700", ""}, // started in between
		"105": {"100", "4000000", "60", ""},  // a new process under the same id
		"200": {"1", "90000000", "99999", ""},
		"201": {"200", "99000000", "99999", ""},
	})
	a, ok := treeUsage(before, 100)
	if !ok || len(a) != 5 || a[102] != (procUsage{cpu: 7 * time.Millisecond, faults: 300}) {
		t.Fatalf("first reading %v, %v", a, ok)
	}
	b, ok := treeUsage(after, 100)
	if !ok || len(b) != 5 || !ran(b) {
		t.Fatalf("second reading %v, %v", b, ok)
	}
	if ran(map[int]procUsage{100: {faults: 3}, 101: {}}) {
		t.Error("processes without scheduler statistics ran")
	}
	// 0.5 + 1 + 10 ms and 0 + 1 + 2,000 faults, and all of the 2 ms and
	// 700 faults of the process that started, and all of the 4 ms and 60
	// faults of the new 105 (fewer faults than the old one had: counted
	// from zero, although its time alone went up).
	want := procUsage{cpu: 17500 * time.Microsecond, faults: 2761}
	if got := treeUsageSince(a, b); got != want {
		t.Errorf("used since: %+v, want %+v", got, want)
	}
	if _, ok := treeUsage(after, 999); ok {
		t.Error("found a process that is not there")
	}
	if !isPostgresBackend(before, 102) || isPostgresBackend(before, 100) || isPostgresBackend(before, 200) {
		t.Error("isPostgresBackend: want only the server's processes titled postgres:")
	}
	if ppid, ok := parentOf(filepath.Join(before, "201")); !ok || ppid != 200 {
		t.Errorf("parent of 201: %d, %v", ppid, ok)
	}
}
