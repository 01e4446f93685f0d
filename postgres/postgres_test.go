package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/postgres"
	"github.com/scriphq/scrip/postgres/pgtest"
)

// withParams adds connection parameters, given as "a=1&b=2", to a test
// server's URL (pgtest's has a query: its search_path) or to its
// keyword/value form.
func withParams(url, params string) string {
	if !strings.Contains(url, "://") {
		return url + " " + strings.ReplaceAll(params, "&", " ")
	}
	return url + "&" + params
}

// t0 is a time with microseconds, as the engine hands them to a store.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

func openStore(t testing.TB) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), pgtest.URL(t))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// eachJournalWrite runs test on a store of its own for each way a batch
// writes its journal: in the batch's pipeline, and with COPY, which the
// store uses from a number of rows no test batch here reaches.
func eachJournalWrite(t *testing.T, test func(*testing.T, *postgres.Store)) {
	t.Parallel()
	for _, name := range []string{"insert", "copy"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t)
			if name == "copy" {
				postgres.SetJournalCopyRowsMin(s, 1)
			}
			test(t, s)
		})
	}
}

// createAccounts inserts the accounts in one committed batch.
func createAccounts(t testing.TB, s ledger.Store, ids ...string) {
	t.Helper()
	w := &ledger.Writes{}
	for _, id := range ids {
		w.NewAccounts = append(w.NewAccounts, ledger.Account{ID: id, CreatedAt: t0})
	}
	write(t, s, w)
}

// write persists w in one committed batch.
func write(t testing.TB, s ledger.Store, w *ledger.Writes) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := tx.Write(ctx, w); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func grant(id, account string, remaining int64, expires time.Time, created time.Time) ledger.Grant {
	return ledger.Grant{
		ID: id, AccountID: account, Kind: ledger.KindTopUp,
		Amount: credit.Credits(100), Remaining: credit.Amount(remaining), Priority: 200,
		EffectiveAt: created, ExpiresAt: expires, CreatedAt: created,
	}
}

func hold(id, account string, expires time.Time) ledger.Hold {
	return ledger.Hold{
		ID: id, AccountID: account, Amount: credit.Credits(1), Status: ledger.HoldOpen,
		Allocations: []ledger.Allocation{{GrantID: "g", Amount: credit.Credits(1)}},
		ExpiresAt:   expires, CreatedAt: t0,
	}
}

