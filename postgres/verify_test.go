package postgres

import (
	"context"
	"fmt"
	"reflect"
	"slices"
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

// The bulk reads Verify uses return, for each account, what the Store's
// per-account reads return.
func TestBulkReadsMatchPerAccountReads(t *testing.T) {
	ctx := context.Background()
	s, eng := openEngine(t)
	ids := []string{"c", "a", "b"}
	for i, id := range ids {
		if _, _, err := eng.CreateAccount(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
		for g := range 3 {
			if _, err := eng.Grant(ctx, ledger.GrantRequest{AccountID: id, Key: fmt.Sprint("g", g), Kind: ledger.KindTopUp, Amount: credit.Credits(int64(5 + i))}); err != nil {
				t.Fatal(err)
			}
		}
		// The last grant is revoked (closed), the first spent; one hold
		// stays open, one is captured.
		gs, err := s.Grants(ctx, id, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Revoke(ctx, ledger.RevokeRequest{GrantID: gs[2].ID, Key: "revoke"}); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Charge(ctx, ledger.ChargeRequest{AccountID: id, Key: "c", Amount: credit.Credits(int64(5 + i))}); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Hold(ctx, ledger.HoldRequest{AccountID: id, Key: "open", Amount: credit.Credits(1)}); err != nil {
			t.Fatal(err)
		}
		res, err := eng.Hold(ctx, ledger.HoldRequest{AccountID: id, Key: "captured", Amount: credit.Credits(2)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Capture(ctx, ledger.CaptureRequest{HoldID: res.Hold.ID, Key: "capture", Amount: credit.Credits(1)}); err != nil {
			t.Fatal(err)
		}
	}
	asked := append(ids, "missing")
	accounts, err := s.AccountsOf(ctx, asked)
	if err != nil {
		t.Fatal(err)
	}
	journals := map[string][]ledger.Transaction{}
	if err := s.JournalOf(ctx, asked, func(t *ledger.Transaction) error {
		journals[t.AccountID] = append(journals[t.AccountID], *t)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	grants, err := s.GrantsOf(ctx, asked)
	if err != nil {
		t.Fatal(err)
	}
	holds, err := s.OpenHoldsOf(ctx, asked)
	if err != nil {
		t.Fatal(err)
	}
	if len(accounts) != len(ids) {
		t.Fatalf("AccountsOf returned %d accounts; want %d", len(accounts), len(ids))
	}
	for _, id := range ids {
		want, err := s.Account(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(accounts, func(a ledger.Account) bool { return a.ID == id })
		if i < 0 {
			t.Fatalf("AccountsOf left out %s", id)
		}
		wantSame(t, "account "+id, accounts[i], want)

		var journal []ledger.Transaction
		if err := s.Journal(ctx, id, func(t *ledger.Transaction) error {
			journal = append(journal, *t)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(journal) != 8 {
			t.Fatalf("%s has %d transactions; want 8", id, len(journal))
		}
		wantSame(t, "journal of "+id, journals[id], journal)

		wantGrants, err := s.Grants(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(wantGrants) != 3 || !wantGrants[2].Closed {
			t.Fatalf("grants of %s: %+v; want 3, the last closed", id, wantGrants)
		}
		wantSame(t, "grants of "+id, of(grants, id, func(g ledger.Grant) string { return g.AccountID }), wantGrants)

		wantHolds, err := s.OpenHolds(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(wantHolds) != 1 {
			t.Fatalf("%s has %d open holds; want 1", id, len(wantHolds))
		}
		wantSame(t, "open holds of "+id, of(holds, id, func(h ledger.Hold) string { return h.AccountID }), wantHolds)
	}
}

func wantSame(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

// of is the items of xs that belong to account id, in their order.
func of[T any](xs []T, id string, account func(T) string) []T {
	var out []T
	for _, x := range xs {
		if account(x) == id {
			out = append(out, x)
		}
	}
	return out
}
