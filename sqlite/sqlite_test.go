package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/ledger/storetest"
)

var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "scrip.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// begin opens a batch's transaction, or fails the test.
func begin(t testing.TB, s *Store) *Tx {
	t.Helper()
	tx, err := s.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tx.(*Tx)
}

func write(t testing.TB, s *Store, w *ledger.Writes) {
	t.Helper()
	ctx := context.Background()
	tx := begin(t, s)
	defer tx.Rollback(ctx)
	if err := tx.Write(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// createAccounts inserts the accounts in one committed batch.
func createAccounts(t testing.TB, s *Store, ids ...string) {
	t.Helper()
	w := &ledger.Writes{}
	for _, id := range ids {
		w.NewAccounts = append(w.NewAccounts, ledger.Account{ID: id, CreatedAt: t0})
	}
	write(t, s, w)
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func ids[T any](xs []T, id func(T) string) []string {
	out := []string{}
	for _, x := range xs {
		out = append(out, id(x))
	}
	return out
}

func grantID(g ledger.Grant) string     { return g.ID }
func holdID(h ledger.Hold) string       { return h.ID }
func txID(x ledger.Transaction) string  { return x.ID }
func accountID(a ledger.Account) string { return a.ID }

func TestOpenPragmasAndMigrate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scrip.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var mode string
	var sync, fk int
	if err := s.writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := s.writer.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if err := s.writer.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || sync != 2 || fk != 1 {
		t.Errorf("journal_mode %s, synchronous %d, foreign_keys %d; want wal, 2 (FULL), 1", mode, sync, fk)
	}
	var autoCheckpoint int
	if err := s.writer.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&autoCheckpoint); err != nil {
		t.Fatal(err)
	}
	if autoCheckpoint != walFramesMax {
		t.Errorf("wal_autocheckpoint %d; want %d", autoCheckpoint, walFramesMax)
	}
	for name, db := range map[string]*sql.DB{"read": s.reader, "bulk read": s.bulk} {
		if _, err := db.ExecContext(ctx, "CREATE TABLE x (y INTEGER)"); err == nil {
			t.Errorf("the %s pool accepted a write", name)
		}
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	createAccounts(t, s, "a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, err := s.Account(ctx, "a"); err != nil {
		t.Fatalf("account after reopen: %v", err)
	}
}

func TestOpenBadPath(t *testing.T) {
	for _, p := range []string{"", "a?b"} {
		if _, err := Open(p); err == nil {
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

func TestMemory(t *testing.T) {
	ctx := context.Background()
	s, err := Open(Memory)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	createAccounts(t, s, "a")
	write(t, s, &ledger.Writes{
		Accounts:     []ledger.Account{{ID: "a", Seq: 1, Hash: "h1"}},
		Transactions: []ledger.Transaction{{ID: "t1", AccountID: "a", Seq: 1, Type: ledger.TxGrant, CreatedAt: t0, Hash: "h1"}},
	})
	a, err := s.Account(ctx, "a")
	if err != nil || a.Seq != 1 {
		t.Fatalf("account %+v, %v", a, err)
	}
	// A second in-memory store is a different database.
	s2, err := Open(Memory)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Account(ctx, "a"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("other memory store: %v", err)
	}
}

func TestNewAccounts(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	want := []ledger.Account{
		{ID: "acct-0", CreatedAt: t0},
		{ID: "acct-1", CreatedAt: t0, Metadata: map[string]string{"plan": "pro", "é": "ü\"x"}},
		// Created and written to in one batch: inserted with its head.
		{ID: "acct-2", CreatedAt: t0, Seq: 3, Hash: "h3"},
		{ID: "acct-empty", CreatedAt: t0, Metadata: map[string]string{}},
	}
	write(t, s, &ledger.Writes{NewAccounts: want})
	for _, a := range want {
		read, err := s.Account(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "read", read, a)
	}
	if _, err := s.Account(ctx, "nobody"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("missing account: %v, want ErrNotFound", err)
	}

	// An account that exists fails the batch, which leaves nothing.
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	err = tx.Write(ctx, &ledger.Writes{NewAccounts: []ledger.Account{
		{ID: "acct-00", CreatedAt: t0}, {ID: "acct-1", CreatedAt: t0.Add(time.Hour)}}})
	if !errors.Is(err, ledger.ErrAccountExists) {
		t.Fatalf("existing account: %v, want ErrAccountExists", err)
	}
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("commit after a failed write succeeded")
	}
	if _, err := s.Account(ctx, "acct-00"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("account of the failed batch: %v, want ErrNotFound", err)
	}
	read, err := s.Account(ctx, "acct-1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "existing account after the failed batch", read, want[1])
}

// fixture returns a batch with every type and field set, zero and non-zero.
func fixture() *ledger.Writes {
	return &ledger.Writes{
		Accounts: []ledger.Account{{ID: "a", CreatedAt: t0, Seq: 2, Hash: "hash-2"}},
		NewGrants: []ledger.Grant{
			{
				ID: "g1", AccountID: "a", Kind: ledger.KindSubscription,
				Amount: credit.Credits(100), Remaining: credit.MustParse("99.5"), Priority: 100,
				EffectiveAt: t0, ExpiresAt: t0.Add(30 * 24 * time.Hour),
				Source:     ledger.Source{Type: "plan_cycle", ID: "sub_1", Reason: "cycle 1"},
				PaidAmount: 1999, PaidCurrency: "usd", CreatedAt: t0,
				Metadata: map[string]string{"cycle": "1"},
			},
			{
				ID: "g2", AccountID: "a", Kind: ledger.KindTopUp, Amount: credit.Micros(1),
				Remaining: credit.Micros(1), Priority: 200, EffectiveAt: t0.Add(time.Microsecond),
				CreatedAt: t0.Add(time.Microsecond), Metadata: map[string]string{}, Closed: true,
			},
		},
		NewHolds: []ledger.Hold{
			{
				ID: "h1", AccountID: "a", Amount: credit.MustParse("0.5"),
				Allocations: []ledger.Allocation{{GrantID: "g1", Amount: credit.MustParse("0.5")}},
				Status:      ledger.HoldOpen, ExpiresAt: t0.Add(time.Hour), CreatedAt: t0,
				Ref: ledger.Ref{Action: "fal-ai/flux/schnell", Job: "job-1", Metadata: map[string]string{"w": "1024"}},
			},
			{
				ID: "h2", AccountID: "a", Amount: credit.Credits(3), Allocations: []ledger.Allocation{},
				Status: ledger.HoldCaptured, ExpiresAt: t0.Add(time.Minute), CreatedAt: t0,
				SettledAt: t0.Add(time.Second), Captured: credit.Credits(2), ChargeID: "c1",
				Ref: ledger.Ref{Metadata: map[string]string{}},
			},
		},
		NewCharges: []ledger.Charge{
			{
				ID: "c1", AccountID: "a", Amount: credit.Credits(2), Refunded: credit.Micros(7),
				Allocations: []ledger.Allocation{{GrantID: "g1", Amount: credit.Credits(1)}, {GrantID: "g2", Amount: credit.Micros(999_993)}},
				HoldID:      "h2", CreatedAt: t0.Add(time.Second), Ref: ledger.Ref{Action: "chat-edit"},
			},
			{ID: "c2", AccountID: "a", Amount: credit.Credits(1), CreatedAt: t0},
		},
		Transactions: []ledger.Transaction{
			{
				ID: "t1", AccountID: "a", Seq: 1, Type: ledger.TxGrant, Amount: credit.Credits(100),
				GrantID: "g1", IdempotencyKey: "k1", RequestHash: "rh1",
				Entries: []ledger.Entry{
					{Account: ledger.SystemIssued, Amount: credit.Credits(-100)},
					{Account: "a", Grant: "g1", Amount: credit.Credits(100)},
				},
				CreatedAt: t0, PrevHash: "", Hash: "hash-1",
			},
			{
				ID: "t2", AccountID: "a", Seq: 2, Type: ledger.TxCapture, Amount: credit.Credits(2),
				HoldID: "h2", ChargeID: "c1", IdempotencyKey: "k2", RequestHash: "rh2",
				Ref:    ledger.Ref{Action: "chat-edit", Job: "j", Metadata: map[string]string{"k": "v"}},
				Reason: "done", Entries: []ledger.Entry{{Account: "a", Hold: "h2", Amount: credit.Credits(-2)}, {Account: ledger.SystemSpent, Amount: credit.Credits(2)}},
				CreatedAt: t0.Add(time.Second), PrevHash: "hash-1", Hash: "hash-2",
			},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	createAccounts(t, s, "a")
	w := fixture()
	write(t, s, w)

	a, err := s.Account(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "account", a, w.Accounts[0])

	all, err := s.Grants(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "all grants", all, w.NewGrants)
	st, err := s.AccountState(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "live grants", st.Grants, w.NewGrants[:1])
	for _, g := range w.NewGrants {
		got, err := s.Grant(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "grant", got, g)
	}
	for _, h := range w.NewHolds {
		got, err := s.Hold(ctx, h.ID)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "hold", got, h)
	}
	for _, c := range w.NewCharges {
		got, err := s.Charge(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "charge", got, c)
	}
	open, err := s.OpenHolds(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "open holds", open, w.NewHolds[:1])
	txs, err := s.Transactions(ctx, ledger.HistoryQuery{AccountID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "transactions", txs, []ledger.Transaction{w.Transactions[1], w.Transactions[0]})

	// The same rows through the write transaction's loads.
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	locked, err := tx.LockAccounts(ctx, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "locked", locked, w.Accounts)
	gs, err := tx.LoadGrants(ctx, nil, []string{"g1", "g2"})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "loaded grants", gs, w.NewGrants)
	hs, err := tx.LoadHolds(ctx, []string{"h2", "h1"})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "loaded holds", hs, w.NewHolds)
	cs, err := tx.LoadCharges(ctx, []string{"c1", "c2", "c3"})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "loaded charges", cs, w.NewCharges)

	for what, err := range map[string]error{
		"grant":  errOf(s.Grant(ctx, "nope")),
		"hold":   errOf(s.Hold(ctx, "nope")),
		"charge": errOf(s.Charge(ctx, "nope")),
	} {
		if !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("missing %s: %v, want ErrNotFound", what, err)
		}
	}
}

func errOf[T any](_ T, err error) error { return err }

func TestUpdates(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	createAccounts(t, s, "a")
	w := fixture()
	write(t, s, w)

	g := w.NewGrants[0]
	g.Remaining, g.Closed = 0, true
	h := w.NewHolds[0]
	h.Status, h.SettledAt, h.Captured, h.ChargeID = ledger.HoldCaptured, t0.Add(time.Minute), credit.MustParse("0.25"), "c2"
	c := w.NewCharges[1]
	c.Refunded = credit.MustParse("0.5")
	c.Allocations = []ledger.Allocation{{GrantID: "g1", Amount: credit.MustParse("0.5")}}
	write(t, s, &ledger.Writes{
		Accounts: []ledger.Account{{ID: "a", Seq: 9, Hash: "hash-9"}},
		Grants:   []ledger.Grant{g}, Holds: []ledger.Hold{h}, Charges: []ledger.Charge{c},
	})

	a, _ := s.Account(ctx, "a")
	if a.Seq != 9 || a.Hash != "hash-9" || !a.CreatedAt.Equal(t0) {
		t.Errorf("account head %+v", a)
	}
	gotG, _ := s.Grant(ctx, g.ID)
	equal(t, "grant", gotG, g)
	gotH, _ := s.Hold(ctx, h.ID)
	equal(t, "hold", gotH, h)
	gotC, _ := s.Charge(ctx, c.ID)
	equal(t, "charge", gotC, c)

	// Updating a row that does not exist is a bug in the batch.
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	err = tx.Write(ctx, &ledger.Writes{Grants: []ledger.Grant{{ID: "ghost"}}})
	if !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("update of missing grant: %v, want ErrNotFound", err)
	}
}

func TestJournalIsAppendOnly(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	createAccounts(t, s, "a")
	write(t, s, fixture())
	if _, err := s.writer.ExecContext(ctx, "UPDATE transactions SET amount = 0"); err == nil {
		t.Error("UPDATE of transactions succeeded")
	}
	if _, err := s.writer.ExecContext(ctx, "DELETE FROM transactions"); err == nil {
		t.Error("DELETE of transactions succeeded")
	}
}

func TestUniqueSeqAndKey(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	createAccounts(t, s, "a", "b")
	write(t, s, fixture())
	for name, c := range map[string]struct {
		x         ledger.Transaction
		keyExists bool
	}{
		"same seq": {ledger.Transaction{ID: "x1", AccountID: "a", Seq: 2, Type: ledger.TxGrant, CreatedAt: t0, Hash: "x"}, false},
		"same key": {ledger.Transaction{ID: "x2", AccountID: "a", Seq: 3, Type: ledger.TxGrant, IdempotencyKey: "k1", CreatedAt: t0, Hash: "x"}, true},
	} {
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = tx.Write(ctx, &ledger.Writes{Transactions: []ledger.Transaction{c.x}})
		if err == nil {
			t.Errorf("%s: write succeeded", name)
		} else if got := errors.Is(err, ledger.ErrKeyExists); got != c.keyExists {
			t.Errorf("%s: errors.Is(%v, ErrKeyExists) = %v, want %v", name, err, got, c.keyExists)
		}
		tx.Rollback(ctx)
	}
	// Keys are scoped to the account, and an empty key is no key.
	write(t, s, &ledger.Writes{Transactions: []ledger.Transaction{
		{ID: "y1", AccountID: "b", Seq: 1, Type: ledger.TxGrant, IdempotencyKey: "k1", CreatedAt: t0, Hash: "y1"},
		{ID: "y2", AccountID: "b", Seq: 2, Type: ledger.TxGrant, CreatedAt: t0, Hash: "y2"},
		{ID: "y3", AccountID: "b", Seq: 3, Type: ledger.TxGrant, CreatedAt: t0, Hash: "y3"},
	}})
}

// A batch whose journal row is refused leaves nothing behind: SQLite rolls
// the whole transaction back (INSERT OR ROLLBACK), and neither a further
// write nor a commit runs outside it.
func TestFailedWriteLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	createAccounts(t, s, "a", "b")
	write(t, s, fixture())

	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = tx.Write(ctx, &ledger.Writes{
		Accounts:   []ledger.Account{{ID: "b", CreatedAt: t0, Seq: 1, Hash: "hb"}},
		NewCharges: []ledger.Charge{{ID: "c9", AccountID: "b", Amount: credit.Credits(1), CreatedAt: t0}},
		Transactions: []ledger.Transaction{
			{ID: "x1", AccountID: "b", Seq: 1, Type: ledger.TxCharge, ChargeID: "c9", IdempotencyKey: "kb", CreatedAt: t0, Hash: "hb"},
			{ID: "x2", AccountID: "a", Seq: 3, Type: ledger.TxGrant, IdempotencyKey: "k1", CreatedAt: t0, Hash: "x"},
		},
	})
	if !errors.Is(err, ledger.ErrKeyExists) {
		t.Fatalf("write of a recorded key: %v, want ErrKeyExists", err)
	}
	later := &ledger.Writes{Accounts: []ledger.Account{{ID: "b", CreatedAt: t0, Seq: 7, Hash: "h7"}}}
	if err := tx.Write(ctx, later); err == nil {
		t.Error("write after a failed write succeeded")
	}
	if err := tx.Commit(ctx); err == nil {
		t.Error("commit after a failed write succeeded")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Errorf("rollback after a failed write: %v", err)
	}

	if b, err := s.Account(ctx, "b"); err != nil || b.Seq != 0 || b.Hash != "" {
		t.Errorf("account b after the failed batch: %+v, %v; want seq 0, no hash", b, err)
	}
	if _, err := s.Charge(ctx, "c9"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("charge of the failed batch: %v, want ErrNotFound", err)
	}
	for acct, want := range map[string]int{"a": 2, "b": 0} {
		txs, err := s.Transactions(ctx, ledger.HistoryQuery{AccountID: acct, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(txs) != want {
			t.Errorf("account %s: %d transactions after the failed batch, want %d", acct, len(txs), want)
		}
	}

	// SQLite itself has ended a transaction whose journal row it refused:
	// nothing is left to roll back.
	tx, err = s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Write(ctx, &ledger.Writes{Transactions: []ledger.Transaction{
		{ID: "x3", AccountID: "a", Seq: 3, Type: ledger.TxGrant, IdempotencyKey: "k1", CreatedAt: t0, Hash: "x"},
	}}); !errors.Is(err, ledger.ErrKeyExists) {
		t.Fatalf("write of a recorded key: %v, want ErrKeyExists", err)
	}
	if err := tx.(*Tx).tx.Rollback(); !isNoTransaction(err) {
		t.Errorf("rollback after the refused row: %v, want SQLite's no transaction is active", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Errorf("rollback after the refused row, through the store: %v", err)
	}

	// A Write that fails with its transaction still open (a row to update
	// is missing) commits nothing either.
	tx, err = s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = tx.Write(ctx, &ledger.Writes{
		Accounts: []ledger.Account{{ID: "b", CreatedAt: t0, Seq: 1, Hash: "hb"}},
		Grants:   []ledger.Grant{{ID: "ghost"}},
	})
	if !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("update of a missing grant: %v, want ErrNotFound", err)
	}
	if err := tx.Commit(ctx); err == nil {
		t.Error("commit after a failed write succeeded")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Errorf("rollback after a failed write: %v", err)
	}
	if b, err := s.Account(ctx, "b"); err != nil || b.Seq != 0 {
		t.Errorf("account b after the failed batch: %+v, %v; want seq 0", b, err)
	}

	// The writer goes on: the same rows without the refused one commit.
	write(t, s, &ledger.Writes{
		Accounts:     []ledger.Account{{ID: "b", CreatedAt: t0, Seq: 1, Hash: "hb"}},
		NewCharges:   []ledger.Charge{{ID: "c9", AccountID: "b", Amount: credit.Credits(1), CreatedAt: t0}},
		Transactions: []ledger.Transaction{{ID: "x1", AccountID: "b", Seq: 1, Type: ledger.TxCharge, ChargeID: "c9", IdempotencyKey: "kb", CreatedAt: t0, Hash: "hb"}},
	})
	if b, err := s.Account(ctx, "b"); err != nil || b.Seq != 1 {
		t.Errorf("account b after the retried batch: %+v, %v; want seq 1", b, err)
	}
}

func TestLockAccountsMissing(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	createAccounts(t, s, "b", "d")
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	as, err := tx.LockAccounts(ctx, []string{"a", "b", "c", "d", "e"})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "locked", ids(as, accountID), []string{"b", "d"})
	as, err = tx.LockAccounts(ctx, nil)
	if err != nil || len(as) != 0 {
		t.Errorf("no ids: %v, %v", as, err)
	}
}

func TestLoadGrants(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	createAccounts(t, s, "a", "b", "c")
	g := func(id, acct string, remaining int64, closed bool, at int) ledger.Grant {
		return ledger.Grant{
			ID: id, AccountID: acct, Kind: ledger.KindPromotional, Amount: credit.Credits(10),
			Remaining: credit.Credits(remaining), Closed: closed,
			EffectiveAt: t0, CreatedAt: t0.Add(time.Duration(at) * time.Second),
		}
	}
	write(t, s, &ledger.Writes{NewGrants: []ledger.Grant{
		g("a-live-2", "a", 5, false, 2),
		g("a-live-1", "a", 5, false, 1),
		g("a-empty", "a", 0, false, 3),
		g("a-closed", "a", 5, true, 4),
		g("b-live", "b", 1, false, 1),
		g("b-closed", "b", 1, true, 2),
		g("c-live", "c", 1, false, 1),
	}})
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	gs, err := tx.LoadGrants(ctx, []string{"a", "b"}, []string{"a-closed", "a-live-1", "c-live", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "loaded", ids(gs, grantID), []string{"a-live-1", "a-live-2", "a-closed", "b-live", "c-live"})
	gs, err = tx.LoadGrants(ctx, nil, nil)
	if err != nil || len(gs) != 0 {
		t.Errorf("nothing asked: %v, %v", gs, err)
	}
}

func TestLoadKeyed(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	createAccounts(t, s, "a", "b")
	write(t, s, &ledger.Writes{Transactions: []ledger.Transaction{
		{ID: "a1", AccountID: "a", Seq: 1, Type: ledger.TxGrant, IdempotencyKey: "k1", RequestHash: "r", CreatedAt: t0, Hash: "1"},
		{ID: "a2", AccountID: "a", Seq: 2, Type: ledger.TxGrant, IdempotencyKey: "k2", CreatedAt: t0, Hash: "2"},
		{ID: "a3", AccountID: "a", Seq: 3, Type: ledger.TxGrant, CreatedAt: t0, Hash: "3"},
		{ID: "b1", AccountID: "b", Seq: 1, Type: ledger.TxGrant, IdempotencyKey: "k1", CreatedAt: t0, Hash: "1"},
	}})
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	got, err := tx.LoadKeyed(ctx, []ledger.TxKey{
		{AccountID: "b", Key: "k1"}, {AccountID: "a", Key: "k1"}, {AccountID: "b", Key: "k2"},
		{AccountID: "a", Key: ""}, {AccountID: "zz", Key: "k1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "keyed", ids(got, txID), []string{"a1", "b1"})
	if got[0].RequestHash != "r" || got[0].IdempotencyKey != "k1" {
		t.Errorf("keyed a1: %+v", got[0])
	}
	got, err = tx.LoadKeyed(ctx, nil)
	if err != nil || len(got) != 0 {
		t.Errorf("no keys: %v, %v", got, err)
	}
}

func TestDue(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	createAccounts(t, s, "a", "b")
	now := t0.Add(24 * time.Hour)
	g := func(id, acct string, expires time.Time, remaining int64, closed bool) ledger.Grant {
		return ledger.Grant{ID: id, AccountID: acct, Kind: ledger.KindSubscription, Amount: credit.Credits(1),
			Remaining: credit.Credits(remaining), EffectiveAt: t0, ExpiresAt: expires, CreatedAt: t0, Closed: closed}
	}
	h := func(id, acct string, expires time.Time, status ledger.HoldStatus) ledger.Hold {
		return ledger.Hold{ID: id, AccountID: acct, Amount: credit.Credits(1), Status: status, ExpiresAt: expires, CreatedAt: t0}
	}
	write(t, s, &ledger.Writes{
		NewGrants: []ledger.Grant{
			g("g-late", "a", now.Add(-time.Minute), 1, false),
			g("g-early", "b", now.Add(-time.Hour), 1, false),
			g("g-now", "a", now, 0, false), // due even with nothing left
			g("g-future", "a", now.Add(time.Microsecond), 1, false),
			g("g-never", "a", time.Time{}, 1, false),
			g("g-closed", "a", now.Add(-2*time.Hour), 1, true),
			g("g-tie", "b", now.Add(-time.Hour), 1, false),
		},
		NewHolds: []ledger.Hold{
			h("h-late", "a", now.Add(-time.Second), ledger.HoldOpen),
			h("h-early", "b", now.Add(-time.Hour), ledger.HoldOpen),
			h("h-now", "a", now, ledger.HoldOpen),
			h("h-future", "a", now.Add(time.Microsecond), ledger.HoldOpen),
			h("h-captured", "a", now.Add(-2*time.Hour), ledger.HoldCaptured),
			h("h-released", "a", now.Add(-2*time.Hour), ledger.HoldReleased),
		},
	})
	gs, err := s.DueGrants(ctx, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "due grants", ids(gs, grantID), []string{"g-early", "g-tie", "g-late", "g-now"})
	gs, err = s.DueGrants(ctx, now, 2)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "due grants limit 2", ids(gs, grantID), []string{"g-early", "g-tie"})

	hs, err := s.DueHolds(ctx, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "due holds", ids(hs, holdID), []string{"h-early", "h-late", "h-now"})
	hs, err = s.DueHolds(ctx, now, 1)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "due holds limit 1", ids(hs, holdID), []string{"h-early"})
}

func TestAccountIDs(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	createAccounts(t, s, "c", "a", "e", "b", "d")
	got, err := s.AccountIDs(ctx, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "first page", got, []string{"a", "b"})
	got, err = s.AccountIDs(ctx, "b", 10)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "after b", got, []string{"c", "d", "e"})
}

// history writes n transactions of account a, cycling through types, one
// second apart.
func history(t testing.TB, s *Store, n int) []ledger.Transaction {
	t.Helper()
	types := []ledger.TxType{ledger.TxGrant, ledger.TxHold, ledger.TxCapture, ledger.TxCharge}
	txs := make([]ledger.Transaction, n)
	for i := range txs {
		txs[i] = ledger.Transaction{
			ID: fmt.Sprintf("t%04d", i+1), AccountID: "a", Seq: int64(i + 1), Type: types[i%len(types)],
			Amount: credit.Credits(int64(i)), CreatedAt: t0.Add(time.Duration(i) * time.Second),
			Hash: fmt.Sprintf("h%d", i+1),
		}
	}
	write(t, s, &ledger.Writes{Transactions: txs})
	return txs
}

func TestTransactionsQuery(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	createAccounts(t, s, "a", "b")
	history(t, s, 10)
	write(t, s, &ledger.Writes{Transactions: []ledger.Transaction{{ID: "b1", AccountID: "b", Seq: 1, Type: ledger.TxGrant, CreatedAt: t0, Hash: "b"}}})

	for _, tc := range []struct {
		name string
		q    ledger.HistoryQuery
		want []string
	}{
		{"all", ledger.HistoryQuery{}, []string{"t0010", "t0009", "t0008", "t0007", "t0006", "t0005", "t0004", "t0003", "t0002", "t0001"}},
		{"limit", ledger.HistoryQuery{Limit: 3}, []string{"t0010", "t0009", "t0008"}},
		{"cursor", ledger.HistoryQuery{BeforeSeq: 8, Limit: 3}, []string{"t0007", "t0006", "t0005"}},
		{"cursor end", ledger.HistoryQuery{BeforeSeq: 2, Limit: 3}, []string{"t0001"}},
		{"types", ledger.HistoryQuery{Types: []ledger.TxType{ledger.TxGrant, ledger.TxCharge}}, []string{"t0009", "t0008", "t0005", "t0004", "t0001"}},
		{"since", ledger.HistoryQuery{Since: t0.Add(7 * time.Second)}, []string{"t0010", "t0009", "t0008"}},
		{"until", ledger.HistoryQuery{Until: t0.Add(2 * time.Second)}, []string{"t0002", "t0001"}},
		{"since until types", ledger.HistoryQuery{
			Since: t0.Add(time.Second), Until: t0.Add(8 * time.Second), Types: []ledger.TxType{ledger.TxHold},
		}, []string{"t0006", "t0002"}},
		{"everything", ledger.HistoryQuery{
			Since: t0.Add(time.Second), Until: t0.Add(9 * time.Second), BeforeSeq: 9, Limit: 2,
			Types: []ledger.TxType{ledger.TxGrant, ledger.TxHold, ledger.TxCapture},
		}, []string{"t0007", "t0006"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.AccountID = "a"
			got, err := s.Transactions(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "ids", ids(got, txID), tc.want)
		})
	}
	got, err := s.Transactions(ctx, ledger.HistoryQuery{AccountID: "nobody"})
	if err != nil || len(got) != 0 {
		t.Errorf("unknown account: %v, %v", got, err)
	}
}

func TestJournal(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	createAccounts(t, s, "a")
	want := history(t, s, 2*journalPageRows+3) // crosses page boundaries
	var got []ledger.Transaction
	err := s.Journal(ctx, "a", func(x *ledger.Transaction) error {
		got = append(got, *x)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "journal", got, want)

	stop := errors.New("stop")
	n := 0
	err = s.Journal(ctx, "a", func(*ledger.Transaction) error {
		n++
		if n == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 5 {
		t.Errorf("stopped journal: %d calls, %v", n, err)
	}
}

func TestRollbackLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	createAccounts(t, s, "a")
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Write(ctx, fixture()); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(ctx, "a")
	if err != nil || a.Seq != 0 || a.Hash != "" {
		t.Errorf("account after rollback: %+v, %v", a, err)
	}
	for _, table := range []string{"grants", "holds", "charges", "transactions"} {
		var n int
		if err := s.reader.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s: %d rows after rollback", table, n)
		}
	}
	// Rollback after Commit is a no-op, so callers can defer it.
	tx, err = s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Errorf("rollback after commit: %v", err)
	}
}

func TestReadsDuringWrite(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	createAccounts(t, s, "a")
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := tx.Write(ctx, fixture()); err != nil {
		t.Fatal(err)
	}

	// The writer holds the write lock with uncommitted rows; reads go on and
	// see the last committed state.
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		a, err := s.Account(rctx, "a")
		if err == nil && a.Seq != 0 {
			err = fmt.Errorf("read uncommitted head %+v", a)
		}
		if err == nil {
			var gs []ledger.Grant
			gs, err = s.Grants(rctx, "a")
			if err == nil && len(gs) != 0 {
				err = fmt.Errorf("read %d uncommitted grants", len(gs))
			}
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Account(ctx, "a"); err != nil || a.Seq != 2 {
		t.Errorf("after commit: %+v, %v", a, err)
	}
}

// batch builds n charge-like operations over accounts: one charge, one grant
// debit and one journal transaction each, plus the accounts' new heads.
func batch(n, accounts, round int) *ledger.Writes {
	w := &ledger.Writes{}
	seqs := make(map[string]int64)
	for i := range n {
		acct := fmt.Sprintf("acct-%03d", i%accounts)
		seqs[acct]++
		seq := int64(round*n/accounts) + seqs[acct]
		id := fmt.Sprintf("%d-%d", round, i)
		amount := credit.MustParse("0.5")
		w.Grants = append(w.Grants, ledger.Grant{ID: "g-" + acct, Remaining: credit.Credits(1_000_000) - amount*credit.Amount(seq)})
		w.NewCharges = append(w.NewCharges, ledger.Charge{
			ID: "c-" + id, AccountID: acct, Amount: amount,
			Allocations: []ledger.Allocation{{GrantID: "g-" + acct, Amount: amount}},
			CreatedAt:   t0, Ref: ledger.Ref{Action: "chat-edit", Job: "job-" + id},
		})
		w.Transactions = append(w.Transactions, ledger.Transaction{
			ID: "t-" + id, AccountID: acct, Seq: seq, Type: ledger.TxCharge, Amount: amount,
			ChargeID: "c-" + id, IdempotencyKey: "k-" + id, RequestHash: "0123456789abcdef0123456789abcdef",
			Ref: ledger.Ref{Action: "chat-edit", Job: "job-" + id},
			Entries: []ledger.Entry{
				{Account: acct, Grant: "g-" + acct, Amount: -amount},
				{Account: ledger.SystemSpent, Amount: amount},
			},
			CreatedAt: t0, PrevHash: "ab54f1e0c8d9a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b",
			Hash: "cd54f1e0c8d9a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b",
		})
	}
	for acct, k := range seqs {
		w.Accounts = append(w.Accounts, ledger.Account{ID: acct, Seq: int64(round*n/accounts) + k, Hash: "head"})
	}
	return w
}

func setupBatch(t testing.TB, s *Store, accounts int) {
	t.Helper()
	w := &ledger.Writes{}
	for i := range accounts {
		acct := fmt.Sprintf("acct-%03d", i)
		createAccounts(t, s, acct)
		w.NewGrants = append(w.NewGrants, ledger.Grant{
			ID: "g-" + acct, AccountID: acct, Kind: ledger.KindTopUp, Amount: credit.Credits(1_000_000),
			Remaining: credit.Credits(1_000_000), EffectiveAt: t0, CreatedAt: t0,
		})
	}
	write(t, s, w)
}

func TestLargeBatch(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	const accounts, n = 50, 203 // 128 + 64 + 8 + 2 + 1 rows per insert
	setupBatch(t, s, accounts)
	write(t, s, batch(n, accounts, 0))
	var count int
	if err := s.reader.QueryRowContext(ctx, "SELECT count(*) FROM transactions").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Errorf("%d transactions, want %d", count, n)
	}
	txs, err := s.Transactions(ctx, ledger.HistoryQuery{AccountID: "acct-000"})
	if err != nil {
		t.Fatal(err)
	}
	if len(txs) != 5 || txs[0].Seq != 5 {
		t.Errorf("acct-000: %d transactions, newest seq %d", len(txs), txs[0].Seq)
	}
}

// BenchmarkWrite measures one batch of 200 charges over 50 accounts: 200
// journal transactions and charges inserted, 200 grant and 50 account
// updates, committed with fsync.
func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	s := openTest(b)
	const accounts, n = 50, 200
	setupBatch(b, s, accounts)
	batches := make([]*ledger.Writes, b.N)
	for i := range batches {
		batches[i] = batch(n, accounts, i)
	}
	b.ResetTimer()
	for i := range b.N {
		tx, err := s.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := tx.Write(ctx, batches[i]); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/tx")
}

// BenchmarkBalance measures a balance read: the account, its live grants
// and its open holds in one read transaction.
func BenchmarkBalance(b *testing.B) {
	storetest.BenchBalance(b, openTest(b))
}

// TestReaderMemoryMap checks that the writer and the pool of bulk reads
// read the file through a memory map and the readers do not: under a
// stream of commits each read transaction would unmap the whole file and
// fault its pages in again.
func TestReaderMemoryMap(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		db   *sql.DB
		want int64
	}{{"writer", s.writer, mmapBytes}, {"reader", s.reader, 0}, {"bulk reader", s.bulk, mmapBytes}} {
		var n int64
		if err := c.db.QueryRowContext(ctx, `PRAGMA mmap_size`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != c.want {
			t.Errorf("the %s's mmap_size is %d, want %d", c.name, n, c.want)
		}
	}
	// The snapshots of verification run on the bulk pool.
	err := s.ReadAccounts(ctx, func(r ledger.AccountsReader) error {
		var n int64
		if err := r.(snapshot).tx.QueryRowContext(ctx, `PRAGMA mmap_size`).Scan(&n); err != nil {
			return err
		}
		if n != mmapBytes {
			t.Errorf("a snapshot's mmap_size is %d, want %d", n, int64(mmapBytes))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBulkPoolLetsGo checks that the connections of verification's pool,
// and their memory maps of the file, close soon after it ends.
func TestBulkPoolLetsGo(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if err := s.ReadAccounts(ctx, func(ledger.AccountsReader) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if n := s.bulk.Stats().OpenConnections; n == 0 {
		t.Fatal("no connection of the bulk pool open right after a snapshot")
	}
	// database/sql closes idle connections on a timer of at least a
	// second; bounded wait.
	const wait = 10 * time.Second
	deadline := time.Now().Add(wait)
	for s.bulk.Stats().OpenConnections > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if st := s.bulk.Stats(); st.OpenConnections > 0 {
		t.Errorf("%d connections of the bulk pool still open %v after the snapshot ended", st.OpenConnections, wait)
	}
}
