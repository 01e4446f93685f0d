package bench

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriphq/scrip/credit"
)

// phasedTarget charges at once until slowFrom, and in slow from then on;
// every seventh charge fails.
type phasedTarget struct {
	slowTarget
	slowFrom time.Time
	slow     time.Duration
	n        atomic.Int64
}

var errSeventh = errors.New("every seventh charge fails")

func (p *phasedTarget) charge(context.Context, string, string, credit.Amount) (string, error) {
	if time.Now().After(p.slowFrom) {
		time.Sleep(p.slow)
	}
	if p.n.Add(1)%7 == 0 {
		return "", errSeventh
	}
	return "ch", nil
}

// The timeline splits the run into intervals that account for every
// operation and error, and shows where the slow ones were: a target that
// slows down part way through has fast intervals, then slow ones.
func TestTimeline(t *testing.T) {
	t.Parallel()
	const slow = 200 * time.Millisecond
	cfg := Config{Workload: WorkloadCharge, Accounts: 1, Concurrency: 4, Duration: time.Second, Seed: 1}
	var progress syncBuffer
	cfg.Progress = &progress
	target := &phasedTarget{slowFrom: time.Now().Add(300 * time.Millisecond), slow: slow}
	l := newLoad(cfg, target, []string{"a"}, "r")
	l.every = 100 * time.Millisecond
	res := l.run(context.Background())

	tl := res.Timeline
	if len(tl) < 3 {
		t.Fatalf("%d intervals in a run of 1 s at 100 ms each, want at least 3: %+v", len(tl), tl)
	}
	var ops, errs int64
	var maxMs float64
	for i, s := range tl {
		ops += s.Ops
		errs += s.Errors
		maxMs = max(maxMs, s.MaxMs)
		// The last, cut short by the end of the run, may end within a
		// millisecond of the one before.
		if i > 0 && (s.AtS < tl[i-1].AtS || s.AtS == tl[i-1].AtS && i < len(tl)-1) {
			t.Errorf("interval %d ends at %.3f s, not after the one before (%.3f s)", i, s.AtS, tl[i-1].AtS)
		}
		if s.Ops > 0 && (s.P50Ms > s.P99Ms || s.P99Ms > s.MaxMs) {
			t.Errorf("interval %d: p50 %.3f, p99 %.3f, max %.3f ms are out of order", i, s.P50Ms, s.P99Ms, s.MaxMs)
		}
	}
	if ops != res.Ops || errs != res.ErrorCount {
		t.Errorf("the intervals hold %d operations and %d errors, the run %d and %d", ops, errs, res.Ops, res.ErrorCount)
	}
	if res.ErrorCount == 0 {
		t.Error("no errors: the target fails every seventh charge")
	}
	// The intervals keep two significant digits, the run three.
	if math.Abs(maxMs-res.MaxMs) > res.MaxMs/100+0.001 {
		t.Errorf("slowest operation %.3f ms in the intervals, %.3f ms in the run", maxMs, res.MaxMs)
	}
	if last := tl[len(tl)-1].AtS; last < res.Seconds-0.01 || last > res.Seconds+1 {
		t.Errorf("the last interval ends at %.2f s, the run lasted %.2f s", last, res.Seconds)
	}
	if tl[0].P99Ms >= ms(slow.Microseconds()) {
		t.Errorf("first interval's p99 %.3f ms, before the target slowed down", tl[0].P99Ms)
	}
	slowest, _ := slowestSecond(tl)
	if slowest.P99Ms < ms(slow.Microseconds()) {
		t.Errorf("highest p99 of an interval %.3f ms, want at least the %v of the charges after 300 ms", slowest.P99Ms, slow)
	}
	if p := progress.String(); !strings.Contains(p, "ops/s now") || !strings.Contains(p, "ms now") {
		t.Errorf("progress line %q shows neither the rate nor the p99 of the last interval", p)
	}
}

// The report names the slowest whole second, not the last one cut short.
func TestSlowestSecond(t *testing.T) {
	tl := []Second{
		{AtS: 1, Ops: 10, P99Ms: 3},
		{AtS: 2, Ops: 0}, // a stall: nothing ended
		{AtS: 3, Ops: 10, P99Ms: 40},
		{AtS: 3.2, Ops: 2, P99Ms: 90},
	}
	got, whole := slowestSecond(tl)
	if got.AtS != 3 || whole != 3 {
		t.Errorf("slowest %+v of %d whole seconds, want the one ending at 3 s of 3", got, whole)
	}
	var b strings.Builder
	(&Report{Result: Result{Target: "scrip", Timeline: tl}}).WriteText(&b)
	if want := "highest p99 40.000 ms, in the second ending at 3 s"; !strings.Contains(b.String(), want) {
		t.Errorf("report %q does not say %q", b.String(), want)
	}
}
