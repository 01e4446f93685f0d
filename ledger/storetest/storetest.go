// Package storetest is the conformance suite every ledger.Store must pass:
// the whole ledger behaviour, run through a real Engine on the store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// Open returns a store on a fresh, empty database.
type Open func(t *testing.T) ledger.Store

// t0 is the suite's starting time.
var t0 = time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)

// Run runs the whole suite against the store open returns.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Open)
	}{
		{"Accounts", testAccounts},
		{"CreateInBatch", testCreateInBatch},
		{"CreateAccountsConcurrently", testCreateAccountsConcurrently},
		{"BatchSteps", testBatchSteps},
		{"GrantsAndBalance", testGrantsAndBalance},
		{"BalanceWhileWriting", testBalanceWhileWriting},
		{"BalancesMatchBalance", testBalancesMatchBalance},
		{"AccountsPages", testAccountsPages},
		{"ConsumptionOrder", testConsumptionOrder},
		{"HoldCapturePartial", testHoldCapturePartial},
		{"HoldCaptureOver", testHoldCaptureOver},
		{"HoldRelease", testHoldRelease},
		{"HoldExpiry", testHoldExpiry},
		{"ChargeAndRefund", testChargeAndRefund},
		{"RefundToExpiredGrant", testRefundToExpiredGrant},
		{"GrantExpiry", testGrantExpiry},
		{"FutureGrant", testFutureGrant},
		{"AdjustAndRevoke", testAdjustAndRevoke},
		{"Idempotency", testIdempotency},
		{"KeyOnlyInJournal", testKeyOnlyInJournal},
		{"InsufficientLeavesNoTrace", testInsufficientLeavesNoTrace},
		{"History", testHistory},
		{"FractionalCredits", testFractionalCredits},
		{"Concurrency", testConcurrency},
		{"TwoEngines", testTwoEngines},
		{"Model", testModel},
		{"RestartExpiresHolds", testRestartExpiresHolds},
		{"ZeroUsage", testZeroUsage},
		{"Fingerprint", testFingerprint},
		{"VerifyTotalsPastAmountMax", testVerifyLargeTotals},
		{"BulkReadsMatchPerAccountReads", testBulkReads},
		{"VerifyWhileWriting", testVerifyWhileWriting},
		{"VerifyProgress", testVerifyProgress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open)
		})
	}
}

// env is an engine on a fresh store with a manual clock.
type env struct {
	t     *testing.T
	ctx   context.Context
	store ledger.Store
	clock *ledger.ManualClock
	eng   *ledger.Engine
	n     int
}

func newEnv(t *testing.T, open Open, opts ...func(*ledger.Options)) *env {
	t.Helper()
	s := open(t)
	return wrappedEnv(t, s, s, opts...)
}

// wrappedEnv is an env on the store s whose engine runs on wrapped, s or a
// store wrapping it, with as many committers as an engine on s would run.
func wrappedEnv(t *testing.T, s, wrapped ledger.Store, opts ...func(*ledger.Options)) *env {
	clock := ledger.NewManualClock(t0)
	o := ledger.Options{Clock: clock, SweepEvery: -1}
	if c, ok := s.(ledger.CommitterCounter); ok {
		o.Committers = c.Committers()
	}
	for _, f := range opts {
		f(&o)
	}
	eng := ledger.NewEngine(wrapped, o)
	e := &env{t: t, ctx: context.Background(), store: s, clock: clock, eng: eng}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := eng.Close(ctx); err != nil {
			t.Errorf("close engine: %v", err)
		}
	})
	return e
}

// key returns a fresh idempotency key.
func (e *env) key() string {
	e.n++
	return fmt.Sprintf("k%d", e.n)
}

func (e *env) account(id string) {
	e.t.Helper()
	if _, _, err := e.eng.CreateAccount(e.ctx, id, nil); err != nil {
		e.t.Fatalf("create account %s: %v", id, err)
	}
}

func (e *env) grant(acct string, kind ledger.Kind, amount string, expires time.Time) *ledger.Grant {
	e.t.Helper()
	r, err := e.eng.Grant(e.ctx, ledger.GrantRequest{AccountID: acct, Key: e.key(), Kind: kind,
		Amount: credit.MustParse(amount), ExpiresAt: expires, Source: ledger.Source{Type: "test"}})
	if err != nil {
		e.t.Fatalf("grant %s to %s: %v", amount, acct, err)
	}
	return r.Grant
}

func (e *env) balance(acct string) ledger.Balance {
	e.t.Helper()
	b, err := e.eng.Balance(e.ctx, acct)
	if err != nil {
		e.t.Fatalf("balance %s: %v", acct, err)
	}
	return b
}

func (e *env) wantAvailable(acct, want string) {
	e.t.Helper()
	if got := e.balance(acct).Available; got != credit.MustParse(want) {
		e.t.Fatalf("available(%s) = %s, want %s", acct, got, want)
	}
}

