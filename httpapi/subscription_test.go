package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/scriphq/scrip/billing"
	"github.com/scriphq/scrip/examples/catalogs"
)

// billingAPITests run on every backend with billing on the same store, as
// scrip serve runs it.
var billingAPITests = []struct {
	name string
	run  func(t *testing.T, e *env)
}{
	{"subscription lifecycle", testSubscription},
	{"subscription auth", testSubscriptionAuth},
	{"plan gates from the subscription", testPlanGates},
	{"quota usage in the subscription", testSubscriptionQuotas},
	{"unlimited plan usage", testUnlimitedUsage},
	{"scheduler metrics", testSchedulerMetrics},
}

func testSubscription(t *testing.T, e *env) {
	e.account("u1", 0)
	e.expect(e.get("/v1/accounts/u1/subscription", e.read), 404, "not_found")
	e.expect(e.get("/v1/accounts/nobody/subscription", e.read), 404, "account_not_found")
	e.expect(e.post("/v1/accounts/nobody/subscription", e.admin, "s0", map[string]any{"plan": "basic"}), 404, "account_not_found")
	// An id no store can hold is refused, not sent to the database.
	e.expect(e.post("/v1/accounts/nul%00/subscription", e.admin, "s0", map[string]any{"plan": "basic"}), 400, "invalid")
	e.expect(e.get("/v1/accounts/nul%00/subscription", e.read), 404, "account_not_found")
	e.expect(e.post("/v1/accounts/u1/subscription", e.admin, "s0", map[string]any{"plan": "gold"}), 404, "plan_not_found")
	e.expect(e.post("/v1/accounts/u1/subscription", e.admin, "s0", map[string]any{}), 400, "invalid_param")
	e.expect(e.post("/v1/accounts/u1/subscription", e.admin, "s0", map[string]any{"plan_code": "basic"}), 400, "unknown_field")

	s := e.post("/v1/accounts/u1/subscription", e.admin, "s1", map[string]any{"plan": "basic"})
	e.expect(s, 200, "")
	if s.str("object") != "subscription" || s.str("plan") != "basic" || s.str("status") != "active" ||
		s.str("plan_name") != "Basic" || s.str("renews_at") != "2025-07-01T12:00:00Z" || s.body["cancel_at_period_end"] != false {
		t.Fatalf("subscribe: %s", s.raw)
	}
	id := s.str("id")
	if e.available("u1") != "1500" {
		t.Fatalf("available %s after subscribing to basic, want 1500", e.available("u1"))
	}
	// A replay changes nothing.
	again := e.post("/v1/accounts/u1/subscription", e.admin, "s1", map[string]any{"plan": "basic"})
	e.expect(again, 200, "")
	if again.str("id") != id || e.available("u1") != "1500" {
		t.Fatalf("replayed subscribe: %s", again.raw)
	}
	g := e.get("/v1/accounts/u1/subscription", e.read)
	e.expect(g, 200, "")
	if g.str("id") != id || g.str("plan") != "basic" {
		t.Fatalf("get: %s", g.raw)
	}
	bc := e.get("/v1/accounts/u1/billing-catalog", e.read)
	e.expect(bc, 200, "")
	sub, _ := bc.body["subscription"].(map[string]any)
	if sub["id"] != id || sub["plan"] != "basic" || sub["object"] != "subscription" {
		t.Fatalf("billing-catalog subscription: %s", bc.raw)
	}
	if w := bc.body["wallet"].(map[string]any); w["available_total"].(json.Number).String() != "1500" {
		t.Fatalf("billing-catalog wallet: %s", bc.raw)
	}

	// An upgrade takes effect at once and carries the unspent credits.
	up := e.post("/v1/accounts/u1/subscription", e.admin, "s2", map[string]any{"plan": "pro"})
	e.expect(up, 200, "")
	if up.str("id") != id || up.str("plan") != "pro" || up.num("cycle") != "2" {
		t.Fatalf("upgrade: %s", up.raw)
	}
	if got := e.available("u1"); got != "5500" {
		t.Fatalf("available %s after the upgrade, want 5500 (1500 carried + 4000)", got)
	}
	// A downgrade waits for the period end.
	down := e.post("/v1/accounts/u1/subscription", e.admin, "s3", map[string]any{"plan": "basic"})
	e.expect(down, 200, "")
	if down.str("plan") != "pro" || down.str("pending_plan") != "basic" {
		t.Fatalf("downgrade: %s", down.raw)
	}

	// Cancel at the period end by default; resume undoes it.
	c := e.post("/v1/accounts/u1/subscription/cancel", e.admin, "", nil)
	e.expect(c, 200, "")
	if c.str("status") != "active" || c.body["cancel_at_period_end"] != true || c.body["renews_at"] != nil {
		t.Fatalf("cancel: %s", c.raw)
	}
	r := e.post("/v1/accounts/u1/subscription/resume", e.admin, "", nil)
	e.expect(r, 200, "")
	if r.body["cancel_at_period_end"] != false {
		t.Fatalf("resume: %s", r.raw)
	}
	e.expect(e.post("/v1/accounts/u1/subscription/cancel", e.admin, "", map[string]any{"at_period_end": "soon"}), 400, "invalid_param")
	now := e.post("/v1/accounts/u1/subscription/cancel", e.admin, "", map[string]any{"at_period_end": false})
	e.expect(now, 200, "")
	if now.str("status") != "canceled" || now.str("canceled_at") == "" {
		t.Fatalf("cancel now: %s", now.raw)
	}
	e.expect(e.post("/v1/accounts/u1/subscription/resume", e.admin, "", nil), 409, "conflict")
	// Subscribing again after the end starts a new subscription.
	re := e.post("/v1/accounts/u1/subscription", e.admin, "s4", map[string]any{"plan": "basic"})
	e.expect(re, 200, "")
	if re.str("id") == id || re.str("status") != "active" {
		t.Fatalf("resubscribe: %s", re.raw)
	}
	e.expect(e.post("/v1/accounts/u2/subscription/cancel", e.admin, "", nil), 404, "account_not_found")
	e.account("u2", 0)
	e.expect(e.post("/v1/accounts/u2/subscription/cancel", e.admin, "", nil), 404, "not_found")
	e.expect(e.post("/v1/accounts/u2/subscription/resume", e.admin, "", nil), 404, "not_found")
}

