package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

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