func (e *env) wantHeld(acct, want string) {
	e.t.Helper()
	if got := e.balance(acct).Held; got != credit.MustParse(want) {
		e.t.Fatalf("held(%s) = %s, want %s", acct, got, want)
	}
}

func (e *env) grantRemaining(acct, id string) credit.Amount {
	e.t.Helper()
	gs, err := e.store.Grants(e.ctx, acct)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, g := range gs {
		if g.ID == id {
			return g.Remaining
		}
	}
	e.t.Fatalf("grant %s not found", id)
	return 0
}

func (e *env) verify() {
	e.t.Helper()
	r, err := e.eng.Verify(e.ctx)
	if err != nil {
		e.t.Fatalf("verify: %v", err)
	}
	if !r.OK() {
		e.t.Fatalf("verify found problems:\n%v", r.Problems)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := scrip.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func amt(s string) credit.Amount { return credit.MustParse(s) }

func testAccounts(t *testing.T, open Open) {
	e := newEnv(t, open)
	a, created, err := e.eng.CreateAccount(e.ctx, "user_1", map[string]string{"plan": "pro"})
	if err != nil || !created {
		t.Fatalf("create: %v created=%v", err, created)
	}
	b, created, err := e.eng.CreateAccount(e.ctx, "user_1", nil)
	if err != nil || created {
		t.Fatalf("second create: %v created=%v", err, created)
	}
	if !a.CreatedAt.Equal(b.CreatedAt) || b.Metadata["plan"] != "pro" {
		t.Fatalf("second create returned %+v, want the first %+v", b, a)
	}
	_, err = e.eng.Account(e.ctx, "nobody")
	wantCode(t, err, scrip.EAccountNotFound)
	_, err = e.eng.Balance(e.ctx, "nobody")
	wantCode(t, err, scrip.EAccountNotFound)
	if bal := e.balance("user_1"); bal.AccountID != "user_1" || bal.Available != 0 || bal.Held != 0 {
		t.Fatalf("balance after a missing account's = %+v", bal)
	}
	_, err = e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "nobody", Key: "k", Amount: amt("1")})
	wantCode(t, err, scrip.EAccountNotFound)
	long := string(make([]byte, 129))
	_, _, err = e.eng.CreateAccount(e.ctx, long, nil)
	wantCode(t, err, scrip.EInvalid)
	_, _, err = e.eng.CreateAccount(e.ctx, "@spent", nil)
	wantCode(t, err, scrip.EInvalid)
	// Any string up to 128 bytes is a valid platform id.
	odd := "auth0|5f1e/ü ñ"
	if _, _, err := e.eng.CreateAccount(e.ctx, odd, nil); err != nil {
		t.Fatalf("create %q: %v", odd, err)
	}
	e.grant(odd, ledger.KindTopUp, "3", time.Time{})
	e.wantAvailable(odd, "3")

	// Text no store can keep as it is (a NUL, which PostgreSQL's text
	// cannot hold, or bytes that are not UTF-8) is refused before it can
	// reach a batch and fail the batch's other operations.
	for _, bad := range []string{"nul\x00", "bad\xff"} {
		_, _, err = e.eng.CreateAccount(e.ctx, bad, nil)
		wantCode(t, err, scrip.EInvalid)
		_, _, err = e.eng.CreateAccount(e.ctx, "user_2", map[string]string{"k": bad})
		wantCode(t, err, scrip.EInvalid)
		_, _, err = e.eng.CreateAccount(e.ctx, "user_2", map[string]string{bad: "v"})
		wantCode(t, err, scrip.EInvalid)
		_, err = e.eng.Grant(e.ctx, ledger.GrantRequest{AccountID: odd, Key: e.key(), Kind: ledger.KindTopUp, Amount: amt("1"),
			Source: ledger.Source{Type: "test", Reason: bad}})
		wantCode(t, err, scrip.EInvalid)
		_, err = e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: odd, Key: bad, Amount: amt("1")})
		wantCode(t, err, scrip.EInvalid)
		_, err = e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: odd, Key: e.key(), Amount: amt("1"), Ref: ledger.Ref{Job: bad}})
		wantCode(t, err, scrip.EInvalid)
		_, err = e.eng.Adjust(e.ctx, ledger.AdjustRequest{AccountID: odd, Key: e.key(), Amount: amt("1"), Reason: bad})
		wantCode(t, err, scrip.EInvalid)
		_, err = e.eng.Account(e.ctx, bad)
		wantCode(t, err, scrip.EAccountNotFound)
		_, err = e.eng.Balance(e.ctx, bad)
		wantCode(t, err, scrip.EAccountNotFound)
		_, err = e.eng.GetHold(e.ctx, bad)
		wantCode(t, err, scrip.EHoldNotFound)
	}
	// Free text has a bound.
	long = strings.Repeat("x", 1025)
	_, err = e.eng.Adjust(e.ctx, ledger.AdjustRequest{AccountID: odd, Key: e.key(), Amount: amt("1"), Reason: long})
	wantCode(t, err, scrip.EInvalid)
	_, err = e.eng.Grant(e.ctx, ledger.GrantRequest{AccountID: odd, Key: e.key(), Kind: ledger.KindTopUp, Amount: amt("1"),
		Source: ledger.Source{Type: "test", ID: long}})
	wantCode(t, err, scrip.EInvalid)
	if _, err := e.eng.Adjust(e.ctx, ledger.AdjustRequest{AccountID: odd, Key: e.key(), Amount: amt("1"), Reason: long[:1024]}); err != nil {
		t.Fatalf("adjustment with a reason of 1,024 bytes: %v", err)
	}
	if _, err := e.eng.Account(e.ctx, "user_2"); scrip.ErrorCode(err) != scrip.EAccountNotFound {
		t.Fatalf("user_2 after refused creations: %v, want account_not_found", err)
	}
	e.wantAvailable(odd, "4")
}

