package storetest

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/ledger"
)

// testBalanceWhileWriting reads an account's balance while holds are placed
// on it and released: credits only move between available and held, so
// every balance must show their sum unchanged. A balance whose grants and
// holds were read at different moments shows a hold's credits twice, or
// not at all.
func testBalanceWhileWriting(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	e.grant("u", ledger.KindTopUp, "100", time.Time{})
	want := amt("100")

	const pairs = 150
	ctx, stop := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	var reads, holding atomic.Int64 // balances read, and those that saw a hold
	torn := make(chan ledger.Balance, 1)
	for range 3 {
		wg.Go(func() {
			for ctx.Err() == nil {
				b, err := e.eng.Balance(ctx, "u")
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("balance: %v", err)
					}
					return
				}
				reads.Add(1)
				if b.Held != 0 {
					holding.Add(1)
				}
				if b.Available+b.Held != want {
					select {
					case torn <- b:
					default:
					}
					return
				}
			}
		})
	}
	for i := range pairs {
		h, err := e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: "u", Key: e.key(), Amount: amt("10")})
		if err != nil {
			t.Fatalf("hold %d: %v", i, err)
		}
		if _, err := e.eng.Release(e.ctx, ledger.ReleaseRequest{HoldID: h.Hold.ID, Key: e.key()}); err != nil {
			t.Fatalf("release %d: %v", i, err)
		}
		if len(torn) > 0 {
			break
		}
	}
	stop()
	wg.Wait()
	select {
	case b := <-torn:
		t.Fatalf("a balance showed %s available and %s held; the two always add up to %s", b.Available, b.Held, want)
	default:
	}
	// Reads that never overlapped a hold would prove nothing.
	if holding.Load() == 0 {
		t.Fatalf("none of %d balance reads during %d holds and releases saw a hold", reads.Load(), pairs)
	}
	t.Logf("%d balance reads during %d holds and releases, %d of them during a hold", reads.Load(), pairs, holding.Load())
}

// testBalancesMatchBalance: Balances gives each account the balance
// Balance gives it, leaves out ids without an account, and does so from the
// store's bulk reads and from its one-account reads alike.
func testBalancesMatchBalance(t *testing.T, open Open) {
	eachReadPath(t, open, func(t *testing.T, s ledger.Store, e *env, prefix string) {
		ids := []string{prefix + "empty", prefix + "spent", prefix + "mixed", prefix + "old"}
		for _, id := range ids {
			e.account(id)
		}
		spent := e.grant(prefix+"spent", ledger.KindTopUp, "5", time.Time{})
		if _, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: prefix + "spent", Key: e.key(), Amount: amt("5")}); err != nil {
			t.Fatal(err)
		}
		topUp := e.grant(prefix+"mixed", ledger.KindTopUp, "10", time.Time{})
		e.grant(prefix+"mixed", ledger.KindPromotional, "2.5", t0.Add(time.Hour))
		e.grant(prefix+"mixed", ledger.KindPromotional, "7", t0.Add(time.Minute))
		if _, err := e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: prefix + "mixed", Key: e.key(), Amount: amt("3")}); err != nil {
			t.Fatal(err)
		}
		// An account with history: a revoked grant, a spent one and a
		// live one.
		revoked := e.grant(prefix+"old", ledger.KindTopUp, "4", time.Time{})
		if _, err := e.eng.Revoke(e.ctx, ledger.RevokeRequest{GrantID: revoked.ID, Key: e.key(), Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		used := e.grant(prefix+"old", ledger.KindTopUp, "1", time.Time{})
		if _, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: prefix + "old", Key: e.key(), Amount: amt("1")}); err != nil {
			t.Fatal(err)
		}
		e.grant(prefix+"old", ledger.KindTopUp, "6", time.Time{})
		e.clock.Advance(2 * time.Minute) // one promotional grant has expired
		// Asked for by id: the spent grant of one account, the revoked
		// one of another and a live one, which comes once; not the
		// spent one of "old".
		named := []string{spent.ID, revoked.ID, topUp.ID, "grant_none"}
		got, err := e.eng.Balances(e.ctx, append(ids, prefix+"none"), named)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(ids) {
			t.Errorf("%d balances for %d accounts and one unknown id, want %d", len(got), len(ids)+1, len(ids))
		}
		for _, id := range ids {
			want := e.balance(id)
			ab, ok := got[id]
			switch {
			case !ok:
				t.Errorf("%s: no balance", id)
			case ab.Account.ID != id || ab.Balance.Available != want.Available || ab.Balance.Held != want.Held ||
				len(ab.Balance.Grants) != len(want.Grants):
				t.Errorf("%s: Balances gives %s available, %s held, %d grants; Balance %s, %s, %d",
					id, ab.Balance.Available, ab.Balance.Held, len(ab.Balance.Grants), want.Available, want.Held, len(want.Grants))
			}
		}
		// The hold took its 3 from the grant that then expired.
		if b := got[prefix+"mixed"].Balance; b.Available != amt("12.5") || b.Held != amt("3") {
			t.Errorf("mixed: %s available, %s held; want 12.5 and 3", b.Available, b.Held)
		}
		// Each account comes with its live grants, those the balance
		// counts, and the named ones of its own, in creation order.
		for _, id := range ids {
			all, err := s.Grants(e.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			var want []ledger.Grant
			for _, g := range all {
				if (!g.Closed && g.Remaining > 0) || slices.Contains(named, g.ID) {
					want = append(want, g)
				}
			}
			gs := got[id].Grants
			if len(gs) != len(want) {
				t.Errorf("%s: %d grants, want %d", id, len(gs), len(want))
				continue
			}
			for i, g := range want {
				if gs[i].ID != g.ID || gs[i].Remaining != g.Remaining || gs[i].Closed != g.Closed {
					t.Errorf("%s: grant %d is %s with %s remaining (closed %t), want %s with %s (closed %t)",
						id, i, gs[i].ID, gs[i].Remaining, gs[i].Closed, g.ID, g.Remaining, g.Closed)
				}
				if found, ok := got[id].Grant(g.ID); !ok || found.ID != g.ID {
					t.Errorf("%s: Grant(%s) finds %t", id, g.ID, ok)
				}
			}
		}
		old := got[prefix+"old"]
		if g, ok := old.Grant(revoked.ID); !ok || !g.Closed {
			t.Errorf("old: the revoked grant, asked for by id, found %t (closed %t)", ok, g.Closed)
		}
		if _, ok := old.Grant(used.ID); ok {
			t.Errorf("old: the spent grant not asked for is read")
		}
		if _, ok := got[prefix+"spent"].Grant(spent.ID); !ok {
			t.Errorf("spent: the spent grant asked for by id is not read")
		}
		if old.Balance.Available != amt("6") {
			t.Errorf("old: %s available, want 6", old.Balance.Available)
		}
		if gs := got[prefix+"spent"].Grants; len(gs) > 0 {
			if _, ok := got[prefix+"mixed"].Grant(gs[0].ID); ok {
				t.Errorf("mixed: Grant finds the grant of another account")
			}
		}
	})
}

