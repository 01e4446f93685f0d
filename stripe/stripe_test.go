package stripe_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/event"
	"github.com/scriphq/scrip/httpapi"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/postgres"
	"github.com/scriphq/scrip/postgres/pgtest"
	"github.com/scriphq/scrip/sqlite"
	"github.com/scriphq/scrip/stripe"
	"github.com/scriphq/scrip/stripe/stripemock"
)

const (
	whsec   = "whsec_test_0123456789abcdef"
	apiVers = "2026-03-25.dahlia"
)

const testCatalog = `
name: Test
categories: [{id: image, name: Image}]
actions:
  - {id: img, name: Image, category: image, price: 4}
plans:
  - code: pro
    name: Pro
    tier: 1
    monthly_credits: 1000
    interval: month
    price: {amount: 2000, currency: usd}
    stripe_price: price_pro
  - code: max
    name: Max
    tier: 2
    monthly_credits: 5000
    interval: month
    price: {amount: 8000, currency: usd}
    stripe_price: price_max
  - code: free
    name: Free
    tier: 0
    monthly_credits: 10
    interval: month
    price: {amount: 0, currency: usd}
packs:
  - code: pack_100
    name: 100 credits
    credits: 100
    price: {amount: 1000, currency: usd}
    stripe_price: price_pack_100
  - code: pack_nostripe
    name: Not on sale
    credits: 5
    price: {amount: 100, currency: usd}
`

// backend is one store the tests run on.
type backend struct {
	name   string
	ledger ledger.Store
	stripe stripe.Store
	outbox event.Store
}