func testGrantsAndBalance(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	exp := t0.Add(30 * 24 * time.Hour)
	sub := e.grant("u", ledger.KindSubscription, "100", exp)
	e.grant("u", ledger.KindTopUp, "50", time.Time{})
	e.grant("u", ledger.KindPromotional, "5", t0.Add(time.Hour))
	b := e.balance("u")
	if b.Available != amt("155") || b.Held != 0 {
		t.Fatalf("balance = %+v", b)
	}
	if b.ByKind[ledger.KindSubscription] != amt("100") || b.ByKind[ledger.KindTopUp] != amt("50") || b.ByKind[ledger.KindPromotional] != amt("5") {
		t.Fatalf("by kind = %v", b.ByKind)
	}
	if len(b.Grants) != 3 {
		t.Fatalf("live grants = %d, want 3", len(b.Grants))
	}
	if sub.Priority != ledger.DefaultPriority(ledger.KindSubscription) || !sub.ExpiresAt.Equal(exp) {
		t.Fatalf("grant = %+v", sub)
	}
	_, err := e.eng.Grant(e.ctx, ledger.GrantRequest{AccountID: "u", Key: e.key(), Kind: "gift", Amount: amt("1")})
	wantCode(t, err, scrip.EInvalid)
	_, err = e.eng.Grant(e.ctx, ledger.GrantRequest{AccountID: "u", Key: e.key(), Kind: ledger.KindTopUp, Amount: amt("-1")})
	wantCode(t, err, scrip.EInvalidAmount)
	_, err = e.eng.Grant(e.ctx, ledger.GrantRequest{AccountID: "u", Key: e.key(), Kind: ledger.KindTopUp, Amount: amt("1"), ExpiresAt: t0.Add(-time.Hour)})
	wantCode(t, err, scrip.EInvalid)
	paid, err := e.eng.Grant(e.ctx, ledger.GrantRequest{AccountID: "u", Key: e.key(), Kind: ledger.KindTopUp, Amount: amt("100"),
		Source: ledger.Source{Type: "purchase", ID: "cs_123"}, PaidAmount: 999, PaidCurrency: "usd", Metadata: map[string]string{"pack": "pack_100"}})
	if err != nil {
		t.Fatal(err)
	}
	gs, err := e.store.Grants(e.ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, g := range gs {
		if g.ID == paid.Grant.ID {
			found = true
			if g.PaidAmount != 999 || g.PaidCurrency != "usd" || g.Source.ID != "cs_123" || g.Metadata["pack"] != "pack_100" {
				t.Fatalf("stored grant = %+v", g)
			}
		}
	}
	if !found {
		t.Fatal("paid grant not stored")
	}
	e.verify()
}

func testConsumptionOrder(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	top := e.grant("u", ledger.KindTopUp, "10", time.Time{})
	late := e.grant("u", ledger.KindSubscription, "10", t0.Add(48*time.Hour))
	soon := e.grant("u", ledger.KindSubscription, "10", t0.Add(24*time.Hour))
	r, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: e.key(), Amount: amt("15")})
	if err != nil {
		t.Fatal(err)
	}
	// Subscription before top-up; soonest expiry first.
	want := []ledger.Allocation{{GrantID: soon.ID, Amount: amt("10")}, {GrantID: late.ID, Amount: amt("5")}}
	if fmt.Sprint(r.Charge.Allocations) != fmt.Sprint(want) {
		t.Fatalf("allocations = %v, want %v", r.Charge.Allocations, want)
	}
	if r.Available != amt("15") {
		t.Fatalf("available after = %s", r.Available)
	}
	r, err = e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: e.key(), Amount: amt("10")})
	if err != nil {
		t.Fatal(err)
	}
	want = []ledger.Allocation{{GrantID: late.ID, Amount: amt("5")}, {GrantID: top.ID, Amount: amt("5")}}
	if fmt.Sprint(r.Charge.Allocations) != fmt.Sprint(want) {
		t.Fatalf("allocations = %v, want %v", r.Charge.Allocations, want)
	}
	e.wantAvailable("u", "5")
	e.verify()
}

