package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/scriphq/scrip/httpapi"
	"github.com/scriphq/scrip/postgres"
	"github.com/scriphq/scrip/postgres/pgtest"
	"github.com/scriphq/scrip/stripe/stripemock"
)

const (
	testWebhookSecret = "whsec_test_0123456789abcdef"
	testAdminKey      = "admin_secret_for_tests_0123456789"
	testAPIVersion    = "2026-03-25.dahlia"
)

const testCatalog = `
name: Payments test
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
packs:
  - code: pack_100
    name: 100 credits
    credits: 100
    price: {amount: 1000, currency: usd}
    stripe_price: price_pack_100
`

// running is scrip serve's wiring on a fresh store, behind a test server.
type running struct {
	t     *testing.T
	app   *server
	store store
	url   string
}

// startServe wires scrip serve as the serve command does, from its flags.
func startServe(t *testing.T, databaseURL string, args ...string) (*running, error) {
	t.Helper()
	catFile := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(catFile, []byte(testCatalog), 0o644); err != nil {
		t.Fatal(err)
	}
	var c serveConfig
	cmd := &cobra.Command{}
	addServeFlags(cmd, &c)
	args = append([]string{"--database-url", databaseURL, "--catalog", catFile, "--admin-key", testAdminKey,
		"--billing-tick", "50ms"}, args...)
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, _, err := openStore(ctx, c.databaseURL, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	metrics, err := httpapi.NewMetrics(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	app, err := newServer(ctx, c, st, slog.New(slog.DiscardHandler), metrics)
	if err != nil {
		return nil, err
	}
	srv := httptest.NewServer(app.api)
	stop := app.start(ctx)
	// Stopped in serve's order: background work, requests, write queue.
	t.Cleanup(func() {
		stop()
		srv.Close()
		app.close(5 * time.Second)
	})
	return &running{t: t, app: app, store: st, url: srv.URL}, nil
}

func (r *running) do(method, path, key string, body any, header map[string]string) (int, map[string]any) {
	r.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = strings.NewReader(string(b))
	default:
		j, _ := json.Marshal(b)
		rd = strings.NewReader(string(j))
	}
	req, _ := http.NewRequest(method, r.url+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	d := json.NewDecoder(resp.Body)
	d.UseNumber()
	d.Decode(&out)
	return resp.StatusCode, out
}

func (r *running) must(status int, method, path string, body any) map[string]any {
	r.t.Helper()
	code, out := r.do(method, path, testAdminKey, body, nil)
	if code != status {
		r.t.Fatalf("%s %s: status %d, want %d: %v", method, path, code, status, out)
	}
	return out
}

// webhook posts a Stripe event signed with the webhook secret.
func (r *running) webhook(id, typ string, obj any) (int, map[string]any) {
	r.t.Helper()
	payload, err := json.Marshal(map[string]any{"id": id, "object": "event", "api_version": testAPIVersion,
		"created": time.Now().Unix(), "type": typ, "data": map[string]any{"object": obj}})
	if err != nil {
		r.t.Fatal(err)
	}
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: testWebhookSecret, Timestamp: time.Now()})
	return r.do(http.MethodPost, "/v1/webhooks/stripe", "", sp.Payload, map[string]string{"Stripe-Signature": sp.Header})
}

func (r *running) mustWebhook(id, typ string, obj any) map[string]any {
	r.t.Helper()
	code, out := r.webhook(id, typ, obj)
	if code != http.StatusOK {
		r.t.Fatalf("webhook %s %s: status %d: %v", typ, id, code, out)
	}
	return out
}

func (r *running) available(acct string) string {
	r.t.Helper()
	return string(r.must(http.StatusOK, http.MethodGet, "/v1/accounts/"+acct+"/balance", nil)["available"].(json.Number))
}

// grants returns the account's grants by kind.
func (r *running) grants(acct string) map[string]int {
	r.t.Helper()
	out := map[string]int{}
	for _, g := range r.must(http.StatusOK, http.MethodGet, "/v1/accounts/"+acct+"/balance", nil)["grants"].([]any) {
		out[g.(map[string]any)["kind"].(string)]++
	}
	return out
}

