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

// machineTimes is what /proc/stat tells of the machine's CPUs: the time all
// of them spent in each state since boot, in clock ticks, and how many are
// online.
type machineTimes struct {
	busy, idle, steal uint64
	cpus              int
}

// readMachineTimes reads the machine's CPU times under root (a /proc).
func readMachineTimes(root string) (machineTimes, bool) {
	b, err := os.ReadFile(filepath.Join(root, "stat"))
	if err != nil {
		return machineTimes{}, false
	}
	var (
		m     machineTimes
		total bool
	)
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || !strings.HasPrefix(f[0], "cpu"):
		case f[0] != "cpu":
			m.cpus++ // cpu0, cpu1, ...: one line per online CPU
		case len(f) >= 9:
			var v [8]uint64 // user nice system idle iowait irq softirq steal
			for i := range v {
				n, err := strconv.ParseUint(f[i+1], 10, 64)
				if err != nil {
					return machineTimes{}, false
				}
				v[i] = n
			}
			// Guest time is counted in user time already.
			m.busy, m.idle, m.steal = v[0]+v[1]+v[2]+v[5]+v[6], v[3]+v[4], v[7]
			total = true
		}
	}
	return m, total && m.cpus > 0
}

// machineCPU returns the machine's figures between two readings of its
// times, over a run of r.
func machineCPU(a, b machineTimes, r *Result) *MachineCPU {
	if b.busy < a.busy || b.idle < a.idle || b.steal < a.steal || a.cpus != b.cpus {
		return nil
	}
	busy, idle, steal := b.busy-a.busy, b.idle-a.idle, b.steal-a.steal
	total := float64(busy + idle + steal)
	if total == 0 {
		return nil
	}
	share := func(ticks uint64) float64 { return float64(ticks) / total * float64(b.cpus) }
	m := &MachineCPU{CPUs: b.cpus, Cores: round2(share(busy)), IdleCores: round2(share(idle)), StealCores: round2(share(steal))}
	if r.Ops > 0 {
		m.PerOpUs = round2(share(busy) * r.Seconds * 1e6 / float64(r.Ops))
	}
	return m
}

// bootTime returns when the machine booted, from /proc/stat under root.
func bootTime(root string) (time.Time, bool) {
	b, err := os.ReadFile(filepath.Join(root, "stat"))
	if err != nil {
		return time.Time{}, false
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Unix(secs, 0), err == nil
		}
	}
	return time.Time{}, false
}

// clockTicks is Linux's USER_HZ, the unit of the times in /proc: 100 on
// every architecture Go runs on.
const clockTicks = 100

// startTime returns when process pid under root started.
func startTime(root string, pid int) (time.Time, bool) {
	boot, ok := bootTime(root)
	if !ok {
		return time.Time{}, false
	}
	f, ok := statFields(filepath.Join(root, strconv.Itoa(pid)))
	if !ok || len(f) < 20 {
		return time.Time{}, false
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64) // field 22, starttime
	if err != nil {
		return time.Time{}, false
	}
	return boot.Add(time.Duration(ticks) * time.Second / clockTicks), true
}

// procUsage is what a process has used since it started: time on a CPU,
// and minor page faults, each a page of memory the kernel mapped in at
// its first touch (costly under a hypervisor; docs/performance.md).
type procUsage struct {
	cpu    time.Duration
	faults uint64
}

// treeUsage returns what process pid and each of its children have used,
// by process id, read under root (a /proc): for a PostgreSQL server's
// postmaster, every process of the server (backends, WAL writer,
// checkpointer, ...). It is false when pid is not there.
func treeUsage(root string, pid int) (map[int]procUsage, bool) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, false
	}
	out := map[int]procUsage{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p <= 0 {
			continue
		}
		dir := filepath.Join(root, e.Name())
		f, ok := statFields(dir)
		if !ok || len(f) < 8 {
			continue
		}
		if p != pid {
			if ppid, err := strconv.Atoi(f[1]); err != nil || ppid != pid {
				continue
			}
		}
		faults, err := strconv.ParseUint(f[7], 10, 64) // field 10, minflt
		if err != nil {
			continue
		}
		if cpu, ok := processRunTime(dir); ok {
			out[p] = procUsage{cpu: cpu, faults: faults}
		}
	}
	_, found := out[pid]
	return out, found
}

// treeUsageSince returns what the processes of now used since before: all
// of it for a process that was not there before, or whose counters went
// down (its id taken by a new process). A process that ended in between
// is not counted.
func treeUsageSince(before, now map[int]procUsage) procUsage {
	var sum procUsage
	for p, u := range now {
		if b, ok := before[p]; ok && b.cpu <= u.cpu && b.faults <= u.faults {
			u.cpu -= b.cpu
			u.faults -= b.faults
		}
		sum.cpu += u.cpu
		sum.faults += u.faults
	}
	return sum
}

// statFields returns the fields of a process's stat file after the
// command name: the process state (field 3) first.
func statFields(dir string) ([]string, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return nil, false
	}
	// The command name, in parentheses, may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, false
	}
	return strings.Fields(string(b[i+1:])), true
}

// ran reports whether any of the processes shows time on a CPU: a kernel
// that keeps no scheduler statistics shows none.
func ran(usage map[int]procUsage) bool {
	for _, u := range usage {
		if u.cpu > 0 {
			return true
		}
	}
	return false
}

// parentOf returns the parent process id from a process's stat file.
func parentOf(dir string) (int, bool) {
	f, ok := statFields(dir)
	if !ok || len(f) < 2 {
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
