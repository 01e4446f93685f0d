package bench

import (
	"context"
	"sync"
	"time"

	"github.com/scriphq/scrip/ledger"
)

// Phases of a batch's store transaction, in the order the committer runs
// them.
var phaseNames = []string{"begin", "load", "lock_accounts", "load_holds", "load_charges", "load_grants", "load_keyed", "write", "commit", "rollback"}

// phaseStore wraps a ledger.Store and times each step of every batch's
// transaction, so a report shows where a batch's time goes: round trips,
// writes or the commit's flush to disk.
type phaseStore struct {
	ledger.Store
	mu    sync.Mutex
	total map[string]time.Duration
	calls map[string]int64
}

func newPhaseStore(s ledger.Store) *phaseStore {
	return &phaseStore{Store: s, total: map[string]time.Duration{}, calls: map[string]int64{}}
}

func (s *phaseStore) add(phase string, start time.Time) {
	d := time.Since(start)
	s.mu.Lock()
	s.total[phase] += d
	s.calls[phase]++
	s.mu.Unlock()
}

func (s *phaseStore) reset() {
	s.mu.Lock()
	s.total = map[string]time.Duration{}
	s.calls = map[string]int64{}
	s.mu.Unlock()
}

// phases returns the mean milliseconds per call of each phase.
func (s *phaseStore) phases() []Phase {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Phase
	for _, name := range phaseNames {
		n := s.calls[name]
		if n == 0 {
			continue
		}
		out = append(out, Phase{Name: name, Calls: n, MeanMs: round3(float64(s.total[name].Microseconds()) / 1000 / float64(n)),
			TotalS: round2(s.total[name].Seconds())})
	}
	return out
}

// Phase is the time one step of the batches' store transactions took.
type Phase struct {
	Name   string  `json:"name"`
	Calls  int64   `json:"calls"`
	MeanMs float64 `json:"mean_ms"`
	TotalS float64 `json:"total_s"`
}

func (s *phaseStore) Begin(ctx context.Context) (ledger.Tx, error) {
	defer s.add("begin", time.Now())
	tx, err := s.Store.Begin(ctx)
	if err != nil {
		return nil, err
	}
	pt := &phaseTx{Tx: tx, s: s}
	if l, ok := tx.(ledger.Loader); ok {
		return phaseLoaderTx{phaseTx: pt, loader: l}, nil
	}
	return pt, nil
}

type phaseTx struct {
	ledger.Tx
	s *phaseStore
}

// phaseLoaderTx is a phaseTx on a Tx that makes a batch's reads in one round
// trip ("load").
type phaseLoaderTx struct {
	*phaseTx
	loader ledger.Loader
}

func (t phaseLoaderTx) Load(ctx context.Context, r ledger.LoadRequest) (ledger.Loaded, error) {
	defer t.s.add("load", time.Now())
	return t.loader.Load(ctx, r)
}

func (t *phaseTx) LockAccounts(ctx context.Context, ids []string) ([]ledger.Account, error) {
	defer t.s.add("lock_accounts", time.Now())
	return t.Tx.LockAccounts(ctx, ids)
}

func (t *phaseTx) LoadGrants(ctx context.Context, accountIDs, grantIDs []string) ([]ledger.Grant, error) {
	defer t.s.add("load_grants", time.Now())
	return t.Tx.LoadGrants(ctx, accountIDs, grantIDs)
}

func (t *phaseTx) LoadHolds(ctx context.Context, ids []string) ([]ledger.Hold, error) {
	defer t.s.add("load_holds", time.Now())
	return t.Tx.LoadHolds(ctx, ids)
}

func (t *phaseTx) LoadCharges(ctx context.Context, ids []string) ([]ledger.Charge, error) {
	defer t.s.add("load_charges", time.Now())
	return t.Tx.LoadCharges(ctx, ids)
}

func (t *phaseTx) LoadKeyed(ctx context.Context, keys []ledger.TxKey) ([]ledger.Transaction, error) {
	defer t.s.add("load_keyed", time.Now())
	return t.Tx.LoadKeyed(ctx, keys)
}

func (t *phaseTx) Write(ctx context.Context, w *ledger.Writes) error {
	defer t.s.add("write", time.Now())
	return t.Tx.Write(ctx, w)
}

func (t *phaseTx) Commit(ctx context.Context) error {
	defer t.s.add("commit", time.Now())
	return t.Tx.Commit(ctx)
}

func (t *phaseTx) Rollback(ctx context.Context) error {
	defer t.s.add("rollback", time.Now())
	return t.Tx.Rollback(ctx)
}
