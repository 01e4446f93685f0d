package main

import (
	"os"
	"runtime"
	"testing"
)

func TestTuneProcs(t *testing.T) {
	// Whatever the cases set, the runtime's own choice comes back.
	t.Cleanup(func() { runtime.SetDefaultGOMAXPROCS() })

	for _, c := range []struct {
		name  string
		env   *string // nil: unset
		start int
		want  int
	}{
		{"one is raised", nil, 1, procsMin},
		{"more are left alone", nil, procsMin + 3, procsMin + 3},
		{"the environment wins", ptr("1"), 1, 1},
		{"an empty value is unset, as the runtime reads it", ptr(""), 1, procsMin},
		{"so is one that is not a positive number", ptr("all"), 1, procsMin},
		{"and zero", ptr("0"), 1, procsMin},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", "") // restores the variable afterwards
			if c.env == nil {
				os.Unsetenv("GOMAXPROCS")
			} else {
				os.Setenv("GOMAXPROCS", *c.env)
			}
			runtime.GOMAXPROCS(c.start)
			tuneProcs()
			if got := runtime.GOMAXPROCS(0); got != c.want {
				t.Fatalf("GOMAXPROCS = %d, want %d", got, c.want)
			}
		})
	}
}

func ptr(s string) *string { return &s }
