//go:build unix

package bench

import (
	"syscall"
	"time"
)

// processUsage returns what this process has used: CPU time, user and
// system, and minor page faults.
func processUsage() (procUsage, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return procUsage{}, false
	}
	return procUsage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), faults: uint64(ru.Minflt)}, true
}
