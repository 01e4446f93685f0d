package bench

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Bounds of a rate search (--find-rate).
const (
	// searchStepsMax bounds the runs at a fixed rate after the closed
	// loop's, second runs at a rate included.
	searchStepsMax = 10
	// searchPrecision ends a search once the highest rate within the bound
	// and the lowest above it are this close, as a share of the latter.
	searchPrecision = 0.05
	// searchSettle is the pause between two steps, in which the target
	// finishes what the previous one left it (a log checkpoint, events to
	// announce) before the next schedule starts; a quarter of the step at
	// most.
	searchSettle = time.Second
)

// RateSearch is what a rate search found: the highest fixed rate at which
// the run's p99 latency stayed within a bound, every latency counted from
// its operation's scheduled start.
type RateSearch struct {
	P99MaxMs float64 `json:"p99_max_ms"`
	// MaxOpsPerSec is the highest rate asked whose run kept within the
	// bound; 0 when none did.
	MaxOpsPerSec float64 `json:"max_ops_per_sec"`
	// CeilingOpsPerSec is the closed loop's rate, where the search starts.
	CeilingOpsPerSec float64 `json:"ceiling_ops_per_sec"`
	// Steps are the runs in the order they ran, the closed loop first.
	Steps []RateStep `json:"steps"`
}

// RateStep is one run of a search.
type RateStep struct {
	// TargetOpsPerSec is the rate asked; 0 for the closed loop.
	TargetOpsPerSec float64 `json:"target_ops_per_sec"`
	OpsPerSec       float64 `json:"ops_per_sec"`
	P50Ms           float64 `json:"p50_ms"`
	P99Ms           float64 `json:"p99_ms"`
	MaxMs           float64 `json:"max_ms"`
	LateOps         int64   `json:"late_ops"`
	ErrorCount      int64   `json:"error_count"`
	// Within reports whether the run kept within the bound: p99 at most
	// the bound, no error, and at least 95 % of the rate reached. Miss says
	// why not.
	Within bool   `json:"within"`
	Miss   string `json:"miss,omitempty"`
	// Again marks a second run at the rate of the one before, which
	// missed by its p99 alone.
	Again bool `json:"again,omitempty"`
	// p99Only: the run missed by its p99 alone.
	p99Only bool
}

// searchRate finds the highest fixed rate at which l's workload keeps its
// p99 latency within cfg.FindRate. A closed-loop run gives the ceiling,
// what the target does with every client busy; runs at fixed rates then
// halve the range between the highest rate within the bound and the lowest
// above it, the ceiling first (narrow). The result is the full figures of the
// highest run within the bound (of the last run when none was), with the
// search attached.
func searchRate(ctx context.Context, db *database, l *load) *Result {
	cfg := l.cfg
	s := &RateSearch{P99MaxMs: ms(cfg.FindRate.Microseconds())}
	fmt.Fprintf(cfg.Log, "%s: rate search, p99 within %s: closed loop for %s\n", l.t.name(), cfg.FindRate, cfg.Duration)
	ceiling := timedRun(ctx, db, l.step(0, 0))
	s.Steps = append(s.Steps, s.judge(ceiling, 0))
	s.CeilingOpsPerSec = ceiling.OpsPerSec

	var best, last *Result
	s.narrow(ceiling.OpsPerSec, func(i int, rate float64, again bool) (within, retry, ok bool) {
		if !sleepCtx(ctx, min(searchSettle, cfg.Duration/4)) {
			return false, false, false
		}
		what := ""
		if again {
			what = ", again"
		}
		fmt.Fprintf(cfg.Log, "%s: step %d of at most %d: %.0f ops/s for %s%s\n", l.t.name(), i, searchStepsMax, rate, cfg.Duration, what)
		res := timedRun(ctx, db, l.step(rate, i))
		if ctx.Err() != nil {
			// A run cut short says nothing about its rate.
			return false, false, false
		}
		step := s.judge(res, rate)
		step.Again = again
		s.Steps = append(s.Steps, step)
		last = res
		if step.Within {
			fmt.Fprintf(cfg.Log, "%s: %.0f ops/s, p99 %.3f ms: within\n", l.t.name(), res.OpsPerSec, res.P99Ms)
			best = res
		} else {
			fmt.Fprintf(cfg.Log, "%s: %s\n", l.t.name(), step.Miss)
		}
		return step.Within, step.p99Only, true
	})
	res := best
	if res == nil {
		res = last
	}
	if res == nil {
		res = ceiling
	}
	res.RateSearch = s
	return res
}