func packSession(id, acct string) map[string]any {
	return map[string]any{"id": id, "object": "checkout.session", "mode": "payment", "payment_status": "paid",
		"status": "complete", "client_reference_id": acct, "amount_total": 1000, "currency": "usd", "payment_intent": "pi_" + id,
		"metadata": map[string]string{"scrip_account_id": acct, "scrip_pack_code": "pack_100", "scrip_credits": "100"}}
}

func subSession(id, acct, sub string) map[string]any {
	return map[string]any{"id": id, "object": "checkout.session", "mode": "subscription", "payment_status": "paid",
		"status": "complete", "client_reference_id": acct, "amount_total": 2000, "currency": "usd", "subscription": sub,
		"metadata": map[string]string{"scrip_account_id": acct, "scrip_plan_code": "pro"}}
}

func firstInvoice(id, sub, acct string) map[string]any {
	start := time.Now().Unix()
	return map[string]any{"id": id, "object": "invoice", "billing_reason": "subscription_create", "amount_paid": 2000,
		"currency": "usd", "status": "paid", "period_start": start, "period_end": start + 30*86400,
		"parent": map[string]any{"type": "subscription_details", "subscription_details": map[string]any{
			"subscription": sub, "metadata": map[string]string{"scrip_account_id": acct, "scrip_plan_code": "pro"}}},
		"lines": map[string]any{"object": "list", "data": []any{map[string]any{"id": "il_" + id, "object": "line_item",
			"period":  map[string]any{"start": start, "end": start + 30*86400},
			"pricing": map[string]any{"type": "price_details", "price_details": map[string]any{"price": "price_pro", "product": "prod_1"}}}}}}
}

// databases are the stores scrip serve runs on.
var databases = []struct {
	name string
	url  func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "scrip.db") }},
	{"postgres", func(t *testing.T) string { return pgtest.URL(t) }},
}

// TestServePayments runs payments end to end through serve's wiring: a
// signed pack checkout grants top-up credits once however often it is
// delivered, and a subscription checkout with its first invoice grants
// one cycle's allowance.
func TestServePayments(t *testing.T) {
	mock := stripemock.URL(t)
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"--stripe-secret-key", "sk_test_123", "--stripe-webhook-secret", testWebhookSecret,
				"--stripe-success-url", "https://app.example/billing/ok", "--stripe-cancel-url", "https://app.example/billing"}
			if mock != "" {
				args = append(args, "--stripe-api-url", mock)
			}
			r, err := startServe(t, db.url(t), args...)
			if err != nil {
				t.Fatal(err)
			}
			if r.app.payments == nil {
				t.Fatal("payments are off with both Stripe keys set")
			}
			r.must(http.StatusCreated, http.MethodPost, "/v1/accounts", map[string]any{"id": "acct_e2e"})

			if mock != "" {
				for _, body := range []map[string]any{
					{"checkout_mode": "pack", "pack_code": "pack_100"},
					{"checkout_mode": "subscription", "plan_code": "pro"},
				} {
					out := r.must(http.StatusOK, http.MethodPost, "/v1/accounts/acct_e2e/checkout", body)
					if u, _ := out["checkout_url"].(string); u == "" {
						t.Errorf("checkout %v: no checkout_url in %v", body, out)
					}
				}
			}

			// A webhook without a valid signature applies nothing.
			if code, _ := r.do(http.MethodPost, "/v1/webhooks/stripe", "", []byte(`{"id":"evt_x"}`), map[string]string{"Stripe-Signature": "t=1,v1=00"}); code != http.StatusBadRequest {
				t.Errorf("unsigned webhook: status %d, want 400", code)
			}

			// A pack: one top_up grant, however often delivered.
			if out := r.mustWebhook("evt_pack", "checkout.session.completed", packSession("cs_pack", "acct_e2e")); out["replayed"] != false {
				t.Errorf("first delivery: %v", out)
			}
			if got := r.available("acct_e2e"); got != "100" {
				t.Fatalf("available %s after buying a pack, want 100", got)
			}
			if out := r.mustWebhook("evt_pack", "checkout.session.completed", packSession("cs_pack", "acct_e2e")); out["replayed"] != true {
				t.Errorf("replay not answered as one: %v", out)
			}
			r.mustWebhook("evt_pack_async", "checkout.session.async_payment_succeeded", packSession("cs_pack", "acct_e2e"))
			if got, g := r.available("acct_e2e"), r.grants("acct_e2e"); got != "100" || g["top_up"] != 1 {
				t.Fatalf("after replays: available %s, grants %v; want 100 in one top_up grant", got, g)
			}

			// A plan: the checkout and its first invoice subscribe once.
			r.mustWebhook("evt_sub", "checkout.session.completed", subSession("cs_sub", "acct_e2e", "sub_e2e"))
			r.mustWebhook("evt_inv", "invoice.paid", firstInvoice("in_e2e", "sub_e2e", "acct_e2e"))
			r.mustWebhook("evt_inv", "invoice.paid", firstInvoice("in_e2e", "sub_e2e", "acct_e2e"))
			if got, g := r.available("acct_e2e"), r.grants("acct_e2e"); got != "1100" || g["subscription"] != 1 {
				t.Fatalf("after subscribing: available %s, grants %v; want 1100 with one subscription grant", got, g)
			}
			sub := r.must(http.StatusOK, http.MethodGet, "/v1/accounts/acct_e2e/subscription", nil)
			if sub["plan"] != "pro" || sub["status"] != "active" || sub["external_id"] != "sub_e2e" || string(sub["cycle"].(json.Number)) != "1" {
				t.Errorf("subscription %v: want pro, active, sub_e2e, cycle 1", sub)
			}

			// The outbox has the purchases, over the admin routes only.
			evs := r.must(http.StatusOK, http.MethodGet, "/v1/events?account_id=acct_e2e&type=purchase.completed", nil)
			if n := len(evs["data"].([]any)); n != 2 {
				t.Errorf("%d purchase.completed events, want 2: %v", n, evs)
			}
			if code, _ := r.do(http.MethodGet, "/v1/events", "", nil, nil); code != http.StatusUnauthorized {
				t.Errorf("events without credentials: status %d, want 401", code)
			}
			r.must(http.StatusOK, http.MethodGet, "/v1/admin/verify", nil)
		})
	}
}