func txn(account string, seq int64, typ ledger.TxType, key string, created time.Time) ledger.Transaction {
	return ledger.Transaction{
		ID: fmt.Sprintf("tx-%s-%d", account, seq), AccountID: account, Seq: seq, Type: typ,
		Amount: credit.Credits(1), IdempotencyKey: key, CreatedAt: created,
		Entries: []ledger.Entry{
			{Account: account, Grant: "g", Amount: credit.Credits(-1)},
			{Account: ledger.SystemSpent, Amount: credit.Credits(1)},
		},
		Hash: fmt.Sprintf("h%d", seq),
	}
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func TestRoundTrip(t *testing.T) { eachJournalWrite(t, testRoundTrip) }

func testRoundTrip(t *testing.T, s *postgres.Store) {
	ctx := context.Background()

	acct := ledger.Account{ID: "acct-1", CreatedAt: t0, Metadata: map[string]string{"plan": "pro", "ü": "✓"}}
	bare := ledger.Account{ID: "acct-2", CreatedAt: t0, Metadata: map[string]string{}}
	// Created and written to in one batch: inserted with its head.
	headed := ledger.Account{ID: "acct-3", CreatedAt: t0, Seq: 3, Hash: "h3"}
	write(t, s, &ledger.Writes{NewAccounts: []ledger.Account{acct, bare, headed}})
	for _, a := range []ledger.Account{acct, bare, headed} {
		got, err := s.Account(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "created account", got, a)
	}

	g := ledger.Grant{
		ID: "grant-1", AccountID: "acct-1", Kind: ledger.KindSubscription,
		Amount: credit.MustParse("1000.5"), Remaining: credit.Micros(999_999_999), Priority: -7,
		EffectiveAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(30 * 24 * time.Hour),
		Source:     ledger.Source{Type: "plan_cycle", ID: "sub_1", Reason: "cycle 3"},
		PaidAmount: 1999, PaidCurrency: "usd", CreatedAt: t0,
		Metadata: map[string]string{"cycle": "3"}, Closed: true,
	}
	never := ledger.Grant{ID: "grant-2", AccountID: "acct-1", Kind: ledger.KindTopUp,
		Amount: credit.Credits(5), Remaining: credit.Credits(5), Priority: 200, EffectiveAt: t0, CreatedAt: t0.Add(time.Microsecond)}
	h := ledger.Hold{
		ID: "hold-1", AccountID: "acct-1", Amount: credit.MustParse("2.5"),
		Allocations: []ledger.Allocation{{GrantID: "grant-1", Amount: credit.MustParse("2")}, {GrantID: "grant-2", Amount: credit.MustParse("0.5")}},
		Status:      ledger.HoldCaptured, ExpiresAt: t0.Add(time.Minute), CreatedAt: t0, SettledAt: t0.Add(time.Second),
		Captured: credit.MustParse("2.25"), ChargeID: "charge-1",
		Ref: ledger.Ref{Action: "fal-ai/flux/schnell", Job: "job-9", Metadata: map[string]string{"seconds": "5"}},
	}
	openHold := ledger.Hold{ID: "hold-2", AccountID: "acct-1", Amount: credit.Credits(1), Allocations: []ledger.Allocation{},
		Status: ledger.HoldOpen, ExpiresAt: t0.Add(time.Minute), CreatedAt: t0, Ref: ledger.Ref{Metadata: map[string]string{}}}
	c := ledger.Charge{
		ID: "charge-1", AccountID: "acct-1", Amount: credit.MustParse("2.25"), Refunded: credit.MustParse("0.25"),
		Allocations: []ledger.Allocation{{GrantID: "grant-1", Amount: credit.MustParse("2")}},
		HoldID:      "hold-1", CreatedAt: t0.Add(time.Second),
		Ref: ledger.Ref{Action: "chat-edit", Job: "job-9"},
	}
	tr := ledger.Transaction{
		ID: "tx-1", AccountID: "acct-1", Seq: 1, Type: ledger.TxCapture, Amount: credit.MustParse("2.25"),
		GrantID: "grant-1", HoldID: "hold-1", ChargeID: "charge-1", IdempotencyKey: "key-1", RequestHash: "rh",
		Ref: ledger.Ref{Action: "chat-edit", Metadata: map[string]string{"a": "b"}}, Reason: "because",
		Entries: []ledger.Entry{
			{Account: "acct-1", Hold: "hold-1", Amount: credit.MustParse("-2.25")},
			{Account: ledger.SystemSpent, Amount: credit.MustParse("2.25")},
		},
		CreatedAt: t0.Add(time.Second), PrevHash: "prev", Hash: "hash",
	}
	write(t, s, &ledger.Writes{
		NewGrants: []ledger.Grant{g, never}, NewHolds: []ledger.Hold{h, openHold},
		NewCharges: []ledger.Charge{c}, Transactions: []ledger.Transaction{tr},
		Accounts: []ledger.Account{{ID: "acct-1", Seq: 1, Hash: "hash"}},
	})

	gotAcct, err := s.Account(ctx, "acct-1")
	if err != nil {
		t.Fatal(err)
	}
	want := acct
	want.Seq, want.Hash = 1, "hash"
	equal(t, "account", gotAcct, want)
	gotBare, err := s.Account(ctx, "acct-2")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "account with empty metadata", gotBare, bare)

	gs, err := s.Grants(ctx, "acct-1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "all grants", gs, []ledger.Grant{g, never})
	st, err := s.AccountState(ctx, "acct-1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "live grants", st.Grants, []ledger.Grant{never})
	gotGrant, err := s.Grant(ctx, "grant-1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "grant", gotGrant, g)
	gotHold, err := s.Hold(ctx, "hold-1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "hold", gotHold, h)
	hs, err := s.OpenHolds(ctx, "acct-1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "open holds", hs, []ledger.Hold{openHold})
	gotCharge, err := s.Charge(ctx, "charge-1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "charge", gotCharge, c)
	ts, err := s.Transactions(ctx, ledger.HistoryQuery{AccountID: "acct-1"})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "transactions", ts, []ledger.Transaction{tr})

	// The same rows through a write transaction's loads.
	wtx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer wtx.Rollback(ctx)
	as, err := wtx.LockAccounts(ctx, []string{"acct-1"})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "locked", as, []ledger.Account{want})
	lh, err := wtx.LoadHolds(ctx, []string{"hold-1", "hold-2"})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "loaded holds", lh, []ledger.Hold{h, openHold})
	lc, err := wtx.LoadCharges(ctx, []string{"charge-1", "nope"})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "loaded charges", lc, []ledger.Charge{c})

	// Updates change exactly the named fields.
	g.Remaining, g.Closed = 0, false
	h.Status, h.SettledAt, h.Captured, h.ChargeID = ledger.HoldReleased, time.Time{}, 0, ""
	c.Refunded, c.Allocations = credit.MustParse("2.25"), nil
	if err := wtx.Write(ctx, &ledger.Writes{Grants: []ledger.Grant{g}, Holds: []ledger.Hold{h}, Charges: []ledger.Charge{c}}); err != nil {
		t.Fatal(err)
	}
	if err := wtx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	gotGrant, _ = s.Grant(ctx, "grant-1")
	equal(t, "updated grant", gotGrant, g)
	gotHold, _ = s.Hold(ctx, "hold-1")
	equal(t, "updated hold", gotHold, h)
	gotCharge, _ = s.Charge(ctx, "charge-1")
	equal(t, "updated charge", gotCharge, c)
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	for name, f := range map[string]func() error{
		"account": func() error { _, err := s.Account(ctx, "x"); return err },
		"grant":   func() error { _, err := s.Grant(ctx, "x"); return err },
		"hold":    func() error { _, err := s.Hold(ctx, "x"); return err },
		"charge":  func() error { _, err := s.Charge(ctx, "x"); return err },
	} {
		if err := f(); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("%s: got %v, want ErrNotFound", name, err)
		}
	}
}

func TestMigrateIdempotent(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	// Processes starting together take turns.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s2, err := postgres.Open(ctx, url)
			if err != nil {
				t.Errorf("concurrent open: %v", err)
				return
			}
			s2.Close()
		})
	}
	wg.Wait()
}