// testAccountsPages: Accounts pages through every account once, in the
// store's id order, with each account as stored, from the store's bulk
// reads and from its one-account reads alike.
func testAccountsPages(t *testing.T, open Open) {
	eachReadPath(t, open, func(t *testing.T, s ledger.Store, e *env, prefix string) {
		for _, id := range []string{"b", "a", "org/7", "Z", "ü", "a b", "c"} {
			e.account(prefix + id)
		}
		if _, _, err := e.eng.CreateAccount(e.ctx, prefix+"meta", map[string]string{"plan": "pro"}); err != nil {
			t.Fatal(err)
		}
		want, err := s.AccountIDs(e.ctx, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > len(want) {
				t.Fatalf("Accounts goes on after %d pages: %q", pages, got)
			}
			page, err := e.eng.Accounts(e.ctx, after, 3)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range page {
				got = append(got, a.ID)
				if a.CreatedAt.IsZero() || strings.HasSuffix(a.ID, "_meta") != (a.Metadata["plan"] == "pro") {
					t.Errorf("account %+v, not as stored", a)
				}
			}
			if len(page) < 3 {
				break
			}
			after = page[len(page)-1].ID
		}
		if !slices.Equal(got, want) {
			t.Errorf("Accounts pages %q, want %q", got, want)
		}
		for _, limit := range []int{0, 1001} {
			_, err := e.eng.Accounts(e.ctx, "", limit)
			wantCode(t, err, scrip.EInvalid)
		}
	})
}

// eachReadPath runs fn on one store twice: through its bulk reads, and
// through a wrapper that hides them, so that the engine reads one account
// at a time. Each run's accounts take a prefix of their own.
func eachReadPath(t *testing.T, open Open, fn func(t *testing.T, s ledger.Store, e *env, prefix string)) {
	s := open(t)
	for _, c := range []struct {
		name  string
		store ledger.Store
	}{{"bulk", s}, {"one at a time", struct{ ledger.Store }{s}}} {
		t.Run(c.name, func(t *testing.T) {
			fn(t, s, wrappedEnv(t, s, c.store), c.name[:1]+"_")
		})
	}
}
