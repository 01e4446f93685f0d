package main

import (
	"os"
	"runtime"
	"runtime/debug"
)

// Garbage collector settings for scrip serve, used unless GOGC or
// GOMEMLIMIT is set in the environment.
//
// scrip's live heap is a few megabytes, so at Go's default (GOGC=100) the
// collector runs whenever 4 MB have been allocated: about a hundred times a
// second under load, each cycle stopping every goroutine, the committer
// included. GOGC=1000 lets the heap grow to about 40 MB first (measured: 64
// cycles instead of 1,210 in 12 s of HTTP load); the soft memory limit
// keeps a large heap from growing tenfold before it is collected.
const (
	gcPercentDefault   = 1000
	memoryLimitDefault = 1 << 30
)

// procsMin is the fewest goroutines scrip serve runs at once (GOMAXPROCS)
// unless GOMAXPROCS is set in the environment. Go's default is the number
// of CPUs the process may use: one on a one-CPU machine or when the process
// is bound to one CPU (a cpuset); a container's CPU quota alone gives at
// least two. With one, each time the SQLite writer waits on the
// disk (its log's writes and flush) it holds the only one, no request is
// read or answered meanwhile, and the writer commits batches of one or two
// operations. Measured on one CPU, HTTP charges on SQLite at 64 clients:
// 3,726–4,723/s with p99 134–201 ms at one, 5,532–5,880/s with p99
// 22–28 ms at two (docs/performance.md, "Per step", item 12).
const procsMin = 2

// tuneRuntime applies the defaults above where the environment sets
// nothing.
func tuneRuntime() {
	tuneGC()
	tuneProcs()
}

func tuneGC() {
	if _, ok := os.LookupEnv("GOGC"); ok {
		return
	}
	debug.SetGCPercent(gcPercentDefault)
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok {
		debug.SetMemoryLimit(memoryLimitDefault)
	}
}

// tuneProcs raises GOMAXPROCS to procsMin. Above it, Go's default is left
// alone, and with it Go's updates of it when the process's CPU limit
// changes.
func tuneProcs() {
	if _, ok := os.LookupEnv("GOMAXPROCS"); ok {
		return
	}
	if runtime.GOMAXPROCS(0) < procsMin {
		runtime.GOMAXPROCS(procsMin)
	}
}