func backends(t *testing.T) []func(t *testing.T) backend {
	return []func(t *testing.T) backend{
		func(t *testing.T) backend {
			s, err := sqlite.Open(filepath.Join(t.TempDir(), "scrip.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return backend{"sqlite", s, s.StripeStore(), s.Outbox()}
		},
		func(t *testing.T) backend {
			s, err := postgres.Open(context.Background(), pgtest.URL(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return backend{"postgres", s, s.StripeStore(), s.Outbox()}
		},
	}
}

// eachStore runs fn on SQLite and on PostgreSQL.
func eachStore(t *testing.T, fn func(t *testing.T, b backend)) {
	for i, open := range backends(t) {
		t.Run([]string{"sqlite", "postgres"}[i], func(t *testing.T) {
			t.Parallel()
			fn(t, open(t))
		})
	}
}

// fakeSubs stands in for billing: it grants plan credits through the
// ledger under the keys it is given, like billing does.
type fakeSubs struct {
	mu     sync.Mutex
	eng    *ledger.Engine
	cat    *catalog.Catalog
	plan   map[string]string
	status map[string]string
	calls  []string
}

func (f *fakeSubs) log(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeSubs) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeSubs) Plan(_ context.Context, acct string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status[acct] == "canceled" {
		return "", nil
	}
	return f.plan[acct], nil
}

func (f *fakeSubs) grant(ctx context.Context, acct, plan, key string) error {
	p, ok := f.cat.Plan(plan)
	if !ok {
		return scrip.Errorf(scrip.EInvalid, "no plan %q", plan)
	}
	_, err := f.eng.Grant(ctx, ledger.GrantRequest{AccountID: acct, Key: key, Kind: ledger.KindSubscription,
		Amount: p.MonthlyCredits, Source: ledger.Source{Type: "plan_cycle", ID: plan}})
	return err
}

func (f *fakeSubs) Subscribe(ctx context.Context, r stripe.SubscribeRequest) error {
	if err := f.grant(ctx, r.AccountID, r.PlanCode, r.Key); err != nil {
		return err
	}
	f.mu.Lock()
	f.plan[r.AccountID], f.status[r.AccountID] = r.PlanCode, "active"
	f.mu.Unlock()
	f.log("subscribe %s %s", r.AccountID, r.PlanCode)
	return nil
}

func (f *fakeSubs) Renew(ctx context.Context, r stripe.RenewRequest) error {
	f.log("renew %s %s", r.AccountID, r.PlanCode)
	return f.grant(ctx, r.AccountID, r.PlanCode, r.Key)
}

func (f *fakeSubs) ChangePlan(_ context.Context, r stripe.ChangePlanRequest) error {
	f.mu.Lock()
	f.plan[r.AccountID] = r.PlanCode
	f.mu.Unlock()
	f.log("change %s %s", r.AccountID, r.PlanCode)
	return nil
}

func (f *fakeSubs) setStatus(acct, st string) {
	f.mu.Lock()
	f.status[acct] = st
	f.mu.Unlock()
}

func (f *fakeSubs) Cancel(_ context.Context, acct string, atPeriodEnd bool) error {
	if atPeriodEnd {
		f.setStatus(acct, "canceling")
	} else {
		f.setStatus(acct, "canceled")
	}
	f.log("cancel %s %v", acct, atPeriodEnd)
	return nil
}

func (f *fakeSubs) Resume(_ context.Context, acct string) error {
	f.setStatus(acct, "active")
	f.log("resume %s", acct)
	return nil
}

func (f *fakeSubs) MarkPastDue(_ context.Context, acct string) error {
	f.setStatus(acct, "past_due")
	f.log("past_due %s", acct)
	return nil
}

func (f *fakeSubs) MarkPaid(_ context.Context, acct string) error {
	f.setStatus(acct, "active")
	f.log("paid %s", acct)
	return nil
}

type fixture struct {
	t      testing.TB
	b      backend
	eng    *ledger.Engine
	subs   *fakeSubs
	svc    *stripe.Service
	server *httptest.Server
}

func newFixture(t testing.TB, b backend, cfg stripe.Config) *fixture {
	t.Helper()
	cat, err := catalog.Parse([]byte(testCatalog), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng := ledger.NewEngine(b.ledger, ledger.Options{SweepEvery: -1})
	t.Cleanup(func() { eng.Close(context.Background()) })
	subs := &fakeSubs{eng: eng, cat: cat, plan: map[string]string{}, status: map[string]string{}}
	if cfg.SecretKey == "" {
		cfg.SecretKey = "sk_test_123"
	}
	cfg.WebhookSecret = whsec
	svc, err := stripe.New(stripe.Options{Config: cfg, Engine: eng, Catalog: func() *catalog.Catalog { return cat },
		Subscriptions: subs, Store: b.stripe, Outbox: b.outbox})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return &fixture{t: t, b: b, eng: eng, subs: subs, svc: svc, server: srv}
}

// send posts a Stripe event signed with the webhook secret and returns the
// status and decoded answer.
func (f *fixture) send(id, typ string, created int64, obj any) (int, map[string]any) {
	f.t.Helper()
	payload, err := json.Marshal(map[string]any{"id": id, "object": "event", "api_version": apiVers, "created": created,
		"type": typ, "data": map[string]any{"object": obj}})
	if err != nil {
		f.t.Fatal(err)
	}
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: whsec, Timestamp: time.Now()})
	return f.post(sp.Payload, sp.Header)
}

func (f *fixture) post(body []byte, sig string) (int, map[string]any) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.server.URL, strings.NewReader(string(body)))
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (f *fixture) mustSend(id, typ string, created int64, obj any) map[string]any {
	f.t.Helper()
	code, out := f.send(id, typ, created, obj)
	if code != http.StatusOK {
		f.t.Fatalf("%s %s: status %d, body %v", typ, id, code, out)
	}
	return out
}

func (f *fixture) available(acct string) credit.Amount {
	f.t.Helper()
	b, err := f.eng.Balance(context.Background(), acct)
	if err != nil {
		f.t.Fatal(err)
	}
	return b.Available
}

func (f *fixture) events(acct, typ string) []event.Event {
	f.t.Helper()
	evs, err := f.b.outbox.Events(context.Background(), event.Query{AccountID: acct, Type: typ, Limit: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	return evs
}

func packSession(id, acct, pi string) map[string]any {
	return map[string]any{"id": id, "object": "checkout.session", "mode": "payment", "payment_status": "paid",
		"status": "complete", "client_reference_id": acct, "amount_total": 1000, "currency": "usd",
		"payment_intent": pi, "metadata": map[string]string{"scrip_account_id": acct, "scrip_pack_code": "pack_100", "scrip_credits": "100"}}
}

func subSession(id, acct, sub, plan string) map[string]any {
	return map[string]any{"id": id, "object": "checkout.session", "mode": "subscription", "payment_status": "paid",
		"status": "complete", "client_reference_id": acct, "amount_total": 2000, "currency": "usd", "subscription": sub,
		"metadata": map[string]string{"scrip_account_id": acct, "scrip_plan_code": plan}}
}

func invoice(id, sub, acct, reason, price string, start int64) map[string]any {
	return map[string]any{"id": id, "object": "invoice", "billing_reason": reason, "amount_paid": 2000, "currency": "usd",
		"status": "paid", "period_start": start, "period_end": start + 30*86400,
		"parent": map[string]any{"type": "subscription_details", "subscription_details": map[string]any{
			"subscription": sub, "metadata": map[string]string{"scrip_account_id": acct, "scrip_plan_code": "pro"}}},
		"lines": map[string]any{"object": "list", "data": []any{map[string]any{"id": "il_" + id, "object": "line_item",
			"period":  map[string]any{"start": start, "end": start + 30*86400},
			"pricing": map[string]any{"type": "price_details", "price_details": map[string]any{"price": price, "product": "prod_1"}}}}}}
}

func subscription(id, acct, price, status string, cancelAtEnd bool) map[string]any {
	return map[string]any{"id": id, "object": "subscription", "status": status, "cancel_at_period_end": cancelAtEnd,
		"metadata": map[string]string{"scrip_account_id": acct, "scrip_plan_code": "pro"},
		"items": map[string]any{"object": "list", "data": []any{map[string]any{"id": "si_1", "object": "subscription_item",
			"price": map[string]any{"id": price, "object": "price"}}}}}
}

func charge(id, pi, acct string, amount, refunded int64) map[string]any {
	return map[string]any{"id": id, "object": "charge", "amount": amount, "amount_refunded": refunded,
		"refunded": refunded >= amount, "currency": "usd", "payment_intent": pi,
		"metadata": map[string]string{"scrip_account_id": acct}}
}

func TestWebhookSignature(t *testing.T) {
	eachStore(t, func(t *testing.T, b backend) {
		f := newFixture(t, b, stripe.Config{})
		body, _ := json.Marshal(map[string]any{"id": "evt_bad", "object": "event", "api_version": apiVers, "type": "checkout.session.completed",
			"created": time.Now().Unix(), "data": map[string]any{"object": packSession("cs_bad", "acct_sig", "pi_bad")}})
		now := time.Now()
		cases := map[string]string{
			"missing":   "",
			"wrong key": webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_other", Timestamp: now}).Header,
			"too old":   webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: whsec, Timestamp: now.Add(-time.Hour)}).Header,
			"garbage":   "t=abc,v1=zz",
		}
		for name, sig := range cases {
			code, out := f.post(body, sig)
			if code != http.StatusBadRequest {
				t.Errorf("%s signature: status %d (%v), want 400", name, code, out)
			}
		}
		// A tampered body with a signature of the original.
		sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: whsec, Timestamp: now}).Header
		tampered := []byte(strings.Replace(string(body), `"amount_total":1000`, `"amount_total":1`, 1))
		if code, _ := f.post(tampered, sig); code != http.StatusBadRequest {
			t.Errorf("tampered body: status %d, want 400", code)
		}
		if _, err := f.eng.Account(context.Background(), "acct_sig"); scrip.ErrorCode(err) != scrip.EAccountNotFound {
			t.Errorf("a rejected webhook created the account: %v", err)
		}
		if _, err := b.stripe.ProcessedEvent(context.Background(), "evt_bad"); err == nil {
			t.Error("a rejected webhook was recorded")
		}
	})
}

func TestPackPurchaseExactlyOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, b backend) {
		f := newFixture(t, b, stripe.Config{})
		now := time.Now().Unix()
		out := f.mustSend("evt_1", "checkout.session.completed", now, packSession("cs_1", "acct_a", "pi_1"))
		if out["replayed"] != false {
			t.Errorf("first delivery replayed: %v", out)
		}
		// The same event again, and another event about the same session
		// (async_payment_succeeded), grant nothing more.
		out = f.mustSend("evt_1", "checkout.session.completed", now, packSession("cs_1", "acct_a", "pi_1"))
		if out["replayed"] != true {
			t.Errorf("replay not answered as one: %v", out)
		}
		f.mustSend("evt_2", "checkout.session.async_payment_succeeded", now, packSession("cs_1", "acct_a", "pi_1"))
		if got := f.available("acct_a"); got != credit.Credits(100) {
			t.Fatalf("available %s after one pack bought and replays, want 100", got)
		}
		bal, _ := f.eng.Balance(context.Background(), "acct_a")
		g := bal.Grants[0]
		if g.Kind != ledger.KindTopUp || g.PaidAmount != 1000 || g.PaidCurrency != "usd" || g.Source.ID != "cs_1" {
			t.Errorf("grant %+v: want a top_up paid 1000 usd from cs_1", g)
		}
		if evs := f.events("acct_a", event.PurchaseCompleted); len(evs) != 1 {
			t.Errorf("%d purchase.completed events, want 1", len(evs))
		}
		// An unpaid (asynchronous) checkout grants nothing yet.
		unpaid := packSession("cs_2", "acct_a", "pi_2")
		unpaid["payment_status"] = "unpaid"
		f.mustSend("evt_3", "checkout.session.completed", now, unpaid)
		if got := f.available("acct_a"); got != credit.Credits(100) {
			t.Errorf("unpaid checkout granted: available %s", got)
		}
		// Unknown event types are acknowledged and ignored.
		if out := f.mustSend("evt_4", "customer.created", now, map[string]any{"id": "cus_1", "object": "customer"}); !strings.HasPrefix(out["result"].(string), "ignored") {
			t.Errorf("unknown type: %v", out)
		}
	})
}

