package sqlite

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/ledger/storetest"
)

// TestVerifyDetectsTampering edits, then deletes, journal rows behind the
// ledger's back (dropping the append-only triggers first, as someone with
// direct database access could) and requires verify to notice each time.
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
	r, err := eng.Verify(ctx)
	if err != nil || !r.OK() || r.Transactions != 4 {
		t.Fatalf("clean verify: %+v %v", r, err)
	}
	if r.Totals[ledger.SystemSpent] != credit.SumOf(credit.Credits(3)) || r.Totals[ledger.SystemIssued] != credit.SumOf(credit.Credits(-10)) {
		t.Fatalf("totals = %v", r.Totals)
	}
	exec := func(q string) {
		t.Helper()
		if _, err := s.writer.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`DROP TRIGGER transactions_no_update`)
	exec(`DROP TRIGGER transactions_no_delete`)

	storetest.VerifyAvailableAfter(t, eng, exec, func(q string) int64 {
		var v int64
		if err := s.writer.QueryRowContext(ctx, q).Scan(&v); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return v
	})

	// An edited amount breaks that transaction's hash.
	exec(`UPDATE transactions SET amount = 2000000 WHERE account_id = 'u' AND seq = 2`)
	wantProblem(t, eng, "was altered")
	exec(`UPDATE transactions SET amount = 1000000 WHERE account_id = 'u' AND seq = 2`)
	if r, _ := eng.Verify(ctx); !r.OK() {
		t.Fatalf("restored journal still fails: %v", r.Problems)
	}
	// A deleted transaction leaves a gap and a broken chain.
	exec(`DELETE FROM transactions WHERE account_id = 'u' AND seq = 3`)
	wantProblem(t, eng, "missing")
}

// Verify checks accounts several at a time; its report must still be in
// account order.
func TestVerifyReportsInAccountOrder(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.VerifyInOrder(t, s, func(id string) {
		if _, err := s.writer.ExecContext(context.Background(), `UPDATE grants SET remaining = remaining + 1 WHERE account_id = ?`, id); err != nil {
			t.Fatal(err)
		}
	})
}

// openEngine opens a store on a fresh file and an engine on it; the test's
// cleanup closes both.
func openEngine(t *testing.T) (*Store, *ledger.Engine) {
	t.Helper()
	return openEngineAt(t, filepath.Join(t.TempDir(), "v.db"))
}

// openEngineAt is openEngine on the file at path.
func openEngineAt(t *testing.T, path string) (*Store, *ledger.Engine) {
	t.Helper()
	s, err := Open(path)
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := eng.Verify(ctx)
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

// Problems of one account come in the same order every time, however many
// there are of a kind (here three grants whose rows were deleted).
func TestVerifyProblemsInStableOrder(t *testing.T) {
	ctx := context.Background()
	s, eng := openEngine(t)
	if _, _, err := eng.CreateAccount(ctx, "u", nil); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"g1", "g2", "g3", "g4", "g5"} {
		if _, err := eng.Grant(ctx, ledger.GrantRequest{AccountID: "u", Key: k, Kind: ledger.KindTopUp, Amount: credit.Credits(10)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.writer.ExecContext(ctx, `DELETE FROM grants WHERE account_id = 'u'`); err != nil {
		t.Fatal(err)
	}
	var first []string
	for i := range 20 {
		r, err := eng.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Problems) != 6 {
			t.Fatalf("problems %q; want one per deleted grant and one for the available credits the latest transaction records", r.Problems)
		}
		if i == 0 {
			first = r.Problems
			continue
		}
		if !slices.Equal(r.Problems, first) {
			t.Fatalf("run %d listed %q; the first run %q", i, r.Problems, first)
		}
	}
}
