package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scriphq/scrip/ledger"
)

// stepRecorder records the steps of each batch an engine commits, and the
// batch's own time.
type stepRecorder struct {
	mu      sync.Mutex
	current []ledger.Step
	spent   time.Duration
	batches [][]ledger.Step
	over    []string // batches whose steps took longer than the batch
}

func (r *stepRecorder) ObserveStep(step ledger.Step, elapsed time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.current = append(r.current, step)
	r.spent += elapsed
}

func (r *stepRecorder) ObserveBatch(size int, elapsed time.Duration, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spent > elapsed {
		r.over = append(r.over, (r.spent - elapsed).String())
	}
	r.batches = append(r.batches, r.current)
	r.current, r.spent = nil, 0
}

func (r *stepRecorder) ObserveOp(ledger.TxType, string) {}

// last returns the steps of the last batch committed.
func (r *stepRecorder) last() []ledger.Step {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.batches[len(r.batches)-1]
}

// testBatchSteps checks that an engine whose Observer is a StepObserver
// hears every step of each batch, once and in order, inside the batch's
// time: the reads as one load on a store that makes them in one round
// trip, one at a time on another; a write and a commit when the batch
// changes something, a rollback when it changes nothing.
func testBatchSteps(t *testing.T, open Open) {
	rec := &stepRecorder{}
	e := newEnv(t, open, func(o *ledger.Options) { o.Observer = rec })

	tx, err := e.store.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, loader := tx.(ledger.Loader)
	if err := tx.Rollback(e.ctx); err != nil {
		t.Fatal(err)
	}
	// reads returns the steps that read a batch's accounts and grants, and
	// with keys the idempotency keys too.
	reads := func(keys bool) []ledger.Step {
		if loader {
			return []ledger.Step{ledger.StepLoad}
		}
		if keys {
			return []ledger.Step{ledger.StepLockAccounts, ledger.StepLoadGrants, ledger.StepLoadKeyed}
		}
		return []ledger.Step{ledger.StepLockAccounts, ledger.StepLoadGrants}
	}
	steps := func(s ...[]ledger.Step) []ledger.Step { return slices.Concat(s...) }
	begin := []ledger.Step{ledger.StepBegin}
	apply := []ledger.Step{ledger.StepApply}
	commit := []ledger.Step{ledger.StepWrite, ledger.StepCommit}
	rollback := []ledger.Step{ledger.StepRollback}

	e.account("u1")
	e.grant("u1", ledger.KindTopUp, "10", time.Time{})
	if got, want := rec.last(), steps(begin, reads(false), apply, commit); !slices.Equal(got, want) {
		t.Errorf("grant: steps %v, want %v", got, want)
	}

	// Too large a charge changes nothing; its key, read with the
	// batch's reads only when the engine may have committed it lately, is
	// looked up before the batch ends, in case an earlier request took it.
	_, err = e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u1", Key: "big", Amount: amt("11")})
	wantCode(t, err, "insufficient_credits")
	if got, want := rec.last(), steps(begin, reads(false), apply, []ledger.Step{ledger.StepLoadKeyed}, rollback); !slices.Equal(got, want) {
		t.Errorf("insufficient charge: steps %v, want %v", got, want)
	}

	// A replay of a charge this engine committed reads its key with the
	// batch's reads and writes nothing.
	charge := ledger.ChargeRequest{AccountID: "u1", Key: "c1", Amount: amt("4")}
	if _, err := e.eng.Charge(e.ctx, charge); err != nil {
		t.Fatal(err)
	}
	if _, err := e.eng.Charge(e.ctx, charge); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.last(), steps(begin, reads(true), apply, rollback); !slices.Equal(got, want) {
		t.Errorf("replayed charge: steps %v, want %v", got, want)
	}
	e.wantAvailable("u1", "6")

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.over) > 0 {
		t.Errorf("steps took longer than their batch, by %v", rec.over)
	}
	if len(rec.current) > 0 {
		t.Errorf("steps %v observed outside any batch", rec.current)
	}
}