// TestServeWithoutPayments: without Stripe keys checkout answers 503 and
// no webhook is mounted; one key alone is refused at startup.
func TestServeWithoutPayments(t *testing.T) {
	r, err := startServe(t, filepath.Join(t.TempDir(), "scrip.db"))
	if err != nil {
		t.Fatal(err)
	}
	r.must(http.StatusCreated, http.MethodPost, "/v1/accounts", map[string]any{"id": "acct_off"})
	code, out := r.do(http.MethodPost, "/v1/accounts/acct_off/checkout", testAdminKey, map[string]any{"checkout_mode": "pack", "pack_code": "pack_100"}, nil)
	if code != http.StatusServiceUnavailable || out["code"] != "payments_not_configured" {
		t.Errorf("checkout without payments: %d %v, want 503 payments_not_configured", code, out)
	}
	if code, _ := r.webhook("evt_off", "checkout.session.completed", packSession("cs_off", "acct_off")); code != http.StatusNotFound {
		t.Errorf("webhook without payments: status %d, want 404", code)
	}
	// The outbox's routes are there without payments.
	r.must(http.StatusOK, http.MethodGet, "/v1/event-endpoints", nil)

	if _, err := startServe(t, filepath.Join(t.TempDir(), "scrip.db"), "--stripe-secret-key", "sk_test_123"); err == nil ||
		!strings.Contains(err.Error(), "SCRIP_STRIPE_WEBHOOK_SECRET") {
		t.Errorf("one Stripe key alone: error %v, want one naming the missing key", err)
	}
	if _, err := startServe(t, filepath.Join(t.TempDir(), "scrip.db"), "--stripe-secret-key", "sk_test_123",
		"--stripe-webhook-secret", testWebhookSecret, "--stripe-refund-policy", "keep"); err == nil {
		t.Error("an unknown refund policy was accepted")
	}
}

// TestServeRoutesDocumented: every authenticated route serve mounts is in
// openapi.json.
func TestServeRoutesDocumented(t *testing.T) {
	r, err := startServe(t, filepath.Join(t.TempDir(), "scrip.db"), "--stripe-secret-key", "sk_test_123", "--stripe-webhook-secret", testWebhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(r.url + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	routes := append(r.app.api.Routes(), "POST /v1/webhooks/stripe")
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt, " ")
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("route %s is not in openapi.json", rt)
		}
	}
}