// Listing every grant of an account, closed ones too, must not read the
// whole table: grants_live holds open grants only. With sequential scans
// priced out, the planner still chooses one if no index serves the query.
func TestAllGrantsOfAccountUseAnIndex(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `EXPLAIN SELECT id FROM grants WHERE account_id = 'acct-1' ORDER BY created_at, id`)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if strings.Contains(plan, "Seq Scan") || !strings.Contains(plan, "grants_account") {
		t.Fatalf("all grants of an account are not read through grants_account:\n%s", plan)
	}
}

func TestLockAccountsMissing(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
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
	if len(as) != 2 || as[0].ID != "b" || as[1].ID != "d" {
		t.Fatalf("locked %+v, want b and d", as)
	}
	as, err = tx.LockAccounts(ctx, nil)
	if err != nil || len(as) != 0 {
		t.Fatalf("lock nothing: %v %v", as, err)
	}
}

func TestLoadGrants(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	createAccounts(t, s, "a", "b")
	closed := grant("a-closed", "a", 5, time.Time{}, t0)
	closed.Closed = true
	write(t, s, &ledger.Writes{NewGrants: []ledger.Grant{
		grant("a-live-2", "a", 5, time.Time{}, t0.Add(2*time.Second)),
		grant("a-live-1", "a", 5, t0.Add(time.Hour), t0.Add(time.Second)),
		grant("a-empty", "a", 0, time.Time{}, t0),
		closed,
		grant("b-live", "b", 5, time.Time{}, t0),
		grant("b-empty", "b", 0, time.Time{}, t0),
	}})
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	ids := func(gs []ledger.Grant) []string {
		var out []string
		for _, g := range gs {
			out = append(out, g.ID)
		}
		return out
	}
	for _, tc := range []struct {
		accounts, grants, want []string
	}{
		{[]string{"a"}, nil, []string{"a-live-1", "a-live-2"}},
		{[]string{"a"}, []string{"a-closed", "b-empty", "nope"}, []string{"a-closed", "a-live-1", "a-live-2", "b-empty"}},
		{nil, []string{"a-empty"}, []string{"a-empty"}},
		{[]string{"a", "b"}, []string{"a-live-1"}, []string{"a-live-1", "a-live-2", "b-live"}},
		{[]string{"zz"}, nil, nil},
	} {
		gs, err := tx.LoadGrants(ctx, tc.accounts, tc.grants)
		if err != nil {
			t.Fatal(err)
		}
		got := ids(gs)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("LoadGrants(%v, %v) = %v, want %v", tc.accounts, tc.grants, got, tc.want)
		}
	}
}