func TestSubscriptionLifecycle(t *testing.T) {
	eachStore(t, func(t *testing.T, b backend) {
		f := newFixture(t, b, stripe.Config{})
		ctx := context.Background()
		t0 := time.Now().Unix()
		// Reordered: the first invoice arrives before the checkout; the
		// subscription starts once and its first allowance is granted once.
		f.mustSend("evt_inv1", "invoice.paid", t0, invoice("in_1", "sub_1", "acct_s", "subscription_create", "price_pro", t0))
		f.mustSend("evt_cs", "checkout.session.completed", t0, subSession("cs_s", "acct_s", "sub_1", "pro"))
		f.mustSend("evt_inv1", "invoice.paid", t0, invoice("in_1", "sub_1", "acct_s", "subscription_create", "price_pro", t0))
		if got := f.available("acct_s"); got != credit.Credits(1000) {
			t.Fatalf("available %s after subscribing (reordered, replayed), want 1000", got)
		}
		if p, _ := f.subs.Plan(ctx, "acct_s"); p != "pro" {
			t.Fatalf("plan %q, want pro", p)
		}
		// A renewal, delivered twice, grants one more allowance.
		t1 := t0 + 30*86400
		f.mustSend("evt_inv2", "invoice.paid", t0+10, invoice("in_2", "sub_1", "acct_s", "subscription_cycle", "price_pro", t1))
		f.mustSend("evt_inv2b", "invoice.paid", t0+10, invoice("in_2", "sub_1", "acct_s", "subscription_cycle", "price_pro", t1))
		if got := f.available("acct_s"); got != credit.Credits(2000) {
			t.Fatalf("available %s after one renewal, want 2000", got)
		}
		if evs := f.events("acct_s", event.SubscriptionRenewed); len(evs) != 1 {
			t.Errorf("%d subscription.renewed events, want 1", len(evs))
		}
		// Payment fails, then the retried invoice is paid.
		f.mustSend("evt_fail", "invoice.payment_failed", t0+20, invoice("in_3", "sub_1", "acct_s", "subscription_cycle", "price_pro", t1+30*86400))
		if f.subs.status["acct_s"] != "past_due" {
			t.Errorf("status %q after payment_failed, want past_due", f.subs.status["acct_s"])
		}
		f.mustSend("evt_paid3", "invoice.paid", t0+30, invoice("in_3", "sub_1", "acct_s", "subscription_cycle", "price_pro", t1+30*86400))
		if f.subs.status["acct_s"] != "active" {
			t.Errorf("status %q after the invoice was paid, want active", f.subs.status["acct_s"])
		}
		// A stale payment_failed delivered late changes nothing.
		out := f.mustSend("evt_fail_late", "invoice.payment_failed", t0+25, invoice("in_3", "sub_1", "acct_s", "subscription_cycle", "price_pro", t1+30*86400))
		if f.subs.status["acct_s"] != "active" || !strings.Contains(out["result"].(string), "later event") {
			t.Errorf("late payment_failed applied: status %q, result %v", f.subs.status["acct_s"], out["result"])
		}
		// Plan change, then cancellation at period end, then resume.
		f.mustSend("evt_up1", "customer.subscription.updated", t0+40, subscription("sub_1", "acct_s", "price_max", "active", false))
		if p, _ := f.subs.Plan(ctx, "acct_s"); p != "max" {
			t.Errorf("plan %q after the update, want max", p)
		}
		// An older update delivered after the newer one is skipped.
		out = f.mustSend("evt_up0", "customer.subscription.updated", t0+35, subscription("sub_1", "acct_s", "price_pro", "active", false))
		if p, _ := f.subs.Plan(ctx, "acct_s"); p != "max" {
			t.Errorf("stale update applied: plan %q (%v)", p, out["result"])
		}
		f.mustSend("evt_up2", "customer.subscription.updated", t0+50, subscription("sub_1", "acct_s", "price_max", "active", true))
		if f.subs.status["acct_s"] != "canceling" {
			t.Errorf("status %q after cancel_at_period_end, want canceling", f.subs.status["acct_s"])
		}
		f.mustSend("evt_up3", "customer.subscription.updated", t0+60, subscription("sub_1", "acct_s", "price_max", "active", false))
		if f.subs.status["acct_s"] != "active" {
			t.Errorf("status %q after resume, want active", f.subs.status["acct_s"])
		}
		f.mustSend("evt_del", "customer.subscription.deleted", t0+70, subscription("sub_1", "acct_s", "price_max", "canceled", false))
		f.mustSend("evt_del", "customer.subscription.deleted", t0+70, subscription("sub_1", "acct_s", "price_max", "canceled", false))
		if f.subs.status["acct_s"] != "canceled" {
			t.Errorf("status %q after deletion, want canceled", f.subs.status["acct_s"])
		}
		changes := f.events("acct_s", event.SubscriptionChanged)
		if len(changes) != 5 { // past_due, plan, cancel_at_period_end, resumed, canceled
			t.Errorf("%d subscription.changed events, want 5", len(changes))
		}
		// The checkout and the first invoice both subscribe, and both
		// deliveries of the renewal renew, under the same keys: billing
		// applies each key once (the balances above show it).
		want := []string{"subscribe acct_s pro", "subscribe acct_s pro", "renew acct_s pro", "renew acct_s pro", "past_due acct_s", "renew acct_s pro", "paid acct_s",
			"change acct_s max", "cancel acct_s true", "resume acct_s", "cancel acct_s false"}
		if got := f.subs.Calls(); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("billing calls\n got %q\nwant %q", got, want)
		}
		// A renewal for a subscription scrip never saw is retried by Stripe.
		code, _ := f.send("evt_unknown", "invoice.paid", t0, invoice("in_9", "sub_9", "acct_s", "subscription_cycle", "price_pro", t0))
		if code != http.StatusInternalServerError {
			t.Errorf("renewal of an unknown subscription: status %d, want 500 (retry)", code)
		}
	})
}

