package main

import (
	"os"
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

// tuneGC applies the defaults above where the environment sets nothing.
func tuneGC() {
	if _, ok := os.LookupEnv("GOGC"); ok {
		return
	}
	debug.SetGCPercent(gcPercentDefault)
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok {
		debug.SetMemoryLimit(memoryLimitDefault)
	}
}