func TestLoadKeyed(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	createAccounts(t, s, "a", "b")
	write(t, s, &ledger.Writes{Transactions: []ledger.Transaction{
		txn("a", 1, ledger.TxCharge, "k1", t0),
		txn("a", 2, ledger.TxCharge, "k2", t0),
		txn("a", 3, ledger.TxCharge, "", t0),
		txn("b", 1, ledger.TxCharge, "k1", t0),
	}})
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	ts, err := tx.LoadKeyed(ctx, []ledger.TxKey{
		{AccountID: "a", Key: "k1"}, {AccountID: "b", Key: "k2"}, {AccountID: "b", Key: "k1"},
		{AccountID: "a", Key: ""}, {AccountID: "c", Key: "k1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, t := range ts {
		got = append(got, t.ID)
	}
	equal(t, "keyed", got, []string{"tx-a-1", "tx-b-1"})
	equal(t, "keyed transaction", ts[0], txn("a", 1, ledger.TxCharge, "k1", t0))
	if ts, err := tx.LoadKeyed(ctx, nil); err != nil || len(ts) != 0 {
		t.Errorf("no keys: %v %v", ts, err)
	}
}

// Load makes the same reads as the separate calls, in one round trip.
func TestLoadMatchesSeparateReads(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	createAccounts(t, s, "a", "b")
	closed := grant("a-closed", "a", 0, time.Time{}, t0)
	closed.Closed = true
	write(t, s, &ledger.Writes{
		NewGrants: []ledger.Grant{
			grant("a-live", "a", 5, time.Time{}, t0.Add(time.Second)),
			closed,
			grant("b-live", "b", 5, time.Time{}, t0),
		},
		NewHolds:   []ledger.Hold{hold("h-a", "a", t0.Add(time.Hour)), hold("h-b", "b", t0.Add(time.Hour))},
		NewCharges: []ledger.Charge{{ID: "c-a", AccountID: "a", Amount: credit.Credits(2), CreatedAt: t0}},
		Transactions: []ledger.Transaction{
			txn("a", 1, ledger.TxCharge, "k1", t0),
			txn("b", 1, ledger.TxCharge, "k1", t0),
		},
	})
	for _, r := range []ledger.LoadRequest{
		{
			Accounts: []string{"a", "b", "missing"},
			Holds:    []string{"h-a", "h-nope"},
			Charges:  []string{"c-a"},
			Grants:   []string{"a-closed"},
			Keys:     []ledger.TxKey{{AccountID: "a", Key: "k1"}, {AccountID: "b", Key: "k2"}, {AccountID: "b", Key: ""}},
		},
		{Accounts: []string{"b"}, Keys: []ledger.TxKey{{AccountID: "b", Key: "k1"}}},
		{Accounts: []string{"missing"}},
	} {
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var want ledger.Loaded
		if want.Accounts, err = tx.LockAccounts(ctx, r.Accounts); err != nil {
			t.Fatal(err)
		}
		if want.Holds, err = tx.LoadHolds(ctx, r.Holds); err != nil {
			t.Fatal(err)
		}
		if want.Charges, err = tx.LoadCharges(ctx, r.Charges); err != nil {
			t.Fatal(err)
		}
		if want.Grants, err = tx.LoadGrants(ctx, r.Accounts, r.Grants); err != nil {
			t.Fatal(err)
		}
		if want.Keyed, err = tx.LoadKeyed(ctx, r.Keys); err != nil {
			t.Fatal(err)
		}
		got, err := tx.(ledger.Loader).Load(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, fmt.Sprintf("Load(%+v)", r), got, want)
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDue(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	createAccounts(t, s, "a", "b")
	closed := grant("g-closed", "a", 5, t0.Add(-time.Hour), t0)
	closed.Closed = true
	captured := hold("h-captured", "a", t0.Add(-time.Hour))
	captured.Status = ledger.HoldCaptured
	write(t, s, &ledger.Writes{
		NewGrants: []ledger.Grant{
			grant("g-3", "a", 5, t0, t0),
			grant("g-1", "b", 5, t0.Add(-2*time.Minute), t0),
			grant("g-2", "a", 0, t0.Add(-time.Minute), t0),
			grant("g-future", "a", 5, t0.Add(time.Microsecond), t0),
			grant("g-never", "a", 5, time.Time{}, t0),
			closed,
		},
		NewHolds: []ledger.Hold{
			hold("h-2", "a", t0.Add(-time.Minute)),
			hold("h-3", "b", t0),
			hold("h-1", "a", t0.Add(-2*time.Minute)),
			hold("h-future", "a", t0.Add(time.Microsecond)),
			captured,
		},
	})
	gs, err := s.DueGrants(ctx, t0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range gs {
		got = append(got, g.ID)
	}
	equal(t, "due grants", got, []string{"g-1", "g-2", "g-3"})
	gs, err = s.DueGrants(ctx, t0, 2)
	if err != nil || len(gs) != 2 || gs[1].ID != "g-2" {
		t.Errorf("due grants limit 2: %v %v", gs, err)
	}
	hs, err := s.DueHolds(ctx, t0, 10)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, h := range hs {
		got = append(got, h.ID)
	}
	equal(t, "due holds", got, []string{"h-1", "h-2", "h-3"})
	hs, err = s.DueHolds(ctx, t0, 1)
	if err != nil || len(hs) != 1 || hs[0].ID != "h-1" {
		t.Errorf("due holds limit 1: %v %v", hs, err)
	}
}

func TestTransactionsQuery(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	createAccounts(t, s, "a", "b")
	var ts []ledger.Transaction
	types := []ledger.TxType{ledger.TxGrant, ledger.TxCharge, ledger.TxHold, ledger.TxCharge, ledger.TxRefund, ledger.TxCharge}
	for i, typ := range types {
		ts = append(ts, txn("a", int64(i+1), typ, "", t0.Add(time.Duration(i)*time.Second)))
	}
	ts = append(ts, txn("b", 1, ledger.TxCharge, "", t0))
	write(t, s, &ledger.Writes{Transactions: ts})

	seqs := func(q ledger.HistoryQuery) []int64 {
		t.Helper()
		got, err := s.Transactions(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		out := []int64{}
		for _, tr := range got {
			if tr.AccountID != q.AccountID {
				t.Errorf("transaction of %s in history of %s", tr.AccountID, q.AccountID)
			}
			out = append(out, tr.Seq)
		}
		return out
	}
	for name, tc := range map[string]struct {
		q    ledger.HistoryQuery
		want []int64
	}{
		"all":          {ledger.HistoryQuery{AccountID: "a"}, []int64{6, 5, 4, 3, 2, 1}},
		"limit":        {ledger.HistoryQuery{AccountID: "a", Limit: 2}, []int64{6, 5}},
		"cursor":       {ledger.HistoryQuery{AccountID: "a", BeforeSeq: 5, Limit: 2}, []int64{4, 3}},
		"cursor end":   {ledger.HistoryQuery{AccountID: "a", BeforeSeq: 2, Limit: 2}, []int64{1}},
		"types":        {ledger.HistoryQuery{AccountID: "a", Types: []ledger.TxType{ledger.TxCharge, ledger.TxGrant}}, []int64{6, 4, 2, 1}},
		"since":        {ledger.HistoryQuery{AccountID: "a", Since: t0.Add(4 * time.Second)}, []int64{6, 5}},
		"until":        {ledger.HistoryQuery{AccountID: "a", Until: t0.Add(2 * time.Second)}, []int64{2, 1}},
		"since until":  {ledger.HistoryQuery{AccountID: "a", Since: t0.Add(time.Second), Until: t0.Add(3 * time.Second)}, []int64{3, 2}},
		"combined":     {ledger.HistoryQuery{AccountID: "a", Types: []ledger.TxType{ledger.TxCharge}, BeforeSeq: 6, Since: t0.Add(time.Second), Limit: 1}, []int64{4}},
		"other":        {ledger.HistoryQuery{AccountID: "b"}, []int64{1}},
		"none":         {ledger.HistoryQuery{AccountID: "zz"}, []int64{}},
		"empty window": {ledger.HistoryQuery{AccountID: "a", Since: t0.Add(time.Hour)}, []int64{}},
	} {
		if got := seqs(tc.q); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
		}
	}
}

func TestJournalAndAccountIDs(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	createAccounts(t, s, "c", "a", "b")
	const n = 2500 // more than one page
	ts := make([]ledger.Transaction, 0, n)
	for i := n; i >= 1; i-- {
		ts = append(ts, txn("b", int64(i), ledger.TxCharge, "", t0))
	}
	ts = append(ts, txn("a", 1, ledger.TxCharge, "", t0))
	write(t, s, &ledger.Writes{Transactions: ts})

	var next int64 = 1
	err := s.Journal(ctx, "b", func(tr *ledger.Transaction) error {
		if tr.Seq != next || tr.AccountID != "b" {
			return fmt.Errorf("got %s seq %d, want b seq %d", tr.AccountID, tr.Seq, next)
		}
		next++
		return nil
	})
	if err != nil || next != n+1 {
		t.Fatalf("journal: %v after %d", err, next-1)
	}
	stop := errors.New("stop")
	calls := 0
	if err := s.Journal(ctx, "b", func(*ledger.Transaction) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("journal stop: %v after %d calls", err, calls)
	}
	if err := s.Journal(ctx, "zz", func(*ledger.Transaction) error { return stop }); err != nil {
		t.Errorf("empty journal: %v", err)
	}

	ids, err := s.AccountIDs(ctx, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "first ids", ids, []string{"a", "b"})
	ids, err = s.AccountIDs(ctx, "b", 2)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "next ids", ids, []string{"c"})
}

func TestRollbackLeavesNothing(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	createAccounts(t, s, "a")
	write(t, s, &ledger.Writes{NewGrants: []ledger.Grant{grant("g", "a", 5, time.Time{}, t0)}})

	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.LockAccounts(ctx, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	spent := grant("g", "a", 0, time.Time{}, t0)
	err = tx.Write(ctx, &ledger.Writes{
		Accounts:     []ledger.Account{{ID: "a", Seq: 1, Hash: "h1"}},
		NewGrants:    []ledger.Grant{grant("g2", "a", 5, time.Time{}, t0)},
		Grants:       []ledger.Grant{spent},
		NewHolds:     []ledger.Hold{hold("h", "a", t0)},
		NewCharges:   []ledger.Charge{{ID: "c", AccountID: "a", Amount: 5, CreatedAt: t0}},
		Transactions: []ledger.Transaction{txn("a", 1, ledger.TxCharge, "k", t0)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Errorf("second rollback: %v", err)
	}

	a, err := s.Account(ctx, "a")
	if err != nil || a.Seq != 0 || a.Hash != "" {
		t.Errorf("account after rollback: %+v %v", a, err)
	}
	gs, err := s.Grants(ctx, "a")
	if err != nil || len(gs) != 1 || gs[0].Remaining != 5 {
		t.Errorf("grants after rollback: %+v %v", gs, err)
	}
	if _, err := s.Hold(ctx, "h"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("hold after rollback: %v", err)
	}
	if _, err := s.Charge(ctx, "c"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("charge after rollback: %v", err)
	}
	if ts, err := s.Transactions(ctx, ledger.HistoryQuery{AccountID: "a"}); err != nil || len(ts) != 0 {
		t.Errorf("transactions after rollback: %v %v", ts, err)
	}
}

// Batches lock overlapping account sets in ascending order, so they queue
// behind each other instead of deadlocking.
func TestOverlappingLocks(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	accounts := []string{"a", "b", "c", "d", "e", "f"}
	createAccounts(t, s, accounts...)

	const workers, rounds = 6, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				// Sorted, overlapping windows of three or four accounts.
				lo := (w + r) % 3
				ids := accounts[lo : lo+3+(w%2)]
				if err := lockAndBump(ctx, s, ids); err != nil {
					t.Errorf("worker %d round %d: %v", w, r, err)
					return
				}
			}
		})
	}
	wg.Wait()

	var total int64
	for _, id := range accounts {
		a, err := s.Account(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		total += a.Seq
	}
	if want := int64(workers/2*3+workers/2*4) * rounds; total != want {
		t.Errorf("total seq %d, want %d (a lost update)", total, want)
	}
}

// lockAndBump locks the accounts and increments their seq in one batch.
func lockAndBump(ctx context.Context, s ledger.Store, ids []string) error {
	tx, err := s.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	as, err := tx.LockAccounts(ctx, ids)
	if err != nil {
		return err
	}
	for i := range as {
		as[i].Seq++
	}
	time.Sleep(time.Millisecond) // widen the window for a deadlock
	if err := tx.Write(ctx, &ledger.Writes{Accounts: as}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func TestDuplicateKeyFails(t *testing.T) { eachJournalWrite(t, testDuplicateKeyFails) }

func testDuplicateKeyFails(t *testing.T, s *postgres.Store) {
	ctx := context.Background()
	createAccounts(t, s, "a")
	write(t, s, &ledger.Writes{Transactions: []ledger.Transaction{txn("a", 1, ledger.TxCharge, "k", t0)}})

	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	err = tx.Write(ctx, &ledger.Writes{Transactions: []ledger.Transaction{txn("a", 2, ledger.TxCharge, "k", t0)}})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" || pgErr.ConstraintName != "transactions_account_key" {
		t.Fatalf("duplicate key: got %v, want a unique violation of transactions_account_key", err)
	}
	if !errors.Is(err, ledger.ErrKeyExists) {
		t.Fatalf("duplicate key: %v does not wrap ledger.ErrKeyExists", err)
	}
	// Committing the failed transaction is an error, not a silent rollback.
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("commit after a failed write succeeded")
	}
	txs, err := s.Transactions(ctx, ledger.HistoryQuery{AccountID: "a", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(txs) != 1 {
		t.Fatalf("%d transactions after the failed batch, want 1", len(txs))
	}

	// A repeated sequence number is another unique violation, not a key
	// already recorded.
	tx, err = s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	err = tx.Write(ctx, &ledger.Writes{Transactions: []ledger.Transaction{txn("a", 1, ledger.TxCharge, "other", t0)}})
	if err == nil || errors.Is(err, ledger.ErrKeyExists) {
		t.Fatalf("repeated seq: got %v, want a unique violation that is not ErrKeyExists", err)
	}
}

func TestExistingAccountFails(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	createAccounts(t, s, "b")

	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	err = tx.Write(ctx, &ledger.Writes{NewAccounts: []ledger.Account{
		{ID: "a", CreatedAt: t0}, {ID: "b", CreatedAt: t0.Add(time.Hour)}}})
	if !errors.Is(err, ledger.ErrAccountExists) {
		t.Fatalf("existing account: %v, want ErrAccountExists", err)
	}
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("commit after a failed write succeeded")
	}
	if _, err := s.Account(ctx, "a"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("account of the failed batch: %v, want ErrNotFound", err)
	}
	got, err := s.Account(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "existing account after the failed batch", got, ledger.Account{ID: "b", CreatedAt: t0})
}

func TestWriteMissingRowFails(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	createAccounts(t, s, "a")
	for name, w := range map[string]*ledger.Writes{
		"grant":   {Grants: []ledger.Grant{grant("nope", "a", 1, time.Time{}, t0)}},
		"hold":    {Holds: []ledger.Hold{hold("nope", "a", t0)}},
		"charge":  {Charges: []ledger.Charge{{ID: "nope"}}},
		"account": {Accounts: []ledger.Account{{ID: "a", Seq: 5, Hash: "x"}, {ID: "nope"}}},
	} {
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, w); err == nil {
			t.Errorf("%s: update of a missing row succeeded", name)
		}
		// The statement changed the rows that exist; committing must not
		// keep them.
		if err := tx.Commit(ctx); err == nil {
			t.Errorf("%s: commit after a failed write succeeded", name)
		}
		if a, err := s.Account(ctx, "a"); err != nil || a.Seq != 0 || a.Hash != "" {
			t.Errorf("%s: account after the failed batch = %+v, %v; want it unchanged", name, a, err)
		}
	}
}

// A row inserted and updated in one batch, and a row updated twice, end in
// their last state.
func TestWriteLastStateWins(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	createAccounts(t, s, "a")
	h := hold("h", "a", t0)
	settled := h
	settled.Status, settled.SettledAt = ledger.HoldReleased, t0
	g1, g2, g3 := grant("g", "a", 5, time.Time{}, t0), grant("g", "a", 3, time.Time{}, t0), grant("g", "a", 1, time.Time{}, t0)
	write(t, s, &ledger.Writes{
		NewGrants: []ledger.Grant{g1}, Grants: []ledger.Grant{g2, g3},
		NewHolds: []ledger.Hold{h}, Holds: []ledger.Hold{settled},
		Accounts: []ledger.Account{{ID: "a", Seq: 1, Hash: "1"}, {ID: "a", Seq: 2, Hash: "2"}},
	})
	got, _ := s.Grant(ctx, "g")
	equal(t, "grant", got, g3)
	gotHold, _ := s.Hold(ctx, "h")
	equal(t, "hold", gotHold, settled)
	a, _ := s.Account(ctx, "a")
	if a.Seq != 2 || a.Hash != "2" {
		t.Errorf("account head %d %q, want 2 \"2\"", a.Seq, a.Hash)
	}
}
