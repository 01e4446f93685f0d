package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/ledger/storetest"
	"github.com/scriphq/scrip/postgres/pgtest"
)

// TestVerifyDetectsTampering edits, then deletes, journal rows behind the
// ledger's back (after disabling the append-only trigger, as someone with
// owner access could) and requires verify to notice each time.
func TestVerifyDetectsTampering(t *testing.T) {
	ctx := context.Background()
	s, eng := openEngine(t)
	if _, _, err := eng.CreateAccount(ctx, "u", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Grant(ctx, ledger.GrantRequest{AccountID: "u", Key: "g", Kind: ledger.KindTopUp, Amount: credit.Credits(10)}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := eng.Charge(ctx, ledger.ChargeRequest{AccountID: "u", Key: k, Amount: credit.Credits(1)}); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := eng.Verify(ctx); err != nil || !r.OK() || r.Transactions != 4 {
		t.Fatalf("clean verify: %+v %v", r, err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE transactions SET amount = 2000000 WHERE account_id = 'u' AND seq = 2`); err == nil ||
		!strings.Contains(err.Error(), "append-only") {
		t.Fatalf("update of the journal was not refused: %v", err)
	}
	exec := func(q string) {
		t.Helper()
		if _, err := s.pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`ALTER TABLE transactions DISABLE TRIGGER transactions_append_only`)

	storetest.VerifyAvailableAfter(t, eng, exec, func(q string) int64 {
		var v int64
		if err := s.pool.QueryRow(ctx, q).Scan(&v); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return v
	})
	exec(`UPDATE transactions SET amount = 2000000 WHERE account_id = 'u' AND seq = 2`)
	wantProblem(t, eng, "was altered")
	exec(`UPDATE transactions SET amount = 1000000 WHERE account_id = 'u' AND seq = 2`)
	if r, _ := eng.Verify(ctx); !r.OK() {
		t.Fatalf("restored journal still fails: %v", r.Problems)
	}
	exec(`DELETE FROM transactions WHERE account_id = 'u' AND seq = 3`)
	wantProblem(t, eng, "missing")
}

// Verify checks accounts several at a time, on several pool connections;
// its report must still be in account order.
func TestVerifyReportsInAccountOrder(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.VerifyInOrder(t, s, func(id string) {
		if _, err := s.pool.Exec(ctx, `UPDATE grants SET remaining = remaining + 1 WHERE account_id = $1`, id); err != nil {
			t.Fatal(err)
		}
	})
}

// openEngine opens a store on a fresh schema and an engine on it; the
// test's cleanup closes both.
func openEngine(t *testing.T) (*Store, *ledger.Engine) {
	t.Helper()
	s, err := Open(context.Background(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	eng := ledger.NewEngine(s, ledger.Options{SweepEvery: -1})
	t.Cleanup(func() {
		eng.Close(context.Background())
		s.Close()
	})
	return s, eng
}

func wantProblem(t *testing.T, eng *ledger.Engine, substr string) {
	t.Helper()
	r, err := eng.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Problems {
		if strings.Contains(p, substr) {
			return
		}
	}
	t.Fatalf("verify problems %q do not mention %q", r.Problems, substr)
}
