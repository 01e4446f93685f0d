package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

func verifyLedger(t *testing.T, e *ledger.Engine) {
	t.Helper()
	r, err := e.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) > 0 {
		t.Fatalf("verify: %v", r.Problems)
	}
}

func headCounts(s *Store) (hits, misses, drops int) {
	s.heads.mu.Lock()
	defer s.heads.mu.Unlock()
	return s.heads.hits, s.heads.misses, s.heads.drops
}

// The writer's later batches read their accounts and grants from its cache,
// across the background checkpoints, and what they write is what a fresh
// read of the file finds.
func TestHeadsServeLaterBatches(t *testing.T) {
	ctx := context.Background()
	s, e := openEngineAt(t, filepath.Join(t.TempDir(), "scrip.db"))
	const accounts = 8
	for i := range accounts {
		id := fmt.Sprintf("acct-%d", i)
		if _, _, err := e.CreateAccount(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
		// Two grants, so that charges spend the first and close it.
		for j, amount := range []int64{3, 100} {
			_, err := e.Grant(ctx, ledger.GrantRequest{AccountID: id, Key: fmt.Sprintf("fund-%d", j), Kind: ledger.KindTopUp, Amount: credit.Credits(amount)})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	for round := range 6 {
		for i := range accounts {
			_, err := e.Charge(ctx, ledger.ChargeRequest{AccountID: fmt.Sprintf("acct-%d", i), Key: fmt.Sprintf("charge-%d", round), Amount: credit.Credits(2)})
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if round == 2 {
			// Past the checkpointer's interval: its checkpoints are not
			// other writers.
			time.Sleep(2 * checkpointEvery)
		}
	}
	hits, misses, drops := headCounts(s)
	if drops != 0 {
		t.Errorf("cache emptied %d times with no other writer", drops)
	}
	if hits < 2*accounts*5 {
		t.Errorf("%d reads from the cache, %d through SQLite; want the accounts and grants of the last five rounds cached", hits, misses)
	}
	for i := range accounts {
		id := fmt.Sprintf("acct-%d", i)
		b, err := e.Balance(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := credit.Credits(103 - 12); b.Available != want {
			t.Errorf("%s: available %s, want %s", id, b.Available, want)
		}
		if len(b.Grants) != 1 {
			t.Errorf("%s: %d live grants, want 1 (the first one spent)", id, len(b.Grants))
		}
	}
	verifyLedger(t, e)
}

// A write to the file by another store empties the writer's cache, so that
// its next batch reads the heads and grants that write left.
func TestHeadsSeeOtherWriters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scrip.db")
	s, e := openEngineAt(t, path)
	if _, _, err := e.CreateAccount(ctx, "a", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Grant(ctx, ledger.GrantRequest{AccountID: "a", Key: "fund", Kind: ledger.KindTopUp, Amount: credit.Credits(5)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Charge(ctx, ledger.ChargeRequest{AccountID: "a", Key: "c1", Amount: credit.Credits(4)}); err != nil {
		t.Fatal(err)
	}

	// Another store on the same file moves the account's head and adds a
	// grant.
	_, other := openEngineAt(t, path)
	if _, err := other.Grant(ctx, ledger.GrantRequest{AccountID: "a", Key: "top-up", Kind: ledger.KindTopUp, Amount: credit.Credits(10)}); err != nil {
		t.Fatal(err)
	}

	// Spending more than the cache knows of needs the other store's grant,
	// and the journal entry goes after the other store's.
	res, err := e.Charge(ctx, ledger.ChargeRequest{AccountID: "a", Key: "c2", Amount: credit.Credits(8)})
	if err != nil {
		t.Fatalf("charge after another store's grant: %v", err)
	}
	if want := credit.Credits(3); res.Available != want {
		t.Errorf("available %s after the charge, want %s", res.Available, want)
	}
	if _, _, drops := headCounts(s); drops == 0 {
		t.Error("the cache was not emptied after another store wrote")
	}
	verifyLedger(t, e)
}

// A batch whose write fails and rolls back leaves the cache as the file is.
func TestHeadsAfterFailedWrite(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	createAccounts(t, s, "a", "b")
	write(t, s, fixture())

	lock := func() ledger.Account {
		t.Helper()
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		as, err := tx.LockAccounts(ctx, []string{"b"})
		if err != nil || len(as) != 1 {
			t.Fatalf("lock b: %v, %d accounts", err, len(as))
		}
		return as[0]
	}
	before := lock() // now cached

	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.LockAccounts(ctx, []string{"b"}); err != nil {
		t.Fatal(err)
	}
	err = tx.Write(ctx, &ledger.Writes{
		Accounts: []ledger.Account{{ID: "b", CreatedAt: t0, Seq: before.Seq + 1, Hash: "hb"}},
		Transactions: []ledger.Transaction{
			{ID: "x1", AccountID: "b", Seq: before.Seq + 1, Type: ledger.TxCharge, IdempotencyKey: "kb", CreatedAt: t0, Hash: "hb"},
			{ID: "x2", AccountID: "a", Seq: 3, Type: ledger.TxGrant, IdempotencyKey: "k1", CreatedAt: t0, Hash: "x"},
		},
	})
	if err == nil {
		t.Fatal("write of a recorded key succeeded")
	}
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("commit after a failed write succeeded")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	hitsBefore, _, _ := headCounts(s)
	after := lock()
	if hits, _, _ := headCounts(s); hits == hitsBefore {
		t.Error("the account was not read from the cache")
	}
	if after.Seq != before.Seq || after.Hash != before.Hash {
		t.Errorf("after a failed write the head is seq %d hash %q, want seq %d hash %q", after.Seq, after.Hash, before.Seq, before.Hash)
	}
}

// The cache holds at most headsMax accounts.
func TestHeadsBound(t *testing.T) {
	h := newHeads()
	h.check(1)
	as := make([]ledger.Account, headsMax+10)
	for i := range as {
		as[i] = ledger.Account{ID: fmt.Sprintf("acct-%06d", i)}
	}
	h.putAccounts(as)
	if n := len(h.accounts); n != headsMax {
		t.Errorf("%d accounts cached, want %d", n, headsMax)
	}
	found, missing := h.lookAccounts([]string{as[len(as)-1].ID})
	if len(found) != 1 || len(missing) != 0 {
		t.Errorf("the account cached last is not there: %d found, %d missing", len(found), len(missing))
	}
	h.check(2)
	if n := len(h.accounts); n != 0 {
		t.Errorf("%d accounts cached after the data version changed, want 0", n)
	}
}

// A batch whose commit fails (the log cannot be written) empties the cache,
// and the batch that takes the writer connection next, which may be waiting
// for it during that commit, reads the heads the file holds, not the failed
// batch's.
func TestHeadsAfterFailedCommit(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	createAccounts(t, s, "a", "b")
	write(t, s, fixture())
	lock := func(tx ledger.Tx) ledger.Account {
		t.Helper()
		as, err := tx.LockAccounts(ctx, []string{"b"})
		if err != nil || len(as) != 1 {
			t.Fatalf("lock b: %v, %d accounts", err, len(as))
		}
		return as[0]
	}
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := lock(tx) // now cached
	if err := tx.Write(ctx, &ledger.Writes{
		Accounts:     []ledger.Account{{ID: "b", CreatedAt: t0, Seq: before.Seq + 1, Hash: "hb"}},
		Transactions: []ledger.Transaction{{ID: "x1", AccountID: "b", Seq: before.Seq + 1, Type: ledger.TxCharge, IdempotencyKey: "kb", CreatedAt: t0, Hash: "hb"}},
	}); err != nil {
		t.Fatal(err)
	}

	type head struct {
		a   ledger.Account
		err error
	}
	next := make(chan head, 1)
	go func() {
		tx, err := s.Begin(ctx) // waits for the connection
		if err != nil {
			next <- head{err: err}
			return
		}
		defer tx.Rollback(ctx)
		as, err := tx.LockAccounts(ctx, []string{"b"})
		if err == nil && len(as) != 1 {
			err = fmt.Errorf("%d accounts", len(as))
		}
		if err != nil {
			next <- head{err: err}
			return
		}
		next <- head{a: as[0]}
	}()
	failing := failLogWrites(t)
	failing.Store(true)
	err = tx.Commit(ctx)
	failing.Store(false)
	if err == nil {
		t.Fatal("commit succeeded with the log failing")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	after := <-next
	if after.err != nil {
		t.Fatalf("lock b in the next batch: %v", after.err)
	}
	if after.a.Seq != before.Seq || after.a.Hash != before.Hash {
		t.Errorf("after a failed commit the next batch read seq %d hash %q, want seq %d hash %q", after.a.Seq, after.a.Hash, before.Seq, before.Hash)
	}
}

// The cache stays locked while a batch commits, so that the next batch,
// which database/sql hands the connection inside the commit, reads it only
// once the commit's outcome is in it: the failed batch's heads dropped, the
// committed batch's kept.
func TestHeadsCommitHoldsLock(t *testing.T) {
	h := newHeads()
	h.check(1)
	w := &ledger.Writes{Accounts: []ledger.Account{{ID: "a", Seq: 2, Hash: "h2"}}}
	commitTx := func(err error) func() error {
		return func() error {
			if h.mu.TryLock() {
				h.mu.Unlock()
				t.Error("the cache is not locked during the commit")
			}
			return err
		}
	}

	h.putAccounts([]ledger.Account{{ID: "a", Seq: 1, Hash: "h1"}})
	if err := h.commit(commitTx(errors.New("disk full")), w); err == nil {
		t.Fatal("a failed commit returned no error")
	}
	if found, _ := h.lookAccounts([]string{"a"}); len(found) != 0 {
		t.Errorf("after a failed commit the cache holds %+v", found)
	}

	h.check(1)
	h.putAccounts([]ledger.Account{{ID: "a", Seq: 1, Hash: "h1"}})
	if err := h.commit(commitTx(nil), w); err != nil {
		t.Fatal(err)
	}
	if found, _ := h.lookAccounts([]string{"a"}); len(found) != 1 || found[0].Seq != 2 || found[0].Hash != "h2" {
		t.Errorf("after a commit the cache holds %+v, want seq 2 hash h2", found)
	}
}
