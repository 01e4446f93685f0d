package bench

import (
	"fmt"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// timelineEvery is the length of an interval of a run's timeline.
const timelineEvery = time.Second

// Second is one interval of a run's timed part, a second long but for the
// last, which ends with the run: the operations that ended in it. An
// interval in which none ended (the target stalled) has no latencies.
type Second struct {
	// AtS is the interval's end, in seconds since the timed part began.
	AtS    float64 `json:"at_s"`
	Ops    int64   `json:"ops"`
	Errors int64   `json:"errors"`
	P50Ms  float64 `json:"p50_ms,omitempty"`
	P99Ms  float64 `json:"p99_ms,omitempty"`
	MaxMs  float64 `json:"max_ms,omitempty"`
}

// newWindowHistogram returns a histogram for one interval: two significant
// digits, a tenth of the size of the run's, which it empties and merges
// sixteen times an interval.
func newWindowHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, latencyMax.Microseconds(), 2)
}

// timeline ends an interval of the shards' latencies every timelineEvery
// and draws the progress line from it, until the returned func is called;
// that func ends the last interval and returns them all.
func (l *load) timeline(start time.Time, shards []*latencies) (stop func() []Second) {
	every := l.every
	if every <= 0 {
		every = timelineEvery
	}
	spares := make([]*hdrhistogram.Histogram, len(shards))
	for i := range spares {
		spares[i] = newWindowHistogram()
	}
	sum := newWindowHistogram()
	end := func(now time.Time) Second {
		sum.Reset()
		s := Second{AtS: round3(now.Sub(start).Seconds())}
		for i, sh := range shards {
			h, errs := sh.swapWindow(spares[i])
			sum.Merge(h)
			h.Reset()
			spares[i] = h
			s.Errors += errs
		}
		if s.Ops = sum.TotalCount(); s.Ops > 0 {
			s.P50Ms, s.P99Ms, s.MaxMs = ms(sum.ValueAtQuantile(50)), ms(sum.ValueAtQuantile(99)), ms(sum.Max())
		}
		return s
	}

	var seconds []Second
	stopTicks := ticking(every, func(now time.Time) {
		s := end(now)
		seconds = append(seconds, s)
		l.drawProgress(now.Sub(start), s, every)
	})
	return func() []Second {
		stopTicks()
		if s := end(time.Now()); s.Ops > 0 {
			seconds = append(seconds, s)
		}
		if l.cfg.Progress != nil {
			fmt.Fprintln(l.cfg.Progress)
		}
		return seconds
	}
}

// drawProgress draws the live line: the run so far, and the interval s
// that just ended, every long.
func (l *load) drawProgress(elapsed time.Duration, s Second, every time.Duration) {
	w := l.cfg.Progress
	if w == nil {
		return
	}
	n := l.done.Load()
	p99 := "-"
	if s.Ops > 0 {
		p99 = fmt.Sprintf("%.1f ms", s.P99Ms)
	}
	fmt.Fprintf(w, "\r%-8s %5.0fs  %10d ops  %9.0f ops/s now  %9.0f ops/s avg  p99 %s now  %d errors   ",
		l.t.name(), elapsed.Seconds(), n, float64(s.Ops)/every.Seconds(), float64(n)/elapsed.Seconds(), p99, l.failed.Load())
}

// slowestSecond returns the interval of the highest p99 among the whole
// ones, and how many those are: all but the last, unless it ran its full
// length too.
func slowestSecond(seconds []Second) (slowest Second, whole int) {
	whole = len(seconds)
	if n := len(seconds); n > 1 {
		full := seconds[0].AtS
		if seconds[n-1].AtS-seconds[n-2].AtS < 0.9*full {
			whole--
		}
	}
	for _, s := range seconds[:whole] {
		if s.P99Ms > slowest.P99Ms {
			slowest = s
		}
	}
	return slowest, whole
}