func testHoldCapturePartial(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	sub := e.grant("u", ledger.KindSubscription, "10", t0.Add(30*24*time.Hour))
	top := e.grant("u", ledger.KindTopUp, "20", time.Time{})
	// Sound effect with auto duration: reserve 18, settle at 6.
	h, err := e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: "u", Key: "job-1", Amount: amt("18"),
		Ref: ledger.Ref{Action: "text-to-sound-effect", Job: "job-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if h.Hold.Status != ledger.HoldOpen || h.Available != amt("12") {
		t.Fatalf("hold = %+v available %s", h.Hold, h.Available)
	}
	e.wantAvailable("u", "12")
	e.wantHeld("u", "18")
	c, err := e.eng.Capture(e.ctx, ledger.CaptureRequest{HoldID: h.Hold.ID, Key: "job-1:capture", Amount: amt("6")})
	if err != nil {
		t.Fatal(err)
	}
	if c.Transaction.Amount != amt("6") || c.Charge == nil || c.Charge.Amount != amt("6") || c.Hold.Status != ledger.HoldCaptured {
		t.Fatalf("capture = %+v", c)
	}
	e.wantAvailable("u", "24")
	e.wantHeld("u", "0")
	// The 6 came from the subscription grant; the 12 returned went back
	// where they came from: 4 to the subscription, 8 to the top-up.
	if got := e.grantRemaining("u", sub.ID); got != amt("4") {
		t.Fatalf("subscription remaining = %s, want 4", got)
	}
	if got := e.grantRemaining("u", top.ID); got != amt("20") {
		t.Fatalf("top-up remaining = %s, want 20", got)
	}
	_, err = e.eng.Capture(e.ctx, ledger.CaptureRequest{HoldID: h.Hold.ID, Key: e.key(), Amount: amt("1")})
	wantCode(t, err, scrip.EHoldAlreadySettled)
	_, err = e.eng.Release(e.ctx, ledger.ReleaseRequest{HoldID: h.Hold.ID, Key: e.key()})
	wantCode(t, err, scrip.EHoldAlreadySettled)
	_, err = e.eng.Capture(e.ctx, ledger.CaptureRequest{HoldID: "hd_nope", Key: e.key(), Amount: amt("1")})
	wantCode(t, err, scrip.EHoldNotFound)
	e.verify()
}

func testHoldCaptureOver(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	e.grant("u", ledger.KindTopUp, "20", time.Time{})
	h, err := e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: "u", Key: e.key(), Amount: amt("10")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.eng.Capture(e.ctx, ledger.CaptureRequest{HoldID: h.Hold.ID, Key: e.key(), Amount: amt("12")})
	wantCode(t, err, scrip.EInvalidAmount)
	_, err = e.eng.Capture(e.ctx, ledger.CaptureRequest{HoldID: h.Hold.ID, Key: e.key(), Amount: amt("31"), AllowOver: true})
	wantCode(t, err, scrip.EInsufficientCredits)
	e.wantHeld("u", "10")
	c, err := e.eng.Capture(e.ctx, ledger.CaptureRequest{HoldID: h.Hold.ID, Key: e.key(), Amount: amt("12"), AllowOver: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Charge.Amount != amt("12") {
		t.Fatalf("charge = %+v", c.Charge)
	}
	e.wantAvailable("u", "8")
	e.wantHeld("u", "0")
	e.verify()
}

func testHoldRelease(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	e.grant("u", ledger.KindTopUp, "20", time.Time{})
	h, err := e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: "u", Key: e.key(), Amount: amt("20")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: e.key(), Amount: amt("1")})
	wantCode(t, err, scrip.EInsufficientCredits)
	// The provider failed (status: 2): everything goes back.
	r, err := e.eng.Release(e.ctx, ledger.ReleaseRequest{HoldID: h.Hold.ID, Key: e.key(), Reason: "provider status 2"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Hold.Status != ledger.HoldReleased || r.Transaction.Type != ledger.TxRelease || r.Transaction.Amount != amt("20") {
		t.Fatalf("release = %+v", r)
	}
	e.wantAvailable("u", "20")
	e.wantHeld("u", "0")
	_, err = e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: "u", Key: e.key(), Amount: amt("1"), TTL: 48 * time.Hour})
	wantCode(t, err, scrip.EInvalid)
	e.verify()
}

func testHoldExpiry(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	e.grant("u", ledger.KindTopUp, "20", time.Time{})
	h, err := e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: "u", Key: e.key(), Amount: amt("15"), TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := e.eng.ExpireDue(e.ctx); err != nil || n != 0 {
		t.Fatalf("early expire: n=%d err=%v", n, err)
	}
	e.clock.Advance(2 * time.Minute)
	_, err = e.eng.Capture(e.ctx, ledger.CaptureRequest{HoldID: h.Hold.ID, Key: e.key(), Amount: amt("5")})
	wantCode(t, err, scrip.EHoldExpired)
	n, err := e.eng.ExpireDue(e.ctx)
	if err != nil || n != 1 {
		t.Fatalf("expire: n=%d err=%v", n, err)
	}
	e.wantAvailable("u", "20")
	e.wantHeld("u", "0")
	got, err := e.eng.GetHold(e.ctx, h.Hold.ID)
	if err != nil || got.Status != ledger.HoldExpired {
		t.Fatalf("hold = %+v, %v", got, err)
	}
	_, err = e.eng.Capture(e.ctx, ledger.CaptureRequest{HoldID: h.Hold.ID, Key: e.key(), Amount: amt("5")})
	wantCode(t, err, scrip.EHoldExpired)
	if n, err := e.eng.ExpireDue(e.ctx); err != nil || n != 0 {
		t.Fatalf("second expire: n=%d err=%v", n, err)
	}
	e.verify()
}