func testSubscriptionAuth(t *testing.T, e *env) {
	e.account("u1", 0)
	e.account("u2", 0)
	e.expect(e.post("/v1/accounts/u1/subscription", e.admin, "s1", map[string]any{"plan": "basic"}), 200, "")
	// Mutations are for admin keys.
	for _, path := range []string{"/v1/accounts/u1/subscription", "/v1/accounts/u1/subscription/cancel", "/v1/accounts/u1/subscription/resume"} {
		e.expect(e.post(path, e.charge, "x", map[string]any{"plan": "pro"}), 403, "forbidden")
		e.expect(e.post(path, e.read, "x", map[string]any{"plan": "pro"}), 403, "forbidden")
	}
	// Reading takes the read scope, or the account's own token.
	e.expect(e.get("/v1/accounts/u1/subscription", e.read), 200, "")
	tok := e.post("/v1/accounts/u1/tokens", e.read, "", nil).str("token")
	e.expect(e.get("/v1/accounts/u1/subscription", tok), 200, "")
	e.expect(e.get("/v1/accounts/u2/subscription", tok), 403, "forbidden")
	e.expect(e.post("/v1/accounts/u1/subscription/cancel", tok, "", nil), 403, "forbidden")
	e.expect(e.get("/v1/accounts/u1/subscription", ""), 401, "unauthorized")
}

func testPlanGates(t *testing.T, e *env) {
	e.account("u1", 0)
	e.expect(e.post("/v1/accounts/u1/charges", e.charge, "c0", map[string]any{"action": "flux-pro"}), 403, "plan_required")
	e.expect(e.post("/v1/accounts/u1/subscription", e.admin, "s1", map[string]any{"plan": "basic"}), 200, "")
	// Basic is below Pro+, and a plan in the request does not lift the gate.
	e.expect(e.post("/v1/accounts/u1/charges", e.charge, "c1", map[string]any{"action": "flux-pro", "plan": "premium"}), 403, "plan_required")
	e.expect(e.post("/v1/accounts/u1/subscription", e.admin, "s2", map[string]any{"plan": "pro"}), 200, "")
	c := e.post("/v1/accounts/u1/charges", e.charge, "c2", map[string]any{"action": "flux-pro"})
	e.expect(c, 200, "")
	if q := c.body["quote"].(map[string]any); q["plan"] != "pro" {
		t.Fatalf("charge not priced under the account's plan: %s", c.raw)
	}
	// Quotes price under the account's plan unless they ask for another.
	e.expect(e.post("/v1/quotes", e.read, "", map[string]any{"action": "flux-pro", "account_id": "u1"}), 200, "")
	// After an immediate cancellation the gate applies again.
	e.expect(e.post("/v1/accounts/u1/subscription/cancel", e.admin, "", map[string]any{"at_period_end": false}), 200, "")
	e.expect(e.post("/v1/accounts/u1/charges", e.charge, "c3", map[string]any{"action": "flux-pro"}), 403, "plan_required")
}