func TestRefundAfterPartialSpend(t *testing.T) {
	for _, policy := range []stripe.RefundPolicy{stripe.RefundRevoke, stripe.RefundClawBack} {
		t.Run(string(policy), func(t *testing.T) {
			eachStore(t, func(t *testing.T, b backend) {
				f := newFixture(t, b, stripe.Config{RefundPolicy: policy})
				ctx := context.Background()
				now := time.Now().Unix()
				// Refund before the purchase: Stripe is asked to retry.
				if code, _ := f.send("evt_early", "charge.refunded", now, charge("ch_1", "pi_1", "acct_r", 1000, 1000)); code != http.StatusInternalServerError {
					t.Errorf("refund before purchase: status %d, want 500", code)
				}
				f.mustSend("evt_buy", "checkout.session.completed", now, packSession("cs_1", "acct_r", "pi_1"))
				if _, err := f.eng.Grant(ctx, ledger.GrantRequest{AccountID: "acct_r", Key: "promo", Kind: ledger.KindPromotional,
					Amount: credit.Credits(10), Priority: ptr(500)}); err != nil {
					t.Fatal(err)
				}
				// Spend 30 of the pack (promotional credits come last).
				if _, err := f.eng.Charge(ctx, ledger.ChargeRequest{AccountID: "acct_r", Key: "spend", Amount: credit.Credits(30)}); err != nil {
					t.Fatal(err)
				}
				// A partial refund is reported, not revoked.
				f.mustSend("evt_part", "charge.refunded", now, charge("ch_1", "pi_1", "acct_r", 1000, 300))
				if got := f.available("acct_r"); got != credit.Credits(80) {
					t.Fatalf("available %s after a partial refund, want 80", got)
				}
				f.mustSend("evt_full", "charge.refunded", now, charge("ch_1", "pi_1", "acct_r", 1000, 1000))
				f.mustSend("evt_full_again", "charge.refunded", now, charge("ch_1", "pi_1", "acct_r", 1000, 1000))
				wantAvail, clawed, outstanding := credit.Credits(10), credit.Amount(0), credit.Credits(30)
				if policy == stripe.RefundClawBack {
					wantAvail, clawed, outstanding = 0, credit.Credits(10), credit.Credits(20)
				}
				if got := f.available("acct_r"); got != wantAvail {
					t.Errorf("available %s after the refund, want %s", got, wantAvail)
				}
				evs := f.events("acct_r", event.PurchaseRefunded)
				if len(evs) != 2 {
					t.Fatalf("%d purchase.refunded events, want 2 (partial, full)", len(evs))
				}
				var full map[string]any
				for _, e := range evs {
					var d map[string]any
					json.Unmarshal(e.Data, &d)
					if d["partial"] == false {
						full = d
					}
				}
				if full["revoked"] != 70.0 || full["spent"] != 30.0 || fmt.Sprint(full["clawed_back"]) != clawed.String() || fmt.Sprint(full["outstanding"]) != outstanding.String() {
					t.Errorf("refund event %v: want revoked 70, spent 30, clawed back %s, outstanding %s", full, clawed, outstanding)
				}
				// A refund of a charge scrip did not sell is ignored.
				other := charge("ch_x", "pi_x", "", 500, 500)
				other["metadata"] = map[string]string{}
				if out := f.mustSend("evt_other", "charge.refunded", now, other); !strings.HasPrefix(out["result"].(string), "ignored") {
					t.Errorf("foreign refund: %v", out)
				}
			})
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestCheckout(t *testing.T) {
	url := stripemock.URL(t)
	if url == "" {
		t.SkipNow()
	}
	open := backends(t)[0]
	f := newFixture(t, open(t), stripe.Config{APIURL: url, SuccessURL: "https://app.example/billing/ok?a={account_id}",
		CancelURL: "https://app.example/billing"})
	ctx := context.Background()
	for _, req := range []httpapi.CheckoutRequest{
		{AccountID: "acct_c", Key: "k1", Mode: "pack", PackCode: "pack_100"},
		{AccountID: "acct_c", Key: "k2", Mode: "subscription", PlanCode: "pro"},
	} {
		sess, err := f.svc.Checkout(ctx, req)
		if err != nil {
			t.Fatalf("checkout %s: %v", req.Mode, err)
		}
		if sess.URL == "" || !strings.HasPrefix(sess.ID, "cs_") {
			t.Errorf("checkout %s: session %+v, want an id and a URL", req.Mode, sess)
		}
		b, _ := json.Marshal(sess)
		if !strings.Contains(string(b), `"checkout_url":`) {
			t.Errorf("session JSON %s has no checkout_url", b)
		}
	}
	f.subs.plan["acct_on_pro"] = "pro"
	bad := []struct {
		req  httpapi.CheckoutRequest
		code string
	}{
		{httpapi.CheckoutRequest{AccountID: "acct_c", Mode: "pack", PackCode: "pack_999"}, scrip.EInvalidParam},
		{httpapi.CheckoutRequest{AccountID: "acct_c", Mode: "pack", PackCode: "pack_nostripe"}, scrip.EInvalidParam},
		{httpapi.CheckoutRequest{AccountID: "acct_c", Mode: "subscription", PlanCode: "gold"}, scrip.EInvalidParam},
		{httpapi.CheckoutRequest{AccountID: "acct_c", Mode: "subscription", PlanCode: "free"}, scrip.EInvalidParam},
		{httpapi.CheckoutRequest{AccountID: "acct_on_pro", Mode: "subscription", PlanCode: "pro"}, scrip.EConflict},
		{httpapi.CheckoutRequest{AccountID: "acct_on_pro", Mode: "subscription", PlanCode: "max"}, scrip.EConflict},
		{httpapi.CheckoutRequest{AccountID: "acct_c", Mode: "gift"}, scrip.EInvalidParam},
		{httpapi.CheckoutRequest{AccountID: "acct_c", Mode: "pack", PackCode: "pack_100", SuccessURL: "javascript:alert(1)"}, scrip.EInvalidParam},
	}
	for _, c := range bad {
		_, err := f.svc.Checkout(ctx, c.req)
		if scrip.ErrorCode(err) != c.code {
			t.Errorf("checkout %+v: error %v (code %q), want code %q", c.req, err, scrip.ErrorCode(err), c.code)
		}
	}
}

func TestNotConfigured(t *testing.T) {
	if (&stripe.Config{SecretKey: "sk"}).Enabled() {
		t.Error("payments enabled without a webhook secret")
	}
	if _, err := stripe.New(stripe.Options{}); err == nil {
		t.Error("New without keys succeeded")
	}
}

// FuzzWebhook sends signed events with arbitrary objects: the handler must
// answer 200 or 500 (retry), never panic, and never grant to no account.
func FuzzWebhook(f *testing.F) {
	// The fixture lives as long as the process: fuzzing runs the target
	// in worker processes after F's cleanups.
	dir, err := os.MkdirTemp("", "scrip-fuzz-")
	if err != nil {
		f.Fatal(err)
	}
	s, err := sqlite.Open(filepath.Join(dir, "scrip.db"))
	if err != nil {
		f.Fatal(err)
	}
	fx := newFixture(keep{f}, backend{"sqlite", s, s.StripeStore(), s.Outbox()}, stripe.Config{})
	types := []string{"checkout.session.completed", "invoice.paid", "invoice.payment_failed",
		"customer.subscription.updated", "customer.subscription.deleted", "charge.refunded", "other"}
	seeds := []any{packSession("cs_f", "acct_f", "pi_f"), subSession("cs_g", "acct_f", "sub_f", "pro"),
		invoice("in_f", "sub_f", "acct_f", "subscription_cycle", "price_pro", 1), subscription("sub_f", "acct_f", "price_max", "active", true),
		charge("ch_f", "pi_f", "acct_f", 10, 10)}
	for i, obj := range seeds {
		b, _ := json.Marshal(obj)
		f.Add(uint8(i), b)
	}
	f.Add(uint8(0), []byte(`{"mode":"payment","payment_status":"paid","client_reference_id":"","metadata":{"scrip_credits":"-5"}}`))
	f.Add(uint8(5), []byte(`{"payment_intent":{"id":"pi_f"},"refunded":true}`))
	n := 0
	f.Fuzz(func(t *testing.T, typ uint8, obj []byte) {
		var raw json.RawMessage
		if json.Unmarshal(obj, &raw) != nil {
			return
		}
		n++
		fx.t = t
		code, out := fx.send(fmt.Sprintf("evt_fuzz_%d", n), types[int(typ)%len(types)], time.Now().Unix(), raw)
		if code != http.StatusOK && code != http.StatusInternalServerError {
			t.Fatalf("status %d (%v)", code, out)
		}
	})
}

// keep is a testing.TB whose cleanups never run.
type keep struct{ testing.TB }

func (keep) Cleanup(func()) {}
