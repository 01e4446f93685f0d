package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/credit"
)

// Kinds of work one iteration of a workload does.
const (
	kindCharge      = "charge"
	kindHoldCapture = "hold-capture"
	kindQuote       = "quote"
	kindBalance     = "balance"
	kindRefund      = "refund"
)

// mixedShares is the mixed workload, in percent: what a generation
// platform's API sees around its jobs.
var mixedShares = []struct {
	kind  string
	share int
}{
	{kindQuote, 20},
	{kindBalance, 20},
	{kindCharge, 20},
	{kindHoldCapture, 25},
	{kindRefund, 15},
}

// load is one timed run of a workload against a target.
type load struct {
	cfg      Config
	t        target
	accounts []string
	runID    string
	index    map[string]int

	issued atomic.Int64
	done   atomic.Int64
	failed atomic.Int64
	// late counts the operations of a run with a rate that started more
	// than lateAfter after their scheduled start.
	late atomic.Int64
	// scheduled reports that a run with a rate and a duration ran its
	// schedule to the end: no operation was due before the deadline.
	scheduled atomic.Bool

	// spent is, per account, the credits the run took out of its
	// available balance (charges and open holds, net of captures' change,
	// releases and refunds); uncertain marks accounts where an operation
	// failed without a known outcome.
	spent     []atomic.Int64
	uncertain []atomic.Bool
	// charge is what one charge costs: chargeAmount, or the price of the
	// action a priced target charges.
	charge credit.Amount
	// every is the length of the timeline's intervals; 0 for
	// timelineEvery.
	every time.Duration
}

// pricedTarget is a target whose charges its catalog prices.
type pricedTarget interface {
	// chargePrice is what one charge costs; 0 when charges are explicit.
	chargePrice() credit.Amount
}

func newLoad(cfg Config, t target, accounts []string, run string) *load {
	l := &load{cfg: cfg, t: t, accounts: accounts, runID: run, index: make(map[string]int, len(accounts)),
		spent: make([]atomic.Int64, len(accounts)), uncertain: make([]atomic.Bool, len(accounts)), charge: chargeAmount}
	if p, ok := t.(pricedTarget); ok && p.chargePrice() > 0 {
		l.charge = p.chargePrice()
	}
	for i, a := range accounts {
		l.index[a] = i
	}
	return l
}

// worker is one client's state; only its goroutine touches it, but for
// lat, which it shares with other clients.
type worker struct {
	id      int
	rng     *rand.Rand
	timer   *time.Timer // waits for scheduled starts, with a rate
	seq     int64
	lat     *latencies
	errors  map[string]int64
	calls   int64
	charges []recentCharge
}

// latencies records the latencies of a share of the clients. A histogram is
// a few hundred KiB: one per client would be hundreds of MiB at a thousand
// clients.
type latencies struct {
	mu    sync.Mutex
	all   *hdrhistogram.Histogram
	kinds map[string]*hdrhistogram.Histogram
	// win is the latencies of the operations that ended in the timeline's
	// current interval, winErrors how many of them failed.
	win       *hdrhistogram.Histogram
	winErrors int64
}

// latencyShards is how many recorders the clients share.
const latencyShards = 16

func newLatencies() *latencies {
	return &latencies{all: newHistogram(), kinds: map[string]*hdrhistogram.Histogram{}, win: newWindowHistogram()}
}

func (l *latencies) record(kind string, micros int64, failed bool) {
	v := min(micros, latencyMax.Microseconds())
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.RecordValue(v)
	l.kind(kind).RecordValue(v)
	l.win.RecordValue(v)
	if failed {
		l.winErrors++
	}
}

// swapWindow ends the current interval: it returns the interval's
// latencies and failures and records the next ones into spare, which must
// be empty.
func (l *latencies) swapWindow(spare *hdrhistogram.Histogram) (*hdrhistogram.Histogram, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, n := l.win, l.winErrors
	l.win, l.winErrors = spare, 0
	return h, n
}

// kind returns the histogram of one kind of work, creating it if need be.
func (l *latencies) kind(k string) *hdrhistogram.Histogram {
	h := l.kinds[k]
	if h == nil {
		h = newHistogram()
		l.kinds[k] = h
	}
	return h
}

// merge adds what o recorded; o must no longer be recording.
func (l *latencies) merge(o *latencies) {
	l.all.Merge(o.all)
	for k, h := range o.kinds {
		l.kind(k).Merge(h)
	}
}

type recentCharge struct {
	id      string
	account int
}

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, latencyMax.Microseconds(), 3)
}

func (w *worker) key(run string) string {
	w.seq++
	return run + "-" + strconv.Itoa(w.id) + "-" + strconv.FormatInt(w.seq, 10)
}

