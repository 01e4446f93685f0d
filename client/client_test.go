package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/scriphq/scrip/billing"
	"github.com/scriphq/scrip/client"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/examples/catalogs"
	"github.com/scriphq/scrip/httpapi"
	"github.com/scriphq/scrip/httpapi/auth"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/sqlite"
)

// server starts a real API server on SQLite with the demo catalog and
// billing, and returns its URL and an admin key.
func server(t *testing.T) (string, string) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "scrip.db"))
	if err != nil {
		t.Fatal(err)
	}
	eng := ledger.NewEngine(st, ledger.Options{SweepEvery: -1})
	holder, err := httpapi.NewCatalogHolder(catalogs.LoadDemo)
	if err != nil {
		t.Fatal(err)
	}
	svc := billing.New(eng, st, holder.Current, billing.Options{})
	api, err := httpapi.New(context.Background(), httpapi.Config{Engine: eng, Catalog: holder, Keys: st, Billing: svc,
		TopUpURL: "https://wzrd.test/settings/billing?u={account_id}"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(func() {
		srv.Close()
		eng.Close(context.Background())
		st.Close()
	})
	k, secret := auth.NewKey("test", []auth.Scope{auth.ScopeAdmin}, eng.Clock().Now())
	if err := st.CreateKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return srv.URL, secret
}

func TestJobLifecycle(t *testing.T) {
	t.Parallel()
	url, key := server(t)
	ctx := context.Background()
	c := client.New(url, key)
	if _, err := c.CreateAccount(ctx, "u1", nil); err != nil {
		t.Fatal(err)
	}
	g, err := c.Grant(ctx, "u1", client.GrantParams{Kind: ledger.KindTopUp, Amount: credit.Credits(30), IdempotencyKey: "g1"})
	if err != nil || g.Available != credit.Credits(30) {
		t.Fatalf("grant: %+v, %v", g, err)
	}
	h, err := c.Hold(ctx, "u1", client.HoldParams{Action: "video", Job: "shot-1", IdempotencyKey: "job-1"})
	if err != nil {
		t.Fatal(err)
	}
	if h.Amount != credit.Credits(20) || h.Quote == nil || h.Quote.Action != "fal-ai/kling-video/o3/standard/text-to-video" {
		t.Fatalf("hold: %+v", h)
	}
	cap, err := c.Capture(ctx, h.ID, client.CaptureParams{IdempotencyKey: "job-1-capture"})
	if err != nil || cap.CreditsUsed != credit.Credits(20) || cap.Charge == nil {
		t.Fatalf("capture: %+v, %v", cap, err)
	}
	// Not enough left for another clip.
	_, err = c.Hold(ctx, "u1", client.HoldParams{Action: "video", IdempotencyKey: "job-2"})
	if !errors.As(err, &client.InsufficientCreditsError{}) {
		t.Fatalf("want InsufficientCreditsError, got %v", err)
	}
	var ic client.InsufficientCreditsError
	errors.As(err, &ic)
	if ic.Required != credit.Credits(20) || ic.Available != credit.Credits(10) || ic.TopUpURL != "https://wzrd.test/settings/billing?u=u1" {
		t.Fatalf("402: %+v", ic)
	}
	if client.ErrorCode(err) != "insufficient_credits" {
		t.Fatalf("ErrorCode = %q", client.ErrorCode(err))
	}
	ch, err := c.Charge(ctx, "u1", client.ChargeParams{Action: "directors-cut", IdempotencyKey: "cut-1"})
	if err == nil {
		t.Fatalf("charge of 12 with 10 available succeeded: %+v", ch)
	}
	ch, err = c.Charge(ctx, "u1", client.ChargeParams{Action: "fal-ai/flux/schnell", IdempotencyKey: "img-1"})
	if err != nil || ch.CreditsUsed != credit.Credits(3) {
		t.Fatalf("charge: %+v, %v", ch, err)
	}
	rf, err := c.Refund(ctx, ch.ID, client.RefundParams{Reason: "provider failed", IdempotencyKey: "img-1-refund"})
	if err != nil || rf.Amount != credit.Credits(3) || rf.CreditsUsed != 0 || rf.Available != credit.Credits(10) {
		t.Fatalf("refund: %+v, %v", rf, err)
	}
	b, err := c.Balance(ctx, "u1")
	if err != nil || b.Available != credit.Credits(10) {
		t.Fatalf("balance: %+v, %v", b, err)
	}
	hist, err := c.Transactions(ctx, "u1", client.TransactionsParams{Limit: 2})
	if err != nil || len(hist.Data) != 2 || !hist.HasMore {
		t.Fatalf("history: %+v, %v", hist, err)
	}
	bc, err := c.BillingCatalog(ctx, "u1")
	if err != nil || bc.Wallet.AvailableTotal != credit.Credits(10) || len(bc.Plans) == 0 || len(bc.CreditPacks) == 0 {
		t.Fatalf("billing catalog: %+v, %v", bc, err)
	}
	rep, err := c.Verify(ctx)
	if err != nil || !rep.OK {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	// API errors keep their code and field.
	_, err = c.Quote(ctx, client.QuoteParams{Action: "fal-ai/flux/schnel"})
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Code != "action_not_found" || ae.Field != "action" {
		t.Fatalf("quote error: %v", err)
	}
}

func TestAccountToken(t *testing.T) {
	t.Parallel()
	url, key := server(t)
	ctx := context.Background()
	c := client.New(url, key)
	c.CreateAccount(ctx, "u1", nil)
	c.CreateAccount(ctx, "u2", nil)
	tok, err := c.CreateToken(ctx, "u1", 0)
	if err != nil {
		t.Fatal(err)
	}
	browser := client.New(url, tok.Token)
	if _, err := browser.Balance(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	q, err := browser.Quote(ctx, client.QuoteParams{Action: "image"})
	if err != nil || q.Credits != credit.Credits(4) {
		t.Fatalf("quote: %+v, %v", q, err)
	}
	if _, err := browser.Balance(ctx, "u2"); client.ErrorCode(err) != "forbidden" {
		t.Fatalf("other account: %v", err)
	}
	if _, err := browser.Charge(ctx, "u1", client.ChargeParams{Action: "image"}); client.ErrorCode(err) != "forbidden" {
		t.Fatalf("charge with a token: %v", err)
	}
	cat, err := browser.Catalog(ctx)
	if err != nil || len(cat.Actions) == 0 || cat.CategoryDefaults["video"] == "" {
		t.Fatalf("catalog: %v", err)
	}
}

// flaky forwards each request but loses the answer of the first one, as a
// dropped connection would after the server acted.
type flaky struct {
	n    atomic.Int32
	keys []string
}

func (f *flaky) RoundTrip(r *http.Request) (*http.Response, error) {
	f.keys = append(f.keys, r.Header.Get("Idempotency-Key"))
	res, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && f.n.Add(1) == 1 {
		res.Body.Close()
		return nil, errors.New("connection reset")
	}
	return res, err
}

func TestRetrySameKey(t *testing.T) {
	t.Parallel()
	url, key := server(t)
	ctx := context.Background()
	admin := client.New(url, key)
	admin.CreateAccount(ctx, "u1", nil)
	admin.Grant(ctx, "u1", client.GrantParams{Amount: credit.Credits(10)})

	f := &flaky{}
	c := client.New(url, key, client.WithHTTPClient(&http.Client{Transport: f}))
	ch, err := c.Charge(ctx, "u1", client.ChargeParams{Action: "fal-ai/flux/schnell"})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.keys) != 2 || f.keys[0] == "" || f.keys[0] != f.keys[1] {
		t.Fatalf("idempotency keys over the attempts: %q", f.keys)
	}
	if !ch.Replayed || ch.CreditsUsed != credit.Credits(3) {
		t.Fatalf("retried charge: %+v", ch)
	}
	b, _ := admin.Balance(ctx, "u1")
	if b.Available != credit.Credits(7) {
		t.Fatalf("available %s after a retried charge, want 7 (charged once)", b.Available)
	}
}

func TestSubscriptions(t *testing.T) {
	t.Parallel()
	url, key := server(t)
	ctx := context.Background()
	c := client.New(url, key)
	if _, err := c.CreateAccount(ctx, "u1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscription(ctx, "u1"); client.ErrorCode(err) != "not_found" {
		t.Fatalf("subscription before subscribing: %v", err)
	}
	_, err := c.Subscribe(ctx, "u1", client.SubscribeParams{Plan: "gold"})
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Code != "plan_not_found" || ae.Field != "plan" {
		t.Fatalf("unknown plan: %v", err)
	}
	s, err := c.Subscribe(ctx, "u1", client.SubscribeParams{Plan: "pro", IdempotencyKey: "sub-1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.PlanCode != "pro" || s.Status != billing.StatusActive || s.PlanName != "Pro" || s.RenewsAt.IsZero() || s.Cycle != 1 {
		t.Fatalf("subscribe: %+v", s)
	}
	again, err := c.Subscribe(ctx, "u1", client.SubscribeParams{Plan: "pro", IdempotencyKey: "sub-1"})
	if err != nil || again.ID != s.ID {
		t.Fatalf("replayed subscribe: %+v, %v", again, err)
	}
	if b, err := c.Balance(ctx, "u1"); err != nil || b.Available != credit.Credits(1000) {
		t.Fatalf("balance after subscribing: %+v, %v", b, err)
	}
	got, err := c.Subscription(ctx, "u1")
	if err != nil || got.ID != s.ID {
		t.Fatalf("subscription: %+v, %v", got, err)
	}
	bc, err := c.BillingCatalog(ctx, "u1")
	if err != nil || bc.Subscription == nil || bc.Subscription.ID != s.ID {
		t.Fatalf("billing catalog subscription: %+v, %v", bc.Subscription, err)
	}
	// The account's own token reads it; only admin keys change it.
	tok, err := c.CreateToken(ctx, "u1", 0)
	if err != nil {
		t.Fatal(err)
	}
	browser := client.New(url, tok.Token)
	if _, err := browser.Subscription(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := browser.CancelSubscription(ctx, "u1", true); client.ErrorCode(err) != "forbidden" {
		t.Fatalf("cancel with a token: %v", err)
	}

	canceled, err := c.CancelSubscription(ctx, "u1", true)
	if err != nil || !canceled.CancelAtPeriodEnd || canceled.Status != billing.StatusActive {
		t.Fatalf("cancel at period end: %+v, %v", canceled, err)
	}
	resumed, err := c.ResumeSubscription(ctx, "u1")
	if err != nil || resumed.CancelAtPeriodEnd {
		t.Fatalf("resume: %+v, %v", resumed, err)
	}
	ended, err := c.CancelSubscription(ctx, "u1", false)
	if err != nil || ended.Status != billing.StatusCanceled || ended.CanceledAt.IsZero() {
		t.Fatalf("cancel now: %+v, %v", ended, err)
	}
	if _, err := c.ResumeSubscription(ctx, "u1"); client.ErrorCode(err) != "conflict" {
		t.Fatalf("resume an ended subscription: %v", err)
	}
}
