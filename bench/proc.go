package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The machine's and the database server's CPU time come from Linux's /proc.
// Elsewhere, or when /proc does not tell, the report leaves them out.

// procRoot is where /proc is mounted.
const procRoot = "/proc"

// machineTimes is the first line of /proc/stat: the time every CPU of the
// machine spent in each state since boot, in clock ticks.
type machineTimes struct {
	busy, idle, steal uint64
}

// readMachineTimes reads the machine's CPU times under root (a /proc).
func readMachineTimes(root string) (machineTimes, bool) {
	b, err := os.ReadFile(filepath.Join(root, "stat"))
	if err != nil {
		return machineTimes{}, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return machineTimes{}, false
	}
	var v [8]uint64 // user nice system idle iowait irq softirq steal
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return machineTimes{}, false
		}
		v[i] = n
	}
	// Guest time is counted in user time already.
	return machineTimes{busy: v[0] + v[1] + v[2] + v[5] + v[6], idle: v[3] + v[4], steal: v[7]}, true
}

// machineCPU returns the machine's figures between two readings of its
// times, over a run of r.
func machineCPU(a, b machineTimes, cpus int, r *Result) *MachineCPU {
	busy, idle, steal := b.busy-a.busy, b.idle-a.idle, b.steal-a.steal
	total := float64(busy + idle + steal)
	if total <= 0 || b.busy < a.busy || b.idle < a.idle || b.steal < a.steal {
		return nil
	}
	share := func(ticks uint64) float64 { return float64(ticks) / total * float64(cpus) }
	m := &MachineCPU{CPUs: cpus, Cores: round2(share(busy)), IdleCores: round2(share(idle)), StealCores: round2(share(steal))}
	if r.Ops > 0 {
		m.PerOpUs = round2(share(busy) * r.Seconds * 1e6 / float64(r.Ops))
	}
	return m
}

// treeCPU returns the CPU time of process pid and of each of its children,
// by process id, read under root (a /proc): for a PostgreSQL server's
// postmaster, every process of the server (backends, WAL writer,
// checkpointer, ...). It is false when pid is not there.
func treeCPU(root string, pid int) (map[int]time.Duration, bool) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, false
	}
	out := map[int]time.Duration{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p <= 0 {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if p != pid {
			if ppid, ok := parentOf(dir); !ok || ppid != pid {
				continue
			}
		}
		if cpu, ok := processRunTime(dir); ok {
			out[p] = cpu
		}
	}
	_, found := out[pid]
	return out, found
}

// treeCPUSince returns the CPU time the processes of now spent since
// before: all of it for a process that was not there before. A process
// that ended in between is not counted.
func treeCPUSince(before, now map[int]time.Duration) time.Duration {
	var sum time.Duration
	for p, cpu := range now {
		if b, ok := before[p]; ok && b <= cpu {
			cpu -= b
		}
		sum += cpu
	}
	return sum
}

// parentOf returns the parent process id from a process's stat file.
func parentOf(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return 0, false
	}
	// The command name, in parentheses, may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// processRunTime returns the time a process has run on a CPU, from its
// schedstat file (nanoseconds).
func processRunTime(dir string) (time.Duration, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "schedstat"))
	if err != nil {
		return 0, false
	}
	f, _, _ := strings.Cut(string(b), " ")
	ns, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(ns), true
}

// isPostgresBackend reports whether process pid under root is a
// PostgreSQL server process, whose title starts with "postgres:".
func isPostgresBackend(root string, pid int) bool {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "cmdline"))
	return err == nil && bytes.HasPrefix(b, []byte("postgres:"))
}
