package bench

import (
	"context"
	"errors"
	"fmt"

	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/examples/catalogs"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/postgres"
	"github.com/scriphq/scrip/sqlite"
)

// quoteAction is the action the quote operations price, from the demo
// catalog.
const quoteAction = "fal-ai/flux/schnell"

// readConnsExtra is the PostgreSQL connections a run keeps for reads
// besides one per committer.
const readConnsExtra = 16

// engineTarget drives a ledger.Engine in process: no HTTP, no JSON.
type engineTarget struct {
	store    ledger.Store
	engine   *ledger.Engine
	observer *batchObserver
	catalog  *catalog.Catalog
}

func newEngineTarget(ctx context.Context, db *database, cfg Config) (*engineTarget, error) {
	// Room for the committers asked for, or for the PostgreSQL store's
	// default ones (the pool is sized before the store can be asked).
	store, err := openStore(ctx, db, max(cfg.Committers, postgres.CommittersDefault)+readConnsExtra)
	if err != nil {
		return nil, err
	}
	cat, err := catalogs.LoadDemo()
	if err != nil {
		store.Close()
		return nil, err
	}
	obs := newBatchObserver()
	e := ledger.NewEngine(store, ledger.Options{
		Committers:   cfg.Committers,
		BatchSizeMax: cfg.BatchMax,
		QueueMax:     cfg.QueueMax,
		Observer:     obs,
	})
	return &engineTarget{store: store, engine: e, observer: obs, catalog: cat}, nil
}

// openStore opens the scrip store of the run's database.
func openStore(ctx context.Context, db *database, conns int) (ledger.Store, error) {
	switch db.kind {
	case "postgres":
		s, err := postgres.Open(ctx, db.withPoolSize(conns))
		if err != nil {
			return nil, err
		}
		return s, nil
	case "sqlite":
		s, err := sqlite.Open(db.url)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("no store for %q", db.kind)
}

func (t *engineTarget) name() string { return "scrip" }

func (t *engineTarget) fund(ctx context.Context, account, key string, amount credit.Amount) error {
	if _, _, err := t.engine.CreateAccount(ctx, account, nil); err != nil {
		return err
	}
	_, err := t.engine.Grant(ctx, ledger.GrantRequest{AccountID: account, Key: key, Kind: ledger.KindTopUp,
		Amount: amount, Source: ledger.Source{Type: "bench"}})
	return err
}

func (t *engineTarget) resetBatches() { t.observer.reset() }

func (t *engineTarget) charge(ctx context.Context, account, key string, amount credit.Amount) (string, error) {
	r, err := t.engine.Charge(ctx, ledger.ChargeRequest{AccountID: account, Key: key, Amount: amount})
	if err != nil {
		return "", err
	}
	return r.Transaction.ChargeID, nil
}

func (t *engineTarget) hold(ctx context.Context, account, key string, amount credit.Amount) (string, error) {
	r, err := t.engine.Hold(ctx, ledger.HoldRequest{AccountID: account, Key: key, Amount: amount})
	if err != nil {
		return "", err
	}
	return r.Transaction.HoldID, nil
}

func (t *engineTarget) capture(ctx context.Context, holdID, key string, amount credit.Amount) error {
	_, err := t.engine.Capture(ctx, ledger.CaptureRequest{HoldID: holdID, Key: key, Amount: amount})
	return err
}

func (t *engineTarget) release(ctx context.Context, holdID, key string) error {
	_, err := t.engine.Release(ctx, ledger.ReleaseRequest{HoldID: holdID, Key: key, Reason: "job failed"})
	return err
}

func (t *engineTarget) refund(ctx context.Context, chargeID, key string, amount credit.Amount) error {
	_, err := t.engine.Refund(ctx, ledger.RefundRequest{ChargeID: chargeID, Key: key, Amount: amount})
	return err
}

func (t *engineTarget) balance(ctx context.Context, account string) (credit.Amount, error) {
	b, err := t.engine.Balance(ctx, account)
	return b.Available, err
}

func (t *engineTarget) quote(context.Context) error {
	_, err := t.catalog.Quote(catalog.QuoteRequest{Action: quoteAction})
	return err
}

func (t *engineTarget) verify(ctx context.Context, progress func(accounts int)) (Verify, error) {
	r, err := t.engine.VerifyProgress(ctx, func(accounts int, _ int64) { progress(accounts) })
	if err != nil {
		return Verify{}, err
	}
	v := Verify{OK: true, Accounts: r.Accounts, Transactions: r.Transactions}
	for _, p := range r.Problems {
		v.addProblem(p)
	}
	return v, nil
}

func (t *engineTarget) batches() *BatchStats {
	return t.observer.stats()
}

func (t *engineTarget) close(ctx context.Context) error {
	return errors.Join(t.engine.Close(ctx), t.store.Close())
}