func testChargeAndRefund(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	sub := e.grant("u", ledger.KindSubscription, "10", t0.Add(30*24*time.Hour))
	top := e.grant("u", ledger.KindTopUp, "10", time.Time{})
	c, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: e.key(), Amount: amt("15"), Ref: ledger.Ref{Action: "fal-ai/veo3", Job: "j1"}})
	if err != nil {
		t.Fatal(err)
	}
	// Partial refund: last taken, first returned (the top-up part).
	r, err := e.eng.Refund(e.ctx, ledger.RefundRequest{ChargeID: c.Charge.ID, Key: e.key(), Amount: amt("3")})
	if err != nil {
		t.Fatal(err)
	}
	if r.Charge.Refunded != amt("3") || r.Transaction.Amount != amt("3") {
		t.Fatalf("refund = %+v", r)
	}
	if got := e.grantRemaining("u", top.ID); got != amt("8") {
		t.Fatalf("top-up remaining = %s, want 8", got)
	}
	_, err = e.eng.Refund(e.ctx, ledger.RefundRequest{ChargeID: c.Charge.ID, Key: e.key(), Amount: amt("13")})
	wantCode(t, err, scrip.EInvalidAmount)
	// Whole remainder.
	r, err = e.eng.Refund(e.ctx, ledger.RefundRequest{ChargeID: c.Charge.ID, Key: e.key()})
	if err != nil {
		t.Fatal(err)
	}
	if r.Transaction.Amount != amt("12") || r.Charge.Refunded != amt("15") {
		t.Fatalf("refund rest = %+v", r)
	}
	if e.grantRemaining("u", sub.ID) != amt("10") || e.grantRemaining("u", top.ID) != amt("10") {
		t.Fatal("refund did not restore the grants")
	}
	_, err = e.eng.Refund(e.ctx, ledger.RefundRequest{ChargeID: c.Charge.ID, Key: e.key()})
	wantCode(t, err, scrip.EInvalidAmount)
	_, err = e.eng.Refund(e.ctx, ledger.RefundRequest{ChargeID: "ch_nope", Key: e.key()})
	wantCode(t, err, scrip.EChargeNotFound)
	e.verify()
}

func testRefundToExpiredGrant(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	sub := e.grant("u", ledger.KindSubscription, "10", t0.Add(time.Hour))
	c, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: e.key(), Amount: amt("4")})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour)
	if n, err := e.eng.ExpireDue(e.ctx); err != nil || n != 1 {
		t.Fatalf("expire: %d %v", n, err)
	}
	r, err := e.eng.Refund(e.ctx, ledger.RefundRequest{ChargeID: c.Charge.ID, Key: e.key()})
	if err != nil {
		t.Fatal(err)
	}
	// The credits went back to the expired grant and expired at once,
	// with explicit entries.
	e.wantAvailable("u", "0")
	if got := e.grantRemaining("u", sub.ID); got != 0 {
		t.Fatalf("expired grant remaining = %s", got)
	}
	var expired credit.Amount
	for _, en := range r.Transaction.Entries {
		if en.Account == ledger.SystemExpired {
			expired += en.Amount
		}
	}
	if expired != amt("4") {
		t.Fatalf("refund entries = %+v, want 4 to %s", r.Transaction.Entries, ledger.SystemExpired)
	}
	e.verify()
}

func testGrantExpiry(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	a := e.grant("u", ledger.KindSubscription, "10", t0.Add(time.Hour))
	e.grant("u", ledger.KindPromotional, "5", t0.Add(2*time.Hour))
	e.grant("u", ledger.KindTopUp, "7", time.Time{})
	if _, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: e.key(), Amount: amt("3")}); err != nil {
		t.Fatal(err)
	}
	// A hold on the expiring grant keeps its credits past the expiry;
	// released afterwards they expire at once.
	h, err := e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: "u", Key: e.key(), Amount: amt("2"), TTL: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(90 * time.Minute)
	// Past expiry but before the sweep the credits are already unspendable.
	e.wantAvailable("u", "12")
	n, err := e.eng.ExpireDue(e.ctx)
	if err != nil || n != 1 {
		t.Fatalf("expire: n=%d err=%v", n, err)
	}
	hist, err := e.eng.History(e.ctx, ledger.HistoryQuery{AccountID: "u", Types: []ledger.TxType{ledger.TxGrantExpiry}})
	if err != nil || len(hist) != 1 || hist[0].Amount != amt("5") || hist[0].GrantID != a.ID {
		t.Fatalf("expiry history = %+v, %v", hist, err)
	}
	if _, err := e.eng.Release(e.ctx, ledger.ReleaseRequest{HoldID: h.Hold.ID, Key: e.key()}); err != nil {
		t.Fatal(err)
	}
	e.wantAvailable("u", "12")
	e.clock.Advance(time.Hour)
	if n, err := e.eng.ExpireDue(e.ctx); err != nil || n != 1 {
		t.Fatalf("second expire: n=%d err=%v", n, err)
	}
	e.wantAvailable("u", "7")
	e.verify()
}

