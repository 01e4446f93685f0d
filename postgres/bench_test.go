package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/ledger/storetest"
	"github.com/scriphq/scrip/postgres"
)

// batchOps is the number of operations per benchmarked batch.
const batchOps = 200

// BenchmarkChargeBatch measures the committer's store work for one batch of
// one-shot charges: Begin, LockAccounts, LoadGrants, LoadKeyed, Write and
// Commit, one batch at a time. Run with
//
//	SCRIP_TEST_POSTGRES=... go test ./postgres -run '^$' -bench ChargeBatch
func BenchmarkChargeBatch(b *testing.B) {
	for _, accounts := range []int{200, 10} {
		b.Run(fmt.Sprintf("ops=%d/accounts=%d", batchOps, accounts), func(b *testing.B) {
			s := openStore(b)
			c := newCharger(b, s, "w0", accounts)
			for b.Loop() {
				if err := c.batch(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			reportBatches(b)
		})
	}
}

// BenchmarkChargeBatchParallel runs four committers at once on disjoint
// accounts, so one batch's commit overlaps the next one's work.
func BenchmarkChargeBatchParallel(b *testing.B) {
	const committers = 4
	for _, accounts := range []int{200, 10} {
		b.Run(fmt.Sprintf("ops=%d/accounts=%d/committers=%d", batchOps, accounts, committers), func(b *testing.B) {
			s := openStore(b)
			chargers := make([]*charger, committers)
			for i := range chargers {
				chargers[i] = newCharger(b, s, fmt.Sprintf("w%d", i), accounts)
			}
			var next atomic.Int32
			b.SetParallelism((committers + 1) / 2) // GOMAXPROCS is 2 on the reference machine
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := chargers[int(next.Add(1)-1)%committers]
				for pb.Next() {
					if err := c.batch(context.Background()); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportBatches(b)
		})
	}
}

func reportBatches(b *testing.B) {
	batches := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(batches, "batches/s")
	b.ReportMetric(batches*batchOps, "ops/s")
}

// charger writes batches of charges over its own accounts, the way the
// engine's committer does.
type charger struct {
	s      *postgres.Store
	prefix string
	ids    []string
	n      int // operations so far, for unique ids and keys
}

func newCharger(b *testing.B, s *postgres.Store, prefix string, accounts int) *charger {
	ids := make([]string, accounts)
	grants := make([]ledger.Grant, accounts)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-acct-%04d", prefix, i)
		grants[i] = grant("grant-"+ids[i], ids[i], credit.Credits(1_000_000_000).Micros(), time.Time{}, t0)
	}
	createAccounts(b, s, ids...)
	write(b, s, &ledger.Writes{NewGrants: grants})
	slices.Sort(ids)
	return &charger{s: s, prefix: prefix, ids: ids}
}

func (c *charger) batch(ctx context.Context) error {
	tx, err := c.s.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	as, err := tx.LockAccounts(ctx, c.ids)
	if err != nil {
		return err
	}
	gs, err := tx.LoadGrants(ctx, c.ids, nil)
	if err != nil {
		return err
	}
	if len(as) != len(c.ids) || len(gs) != len(c.ids) {
		return fmt.Errorf("loaded %d accounts and %d grants, want %d", len(as), len(gs), len(c.ids))
	}
	keys := make([]ledger.TxKey, batchOps)
	for i := range keys {
		keys[i] = ledger.TxKey{AccountID: as[i%len(as)].ID, Key: fmt.Sprintf("%s-key-%d", c.prefix, c.n+i)}
	}
	if _, err := tx.LoadKeyed(ctx, keys); err != nil {
		return err
	}

	w := &ledger.Writes{}
	now := time.Now().UTC().Truncate(time.Microsecond)
	cost := credit.MustParse("0.5")
	for i := range batchOps {
		// Accounts and grants both come sorted by account id.
		a, g := &as[i%len(as)], &gs[i%len(gs)]
		g.Remaining -= cost
		a.Seq++
		prev := a.Hash
		a.Hash = fmt.Sprintf("%s-hash-%d", c.prefix, c.n)
		chargeID := fmt.Sprintf("%s-charge-%d", c.prefix, c.n)
		ref := ledger.Ref{Action: "fal-ai/flux/schnell", Job: "job"}
		w.NewCharges = append(w.NewCharges, ledger.Charge{
			ID: chargeID, AccountID: a.ID, Amount: cost, CreatedAt: now,
			Allocations: []ledger.Allocation{{GrantID: g.ID, Amount: cost}}, Ref: ref,
		})
		w.Transactions = append(w.Transactions, ledger.Transaction{
			ID: fmt.Sprintf("%s-tx-%d", c.prefix, c.n), AccountID: a.ID, Seq: a.Seq, Type: ledger.TxCharge,
			Amount: cost, ChargeID: chargeID, IdempotencyKey: keys[i].Key, RequestHash: "request-hash", Ref: ref,
			Entries: []ledger.Entry{
				{Account: a.ID, Grant: g.ID, Amount: -cost},
				{Account: ledger.SystemSpent, Amount: cost},
			},
			CreatedAt: now, PrevHash: prev, Hash: a.Hash,
		})
		c.n++
	}
	w.Accounts, w.Grants = as, gs
	if err := tx.Write(ctx, w); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// BenchmarkBalance measures a balance read: the account, its live grants
// and its open holds from one snapshot, in one round trip.
func BenchmarkBalance(b *testing.B) {
	storetest.BenchBalance(b, openStore(b))
}
