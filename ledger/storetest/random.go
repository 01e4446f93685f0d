package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// seed returns the randomized tests' seed: SCRIP_TEST_SEED when set, so a
// failure replays exactly, otherwise a fresh one. It is logged either way.
func seed(t *testing.T) uint64 {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("SCRIP_TEST_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SCRIP_TEST_SEED=%q: %v", v, err)
		}
		s = n
	}
	t.Logf("seed %d (replay with SCRIP_TEST_SEED=%d)", s, s)
	return s
}

// testConcurrency runs 32 goroutines of random holds, captures, releases,
// charges and refunds against a handful of shared accounts, then checks
// that nothing went negative, that the journal balances, and that the
// credits the callers saw spent are exactly what the journal says.
func testConcurrency(t *testing.T, open Open) {
	e := newEnv(t, open, func(o *ledger.Options) { o.Committers = 2 })
	accounts := []string{"a", "b", "c", "d"}
	for _, a := range accounts {
		e.account(a)
		e.grant(a, ledger.KindSubscription, "200", t0.Add(30*24*time.Hour))
		e.grant(a, ledger.KindTopUp, "100", time.Time{})
	}
	rng := rand.New(rand.NewPCG(seed(t), 1))
	const workers, opsPerWorker = 32, 40
	var mu sync.Mutex
	spent := credit.Amount(0) // net of refunds, as seen by callers
	var wg sync.WaitGroup
	for w := range workers {
		wr := rand.New(rand.NewPCG(rng.Uint64(), uint64(w)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			var charges []string
			for i := range opsPerWorker {
				acct := accounts[wr.IntN(len(accounts))]
				key := fmt.Sprintf("w%d-%d", w, i)
				n := credit.Credits(int64(1 + wr.IntN(20)))
				switch wr.IntN(4) {
				case 0:
					r, err := e.eng.Charge(ctx, ledger.ChargeRequest{AccountID: acct, Key: key, Amount: n})
					if err == nil {
						mu.Lock()
						spent += r.Charge.Amount
						mu.Unlock()
						charges = append(charges, r.Charge.ID)
					} else if scrip.ErrorCode(err) != scrip.EInsufficientCredits {
						t.Errorf("charge: %v", err)
					}
				case 1, 2:
					h, err := e.eng.Hold(ctx, ledger.HoldRequest{AccountID: acct, Key: key, Amount: n})
					if err != nil {
						if scrip.ErrorCode(err) != scrip.EInsufficientCredits {
							t.Errorf("hold: %v", err)
						}
						continue
					}
					if wr.IntN(3) == 0 {
						if _, err := e.eng.Release(ctx, ledger.ReleaseRequest{HoldID: h.Hold.ID, Key: key + "r"}); err != nil {
							t.Errorf("release: %v", err)
						}
						continue
					}
					c, err := e.eng.Capture(ctx, ledger.CaptureRequest{HoldID: h.Hold.ID, Key: key + "c", Amount: credit.Credits(int64(wr.IntN(int(n/credit.Scale) + 1)))})
					if err != nil {
						t.Errorf("capture: %v", err)
						continue
					}
					mu.Lock()
					spent += c.Transaction.Amount
					mu.Unlock()
					if c.Charge != nil {
						charges = append(charges, c.Charge.ID)
					}
				case 3:
					if len(charges) == 0 {
						continue
					}
					id := charges[wr.IntN(len(charges))]
					r, err := e.eng.Refund(ctx, ledger.RefundRequest{ChargeID: id, Key: key, Amount: credit.Credits(1)})
					if err == nil {
						mu.Lock()
						spent -= r.Transaction.Amount
						mu.Unlock()
					} else if scrip.ErrorCode(err) != scrip.EInvalidAmount {
						t.Errorf("refund: %v", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, a := range accounts {
		gs, err := e.store.Grants(e.ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			if g.Remaining < 0 {
				t.Fatalf("grant %s went negative: %s", g.ID, g.Remaining)
			}
		}
		if b := e.balance(a); b.Held != 0 || b.Available < 0 {
			t.Fatalf("balance %s = %+v", a, b)
		}
	}
	r, err := e.eng.Verify(e.ctx)
	if err != nil || !r.OK() {
		t.Fatalf("verify: %v %v", err, r.Problems)
	}
	if got := r.Totals[ledger.SystemSpent].Plus(r.Totals[ledger.SystemRefunded]); got != credit.SumOf(spent) {
		t.Fatalf("journal says %s spent net of refunds; callers saw %s", got, spent)
	}
	var avail credit.Amount
	for _, a := range accounts {
		avail += e.balance(a).Available
	}
	if want := credit.Credits(300*int64(len(accounts))) - spent; avail != want {
		t.Fatalf("total available = %s, want %s", avail, want)
	}
}

// onTwoEngines runs fn on as many goroutines as workers, the even ones on
// one engine and the odd ones on the other, as two scrip processes would,
// and waits for them all; a minute is a deadlock.
func onTwoEngines(t *testing.T, one, other *ledger.Engine, workers int, fn func(w int, eng *ledger.Engine)) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range workers {
		eng := one
		if w%2 == 1 {
			eng = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(w, eng)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("two engines did not finish within 60s (deadlock?)")
	}
}

// testTwoEngines runs two engines on one database, as two scrip processes
// would: overlapping accounts, no deadlock, no lost or doubled debit.
func testTwoEngines(t *testing.T, open Open) {
	e := newEnv(t, open)
	other := ledger.NewEngine(e.store, ledger.Options{Clock: e.clock, SweepEvery: -1, Committers: 2})
	t.Cleanup(func() { other.Close(context.Background()) })
	accounts := []string{"x", "y", "z"}
	for _, a := range accounts {
		e.account(a)
		e.grant(a, ledger.KindTopUp, "1000", time.Time{})
	}
	var mu sync.Mutex
	charged := map[string]credit.Amount{}
	onTwoEngines(t, e.eng, other, 16, func(w int, eng *ledger.Engine) {
		for i := range 25 {
			a := accounts[(w+i)%len(accounts)]
			if _, err := eng.Charge(context.Background(), ledger.ChargeRequest{AccountID: a, Key: fmt.Sprintf("%d-%d", w, i), Amount: credit.Credits(1)}); err != nil {
				t.Errorf("charge: %v", err)
				return
			}
			mu.Lock()
			charged[a] += credit.Credits(1)
			mu.Unlock()
		}
	})
	for _, a := range accounts {
		if got, want := e.balance(a).Available, credit.Credits(1000)-charged[a]; got != want {
			t.Fatalf("available(%s) = %s, want %s", a, got, want)
		}
	}

	// A hold or charge made by one engine is settled through the other,
	// which has to find its account in the store.
	h, err := e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: "x", Key: e.key(), Amount: credit.Credits(10)})
	if err != nil {
		t.Fatalf("hold: %v", err)
	}
	if _, err := other.Capture(e.ctx, ledger.CaptureRequest{HoldID: h.Hold.ID, Key: e.key(), Amount: credit.Credits(4)}); err != nil {
		t.Fatalf("capture through the other engine: %v", err)
	}
	c, err := other.Charge(e.ctx, ledger.ChargeRequest{AccountID: "y", Key: e.key(), Amount: credit.Credits(3)})
	if err != nil {
		t.Fatalf("charge: %v", err)
	}
	if _, err := e.eng.Refund(e.ctx, ledger.RefundRequest{ChargeID: c.Charge.ID, Key: e.key(), Amount: credit.Credits(3)}); err != nil {
		t.Fatalf("refund through the other engine: %v", err)
	}
	if got, want := e.balance("x").Available, credit.Credits(1000-4)-charged["x"]; got != want {
		t.Fatalf("available(x) after capture = %s, want %s", got, want)
	}
	if got, want := e.balance("y").Available, credit.Credits(1000)-charged["y"]; got != want {
		t.Fatalf("available(y) after refund = %s, want %s", got, want)
	}
	e.verify()
}

// model is a deliberately simple reference implementation of the ledger's
// rules for one account, against which the engine is checked.
type model struct {
	grants  []*mGrant
	holds   map[string]*mHold
	charges map[string]*mCharge
}

type mGrant struct {
	id        string
	prio      int
	exp       time.Time
	created   time.Time
	remaining credit.Amount
	closed    bool
}

type mPart struct {
	g *mGrant
	n credit.Amount
}

type mHold struct {
	amount credit.Amount
	parts  []mPart
	open   bool
	exp    time.Time
}

type mCharge struct {
	parts []mPart
}

func (m *model) spendable(now time.Time) []*mGrant {
	var out []*mGrant
	for _, g := range m.grants {
		if !g.closed && g.remaining > 0 && (g.exp.IsZero() || g.exp.After(now)) {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b *mGrant) int {
		if a.prio != b.prio {
			return a.prio - b.prio
		}
		switch {
		case a.exp.Equal(b.exp):
		case a.exp.IsZero():
			return 1
		case b.exp.IsZero():
			return -1
		case a.exp.Before(b.exp):
			return -1
		default:
			return 1
		}
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		if a.id < b.id {
			return -1
		}
		return 1
	})
	return out
}

func (m *model) available(now time.Time) credit.Amount {
	var s credit.Amount
	for _, g := range m.spendable(now) {
		s += g.remaining
	}
	return s
}

func (m *model) take(n credit.Amount, now time.Time) ([]mPart, bool) {
	if m.available(now) < n {
		return nil, false
	}
	var parts []mPart
	for _, g := range m.spendable(now) {
		if n == 0 {
			break
		}
		x := credit.Min(n, g.remaining)
		g.remaining -= x
		n -= x
		parts = append(parts, mPart{g, x})
	}
	return parts, true
}

func (m *model) give(g *mGrant, n credit.Amount) {
	if !g.closed {
		g.remaining += n
	}
}

func (m *model) held() credit.Amount {
	var s credit.Amount
	for _, h := range m.holds {
		if h.open {
			s += h.amount
		}
	}
	return s
}

// testModel applies random operation sequences to the engine and to the
// model and requires every result and balance to match.
func testModel(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("m")
	rng := rand.New(rand.NewPCG(seed(t), 7))
	m := &model{holds: map[string]*mHold{}, charges: map[string]*mCharge{}}
	byID := map[string]*mGrant{}
	var holdIDs, chargeIDs []string
	for step := range 300 {
		now := e.clock.Now()
		what := ""
		var err error
		wantErr := ""
		switch k := rng.IntN(10); {
		case k == 0 || len(m.grants) == 0:
			kind := []ledger.Kind{ledger.KindSubscription, ledger.KindTopUp, ledger.KindPromotional}[rng.IntN(3)]
			var exp time.Time
			if kind != ledger.KindTopUp {
				exp = now.Add(time.Duration(1+rng.IntN(48)) * time.Hour)
			}
			n := credit.Micros(int64(1+rng.IntN(40)) * 500_000)
			what = fmt.Sprintf("grant %s %s exp %v", kind, n, exp)
			r, gerr := e.eng.Grant(e.ctx, ledger.GrantRequest{AccountID: "m", Key: e.key(), Kind: kind, Amount: n, ExpiresAt: exp})
			err = gerr
			if err == nil {
				g := &mGrant{id: r.Grant.ID, prio: ledger.DefaultPriority(kind), exp: exp, created: now, remaining: n}
				m.grants = append(m.grants, g)
				byID[g.id] = g
			}
		case k <= 2:
			n := credit.Micros(int64(1+rng.IntN(30)) * 500_000)
			what = "charge " + n.String()
			r, cerr := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "m", Key: e.key(), Amount: n})
			err = cerr
			parts, ok := m.take(n, now)
			if !ok {
				wantErr = scrip.EInsufficientCredits
			} else if err == nil {
				m.charges[r.Charge.ID] = &mCharge{parts: parts}
				chargeIDs = append(chargeIDs, r.Charge.ID)
			}
		case k <= 4:
			n := credit.Micros(int64(1+rng.IntN(30)) * 500_000)
			ttl := time.Duration(30+rng.IntN(120)) * time.Minute
			what = "hold " + n.String()
			r, herr := e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: "m", Key: e.key(), Amount: n, TTL: ttl})
			err = herr
			parts, ok := m.take(n, now)
			if !ok {
				wantErr = scrip.EInsufficientCredits
			} else if err == nil {
				m.holds[r.Hold.ID] = &mHold{amount: n, parts: parts, open: true, exp: now.Add(ttl)}
				holdIDs = append(holdIDs, r.Hold.ID)
			}
		case k <= 6 && len(holdIDs) > 0:
			id := holdIDs[rng.IntN(len(holdIDs))]
			h := m.holds[id]
			release := rng.IntN(3) == 0
			n := credit.Micros(rng.Int64N(int64(h.amount) + 1))
			what = fmt.Sprintf("settle %s release=%v %s", id, release, n)
			if release {
				_, err = e.eng.Release(e.ctx, ledger.ReleaseRequest{HoldID: id, Key: e.key()})
			} else {
				var r ledger.Result
				r, err = e.eng.Capture(e.ctx, ledger.CaptureRequest{HoldID: id, Key: e.key(), Amount: n})
				if err == nil && r.Charge != nil {
					chargeIDs = append(chargeIDs, r.Charge.ID)
					var taken []mPart
					left := n
					for _, p := range h.parts {
						x := credit.Min(left, p.n)
						left -= x
						if x > 0 {
							taken = append(taken, mPart{p.g, x})
						}
					}
					m.charges[r.Charge.ID] = &mCharge{parts: taken}
				}
			}
			switch {
			case !h.open:
				wantErr = scrip.EHoldAlreadySettled
				if h.exp.Compare(now) <= 0 {
					wantErr = "" // expired or settled: either code is fine, checked below
				}
			case !release && !h.exp.After(now):
				wantErr = scrip.EHoldExpired
			default:
				left := credit.Amount(0)
				if !release {
					left = n
				}
				for _, p := range h.parts {
					x := credit.Min(left, p.n)
					left -= x
					m.give(p.g, p.n-x)
				}
				h.open = false
			}
			if wantErr == "" && !h.open && err != nil && scrip.ErrorCode(err) != scrip.EHoldAlreadySettled && scrip.ErrorCode(err) != scrip.EHoldExpired {
				t.Fatalf("step %d %s: %v", step, what, err)
			}
			if wantErr == "" && err != nil {
				err = nil
			}
		case k <= 7 && len(chargeIDs) > 0:
			id := chargeIDs[rng.IntN(len(chargeIDs))]
			c := m.charges[id]
			var left credit.Amount
			for _, p := range c.parts {
				left += p.n
			}
			n := credit.Micros(500_000)
			what = fmt.Sprintf("refund %s of %s", n, id)
			_, err = e.eng.Refund(e.ctx, ledger.RefundRequest{ChargeID: id, Key: e.key(), Amount: n})
			if left < n {
				wantErr = scrip.EInvalidAmount
			} else {
				for i := len(c.parts) - 1; i >= 0 && n > 0; i-- {
					x := credit.Min(n, c.parts[i].n)
					n -= x
					c.parts[i].n -= x
					m.give(c.parts[i].g, x)
				}
			}
		default:
			d := time.Duration(rng.IntN(180)) * time.Minute
			what = "advance " + d.String()
			e.clock.Advance(d)
			now = e.clock.Now()
			if _, err = e.eng.ExpireDue(e.ctx); err == nil {
				for _, h := range m.holds {
					if h.open && !h.exp.After(now) {
						for _, p := range h.parts {
							m.give(p.g, p.n)
						}
						h.open = false
					}
				}
				for _, g := range m.grants {
					if !g.closed && !g.exp.IsZero() && !g.exp.After(now) {
						g.remaining, g.closed = 0, true
					}
				}
			}
		}
		if got := scrip.ErrorCode(err); got != wantErr {
			t.Fatalf("step %d %s: error %q (%v), model says %q", step, what, got, err, wantErr)
		}
		now = e.clock.Now()
		b := e.balance("m")
		if want := m.available(now); b.Available != want {
			t.Fatalf("step %d %s: available %s, model %s", step, what, b.Available, want)
		}
		if want := m.held(); b.Held != want {
			t.Fatalf("step %d %s: held %s, model %s", step, what, b.Held, want)
		}
		gs, gerr := e.store.Grants(e.ctx, "m")
		if gerr != nil {
			t.Fatal(gerr)
		}
		for _, g := range gs {
			if mg := byID[g.ID]; mg != nil && mg.remaining != g.Remaining && !g.Closed {
				t.Fatalf("step %d %s: grant %s remaining %s, model %s", step, what, g.ID, g.Remaining, mg.remaining)
			}
		}
	}
	e.verify()
}
