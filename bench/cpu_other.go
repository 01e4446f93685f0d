//go:build !unix

package bench

// processUsage reports nothing where getrusage is missing.
func processUsage() (procUsage, bool) { return procUsage{}, false }
