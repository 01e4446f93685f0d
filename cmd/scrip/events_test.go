package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/postgres"
)

// TestServeEventsSince: scrip serve announces the journal written from its
// database's first start on, and with --events-since also what came before.
func TestServeEventsSince(t *testing.T) {
	t.Parallel()
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			// granted writes a grant, an hour old, to the database of url
			// before any scrip serve has run on it.
			granted := func(url string) {
				t.Helper()
				st, _, err := openStore(ctx, url, postgres.Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				eng := ledger.NewEngine(st, ledger.Options{Clock: ledger.NewManualClock(time.Now().Add(-time.Hour))})
				defer eng.Close(ctx)
				if _, _, err := eng.CreateAccount(ctx, "acct_old", nil); err != nil {
					t.Fatal(err)
				}
				if _, err := eng.Grant(ctx, ledger.GrantRequest{AccountID: "acct_old", Key: "g_old", Kind: ledger.KindTopUp, Amount: credit.Credits(5)}); err != nil {
					t.Fatal(err)
				}
			}
			grants := func(r *running, acct string) int {
				t.Helper()
				return len(r.must(http.StatusOK, http.MethodGet, "/v1/events?type=grant.created&account_id="+acct, nil)["data"].([]any))
			}

			before := time.Now().Add(-2 * time.Hour)
			fresh, backfilled := db.url(t), db.url(t)
			granted(fresh)
			granted(backfilled)
			r, err := startServe(t, fresh)
			if err != nil {
				t.Fatal(err)
			}
			rb, err := startServe(t, backfilled, "--events-since", before.Format(time.RFC3339Nano))
			if err != nil {
				t.Fatal(err)
			}

			// Without it a grant made after the start is announced, the one
			// before is not.
			r.must(http.StatusCreated, http.MethodPost, "/v1/accounts", map[string]any{"id": "acct_new"})
			r.keyed("/v1/accounts/acct_new/grants", "g_new", map[string]any{"kind": "top_up", "amount": 1})
			waitFor(t, "the new grant's event", func() bool { return grants(r, "acct_new") == 1 })
			if n := grants(r, "acct_old"); n != 0 {
				t.Errorf("%d grant.created events for the grant made before the first start, want 0", n)
			}
			// With it the grant before is announced too.
			waitFor(t, "the earlier grant's event with --events-since", func() bool { return grants(rb, "acct_old") == 1 })

			if _, err := startServe(t, db.url(t), "--events-since", "yesterday"); err == nil || !strings.Contains(err.Error(), "--events-since") {
				t.Errorf("--events-since yesterday: error %v, want one naming the flag", err)
			}
		})
	}
}
