package main

import (
	"os"
	"runtime"
	"testing"
)

// unsetEnv removes key from the environment for the test and puts back what
// was there afterwards.
func unsetEnv(t *testing.T, key string) {
	t.Helper()
	t.Setenv(key, "") // registers the restore
	os.Unsetenv(key)
}

func TestTuneProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))

	t.Run("one is raised to two", func(t *testing.T) {
		unsetEnv(t, "GOMAXPROCS")
		runtime.GOMAXPROCS(1)
		tuneProcs()
		if got := runtime.GOMAXPROCS(0); got != procsMin {
			t.Fatalf("GOMAXPROCS = %d, want %d", got, procsMin)
		}
	})
	t.Run("more are left alone", func(t *testing.T) {
		unsetEnv(t, "GOMAXPROCS")
		runtime.GOMAXPROCS(procsMin + 3)
		tuneProcs()
		if got := runtime.GOMAXPROCS(0); got != procsMin+3 {
			t.Fatalf("GOMAXPROCS = %d, want %d", got, procsMin+3)
		}
	})
	t.Run("the environment wins", func(t *testing.T) {
		t.Setenv("GOMAXPROCS", "1")
		runtime.GOMAXPROCS(1)
		tuneProcs()
		if got := runtime.GOMAXPROCS(0); got != 1 {
			t.Fatalf("GOMAXPROCS = %d with GOMAXPROCS=1 set, want 1", got)
		}
	})
}