func testFutureGrant(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	if _, err := e.eng.Grant(e.ctx, ledger.GrantRequest{AccountID: "u", Key: e.key(), Kind: ledger.KindSubscription,
		Amount: amt("10"), EffectiveAt: t0.Add(time.Hour), ExpiresAt: t0.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	e.wantAvailable("u", "0")
	e.clock.Advance(time.Hour)
	e.wantAvailable("u", "10")
}

func testAdjustAndRevoke(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	top := e.grant("u", ledger.KindTopUp, "10", time.Time{})
	r, err := e.eng.Adjust(e.ctx, ledger.AdjustRequest{AccountID: "u", Key: e.key(), Amount: amt("5"), Reason: "support goodwill"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Grant == nil || r.Grant.Kind != ledger.KindAdjustment || r.Grant.Source.Reason != "support goodwill" {
		t.Fatalf("adjust grant = %+v", r.Grant)
	}
	e.wantAvailable("u", "15")
	if _, err := e.eng.Adjust(e.ctx, ledger.AdjustRequest{AccountID: "u", Key: e.key(), Amount: amt("-3"), Reason: "duplicate job"}); err != nil {
		t.Fatal(err)
	}
	e.wantAvailable("u", "12")
	_, err = e.eng.Adjust(e.ctx, ledger.AdjustRequest{AccountID: "u", Key: e.key(), Amount: amt("-100"), Reason: "x"})
	wantCode(t, err, scrip.EInsufficientCredits)
	_, err = e.eng.Adjust(e.ctx, ledger.AdjustRequest{AccountID: "u", Key: e.key(), Amount: amt("1")})
	wantCode(t, err, scrip.EInvalid)
	rv, err := e.eng.Revoke(e.ctx, ledger.RevokeRequest{GrantID: top.ID, Key: e.key(), Reason: "payment refunded"})
	if err != nil {
		t.Fatal(err)
	}
	// The debit of 3 came from the adjustment grant (priority 100) before
	// the top-up (priority 200), so the whole top-up is revoked.
	if rv.Transaction.Amount != amt("10") || !rv.Grant.Closed {
		t.Fatalf("revoke = %+v, want 10 revoked", rv)
	}
	e.wantAvailable("u", "2")
	_, err = e.eng.Revoke(e.ctx, ledger.RevokeRequest{GrantID: "gr_nope", Key: e.key()})
	wantCode(t, err, scrip.EGrantNotFound)
	e.verify()
}

func testIdempotency(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	e.grant("u", ledger.KindTopUp, "10", time.Time{})
	first, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: "job-7", Amount: amt("4")})
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: "job-7", Amount: amt("4")})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || again.Transaction.ID != first.Transaction.ID || again.Charge.ID != first.Charge.ID {
		t.Fatalf("replay = %+v, want the first result", again)
	}
	e.wantAvailable("u", "6")
	_, err = e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: "job-7", Amount: amt("5")})
	wantCode(t, err, scrip.EIdempotencyConflict)
	_, err = e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: "u", Key: "job-7", Amount: amt("4")})
	wantCode(t, err, scrip.EIdempotencyConflict)
	e.wantAvailable("u", "6")
	// Concurrent duplicates: one effect, the same result for all.
	const n = 16
	ids := make(chan string, n)
	for range n {
		go func() {
			r, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: "burst", Amount: amt("1")})
			if err != nil {
				ids <- "error: " + err.Error()
				return
			}
			ids <- r.Transaction.ID
		}()
	}
	seen := map[string]int{}
	for range n {
		seen[<-ids]++
	}
	if len(seen) != 1 {
		t.Fatalf("concurrent duplicates produced %v", seen)
	}
	e.wantAvailable("u", "5")
	_, err = e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Amount: amt("1")})
	wantCode(t, err, scrip.EInvalid)
	e.verify()
}

