package ledger

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/examples/catalogs"
)

// The benchmarks here measure the domain work on the write path, without a
// database: allocation over grants, quoting, hashing and applying a whole
// batch. `scrip bench` measures the same path end to end. Run with
//
//	go test ./ledger -run '^$' -bench . -benchmem

var benchNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// benchGrants returns n live grants of one account in consumption order,
// each with 10 credits.
func benchGrants(n int) []*Grant {
	gs := make([]*Grant, n)
	for i := range gs {
		gs[i] = &Grant{ID: fmt.Sprintf("gr_%04d", i), AccountID: "acct", Kind: KindSubscription,
			Amount: credit.Credits(10), Remaining: credit.Credits(10), Priority: 100 + i,
			EffectiveAt: benchNow.Add(-time.Hour), CreatedAt: benchNow.Add(-time.Hour)}
	}
	SortGrants(gs)
	return gs
}

func BenchmarkAllocate(b *testing.B) {
	for _, n := range []int{1, 4, 16} {
		gs := benchGrants(n)
		// Spans every grant but the last one's remainder.
		amount := credit.Credits(int64(10*n - 5))
		b.Run(fmt.Sprintf("grants=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := Allocate(gs, amount, benchNow); !ok {
					b.Fatal("allocation failed")
				}
			}
		})
	}
}

func BenchmarkSortGrants(b *testing.B) {
	src := benchGrants(16)
	gs := make([]*Grant, len(src))
	b.ReportAllocs()
	for b.Loop() {
		// Reversed: the worst order for the sort.
		for i := range src {
			gs[i] = src[len(src)-1-i]
		}
		SortGrants(gs)
	}
}

func BenchmarkQuote(b *testing.B) {
	data, err := catalogs.FS.ReadFile(catalogs.Demo)
	if err != nil {
		b.Fatal(err)
	}
	c, err := catalog.Parse(data, catalogs.Demo)
	if err != nil {
		b.Fatal(err)
	}
	req := catalog.QuoteRequest{Action: "fal-ai/flux/schnell"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Quote(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTxHash(b *testing.B) {
	t := &Transaction{ID: newID("tx_"), AccountID: "acct-000001", Seq: 42, Type: TxCharge, Amount: credit.Credits(1),
		ChargeID: newID("ch_"), IdempotencyKey: "key-000001", RequestHash: requestHash("charge", "acct-000001", "1"),
		Entries: []Entry{{Account: "acct-000001", Grant: "gr_0001", Amount: -credit.Credits(1)},
			{Account: SystemSpent, Amount: credit.Credits(1)}},
		CreatedAt: benchNow, PrevHash: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	b.ReportAllocs()
	for b.Loop() {
		txHash(t)
	}
}

// benchStore is a Store whose batch transaction serves fixed accounts,
// each with one large grant, and writes nowhere: what is left of a batch
// is the engine's own work. Methods the write path does not call are left
// to the nil embedded Store.
type benchStore struct {
	Store
	accounts map[string]Account
	grants   map[string]Grant
}

func newBenchStore(n int) (*benchStore, []string) {
	s := &benchStore{accounts: map[string]Account{}, grants: map[string]Grant{}}
	ids := make([]string, n)
	for i := range ids {
		id := fmt.Sprintf("acct-%06d", i)
		ids[i] = id
		s.accounts[id] = Account{ID: id, CreatedAt: benchNow, Seq: 1, Hash: "h"}
		s.grants[id] = Grant{ID: "gr_" + id, AccountID: id, Kind: KindTopUp, Amount: credit.Credits(1 << 40),
			Remaining: credit.Credits(1 << 40), Priority: 200, EffectiveAt: benchNow, CreatedAt: benchNow}
	}
	return s, ids
}

func (s *benchStore) Begin(context.Context) (Tx, error) { return benchTx{s}, nil }

type benchTx struct{ s *benchStore }

func (t benchTx) LockAccounts(_ context.Context, ids []string) ([]Account, error) {
	out := make([]Account, 0, len(ids))
	for _, id := range ids {
		if a, ok := t.s.accounts[id]; ok {
			out = append(out, a)
		}
	}
	return out, nil
}

func (t benchTx) LoadGrants(_ context.Context, accountIDs, _ []string) ([]Grant, error) {
	out := make([]Grant, 0, len(accountIDs))
	for _, id := range accountIDs {
		out = append(out, t.s.grants[id])
	}
	return out, nil
}

func (benchTx) LoadHolds(context.Context, []string) ([]Hold, error)       { return nil, nil }
func (benchTx) LoadCharges(context.Context, []string) ([]Charge, error)   { return nil, nil }
func (benchTx) LoadKeyed(context.Context, []TxKey) ([]Transaction, error) { return nil, nil }
func (benchTx) Write(context.Context, *Writes) error                      { return nil }
func (benchTx) Commit(context.Context) error                              { return nil }
func (benchTx) Rollback(context.Context) error                            { return nil }

// BenchmarkApplyCharges applies one batch of one-shot charges in memory:
// lock and load (served from memory), allocation, journal entries, hashes,
// and the writes collected for the store. ns/op is per batch; the
// ns/charge metric divides it by the batch size.
func BenchmarkApplyCharges(b *testing.B) {
	for _, tc := range []struct{ batch, accounts int }{{1, 1}, {64, 64}, {512, 512}, {512, 10}} {
		b.Run(fmt.Sprintf("batch=%d/accounts=%d", tc.batch, tc.accounts), func(b *testing.B) {
			s, ids := newBenchStore(tc.accounts)
			e := &Engine{store: s, opt: Options{Clock: SystemClock{}}, keys: newSeenKeys()}
			ops := make([]*op, tc.batch)
			for i := range ops {
				acct := ids[i%len(ids)]
				r := &ChargeRequest{AccountID: acct, Key: fmt.Sprintf("key-%d", i), Amount: credit.Credits(1)}
				ops[i] = &op{typ: TxCharge, accountID: acct, key: r.Key, hash: requestHash("charge", acct, "1"), req: r}
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				for _, o := range ops {
					o.reset()
				}
				if err := e.apply(ctx, ops); err != nil {
					b.Fatal(err)
				}
				if ops[0].err != nil {
					b.Fatal(ops[0].err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tc.batch), "ns/charge")
		})
	}
}

// BenchmarkEngineCharge runs charges through the whole engine (validation,
// request hash, queue, committer, batch apply, result) on the in-memory
// store, from parallel clients: the write path's cost per operation when
// the database is free.
func BenchmarkEngineCharge(b *testing.B) {
	s, ids := newBenchStore(1000)
	e := NewEngine(s, Options{SweepEvery: -1})
	defer e.Close(context.Background())
	var n atomic.Int64
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			_, err := e.Charge(ctx, ChargeRequest{AccountID: ids[i%int64(len(ids))], Key: fmt.Sprintf("key-%d", i), Amount: credit.Credits(1)})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
