package bench

import (
	"context"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scriphq/scrip/credit"
)

// queueTarget charges one at a time, each charge taking a fixed time: a
// target with a capacity, past which a fixed rate queues and its latency
// grows with the run.
type queueTarget struct {
	slowTarget
	mu *sync.Mutex
}

func (q queueTarget) charge(ctx context.Context, account, key string, amount credit.Amount) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	time.Sleep(q.took)
	return "ch", nil
}

// A search on a target that does one charge at a time: the closed loop
// queues every client behind it, p99 about sixteen charges long, over the
// bound. The rate it finds is at most the ceiling, above every rate tried
// over the bound and the highest tried within it, and the result is that
// run's.
func TestSearchRateRuns(t *testing.T) {
	t.Parallel()
	took := 5 * time.Millisecond
	cfg := Config{Workload: WorkloadCharge, Accounts: 1, Concurrency: 16, Duration: 400 * time.Millisecond, Seed: 1,
		FindRate: 50 * time.Millisecond, Log: io.Discard}
	tg := queueTarget{slowTarget: slowTarget{took: took}, mu: &sync.Mutex{}}
	res := searchRate(context.Background(), &database{}, newLoad(cfg, tg, []string{"a"}, "r"))
	s := res.RateSearch
	if s == nil {
		t.Fatal("no search in the result")
	}
	if len(s.Steps) < 2 || len(s.Steps) > 1+searchStepsMax {
		t.Fatalf("%d steps, want the closed loop and 1 to %d at fixed rates: %+v", len(s.Steps), searchStepsMax, s.Steps)
	}
	ceiling := math.Round(s.CeilingOpsPerSec)
	if first := s.Steps[0]; first.TargetOpsPerSec != 0 || first.Within || first.OpsPerSec != s.CeilingOpsPerSec {
		t.Errorf("first step %+v, want the closed loop, over the bound with 16 clients queued behind %s charges", first, took)
	}
	if second := s.Steps[1]; second.TargetOpsPerSec != ceiling {
		t.Errorf("second step %+v, want the closed loop's %.0f ops/s", second, ceiling)
	}
	if s.MaxOpsPerSec <= 0 || s.MaxOpsPerSec > ceiling {
		t.Fatalf("found %.0f ops/s, want a rate from 1 to the ceiling %.0f: %+v", s.MaxOpsPerSec, ceiling, s.Steps)
	}
	highest := 0.0
	steps := s.Steps[1:]
	for i, st := range steps {
		if st.Within != (st.Miss == "") {
			t.Errorf("step %+v: within and its miss disagree", st)
		}
		// A miss that its second run overturned does not count.
		overturned := i+1 < len(steps) && steps[i+1].Again && steps[i+1].Within
		if st.Within {
			highest = max(highest, st.TargetOpsPerSec)
		} else if !overturned && st.TargetOpsPerSec <= s.MaxOpsPerSec {
			t.Errorf("step %+v over the bound at or below the %.0f ops/s found", st, s.MaxOpsPerSec)
		}
	}
	if highest != s.MaxOpsPerSec {
		t.Errorf("found %.0f ops/s, but the highest rate within was %.0f", s.MaxOpsPerSec, highest)
	}
	if res.TargetOpsPerSec != s.MaxOpsPerSec || res.P99Ms > s.P99MaxMs {
		t.Errorf("result at %.0f ops/s, p99 %.3f ms; want the figures of the run found, at %.0f within %.0f ms",
			res.TargetOpsPerSec, res.P99Ms, s.MaxOpsPerSec, s.P99MaxMs)
	}
	var text strings.Builder
	res.writeText(&text)
	if !strings.Contains(text.String(), "rate search  highest rate with p99 within 50.000 ms:") {
		t.Errorf("text report lacks the search:\n%s", text.String())
	}
}