// testKeyOnlyInJournal replays keys through engines that did not commit
// them (another process, or this one before a restart): only the journal
// knows them, and the replays must still return the first results, whether
// the operation would succeed again or now fail.
func testKeyOnlyInJournal(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	e.grant("u", ledger.KindTopUp, "10", time.Time{})
	// Each replay on an engine of its own, which knows none of the keys.
	fresh := func() *ledger.Engine {
		eng := ledger.NewEngine(e.store, ledger.Options{Clock: e.clock, SweepEvery: -1})
		t.Cleanup(func() { eng.Close(context.Background()) })
		return eng
	}
	wantReplay := func(what string, r ledger.Result, err error, first ledger.Result) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !r.Replayed || r.Transaction.ID != first.Transaction.ID {
			t.Fatalf("%s = %+v, want a replay of %s", what, r, first.Transaction.ID)
		}
	}

	// Run again, the charge would succeed: the journal's unique index
	// refuses it.
	charge, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: "job-1", Amount: amt("4")})
	if err != nil {
		t.Fatal(err)
	}
	r, err := fresh().Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: "job-1", Amount: amt("4")})
	wantReplay("charge replayed", r, err, charge)
	_, err = fresh().Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: "job-1", Amount: amt("0.5")})
	wantCode(t, err, scrip.EIdempotencyConflict)

	// Run again, these would fail: the hold is settled, the credits spent.
	h, err := e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: "u", Key: "job-2", Amount: amt("2")})
	if err != nil {
		t.Fatal(err)
	}
	capture, err := e.eng.Capture(e.ctx, ledger.CaptureRequest{HoldID: h.Hold.ID, Key: "job-2:capture", Amount: amt("2")})
	if err != nil {
		t.Fatal(err)
	}
	spend, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: "job-3", Amount: amt("3")})
	if err != nil {
		t.Fatal(err)
	}
	e.wantAvailable("u", "1")
	r, err = fresh().Capture(e.ctx, ledger.CaptureRequest{HoldID: h.Hold.ID, Key: "job-2:capture", Amount: amt("2")})
	wantReplay("capture of a settled hold replayed", r, err, capture)
	r, err = fresh().Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: "job-3", Amount: amt("3")})
	wantReplay("charge beyond the balance replayed", r, err, spend)
	_, err = fresh().Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: "job-1", Amount: amt("5")})
	wantCode(t, err, scrip.EIdempotencyConflict)

	// A replay in one batch with new operations (the engine's first batch
	// takes whatever is queued): each new one applies once.
	eng := fresh()
	const n = 4
	errs := make(chan error, n+1)
	replays := make(chan bool, n+1)
	for i := range n + 1 {
		go func() {
			req := ledger.ChargeRequest{AccountID: "u", Key: fmt.Sprintf("new-%d", i), Amount: amt("0.25")}
			if i == n {
				req = ledger.ChargeRequest{AccountID: "u", Key: "job-1", Amount: amt("4")}
			}
			r, err := eng.Charge(e.ctx, req)
			errs <- err
			replays <- r.Replayed
		}()
	}
	replayed := 0
	for range n + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		if <-replays {
			replayed++
		}
	}
	if replayed != 1 {
		t.Fatalf("%d replays, want 1", replayed)
	}
	e.wantAvailable("u", "0")
	e.verify()
}

func testInsufficientLeavesNoTrace(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	e.grant("u", ledger.KindSubscription, "3", t0.Add(time.Hour))
	before, err := e.eng.History(e.ctx, ledger.HistoryQuery{AccountID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: "u", Key: "j", Amount: amt("20")})
	var se *scrip.Error
	if !errors.As(err, &se) || se.Code != scrip.EInsufficientCredits {
		t.Fatalf("err = %v", err)
	}
	if se.Details["required"] != amt("20") || se.Details["available"] != amt("3") {
		t.Fatalf("details = %v, want required 20 available 3", se.Details)
	}
	after, err := e.eng.History(e.ctx, ledger.HistoryQuery{AccountID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("a rejected hold left %d transactions", len(after)-len(before))
	}
	e.wantAvailable("u", "3")
	// The same key may be used again after a rejection: nothing was stored.
	e.grant("u", ledger.KindTopUp, "20", time.Time{})
	if _, err := e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: "u", Key: "j", Amount: amt("20")}); err != nil {
		t.Fatal(err)
	}
	e.verify()
}

func testHistory(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	e.grant("u", ledger.KindTopUp, "100", time.Time{})
	for i := range 25 {
		e.clock.Advance(time.Minute)
		if _, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: e.key(), Amount: amt("1"),
			Ref: ledger.Ref{Action: "fal-ai/flux/schnell", Job: fmt.Sprintf("job-%d", i), Metadata: map[string]string{"project": "p1"}}}); err != nil {
			t.Fatal(err)
		}
	}
	var all []ledger.Transaction
	cursor := int64(0)
	for page := 0; page < 10; page++ {
		txs, err := e.eng.History(e.ctx, ledger.HistoryQuery{AccountID: "u", Limit: 10, BeforeSeq: cursor})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, txs...)
		if len(txs) < 10 {
			break
		}
		cursor = txs[len(txs)-1].Seq
	}
	if len(all) != 26 {
		t.Fatalf("paged history has %d transactions, want 26", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq >= all[i-1].Seq {
			t.Fatalf("history not newest first at %d", i)
		}
	}
	if all[0].Ref.Job != "job-24" || all[0].Ref.Metadata["project"] != "p1" || all[0].Ref.Action != "fal-ai/flux/schnell" {
		t.Fatalf("newest = %+v", all[0])
	}
	grants, err := e.eng.History(e.ctx, ledger.HistoryQuery{AccountID: "u", Types: []ledger.TxType{ledger.TxGrant}})
	if err != nil || len(grants) != 1 {
		t.Fatalf("grant history = %d, %v", len(grants), err)
	}
	window, err := e.eng.History(e.ctx, ledger.HistoryQuery{AccountID: "u", Since: t0.Add(5 * time.Minute), Until: t0.Add(10 * time.Minute), Limit: 100})
	if err != nil || len(window) != 5 {
		t.Fatalf("window history = %d, %v; want 5", len(window), err)
	}
	_, err = e.eng.History(e.ctx, ledger.HistoryQuery{AccountID: "u", Limit: 1000})
	wantCode(t, err, scrip.EInvalid)
	_, err = e.eng.History(e.ctx, ledger.HistoryQuery{AccountID: "nobody"})
	wantCode(t, err, scrip.EAccountNotFound)
}

