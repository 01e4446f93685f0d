package sqlite

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/scriphq/scrip/ledger"
)

// runDirect runs fn on the writer's handle inside a batch's transaction, as
// Tx.Write does, and rolls the transaction back.
func runDirect(t *testing.T, s *Store, fn func(d *direct) error) error {
	t.Helper()
	tx := begin(t, s)
	defer tx.Rollback(context.Background())
	return tx.onHandle(fn)
}

// A statement run with the wrong number of values, or a value of a type it
// does not take, fails before SQLite runs it, and the next statement starts
// with no values left over.
func TestDirectRefusesBadValues(t *testing.T) {
	s := openTest(t)
	createAccounts(t, s, "a")
	st := s.w.updateAccount // seq, hash, id

	err := runDirect(t, s, func(d *direct) error {
		d.params.int(1)
		d.params.text("h")
		_, err := d.exec(st)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "2 values for the 3 parameters of UPDATE accounts") {
		t.Errorf("two values for three parameters: %v", err)
	}
	if got, want := s.w.transactions.stmts[2].String(),
		"INSERT OR ROLLBACK INTO transactions ("+txCols+") VALUES (4 rows)"; got != want {
		t.Errorf("an insert of 4 rows is named %q, want %q", got, want)
	}

	err = runDirect(t, s, func(d *direct) error {
		d.params.int(1)
		d.params.value(int64(2)) // the encoders give text or nil
		d.params.text("a")
		_, err := d.exec(st)
		return err
	})
	if !errors.Is(err, errDirectValue) {
		t.Errorf("an int64 value: %v, want errDirectValue", err)
	}

	err = runDirect(t, s, func(d *direct) error {
		if n := len(s.w.direct.params.vs); n != 0 {
			t.Errorf("%d values left over from the failed statements", n)
		}
		d.params.int(5)
		d.params.text("")
		d.params.text("a")
		n, err := d.exec(st)
		if err == nil && n != 1 {
			t.Errorf("the update changed %d rows, want 1", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Rolled back: the account is as it was.
	if a, err := s.Account(context.Background(), "a"); err != nil || a.Seq != 0 {
		t.Errorf("account a after rolled-back statements: %+v, %v", a, err)
	}
}

// Text values go in as text, the empty one as an empty text and not NULL, a nil
// amount as NULL, and a statement whose texts outgrow the buffer grows it.
func TestDirectValues(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	long := strings.Repeat("x", 10_000)
	createAccounts(t, s, "a")
	write(t, s, &ledger.Writes{Transactions: []ledger.Transaction{
		{ID: "t1", AccountID: "a", Seq: 1, Type: ledger.TxGrant, Reason: long, CreatedAt: t0, Hash: "h1"},
		{ID: "t2", AccountID: "a", Seq: 2, Type: ledger.TxGrant, Reason: "", CreatedAt: t0, PrevHash: "h1", Hash: "h2" + long},
	}})
	var reason1, reason2, hash2 string
	var after1 *int64
	err := s.reader.QueryRowContext(ctx, `SELECT
		(SELECT reason FROM transactions WHERE id = 't1'),
		(SELECT reason FROM transactions WHERE id = 't2'),
		(SELECT hash FROM transactions WHERE id = 't2'),
		(SELECT available_after FROM transactions WHERE id = 't1')`).Scan(&reason1, &reason2, &hash2, &after1)
	if err != nil {
		t.Fatal(err)
	}
	if reason1 != long || reason2 != "" || hash2 != "h2"+long || after1 != nil {
		t.Errorf("stored reason %d bytes, %q; hash %d bytes; available_after %v",
			len(reason1), reason2, len(hash2), after1)
	}
	var n int
	if err := s.reader.QueryRowContext(ctx, `SELECT count(*) FROM transactions WHERE reason IS NULL OR grant_id IS NULL`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d journal rows with NULL for an empty text (%v)", n, err)
	}
}

// A write whose context has ended writes nothing, and its transaction
// commits nothing.
func TestWriteAfterContextEnded(t *testing.T) {
	s := openTest(t)
	createAccounts(t, s, "a")
	ctx, cancel := context.WithCancel(context.Background())
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	err = tx.Write(ctx, &ledger.Writes{Accounts: []ledger.Account{{ID: "a", CreatedAt: t0, Seq: 1, Hash: "h1"}}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("write after the context ended: %v, want context.Canceled", err)
	}
	if err := tx.Commit(context.Background()); err == nil {
		t.Error("commit after the failed write succeeded")
	}
	if err := tx.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Account(context.Background(), "a"); err != nil || a.Seq != 0 {
		t.Errorf("account a after the failed write: %+v, %v", a, err)
	}
}