func (l *load) run(ctx context.Context) *Result {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var deadline time.Time
	start := time.Now()
	if l.cfg.Duration > 0 {
		deadline = start.Add(l.cfg.Duration)
	}
	workers := make([]*worker, l.cfg.Concurrency)
	shards := make([]*latencies, min(latencyShards, len(workers)))
	for i := range shards {
		shards[i] = newLatencies()
	}
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{id: i, rng: rand.New(rand.NewPCG(l.cfg.Seed, uint64(i))), lat: shards[i%len(shards)],
			errors: map[string]int64{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := l.issued.Add(1)
				if l.cfg.Ops > 0 && n > l.cfg.Ops {
					return
				}
				var due time.Time
				if l.cfg.Rate > 0 {
					due = start.Add(time.Duration(float64(n-1) * float64(time.Second) / l.cfg.Rate))
					if !deadline.IsZero() && !due.Before(deadline) {
						l.scheduled.Store(true)
						return
					}
					if !w.wait(ctx, due) {
						return
					}
				}
				if !deadline.IsZero() && !time.Now().Before(deadline) || ctx.Err() != nil {
					return
				}
				l.iterate(ctx, w, due)
			}
		}()
	}
	stopTimeline := l.timeline(start, shards)
	wg.Wait()
	elapsed := time.Since(start)
	if l.scheduled.Load() {
		// The schedule spans the duration, though its last operation may
		// end sooner: 3 operations at 2 a second in 2 s are 1.5 a second.
		elapsed = max(elapsed, l.cfg.Duration)
	}
	timeline := stopTimeline()

	res := &Result{Target: l.t.name(), Errors: map[string]int64{}, Kinds: map[string]KindStats{}}
	total := newLatencies()
	for _, sh := range shards {
		total.merge(sh)
	}
	all := total.all
	for _, w := range workers {
		for c, n := range w.errors {
			res.Errors[c] += n
			res.ErrorCount += n
		}
		res.Calls += w.calls
	}
	res.Ops = l.done.Load()
	res.Seconds = round2(elapsed.Seconds())
	res.OpsPerSec = round2(float64(res.Ops) / elapsed.Seconds())
	res.OKOpsPerSec = round2(float64(res.Ops-res.ErrorCount) / elapsed.Seconds())
	res.CallsPerSec = round2(float64(res.Calls) / elapsed.Seconds())
	res.P50Ms, res.P90Ms, res.P99Ms = ms(all.ValueAtQuantile(50)), ms(all.ValueAtQuantile(90)), ms(all.ValueAtQuantile(99))
	res.MaxMs, res.MeanMs = ms(all.Max()), round3(all.Mean()/1000)
	for k, h := range total.kinds {
		res.Kinds[k] = KindStats{Ops: h.TotalCount(), P50Ms: ms(h.ValueAtQuantile(50)), P99Ms: ms(h.ValueAtQuantile(99))}
	}
	res.Timeline = timeline
	res.Batches = l.t.batches()
	if l.cfg.Rate > 0 {
		res.TargetOpsPerSec = round2(l.cfg.Rate)
		res.LateOps = l.late.Load()
	}
	return res
}

// wait waits until due, and reports false if ctx ended first.
func (w *worker) wait(ctx context.Context, due time.Time) bool {
	d := time.Until(due)
	if d <= 0 {
		return ctx.Err() == nil
	}
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		w.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		w.timer.Stop()
		return false
	case <-w.timer.C:
		return true
	}
}

func ms(micros int64) float64 { return round3(float64(micros) / 1000) }

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// phaseProgress draws "what: n of total" (or "what: n" without a total) on
// w once a second until the returned func is called, which erases it. With
// w nil it draws nothing.
func phaseProgress(w io.Writer, what string, total int, n func() int64) (stop func()) {
	return everySecond(w, func(time.Time) {
		if total > 0 {
			fmt.Fprintf(w, "\r%s: %d of %d accounts   ", what, min(n(), int64(total)), total)
		} else {
			fmt.Fprintf(w, "\r%s: %d accounts   ", what, n())
		}
	}, "\r\033[K")
}

// everySecond calls draw once a second on a goroutine of its own until the
// returned func is called, which then writes end to w. With w nil it does
// nothing.
func everySecond(w io.Writer, draw func(now time.Time), end string) (stop func()) {
	if w == nil {
		return func() {}
	}
	stopTicks := ticking(time.Second, draw)
	return func() {
		stopTicks()
		fmt.Fprint(w, end)
	}
}

// ticking calls tick every d on a goroutine of its own until the returned
// func is called, which returns once tick no longer runs.
func ticking(d time.Duration, tick func(now time.Time)) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				tick(now)
			}
		}
	}()
	return func() { close(quit); <-done }
}