func testFractionalCredits(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	e.grant("u", ledger.KindSubscription, "1.5", t0.Add(time.Hour))
	for range 3 {
		if _, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: e.key(), Amount: amt("0.5")}); err != nil {
			t.Fatal(err)
		}
	}
	e.wantAvailable("u", "0")
	_, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: e.key(), Amount: amt("0.000001")})
	wantCode(t, err, scrip.EInsufficientCredits)
	e.grant("u", ledger.KindTopUp, "0.6", time.Time{})
	if _, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: e.key(), Amount: amt("0.333333")}); err != nil {
		t.Fatal(err)
	}
	e.wantAvailable("u", "0.266667")
	e.verify()
}

// testRestartExpiresHolds checks that holds whose time ran out while no
// engine was running are released by the next engine.
func testRestartExpiresHolds(t *testing.T, open Open) {
	s := open(t)
	clock := ledger.NewManualClock(t0)
	eng := ledger.NewEngine(s, ledger.Options{Clock: clock, SweepEvery: -1})
	ctx := context.Background()
	if _, _, err := eng.CreateAccount(ctx, "u", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Grant(ctx, ledger.GrantRequest{AccountID: "u", Key: "g", Kind: ledger.KindTopUp, Amount: amt("10")}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Hold(ctx, ledger.HoldRequest{AccountID: "u", Key: "h", Amount: amt("10"), TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	// A new engine with its background sweep on catches up by itself.
	eng2 := ledger.NewEngine(s, ledger.Options{Clock: clock, SweepEvery: 10 * time.Millisecond})
	defer eng2.Close(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := eng2.Balance(ctx, "u")
		if err != nil {
			t.Fatal(err)
		}
		if b.Held == 0 && b.Available == amt("10") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hold was not expired after restart: %+v", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testZeroUsage records usage that costs nothing (an unlimited plan): a
// zero hold captured at zero and a zero charge are journal transactions
// like any other.
func testZeroUsage(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	ref := ledger.Ref{Action: "google-tts", Metadata: map[string]string{"list_credits": "6"}}
	h, err := e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: "u", Key: e.key(), Amount: 0, Ref: ref})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.eng.Capture(e.ctx, ledger.CaptureRequest{HoldID: h.Hold.ID, Key: e.key(), Amount: 0})
	if err != nil || c.Hold.Status != ledger.HoldCaptured || c.Transaction.Amount != 0 {
		t.Fatalf("capture = %+v, %v", c, err)
	}
	ch, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: e.key(), Amount: 0, Ref: ref})
	if err != nil || ch.Charge == nil || ch.Charge.Amount != 0 {
		t.Fatalf("charge = %+v, %v", ch, err)
	}
	hist, err := e.eng.History(e.ctx, ledger.HistoryQuery{AccountID: "u"})
	if err != nil || len(hist) != 3 || hist[0].Ref.Metadata["list_credits"] != "6" {
		t.Fatalf("history = %+v, %v", hist, err)
	}
	_, err = e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: e.key(), Amount: amt("-1")})
	wantCode(t, err, scrip.EInvalidAmount)
	e.verify()
}

// testFingerprint checks that a caller-supplied fingerprint, not the derived
// amount, decides whether a replay matches.
func testFingerprint(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	e.grant("u", ledger.KindTopUp, "100", time.Time{})
	first, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: "job", Amount: amt("4"), Fingerprint: "action=x"})
	if err != nil {
		t.Fatal(err)
	}
	// The price changed since, but the client sent the same request.
	again, err := e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: "job", Amount: amt("6"), Fingerprint: "action=x"})
	if err != nil || !again.Replayed || again.Charge.Amount != amt("4") || again.Transaction.ID != first.Transaction.ID {
		t.Fatalf("replay = %+v, %v", again, err)
	}
	_, err = e.eng.Charge(e.ctx, ledger.ChargeRequest{AccountID: "u", Key: "job", Amount: amt("4"), Fingerprint: "action=y"})
	wantCode(t, err, scrip.EIdempotencyConflict)
	e.wantAvailable("u", "96")
}