func testSubscriptionQuotas(t *testing.T, e *env) {
	e.account("u1", 0)
	e.expect(e.post("/v1/accounts/u1/subscription", e.admin, "s1", map[string]any{"plan": "basic"}), 200, "")
	if _, err := e.billing.ReserveQuota(t.Context(), billing.QuotaRequest{AccountID: "u1", Quota: "sites", Key: "site-1"}); err != nil {
		t.Fatal(err)
	}
	g := e.get("/v1/accounts/u1/subscription", e.read)
	e.expect(g, 200, "")
	qs, _ := g.body["quotas"].([]any)
	if len(qs) != 1 {
		t.Fatalf("quotas: %s", g.raw)
	}
	q := qs[0].(map[string]any)
	if q["quota"] != "sites" || q["limit"].(json.Number).String() != "2" || q["used"].(json.Number).String() != "1" {
		t.Fatalf("quota usage: %s", g.raw)
	}
}

// testUnlimitedUsage: on VideoDraft's Visionary plan speech is unlimited;
// it is held, captured and charged at zero credits and recorded at its list
// price.
func testUnlimitedUsage(t *testing.T, e *env) {
	writeCatalog(t, e.catFile, "videodraft.yaml")
	e.expect(e.post("/v1/admin/catalog/reload", e.admin, "", nil), 200, "")
	e.account("u1", 0)
	e.expect(e.post("/v1/accounts/u1/subscription", e.admin, "s1", map[string]any{"plan": "visionary"}), 200, "")
	before := e.available("u1")
	speech := map[string]any{"action": "google-text-to-speech", "params": map[string]any{"characters": 600}}

	h := e.post("/v1/accounts/u1/holds", e.charge, "h1", speech)
	e.expect(h, 200, "")
	q := h.body["quote"].(map[string]any)
	if h.num("amount") != "0" || q["unlimited"] != true || q["credits"].(json.Number).String() != "0" || q["list_credits"].(json.Number).String() != "6" {
		t.Fatalf("unlimited hold: %s", h.raw)
	}
	if md := h.body["ref"].(map[string]any)["metadata"].(map[string]any); md["scrip.list_credits"] != "6" || md["scrip.credits"] != "0" {
		t.Fatalf("hold metadata: %s", h.raw)
	}
	c := e.post("/v1/holds/"+h.str("id")+"/capture", e.charge, "h1-capture", map[string]any{"params": map[string]any{"characters": 2000}})
	e.expect(c, 200, "")
	// At zero credits the capture makes no charge; its transaction records
	// the usage at the list price of the actual parameters.
	if c.str("status") != "captured" || c.num("creditsUsed") != "0" || c.body["charge"] != nil {
		t.Fatalf("unlimited capture: %s", c.raw)
	}
	txs := e.get("/v1/accounts/u1/transactions?type=capture", e.read)
	e.expect(txs, 200, "")
	tx := txs.body["data"].([]any)[0].(map[string]any)
	if md := tx["ref"].(map[string]any)["metadata"].(map[string]any); md["scrip.list_credits"] != "20" || tx["amount"].(json.Number).String() != "0" {
		t.Fatalf("capture transaction: %s", txs.raw)
	}
	one := e.post("/v1/accounts/u1/charges", e.charge, "c1", speech)
	e.expect(one, 200, "")
	if one.num("creditsUsed") != "0" || one.body["ref"].(map[string]any)["metadata"].(map[string]any)["scrip.list_credits"] != "6" {
		t.Fatalf("unlimited charge: %s", one.raw)
	}
	if got := e.available("u1"); got != before {
		t.Fatalf("available %s after unlimited usage, want %s", got, before)
	}
	// The usage is in the history.
	hist := e.get("/v1/accounts/u1/transactions?type=charge&type=capture", e.read)
	e.expect(hist, 200, "")
	if n := len(hist.body["data"].([]any)); n != 2 {
		t.Fatalf("%d usage transactions, want 2: %s", n, hist.raw)
	}
	// Images are not unlimited on Visionary.
	img := e.post("/v1/accounts/u1/charges", e.charge, "c2", map[string]any{"action": "flux-schnell"})
	e.expect(img, 200, "")
	if img.num("creditsUsed") != "5" {
		t.Fatalf("image on visionary: %s", img.raw)
	}
}