// iterate does one unit of the workload and records it. With a rate, due
// is its scheduled start, from which its latency counts.
func (l *load) iterate(ctx context.Context, w *worker, due time.Time) {
	kind := kindCharge
	switch l.cfg.Workload {
	case WorkloadHoldCapture:
		kind = kindHoldCapture
	case WorkloadMixed:
		n := w.rng.IntN(100)
		for _, s := range mixedShares {
			if n < s.share {
				kind = s.kind
				break
			}
			n -= s.share
		}
		if kind == kindRefund && len(w.charges) == 0 {
			kind = kindCharge
		}
	}
	acct := w.rng.IntN(len(l.accounts))
	start := time.Now()
	if !due.IsZero() {
		if start.Sub(due) > lateAfter {
			l.late.Add(1)
		}
		start = due
	}
	err := l.do(ctx, w, kind, acct)
	d := time.Since(start).Microseconds()
	if err != nil {
		w.errors[errorCode(err)]++
		l.failed.Add(1)
	}
	w.lat.record(kind, d, err != nil)
	l.done.Add(1)
}

func (l *load) do(ctx context.Context, w *worker, kind string, acct int) error {
	account := l.accounts[acct]
	switch kind {
	case kindQuote:
		w.calls++
		return l.t.quote(ctx)
	case kindBalance:
		w.calls++
		_, err := l.t.balance(ctx, account)
		return err
	case kindCharge:
		w.calls++
		id, err := l.t.charge(ctx, account, w.key(l.runID), l.charge)
		if l.settled(acct, err, l.charge) && l.cfg.Workload == WorkloadMixed {
			if len(w.charges) >= recentChargesMax {
				w.charges = w.charges[1:]
			}
			w.charges = append(w.charges, recentCharge{id: id, account: acct})
		}
		return err
	case kindRefund:
		w.calls++
		i := w.rng.IntN(len(w.charges))
		c := w.charges[i]
		w.charges = append(w.charges[:i], w.charges[i+1:]...)
		err := l.t.refund(ctx, c.id, w.key(l.runID), l.charge)
		l.settled(c.account, err, -l.charge)
		return err
	case kindHoldCapture:
		w.calls++
		id, err := l.t.hold(ctx, account, w.key(l.runID), holdAmount)
		if !l.settled(acct, err, holdAmount) {
			return err
		}
		w.calls++
		// Most jobs succeed at the price held; some cost less than the
		// reserve (partial capture), some fail (release).
		switch n := w.rng.IntN(100); {
		case n < 70:
			err = l.t.capture(ctx, id, w.key(l.runID), holdAmount)
			l.settled(acct, err, 0)
		case n < 90:
			err = l.t.capture(ctx, id, w.key(l.runID), partialAmount)
			l.settled(acct, err, partialAmount-holdAmount)
		default:
			err = l.t.release(ctx, id, w.key(l.runID))
			l.settled(acct, err, -holdAmount)
		}
		return err
	}
	return fmt.Errorf("unknown kind %q", kind)
}

// settled books what a finished operation took from an account's available
// credits and reports whether it succeeded. An error without a known
// outcome makes the account's balance unverifiable.
func (l *load) settled(acct int, err error, took credit.Amount) bool {
	if err == nil {
		l.spent[acct].Add(took.Micros())
		return true
	}
	switch errorCode(err) {
	case scrip.EInternal, scrip.EUnavailable, "timeout":
		l.uncertain[acct].Store(true)
	}
	return false
}

// checkBalances compares every account's available balance with what the
// run knows it spent there.
func (l *load) checkBalances(ctx context.Context, v *Verify) {
	jobs := make(chan int)
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		checked atomic.Int64
	)
	defer phaseProgress(l.cfg.Progress, "balances", len(l.accounts), checked.Load)()
	for range min(setupConcurrencyMax, len(l.accounts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if l.uncertain[i].Load() {
					mu.Lock()
					v.BalancesSkipped++
					mu.Unlock()
					continue
				}
				want := fundAmount - credit.Amount(l.spent[i].Load())
				got, err := l.t.balance(ctx, l.accounts[i])
				mu.Lock()
				switch {
				case err != nil:
					v.addProblem(fmt.Sprintf("balance of %s: %v", l.accounts[i], err))
				case got != want:
					v.addProblem(fmt.Sprintf("account %s has %s credits available; the run spent %s of %s, leaving %s",
						l.accounts[i], got, fundAmount-want, fundAmount, want))
				default:
					v.BalancesChecked++
				}
				mu.Unlock()
				checked.Add(1)
			}
		}()
	}
	for i := range l.accounts {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	sort.Strings(v.Problems)
	v.OK = len(v.Problems) == 0
}
