package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
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

// procsMin is the fewest threads running Go code at once (GOMAXPROCS)
// scrip serve takes: with one, every return of the SQLite writer from its
// log's writes and fsync waits for the only one, and batches shrink to a
// single operation (docs/performance.md, "Per step", item 12).
const procsMin = 2

// tuneRuntime applies the defaults above where the environment sets
// nothing.
func tuneRuntime() {
	tuneGC()
	tuneProcs()
}

// tuneGC applies the collector settings above unless GOGC is set.
func tuneGC() {
	if _, ok := os.LookupEnv("GOGC"); ok {
		return
	}
	debug.SetGCPercent(gcPercentDefault)
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok {
		debug.SetMemoryLimit(memoryLimitDefault)
	}
}

// tuneProcs raises GOMAXPROCS to procsMin unless the environment sets it
// (as the runtime reads it: a positive integer). Go's default of two or
// more is left alone, and with it Go's updates of it when the CPU limit
// changes; a raised value stays, as any value set by the program does.
func tuneProcs() {
	if n, err := strconv.ParseInt(os.Getenv("GOMAXPROCS"), 10, 32); err == nil && n > 0 {
		return
	}
	if runtime.GOMAXPROCS(0) < procsMin {
		runtime.GOMAXPROCS(procsMin)
	}
}