// narrow's steps, against a target that keeps within the bound up to 1,234
// ops/s, one that always does and one that never does.
func TestSearchNarrow(t *testing.T) {
	t.Parallel()
	type run struct {
		rate  float64
		again bool
	}
	for _, c := range []struct {
		name     string
		capacity float64
		ceiling  float64
		// stalls are the runs (from 1) that miss by their p99 whatever
		// their rate; p99 is every miss's reason, where the others fall
		// behind their schedule.
		stalls []int
		p99    bool
		runs   []run
		max    float64
	}{
		// 2000 over; 1000 within; 1500, 1250 over; 1125, 1188 within: 1188
		// and 1250 are 5 % apart.
		{name: "capacity", capacity: 1234, ceiling: 2000,
			runs: []run{{2000, false}, {1000, false}, {1500, false}, {1250, false}, {1125, false}, {1188, false}}, max: 1188},
		// A stall at 1000 is run again, within; a rate over the capacity,
		// over by its p99, is run again and over again; the ceiling is not.
		{name: "stall", capacity: 1234, ceiling: 2000, stalls: []int{2}, p99: true,
			runs: []run{{2000, false}, {1000, false}, {1000, true}, {1500, false}, {1500, true}, {1250, false}, {1250, true}, {1125, false}, {1188, false}}, max: 1188},
		// A stall on the second run at a rate counts: over twice.
		{name: "stall again", capacity: 1234, ceiling: 2000, stalls: []int{2, 3}, p99: true,
			runs: []run{{2000, false}, {1000, false}, {1000, true}, {500, false}, {750, false}, {875, false}, {938, false}, {969, false}}, max: 969},
		// A stall at the ceiling, whatever the capacity, is not run again.
		{name: "stall at the ceiling", capacity: 1e9, ceiling: 2000, stalls: []int{1},
			runs: []run{{2000, false}, {1000, false}, {1500, false}, {1750, false}, {1875, false}, {1938, false}}, max: 1938},
		{name: "ceiling within", capacity: 1e9, ceiling: 2000.4, runs: []run{{2000, false}}, max: 2000},
		{name: "never within", capacity: 0, ceiling: 1000,
			runs: []run{{1000, false}, {500, false}, {250, false}, {125, false}, {63, false}, {32, false}, {16, false}, {8, false}, {4, false}, {2, false}}},
		{name: "below one a second", capacity: 0, ceiling: 3, runs: []run{{3, false}, {2, false}, {1, false}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var s RateSearch
			var runs []run
			s.narrow(c.ceiling, func(i int, rate float64, again bool) (bool, bool, bool) {
				if i != len(runs)+1 {
					t.Errorf("step %d after %d runs", i, len(runs))
				}
				runs = append(runs, run{rate, again})
				within := rate <= c.capacity && !slices.Contains(c.stalls, i)
				return within, !within && (c.p99 || slices.Contains(c.stalls, i)), true
			})
			if !slices.Equal(runs, c.runs) || s.MaxOpsPerSec != c.max {
				t.Errorf("ran %v and found %.0f, want %v and %.0f", runs, s.MaxOpsPerSec, c.runs, c.max)
			}
		})
	}
	var s RateSearch
	n := 0
	s.narrow(1000, func(int, float64, bool) (bool, bool, bool) { n++; return true, false, false })
	if n != 1 || s.MaxOpsPerSec != 0 {
		t.Errorf("a step that stops the search: %d steps, found %.0f; want 1 and nothing", n, s.MaxOpsPerSec)
	}
}

// judge: what keeps a run within the bound.
func TestSearchJudge(t *testing.T) {
	t.Parallel()
	s := &RateSearch{P99MaxMs: 25}
	for _, c := range []struct {
		res  Result
		rate float64
		miss string
	}{
		{Result{Ops: 1000, OpsPerSec: 990, P99Ms: 25}, 1000, ""},
		{Result{Ops: 1000, OpsPerSec: 990, P99Ms: 25.001}, 1000, "p99 25.001 ms, over 25.000 ms"},
		{Result{Ops: 1000, OpsPerSec: 949, P99Ms: 3}, 1000, "reached 949 of 1000 ops/s"},
		{Result{Ops: 1000, OpsPerSec: 990, P99Ms: 3, ErrorCount: 2}, 1000, "2 of 1000 operations failed"},
		{Result{}, 1000, "no operation ran"},
		{Result{Ops: 1000, OpsPerSec: 500, P99Ms: 3}, 0, ""},
	} {
		st := s.judge(&c.res, c.rate)
		if st.Miss != c.miss || st.Within != (c.miss == "") {
			t.Errorf("judge(%+v, %.0f) = within %v, %q; want %q", c.res, c.rate, st.Within, st.Miss, c.miss)
		}
	}
}
