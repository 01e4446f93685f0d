package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// VerifyAvailableAfter checks the available credits each transaction
// records, on account "u" of eng granted 10 credits and charged 1 three
// times (seq 1 to 4): 10, 9, 8 and 7. An edit of the latest, which the hash
// leaves out, must be found against the grants; a latest transaction
// without one, as an upgraded database's older rows have, is no problem.
// exec runs a statement on the store's database with its append-only
// guard off; query reads one integer.
func VerifyAvailableAfter(t *testing.T, eng *ledger.Engine, exec func(q string), query func(q string) int64) {
	t.Helper()
	ctx := context.Background()
	var after []int64
	for seq := 1; seq <= 4; seq++ {
		after = append(after, query(fmt.Sprintf(`SELECT available_after FROM transactions WHERE account_id = 'u' AND seq = %d`, seq)))
	}
	if want := []int64{10000000, 9000000, 8000000, 7000000}; !slices.Equal(after, want) {
		t.Fatalf("available_after of seq 1-4 = %v, want %v", after, want)
	}
	exec(`UPDATE transactions SET available_after = 9000000 WHERE account_id = 'u' AND seq = 4`)
	r, err := eng.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const want = "records 9 available, but the grants give 7"
	if !slices.ContainsFunc(r.Problems, func(p string) bool { return strings.Contains(p, want) }) {
		t.Fatalf("verify problems %q do not mention %q", r.Problems, want)
	}
	exec(`UPDATE transactions SET available_after = NULL WHERE account_id = 'u' AND seq = 4`)
	if r, err := eng.Verify(ctx); err != nil || !r.OK() {
		t.Fatalf("a latest transaction without available credits fails: %v, %v", r.Problems, err)
	}
	exec(`UPDATE transactions SET available_after = 7000000 WHERE account_id = 'u' AND seq = 4`)
}