func testSchedulerMetrics(t *testing.T, e *env) {
	e.account("u1", 0)
	e.expect(e.post("/v1/accounts/u1/subscription", e.admin, "s1", map[string]any{"plan": "basic"}), 200, "")
	sched := e.billing.NewScheduler(billing.SchedulerOptions{Observe: e.metrics.ObserveTick})
	e.clock.Advance(31 * 24 * time.Hour)
	if _, err := sched.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	g := e.get("/v1/accounts/u1/subscription", e.read)
	if g.num("cycle") != "2" {
		t.Fatalf("not renewed: %s", g.raw)
	}
	m := string(e.get("/metrics", e.read).raw)
	for _, s := range []string{`scrip_billing_renewals_total{result="ok"} 1`, "scrip_billing_due 0",
		"scrip_billing_tick_duration_seconds_count 1", "scrip_billing_expired_total 1"} {
		if !strings.Contains(m, s) {
			t.Errorf("/metrics lacks %q", s)
		}
	}
}

// testReplayAfterReload: a replay returns the first result even after a
// reload changed the price; another request under the key is a conflict.
func testReplayAfterReload(t *testing.T, e *env) {
	e.account("u1", 1000)
	first := e.post("/v1/accounts/u1/charges", e.charge, "c1", map[string]any{"action": "upscale", "job": "j1"})
	e.expect(first, 200, "")
	h := e.post("/v1/accounts/u1/holds", e.charge, "h1", map[string]any{"action": "veo-3-1-standard", "params": map[string]any{"duration": 8}})
	e.expect(h, 200, "")
	capBody := map[string]any{"params": map[string]any{"duration": 5}}
	cp := e.post("/v1/holds/"+h.str("id")+"/capture", e.charge, "cp1", capBody)
	e.expect(cp, 200, "")
	if first.num("creditsUsed") != "4" || h.num("amount") != "256" || cp.num("creditsUsed") != "160" {
		t.Fatalf("before the reload:\n%s\n%s\n%s", first.raw, h.raw, cp.raw)
	}

	b, err := catalogs.FS.ReadFile("site-builder.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(b), "      upscale: {type: integer, values: [2, 4], default: 2}\n    price: 4\n",
		"      upscale: {type: integer, values: [2, 4], default: 2}\n    price: 7\n", 1)
	y = strings.Replace(y, "per: {param: duration, unit: second, rate: 32}", "per: {param: duration, unit: second, rate: 40}", 1)
	if y == string(b) {
		t.Fatal("catalog edit did not apply")
	}
	writeFile(t, e.catFile, []byte(y))
	r := e.post("/v1/admin/catalog/reload", e.admin, "", nil)
	e.expect(r, 200, "")
	if q := e.post("/v1/quotes", e.read, "", map[string]any{"action": "upscale"}); q.num("credits") != "7" {
		t.Fatalf("new price: %s", q.raw)
	}

	again := e.post("/v1/accounts/u1/charges", e.charge, "c1", map[string]any{"action": "upscale", "job": "j1"})
	e.expect(again, 200, "")
	if again.str("id") != first.str("id") || again.body["replayed"] != true || again.num("creditsUsed") != "4" || again.body["quote"] != nil {
		t.Fatalf("replayed charge after the reload:\n%s\n%s", first.raw, again.raw)
	}
	hAgain := e.post("/v1/accounts/u1/holds", e.charge, "h1", map[string]any{"action": "veo-3-1-standard", "params": map[string]any{"duration": 8}})
	e.expect(hAgain, 200, "")
	if hAgain.str("id") != h.str("id") || hAgain.num("amount") != "256" || hAgain.body["replayed"] != true {
		t.Fatalf("replayed hold after the reload: %s", hAgain.raw)
	}
	cpAgain := e.post("/v1/holds/"+h.str("id")+"/capture", e.charge, "cp1", capBody)
	e.expect(cpAgain, 200, "")
	if cpAgain.num("creditsUsed") != "160" || cpAgain.body["replayed"] != true {
		t.Fatalf("replayed capture after the reload: %s", cpAgain.raw)
	}
	// Another request under a used key is still a conflict.
	e.expect(e.post("/v1/accounts/u1/charges", e.charge, "c1", map[string]any{"action": "upscale", "job": "j2"}), 409, "idempotency_conflict")
	e.expect(e.post("/v1/accounts/u1/charges", e.charge, "c1", map[string]any{"action": "upscale", "job": "j1", "params": map[string]any{"upscale": 4}}), 409, "idempotency_conflict")
	e.expect(e.post("/v1/holds/"+h.str("id")+"/capture", e.charge, "cp1", map[string]any{"params": map[string]any{"duration": 6}}), 409, "idempotency_conflict")
	if got := e.available("u1"); got != "836" {
		t.Fatalf("available %s, want 836 (1000 - 4 - 160)", got)
	}
	// A new key pays the new price.
	n := e.post("/v1/accounts/u1/charges", e.charge, "c2", map[string]any{"action": "upscale", "job": "j1"})
	e.expect(n, 200, "")
	if n.num("creditsUsed") != "7" {
		t.Fatalf("charge at the new price: %s", n.raw)
	}
}