// narrow sets MaxOpsPerSec to the highest rate up to ceiling (rounded to
// a whole operation a second) that try finds within the bound. try(i,
// rate, again) runs step i at rate, again when it repeats the step before,
// and reports whether the run kept within; retry when it missed by its p99
// alone, which one stall of the target can do at any rate; !ok when the
// search must stop. Such a miss below the ceiling is run once more, and
// the rate is over the bound only if both runs are; at the ceiling, where
// the target is as busy as the closed loop kept it, a second run misses
// too and would only take a step from the search. The search tries the
// ceiling first, then halves the range between the highest rate within
// and the lowest over, until the two are within searchPrecision of each
// other, no whole rate lies between them, or searchStepsMax runs ran.
func (s *RateSearch) narrow(ceiling float64, try func(i int, rate float64, again bool) (within, retry, ok bool)) {
	lo, hi := 0.0, math.Round(ceiling)
	rate := hi
	for i := 1; i <= searchStepsMax && rate >= 1; i++ {
		within, retry, ok := try(i, rate, false)
		if !ok {
			return
		}
		// Step 1 is the ceiling.
		if !within && retry && i > 1 && i < searchStepsMax {
			i++
			if within, _, ok = try(i, rate, true); !ok {
				return
			}
		}
		if within {
			lo = rate
			s.MaxOpsPerSec = rate
		} else {
			hi = rate
		}
		next := math.Round((lo + hi) / 2)
		if lo == hi || hi-lo <= searchPrecision*hi || next <= lo || next >= hi {
			return
		}
		rate = next
	}
}

// judge summarizes one run of a search at rate (0: the closed loop) and
// says whether it kept within the bound.
func (s *RateSearch) judge(r *Result, rate float64) RateStep {
	st := RateStep{TargetOpsPerSec: rate, OpsPerSec: r.OpsPerSec, P50Ms: r.P50Ms, P99Ms: r.P99Ms, MaxMs: r.MaxMs,
		LateOps: r.LateOps, ErrorCount: r.ErrorCount}
	switch {
	case r.Ops == 0:
		st.Miss = "no operation ran"
	case r.ErrorCount > 0:
		st.Miss = fmt.Sprintf("%d of %d operations failed", r.ErrorCount, r.Ops)
	case rate > 0 && r.OpsPerSec < behindShare*rate:
		st.Miss = fmt.Sprintf("reached %.0f of %.0f ops/s", r.OpsPerSec, rate)
	case r.P99Ms > s.P99MaxMs:
		st.Miss = fmt.Sprintf("p99 %.3f ms, over %.3f ms", r.P99Ms, s.P99MaxMs)
		st.p99Only = true
	default:
		st.Within = true
	}
	return st
}

// step returns a run of l's workload at rate (0: closed loop) that books
// what it spends with l's, under idempotency keys of its own: the steps of
// a search share their accounts, and the checks after the search count what
// all of them spent.
func (l *load) step(rate float64, n int) *load {
	cfg := l.cfg
	cfg.Rate = rate
	cfg.Seed += uint64(n)
	return &load{cfg: cfg, t: l.t, accounts: l.accounts, runID: fmt.Sprintf("%s-s%d", l.runID, n), index: l.index,
		spent: l.spent, uncertain: l.uncertain, charge: l.charge}
}

// timedRun runs l once, with the target's batch figures and the CPU time
// counted over the run alone.
func timedRun(ctx context.Context, db *database, l *load) *Result {
	if r, ok := l.t.(interface{ resetBatches() }); ok {
		r.resetBatches()
	}
	probe := startCPUProbe(db.postmaster)
	res := l.run(ctx)
	probe.finish(res, l.t)
	return res
}

// sleepCtx waits for d, and reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