// VerifyInOrder checks that Verify, which checks accounts several at a
// time, still counts every account and lists problems in account order,
// the same on every run. It opens 30 accounts with a 10-credit grant each
// on store, then calls tamper for three of them; tamper must change the
// account's stored grant remainders behind the ledger's back.
func VerifyInOrder(t *testing.T, store ledger.Store, tamper func(accountID string)) {
	const accounts = 30
	ctx := context.Background()
	eng := ledger.NewEngine(store, ledger.Options{SweepEvery: -1})
	defer eng.Close(ctx)
	for i := range accounts {
		id := fmt.Sprintf("acct-%02d", i)
		if _, _, err := eng.CreateAccount(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Grant(ctx, ledger.GrantRequest{AccountID: id, Key: "g", Kind: ledger.KindTopUp, Amount: credit.Credits(10)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"acct-25", "acct-03", "acct-17"} {
		tamper(id)
	}
	want := []string{"acct-03", "acct-17", "acct-25"}
	for range 5 {
		r, err := eng.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Accounts != accounts || r.Transactions != accounts {
			t.Fatalf("verified %d accounts and %d transactions; want %d of each", r.Accounts, r.Transactions, accounts)
		}
		if r.Totals[ledger.SystemIssued] != credit.SumOf(credit.Credits(-10*accounts)) {
			t.Fatalf("issued total %s; want %s", r.Totals[ledger.SystemIssued], credit.Credits(-10*accounts))
		}
		var got []string
		for _, p := range r.Problems {
			if id, ok := strings.CutPrefix(p, "account "); ok && strings.Contains(p, "holds") {
				got = append(got, strings.TrimSuffix(strings.Fields(id)[0], ":"))
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("grant problems of %v; want %v in that order (problems %q)", got, want, r.Problems)
		}
	}
}

// What a system account has issued over a ledger's life may pass the most
// one Amount holds; verification still balances and reports it exactly.
func testVerifyLargeTotals(t *testing.T, open Open) {
	e := newEnv(t, open)
	const big = "5000000000000" // 5e12 credits; three pass credit.Max
	for _, id := range []string{"a", "b", "c"} {
		e.account(id)
		e.grant(id, ledger.KindTopUp, big, time.Time{})
	}
	r, err := e.eng.Verify(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("verify found problems: %v", r.Problems)
	}
	if got, want := r.Totals[ledger.SystemIssued].String(), "-15000000000000"; got != want {
		t.Fatalf("issued %s; want %s", got, want)
	}
}

// bulkReader is the store's ledger.BulkReader; the test is skipped for a
// store that reads accounts one at a time.
func bulkReader(t *testing.T, s ledger.Store) ledger.BulkReader {
	t.Helper()
	b, ok := s.(ledger.BulkReader)
	if !ok {
		t.Skip("this store reads accounts one at a time")
	}
	return b
}

// The bulk reads Verify uses return, for each account, what the Store's
// per-account reads return: revoked (closed) grants too, open holds only.
func testBulkReads(t *testing.T, open Open) {
	e := newEnv(t, open)
	b := bulkReader(t, e.store)
	ids := []string{"c", "a", "b", "empty"}
	for i, id := range ids[:3] {
		e.account(id)
		var gs []*ledger.Grant
		for range 3 {
			gs = append(gs, e.grant(id, ledger.KindTopUp, fmt.Sprint(5+i), time.Time{}))
		}
		if _, err := e.eng.Revoke(e.ctx, ledger.RevokeRequest{GrantID: gs[2].ID, Key: e.key()}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: id, Key: e.key(), Amount: credit.Credits(int64(5 + i))}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: id, Key: e.key(), Amount: credit.Credits(1)}); err != nil {
			t.Fatal(err)
		}
		h, err := e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: id, Key: e.key(), Amount: credit.Credits(2)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.eng.Capture(e.ctx, ledger.CaptureRequest{HoldID: h.Hold.ID, Key: e.key(), Amount: credit.Credits(1)}); err != nil {
			t.Fatal(err)
		}
	}
	e.account("empty")
	asked := append(slices.Clone(ids), "missing")
	var (
		accounts []ledger.Account
		journals = map[string][]ledger.Transaction{}
		grants   []ledger.Grant
		holds    []ledger.Hold
	)
	err := b.ReadAccounts(e.ctx, func(r ledger.AccountsReader) error {
		var err error
		if accounts, err = r.AccountsOf(e.ctx, asked); err != nil {
			return err
		}
		if err := r.JournalOf(e.ctx, asked, func(t *ledger.Transaction) error {
			journals[t.AccountID] = append(journals[t.AccountID], *t)
			return nil
		}); err != nil {
			return err
		}
		if grants, err = r.GrantsOf(e.ctx, asked); err != nil {
			return err
		}
		holds, err = r.OpenHoldsOf(e.ctx, asked)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(accounts) != len(ids) {
		t.Fatalf("AccountsOf returned %d accounts; want %d", len(accounts), len(ids))
	}
	for _, id := range ids {
		want, err := e.store.Account(e.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(accounts, func(a ledger.Account) bool { return a.ID == id })
		if i < 0 {
			t.Fatalf("AccountsOf left out %s", id)
		}
		wantSame(t, "account "+id, accounts[i], want)

		var journal []ledger.Transaction
		if err := e.store.Journal(e.ctx, id, func(t *ledger.Transaction) error {
			journal = append(journal, *t)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		wantSame(t, "journal of "+id, journals[id], journal)

		wantGrants, err := e.store.Grants(e.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		wantSame(t, "grants of "+id, ofAccount(grants, id, func(g ledger.Grant) string { return g.AccountID }), wantGrants)

		wantHolds, err := e.store.OpenHolds(e.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		wantSame(t, "open holds of "+id, ofAccount(holds, id, func(h ledger.Hold) string { return h.AccountID }), wantHolds)
		closed := 0
		for _, g := range wantGrants {
			if g.Closed {
				closed++
			}
		}
		if id != "empty" && (len(journal) != 8 || len(wantGrants) != 3 || closed != 1 || len(wantHolds) != 1) {
			t.Fatalf("%s: %d transactions, %d grants (%d closed), %d open holds; want 8, 3 (1), 1",
				id, len(journal), len(wantGrants), closed, len(wantHolds))
		}
	}
}

func wantSame(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

// ofAccount is the items of xs that belong to account id, in their order.
func ofAccount[T any](xs []T, id string, account func(T) string) []T {
	var out []T
	for _, x := range xs {
		if account(x) == id {
			out = append(out, x)
		}
	}
	return out
}

// Verify on a ledger that is being written (GET /v1/admin/verify on a
// serving process) must find nothing: its reads of one account see one
// moment, not a head, a journal and grants from different ones.
func testVerifyWhileWriting(t *testing.T, open Open) {
	t.Run("bulk", func(t *testing.T) { verifyWhileWriting(t, newEnv(t, open)) })
	// Bulk reads of more than one account fail, and verification checks
	// each account by itself.
	t.Run("one at a time", func(t *testing.T) {
		s := open(t)
		w := &oneAtATime{Store: s, bulk: bulkReader(t, s)}
		verifyWhileWriting(t, wrappedEnv(t, s, w))
		if w.refused.Load() == 0 || w.single.Load() == 0 {
			t.Fatalf("%d bulk reads refused and %d of one account: the one-account checks did not run", w.refused.Load(), w.single.Load())
		}
	})
	// Without bulk reads at all, on a ledger at rest: the Store's own
	// per-account reads.
	t.Run("separate reads", func(t *testing.T) {
		s := open(t)
		e := wrappedEnv(t, s, struct{ ledger.Store }{s})
		for i := range 3 {
			id := fmt.Sprintf("s%d", i)
			e.account(id)
			e.grant(id, ledger.KindTopUp, "10", time.Time{})
			if _, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: id, Key: e.key(), Amount: credit.Credits(1)}); err != nil {
				t.Fatal(err)
			}
		}
		r, err := e.eng.Verify(e.ctx)
		if err != nil || !r.OK() || r.Accounts != 3 || r.Transactions != 6 {
			t.Fatalf("verify = %+v, %v; want 3 accounts and 6 transactions, no problem", r, err)
		}
	})
}

// oneAtATime is a store whose snapshots read one account at most; it
// counts the reads it refused and those of one account.
type oneAtATime struct {
	ledger.Store
	bulk            ledger.BulkReader
	refused, single atomic.Int64
}

func (o *oneAtATime) ReadAccounts(ctx context.Context, fn func(ledger.AccountsReader) error) error {
	return o.bulk.ReadAccounts(ctx, func(r ledger.AccountsReader) error { return fn(oneAccount{r, o}) })
}

type oneAccount struct {
	ledger.AccountsReader
	o *oneAtATime
}

func (a oneAccount) AccountsOf(ctx context.Context, ids []string) ([]ledger.Account, error) {
	if len(ids) > 1 {
		a.o.refused.Add(1)
		return nil, fmt.Errorf("a read of %d accounts refused", len(ids))
	}
	a.o.single.Add(1)
	return a.AccountsReader.AccountsOf(ctx, ids)
}

// verifyWhileWriting runs verification ten times over 60 accounts while
// charges are committed on them: each must find nothing wrong.
func verifyWhileWriting(t *testing.T, e *env) {
	bulkReader(t, e.store)
	var ids []string
	for i := range 60 {
		id := fmt.Sprintf("w%02d", i)
		e.account(id)
		e.grant(id, ledger.KindTopUp, "1000000", time.Time{})
		ids = append(ids, id)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			n++
			_, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: ids[n%len(ids)], Key: fmt.Sprint("live-", n), Amount: credit.Credits(1)})
			if err != nil {
				done <- err
				return
			}
		}
	}()
	for range 10 {
		r, err := e.eng.Verify(e.ctx)
		if err != nil {
			close(stop)
			t.Fatal(err)
		}
		if !r.OK() {
			close(stop)
			t.Fatalf("verify during writes found problems: %v", r.Problems)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// testVerifyProgress checks that VerifyProgress reports each page of
// accounts as it goes, the counts growing to the report's own.
func testVerifyProgress(t *testing.T, open Open) {
	e := newEnv(t, open)
	const (
		accounts = 1100 // three pages of 500
		funded   = 7
	)
	// Created from several goroutines at once: each is a store transaction
	// of its own.
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		errs = make(chan error, 16)
	)
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < accounts; i = int(next.Add(1)) - 1 {
				if _, _, err := e.eng.CreateAccount(e.ctx, fmt.Sprintf("p%04d", i), nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range funded {
		e.grant(fmt.Sprintf("p%04d", i*100), ledger.KindTopUp, "5", time.Time{})
	}

	type call struct {
		accounts int
		txs      int64
	}
	var calls []call
	r, err := e.eng.VerifyProgress(e.ctx, func(accounts int, txs int64) {
		calls = append(calls, call{accounts, txs})
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.Accounts != accounts || r.Transactions != funded {
		t.Fatalf("report: %d accounts, %d transactions, problems %v; want %d, %d, none", r.Accounts, r.Transactions, r.Problems, accounts, funded)
	}
	// Pages in id order: p0000–p0499 hold five of the grants (p0000 …
	// p0400), p0500–p0999 the other two.
	want := []call{{500, 5}, {1000, funded}, {accounts, funded}}
	if !slices.Equal(calls, want) {
		t.Fatalf("progress calls %v; want %v", calls, want)
	}
}
