package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// apiTests run on every backend.
var apiTests = []struct {
	name string
	run  func(t *testing.T, e *env)
}{
	{"auth", testAuth},
	{"account token", testAccountToken},
	{"accounts and balance", testAccounts},
	{"insufficient credits", testInsufficient},
	{"bad input", testBadInput},
	{"hold capture release", testHoldLifecycle},
	{"capture by params", testCaptureByParams},
	{"idempotency", testIdempotency},
	{"charge and refund", testChargeRefund},
	{"quotes and catalog", testQuotes},
	{"history", testHistory},
	{"adjust and revoke", testAdjustRevoke},
	{"billing catalog", testBillingCatalog},
	{"catalog reload", testReload},
	{"replay across catalog reloads", testReplayAfterReload},
	{"admin", testAdmin},
}

func TestAPI(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for _, tt := range apiTests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					tt.run(t, newEnv(t, b.open))
				})
			}
			for _, tt := range billingAPITests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					tt.run(t, newEnv(t, b.open, withBilling()))
				})
			}
		})
	}
}

func testAuth(t *testing.T, e *env) {
	e.account("u1", 100)
	// No credentials: 401 everywhere but health, readiness and the document.
	e.expect(e.get("/v1/accounts/u1/balance", ""), 401, "unauthorized")
	e.expect(e.get("/v1/accounts/u1/balance", "sk_nope_nope"), 401, "unauthorized")
	e.expect(e.get("/v1/accounts/u1/balance", e.read+"x"), 401, "unauthorized")
	e.expect(e.get("/metrics", ""), 401, "unauthorized")
	for _, p := range []string{"/healthz", "/readyz", "/openapi.json"} {
		e.expect(e.get(p, ""), 200, "")
	}
	// Wrong scope: 403.
	e.expect(e.post("/v1/accounts/u1/holds", e.read, "k1", map[string]any{"action": "upscale"}), 403, "forbidden")
	e.expect(e.post("/v1/accounts/u1/grants", e.charge, "k2", map[string]any{"amount": 5}), 403, "forbidden")
	e.expect(e.post("/v1/admin/catalog/reload", e.charge, "", nil), 403, "forbidden")
	// Explicit credits are for admin keys.
	e.expect(e.post("/v1/accounts/u1/holds", e.charge, "k3", map[string]any{"credits": 5}), 403, "forbidden")
	e.expect(e.post("/v1/accounts/u1/holds", e.admin, "k3", map[string]any{"credits": 5}), 200, "")
	if got := e.available("u1"); got != "95" {
		t.Fatalf("available %s, want 95", got)
	}
	// Each key can ask what it may do.
	for key, scope := range map[string]string{e.read: "read", e.charge: "charge", e.admin: "admin"} {
		me := e.get("/v1/me", key)
		e.expect(me, 200, "")
		id := strings.SplitN(strings.TrimPrefix(key, "sk_"), "_", 2)[0]
		if me.str("object") != "api_key" || me.str("id") != id || me.str("name") != "test "+scope || fmt.Sprint(me.body["scopes"]) != "["+scope+"]" {
			t.Errorf("GET /v1/me with the %s key: %s", scope, me.raw)
		}
	}
	e.expect(e.get("/v1/me?key=1", e.read), 400, "unknown_field")
	e.expect(e.get("/v1/me", ""), 401, "unauthorized")
	// A revoked key stops working.
	id := strings.SplitN(strings.TrimPrefix(e.read, "sk_"), "_", 2)[0]
	if err := e.store.RevokeKey(t.Context(), id, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.expect(e.get("/v1/accounts/u1/balance", e.read), 401, "unauthorized")
	e.expect(e.get("/metrics", e.charge), 200, "")
}

func testAccountToken(t *testing.T, e *env) {
	e.account("u1", 10)
	e.account("u2", 10)
	r := e.post("/v1/accounts/u1/tokens", e.read, "", map[string]any{"ttl_seconds": 60})
	e.expect(r, 200, "")
	tok := r.str("token")
	if !strings.HasPrefix(tok, "at_") {
		t.Fatalf("token %q", tok)
	}
	e.expect(e.get("/v1/accounts/u1/balance", tok), 200, "")
	if me := e.get("/v1/me", tok); me.str("object") != "account_token" || me.str("account_id") != "u1" || fmt.Sprint(me.body["scopes"]) != "[read]" || me.str("id") != "" {
		t.Errorf("GET /v1/me with an account token: %d %s", me.status, me.raw)
	}
	e.expect(e.get("/v1/accounts/u1/transactions", tok), 200, "")
	e.expect(e.get("/v1/accounts/u1/billing-catalog", tok), 200, "")
	e.expect(e.post("/v1/quotes", tok, "", map[string]any{"action": "upscale"}), 200, "")
	e.expect(e.get("/v1/catalog", tok), 200, "")
	// Only its own account, and read-only.
	e.expect(e.get("/v1/accounts/u2/balance", tok), 403, "forbidden")
	e.expect(e.post("/v1/quotes", tok, "", map[string]any{"action": "upscale", "account_id": "u2"}), 403, "forbidden")
	e.expect(e.post("/v1/accounts/u1/holds", tok, "h1", map[string]any{"action": "upscale"}), 403, "forbidden")
	e.expect(e.post("/v1/accounts/u1/charges", tok, "c1", map[string]any{"action": "upscale"}), 403, "forbidden")
	e.expect(e.post("/v1/accounts/u1/tokens", tok, "", nil), 403, "forbidden")
	e.expect(e.get("/metrics", tok), 403, "forbidden")
	// Expired.
	e.clock.Advance(61 * time.Second)
	e.expect(e.get("/v1/accounts/u1/balance", tok), 401, "token_expired")
	e.expect(e.post("/v1/accounts/u1/tokens", e.read, "", map[string]any{"ttl_seconds": 999999}), 400, "invalid_param")
}

func testAccounts(t *testing.T, e *env) {
	r := e.post("/v1/accounts", e.charge, "", map[string]any{"id": "team-7", "metadata": map[string]string{"plan": "pro"}})
	e.expect(r, 201, "")
	if r.str("object") != "account" || r.str("id") != "team-7" {
		t.Fatalf("account: %s", r.raw)
	}
	e.expect(e.post("/v1/accounts", e.charge, "", map[string]any{"id": "team-7"}), 200, "")
	e.expect(e.get("/v1/accounts/team-7", e.read), 200, "")
	e.expect(e.get("/v1/accounts/nobody", e.read), 404, "account_not_found")
	e.expect(e.get("/v1/accounts/nobody/balance", e.read), 404, "account_not_found")
	e.expect(e.post("/v1/accounts", e.charge, "", map[string]any{"id": "@system"}), 400, "invalid")
	// Ids that a URL path cannot carry are refused; others are reached
	// escaped.
	for _, id := range []string{".", ".."} {
		e.expect(e.post("/v1/accounts", e.charge, "", map[string]any{"id": id}), 400, "invalid")
	}
	for _, id := range []string{"org/7", "a b?c#d", "...", ".hidden", "ü%2F"} {
		e.expect(e.post("/v1/accounts", e.charge, "", map[string]any{"id": id}), 201, "")
		if r := e.get("/v1/accounts/"+url.PathEscape(id)+"/balance", e.read); r.status != 200 || r.str("account_id") != id {
			t.Errorf("balance of %q: %d %s", id, r.status, r.raw)
		}
	}
	// The list pages through every account, each once, in the order of
	// its cursor.
	var listed []string
	for cursor, pages := "", 0; ; pages++ {
		if pages > 10 {
			t.Fatalf("the list of accounts goes on after %d pages: %v", pages, listed)
		}
		l := e.get("/v1/accounts?limit=2&starting_after="+url.QueryEscape(cursor), e.read)
		e.expect(l, 200, "")
		for _, a := range l.body["data"].([]any) {
			a := a.(map[string]any)
			if a["object"] != "account" || a["created_at"] == nil {
				t.Fatalf("accounts: %s", l.raw)
			}
			listed = append(listed, a["id"].(string))
		}
		if l.body["has_more"] != true {
			break
		}
		cursor = l.str("next_cursor")
	}
	want := []string{"team-7", "org/7", "a b?c#d", "...", ".hidden", "ü%2F"}
	if got := slices.Sorted(slices.Values(listed)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("accounts listed %q, want each of %q once", listed, want)
	}
	e.expect(e.get("/v1/accounts?limit=0", e.read), 400, "invalid_param")
	e.expect(e.get("/v1/accounts?limit=101", e.read), 400, "invalid_param")
	e.expect(e.get("/v1/accounts?after=a", e.read), 400, "unknown_field")
	e.expect(e.get("/v1/accounts", ""), 401, "unauthorized")
	e.expect(e.post("/v1/accounts", e.charge, "", map[string]any{}), 400, "invalid")
	// A NUL character, which PostgreSQL's text cannot hold, is refused
	// before it reaches a batch; the id is then simply not found.
	e.expect(e.post("/v1/accounts", e.charge, "", map[string]any{"id": "nul\x00"}), 400, "invalid")
	e.expect(e.post("/v1/accounts", e.charge, "", map[string]any{"id": "team-8", "metadata": map[string]string{"k": "\x00"}}), 400, "invalid")
	e.expect(e.get("/v1/accounts/team-8", e.read), 404, "account_not_found")
	e.expect(e.get("/v1/accounts/nul%00", e.read), 404, "account_not_found")

	g := e.post("/v1/accounts/team-7/grants", e.admin, "g1", map[string]any{"amount": "12.5", "kind": "top_up"})
	e.expect(g, 200, "")
	if g.str("object") != "grant" || g.num("amount") != "12.5" || g.num("available") != "12.5" || g.num("creditsUsed") != "0" {
		t.Fatalf("grant: %s", g.raw)
	}
	b := e.get("/v1/accounts/team-7/balance", e.read)
	e.expect(b, 200, "")
	byKind := b.body["by_kind"].(map[string]any)
	if b.num("available") != "12.5" || b.num("held") != "0" || byKind["top_up"].(json.Number).String() != "12.5" {
		t.Fatalf("balance: %s", b.raw)
	}
	if gs := b.body["grants"].([]any); len(gs) != 1 {
		t.Fatalf("grants: %s", b.raw)
	}
}

func testInsufficient(t *testing.T, e *env) {
	e.account("u1", 3)
	for _, path := range []string{"/v1/accounts/u1/holds", "/v1/accounts/u1/charges"} {
		r := e.post(path, e.charge, "k-"+path, map[string]any{"action": "veo-3-1-standard", "params": map[string]any{"duration": 1}})
		e.expect(r, 402, "")
		want := `{"code":"insufficient_credits","required":32,"available":3,"top_up_url":"https://example.test/billing?account=u1"}`
		if got := strings.TrimSpace(string(r.raw)); got != want {
			t.Fatalf("402 body\n got %s\nwant %s", got, want)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("402 Content-Type %q", ct)
		}
	}
	if got := e.available("u1"); got != "3" {
		t.Fatalf("available %s after rejected operations, want 3", got)
	}
	// Nothing was recorded.
	h := e.get("/v1/accounts/u1/transactions", e.read)
	if n := len(h.body["data"].([]any)); n != 1 {
		t.Fatalf("%d transactions, want 1 (the grant): %s", n, h.raw)
	}
}

func testBadInput(t *testing.T, e *env) {
	e.account("u1", 100)
	hold := "/v1/accounts/u1/holds"
	cases := []struct {
		name   string
		body   any
		status int
		code   string
		field  string
	}{
		{"malformed", `{"action":`, 400, "malformed_json", ""},
		{"not an object", `[1,2]`, 400, "malformed_json", ""},
		{"trailing data", `{"action":"upscale"} {}`, 400, "malformed_json", ""},
		{"unknown field", `{"action":"upscale","colour":"red"}`, 400, "unknown_field", "colour"},
		{"wrong type", `{"action":5}`, 400, "invalid_param", "action"},
		{"bad credits", `{"credits":"1.0000001"}`, 400, "invalid_amount", "credits"},
		{"unknown param", `{"action":"upscale","params":{"zoom":2}}`, 400, "invalid_param", "params.zoom"},
		{"param not allowed", `{"action":"upscale","params":{"upscale":3}}`, 400, "invalid_param", "params.upscale"},
		{"param out of range", `{"action":"veo-3-1-standard","params":{"duration":9}}`, 400, "invalid_param", "params.duration"},
		{"unknown action", `{"action":"upscal"}`, 404, "action_not_found", "action"},
		{"plan required", `{"action":"flux-pro"}`, 403, "plan_required", ""},
		{"no action", `{}`, 400, "invalid_param", "action"},
		{"bad ttl", `{"action":"upscale","ttl_seconds":-1}`, 400, "invalid_param", "ttl_seconds"},
		{"too large", `{"action":"upscale","job":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "body_too_large", ""},
	}
	for i, c := range cases {
		r := e.post(hold, e.admin, fmt.Sprintf("bad-%d", i), c.body)
		if r.status != c.status || r.str("code") != c.code || r.str("field") != c.field {
			t.Errorf("%s: got %d %q field %q, want %d %q field %q: %s", c.name, r.status, r.str("code"), r.str("field"), c.status, c.code, c.field, r.raw)
		}
	}
	// Idempotency-Key is required on the job lifecycle.
	e.expect(e.post(hold, e.charge, "", map[string]any{"action": "upscale"}), 400, "idempotency_key_required")
	e.expect(e.post("/v1/accounts/u1/charges", e.charge, "", map[string]any{"action": "upscale"}), 400, "idempotency_key_required")
	e.expect(e.get("/v1/accounts/u1/transactions?limit=1000", e.read), 400, "invalid_param")
	e.expect(e.get("/v1/accounts/u1/transactions?colour=red", e.read), 400, "unknown_field")
	e.expect(e.get("/v1/nothing", e.read), 404, "route_not_found")
	e.expect(e.do(req{method: "DELETE", path: "/v1/accounts/u1", key: e.read}), 405, "")
	if got := e.available("u1"); got != "100" {
		t.Fatalf("available %s after bad input, want 100", got)
	}
}

func testHoldLifecycle(t *testing.T, e *env) {
	e.account("u1", 100)
	r := e.post("/v1/accounts/u1/holds", e.charge, "h1", map[string]any{"action": "upscale", "job": "job-1"})
	e.expect(r, 200, "")
	if r.str("object") != "hold" || r.str("status") != "open" || r.num("amount") != "4" || r.num("available") != "96" || r.num("creditsUsed") != "0" {
		t.Fatalf("hold: %s", r.raw)
	}
	if q := r.body["quote"].(map[string]any); q["credits"].(json.Number).String() != "4" {
		t.Fatalf("quote: %s", r.raw)
	}
	id := r.str("id")
	g := e.get("/v1/holds/"+id, e.read)
	e.expect(g, 200, "")
	// The open holds list the job in flight, then nothing once it is settled.
	openHolds := func() []string {
		t.Helper()
		l := e.get("/v1/accounts/u1/holds", e.read)
		e.expect(l, 200, "")
		var ids []string
		for _, h := range l.body["data"].([]any) {
			h := h.(map[string]any)
			if h["object"] != "hold" || h["status"] != "open" || h["account_id"] != "u1" {
				t.Fatalf("open holds: %s", l.raw)
			}
			ids = append(ids, h["id"].(string))
		}
		return ids
	}
	if got := openHolds(); len(got) != 1 || got[0] != id {
		t.Fatalf("open holds %v, want [%s]", got, id)
	}
	e.expect(e.get("/v1/accounts/nope/holds", e.read), 404, "account_not_found")
	e.expect(e.get("/v1/accounts/u1/holds?status=open", e.read), 400, "unknown_field")
	c := e.post("/v1/holds/"+id+"/capture", e.charge, "c1", nil)
	e.expect(c, 200, "")
	if c.str("status") != "captured" || c.num("creditsUsed") != "4" || c.num("available") != "96" {
		t.Fatalf("capture: %s", c.raw)
	}
	chargeID := c.body["charge"].(map[string]any)["id"].(string)
	e.expect(e.get("/v1/charges/"+chargeID, e.read), 200, "")
	// Settled holds stay settled.
	e.expect(e.post("/v1/holds/"+id+"/release", e.charge, "r1", nil), 409, "hold_already_settled")
	e.expect(e.post("/v1/holds/"+id+"/capture", e.charge, "c2", nil), 409, "hold_already_settled")

	// Release returns everything.
	r2 := e.post("/v1/accounts/u1/holds", e.charge, "h2", map[string]any{"action": "veo-3-1-relaxed", "params": map[string]any{"duration": 4}})
	e.expect(r2, 200, "")
	if r2.num("amount") != "75" || r2.num("available") != "21" {
		t.Fatalf("hold 2: %s", r2.raw)
	}
	if got := openHolds(); len(got) != 1 || got[0] != r2.str("id") {
		t.Fatalf("open holds %v after the first was captured, want only [%s]", got, r2.str("id"))
	}
	rel := e.post("/v1/holds/"+r2.str("id")+"/release", e.charge, "r2", map[string]any{"reason": "provider failed"})
	e.expect(rel, 200, "")
	if rel.str("status") != "released" || rel.num("creditsUsed") != "0" || rel.num("available") != "96" {
		t.Fatalf("release: %s", rel.raw)
	}
	if got := openHolds(); len(got) != 0 {
		t.Fatalf("open holds %v after every hold was settled, want none", got)
	}
	e.expect(e.get("/v1/holds/nope", e.read), 404, "hold_not_found")
	e.expect(e.post("/v1/holds/nope/capture", e.charge, "c3", nil), 404, "hold_not_found")
}

func testCaptureByParams(t *testing.T, e *env) {
	e.account("u1", 1000)
	// Held at 8 s (256), ran 5 s: 160.
	r := e.post("/v1/accounts/u1/holds", e.charge, "h1", map[string]any{"action": "veo-3-1-standard", "params": map[string]any{"duration": 8}})
	e.expect(r, 200, "")
	c := e.post("/v1/holds/"+r.str("id")+"/capture", e.charge, "c1", map[string]any{"params": map[string]any{"duration": 5}})
	e.expect(c, 200, "")
	if c.num("creditsUsed") != "160" || c.num("available") != "840" {
		t.Fatalf("capture by params: %s", c.raw)
	}
	// Replay returns the first result.
	c2 := e.post("/v1/holds/"+r.str("id")+"/capture", e.charge, "c1", map[string]any{"params": map[string]any{"duration": 5}})
	e.expect(c2, 200, "")
	if c2.num("creditsUsed") != "160" || c2.body["replayed"] != true || c2.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replayed capture: %s", c2.raw)
	}
	// Above the hold needs allow_over.
	r3 := e.post("/v1/accounts/u1/holds", e.charge, "h3", map[string]any{"action": "veo-3-1-standard", "params": map[string]any{"duration": 2}})
	e.expect(r3, 200, "")
	e.expect(e.post("/v1/holds/"+r3.str("id")+"/capture", e.charge, "c3", map[string]any{"params": map[string]any{"duration": 3}}), 400, "invalid_amount")
	c3 := e.post("/v1/holds/"+r3.str("id")+"/capture", e.charge, "c4", map[string]any{"params": map[string]any{"duration": 3}, "allow_over": true})
	e.expect(c3, 200, "")
	if c3.num("creditsUsed") != "96" {
		t.Fatalf("capture over: %s", c3.raw)
	}
	// Explicit credits on a priced hold.
	r4 := e.post("/v1/accounts/u1/holds", e.charge, "h4", map[string]any{"action": "upscale"})
	c4 := e.post("/v1/holds/"+r4.str("id")+"/capture", e.charge, "c5", map[string]any{"credits": "2.5"})
	e.expect(c4, 200, "")
	if c4.num("creditsUsed") != "2.5" {
		t.Fatalf("capture credits: %s", c4.raw)
	}
}

func testIdempotency(t *testing.T, e *env) {
	e.account("u1", 100)
	a := e.post("/v1/accounts/u1/charges", e.charge, "same", map[string]any{"action": "upscale"})
	e.expect(a, 200, "")
	b := e.post("/v1/accounts/u1/charges", e.charge, "same", map[string]any{"action": "upscale"})
	e.expect(b, 200, "")
	if a.str("id") != b.str("id") || b.body["replayed"] != true || b.num("creditsUsed") != "4" {
		t.Fatalf("replay:\n%s\n%s", a.raw, b.raw)
	}
	e.expect(e.post("/v1/accounts/u1/charges", e.charge, "same", map[string]any{"action": "background-removal", "job": "other"}), 409, "idempotency_conflict")
	if got := e.available("u1"); got != "96" {
		t.Fatalf("available %s, want 96", got)
	}
	// Grants without a key are not deduplicated; with one they are.
	e.expect(e.post("/v1/accounts/u1/grants", e.admin, "gk", map[string]any{"amount": 1}), 200, "")
	e.expect(e.post("/v1/accounts/u1/grants", e.admin, "gk", map[string]any{"amount": 1}), 200, "")
	e.expect(e.post("/v1/accounts/u1/grants", e.admin, "gk", map[string]any{"amount": 2}), 409, "idempotency_conflict")
	if got := e.available("u1"); got != "97" {
		t.Fatalf("available %s, want 97", got)
	}
}

func testChargeRefund(t *testing.T, e *env) {
	e.account("u1", 100)
	c := e.post("/v1/accounts/u1/charges", e.charge, "c1", map[string]any{"action": "html-assembly", "metadata": map[string]string{"site": "s1"}})
	e.expect(c, 200, "")
	if c.str("object") != "charge" || c.num("creditsUsed") != "8" || c.num("available") != "92" {
		t.Fatalf("charge: %s", c.raw)
	}
	id := c.str("id")
	r := e.post("/v1/charges/"+id+"/refunds", e.charge, "r1", map[string]any{"credits": 3, "reason": "partial failure"})
	e.expect(r, 200, "")
	if r.str("object") != "refund" || r.num("amount") != "3" || r.num("creditsUsed") != "5" || r.num("available") != "95" {
		t.Fatalf("refund: %s", r.raw)
	}
	r2 := e.post("/v1/charges/"+id+"/refunds", e.charge, "r2", nil)
	e.expect(r2, 200, "")
	if r2.num("amount") != "5" || r2.num("creditsUsed") != "0" || r2.num("available") != "100" {
		t.Fatalf("full refund: %s", r2.raw)
	}
	e.expect(e.post("/v1/charges/nope/refunds", e.charge, "r3", nil), 404, "charge_not_found")
	e.expect(e.post("/v1/accounts/u1/charges", e.charge, "c2", map[string]any{"action": "upscale", "metadata": map[string]string{"scrip.x": "1"}}), 400, "invalid_param")
	// Admin charge of explicit credits.
	a := e.post("/v1/accounts/u1/charges", e.admin, "c3", map[string]any{"credits": "0.5"})
	e.expect(a, 200, "")
	if a.num("creditsUsed") != "0.5" {
		t.Fatalf("explicit charge: %s", a.raw)
	}
}

func testQuotes(t *testing.T, e *env) {
	q := e.post("/v1/quotes", e.read, "", map[string]any{"action": "veo-3-1-standard", "params": map[string]any{"duration": "2.5", "resolution": "720p"}})
	e.expect(q, 200, "")
	if q.str("object") != "quote" || q.num("credits") != "80" {
		t.Fatalf("quote: %s", q.raw)
	}
	// The plan changes gates.
	e.expect(e.post("/v1/quotes", e.read, "", map[string]any{"action": "flux-pro"}), 403, "plan_required")
	e.expect(e.post("/v1/quotes", e.read, "", map[string]any{"action": "flux-pro", "plan": "pro"}), 200, "")
	e.expect(e.post("/v1/quotes", e.read, "", map[string]any{"action": "flux-pro", "plan": "gold"}), 400, "invalid_param")
	est := e.post("/v1/quotes/estimate", e.read, "", map[string]any{"steps": []map[string]any{
		{"action": "upscale", "count": 3}, {"action": "html-assembly"}}})
	e.expect(est, 200, "")
	if est.num("total") != "20" {
		t.Fatalf("estimate: %s", est.raw)
	}
	e.expect(e.post("/v1/quotes/estimate", e.read, "", map[string]any{"workflow": "nope"}), 404, "workflow_not_found")
	e.expect(e.post("/v1/quotes/estimate", e.read, "", map[string]any{}), 400, "invalid_param")
	cat := e.get("/v1/catalog", e.read)
	e.expect(cat, 200, "")
	for _, k := range []string{"actions", "plans", "packs", "category_defaults", "version"} {
		if _, ok := cat.body[k]; !ok {
			t.Fatalf("catalog lacks %s: %.300s", k, cat.raw)
		}
	}
	wfs := cat.body["workflows"].([]any)
	if len(wfs) > 0 {
		id := wfs[0].(map[string]any)["id"].(string)
		e.expect(e.post("/v1/quotes/estimate", e.read, "", map[string]any{"workflow": id}), 200, "")
	}
	acts := e.get("/v1/catalog/actions?category=video", e.read)
	e.expect(acts, 200, "")
	for _, a := range acts.body["data"].([]any) {
		m := a.(map[string]any)
		if m["category"] != "video" || m["label"] == "" {
			t.Fatalf("action: %v", m)
		}
	}
}

func testHistory(t *testing.T, e *env) {
	e.account("u1", 100)
	for i := range 5 {
		e.expect(e.post("/v1/accounts/u1/charges", e.charge, fmt.Sprint("c", i), map[string]any{"action": "upscale"}), 200, "")
	}
	var seen int
	cursor := ""
	for page := 0; page < 10; page++ {
		r := e.get("/v1/accounts/u1/transactions?limit=2"+cursor, e.read)
		e.expect(r, 200, "")
		seen += len(r.body["data"].([]any))
		if r.body["has_more"] != true {
			break
		}
		cursor = "&starting_after=" + r.str("next_cursor")
	}
	if seen != 6 {
		t.Fatalf("paged through %d transactions, want 6", seen)
	}
	// Each transaction gives the credits it left available: the newest
	// the balance's, the grant the whole 100.
	all := e.get("/v1/accounts/u1/transactions", e.read).body["data"].([]any)
	after := func(tx any) string {
		n, ok := tx.(map[string]any)["available_after"].(json.Number)
		if !ok {
			t.Fatalf("transaction without available_after: %v", tx)
		}
		return n.String()
	}
	if got, want := after(all[0]), e.available("u1"); got != want || after(all[len(all)-1]) != "100" {
		t.Fatalf("available_after newest %s (balance %s), oldest %s (want 100)", got, want, after(all[len(all)-1]))
	}
	r := e.get("/v1/accounts/u1/transactions?type=grant", e.read)
	if n := len(r.body["data"].([]any)); n != 1 {
		t.Fatalf("type=grant gave %d: %s", n, r.raw)
	}
	e.expect(e.get("/v1/accounts/u1/transactions?type=bogus", e.read), 400, "invalid_param")
	r = e.get("/v1/accounts/u1/transactions?until=2000-01-01T00:00:00Z", e.read)
	if n := len(r.body["data"].([]any)); n != 0 {
		t.Fatalf("until 2000 gave %d", n)
	}
}

func testAdjustRevoke(t *testing.T, e *env) {
	e.account("u1", 0)
	g := e.post("/v1/accounts/u1/grants", e.admin, "g1", map[string]any{"amount": 50, "kind": "top_up", "source": map[string]any{"type": "purchase", "id": "pi_1"}})
	e.expect(g, 200, "")
	a := e.post("/v1/accounts/u1/adjustments", e.admin, "a1", map[string]any{"amount": -10, "reason": "goodwill reversal"})
	e.expect(a, 200, "")
	if a.num("available") != "40" || a.num("creditsUsed") != "10" {
		t.Fatalf("adjustment: %s", a.raw)
	}
	e.expect(e.post("/v1/accounts/u1/adjustments", e.admin, "a2", map[string]any{"amount": 5}), 400, "invalid")
	rv := e.post("/v1/grants/"+g.str("id")+"/revoke", e.admin, "rv1", map[string]any{"reason": "refunded"})
	e.expect(rv, 200, "")
	if rv.num("available") != "0" {
		t.Fatalf("revoke: %s", rv.raw)
	}
	e.expect(e.post("/v1/grants/nope/revoke", e.admin, "rv2", nil), 404, "grant_not_found")
}

func testBillingCatalog(t *testing.T, e *env) {
	e.account("u1", 97)
	r := e.get("/v1/accounts/u1/billing-catalog", e.read)
	e.expect(r, 200, "")
	if r.body["subscription"] != nil {
		t.Fatalf("subscription without billing: %s", r.raw)
	}
	w := r.body["wallet"].(map[string]any)
	if w["available_total"].(json.Number).String() != "97" {
		t.Fatalf("wallet: %s", r.raw)
	}
	if len(r.body["plans"].([]any)) == 0 || r.body["credit_packs"] == nil {
		t.Fatalf("plans/packs: %s", r.raw)
	}
	e.expect(e.post("/v1/accounts/u1/checkout", e.charge, "", map[string]any{"checkout_mode": "subscription", "plan_code": "pro"}), 503, "payments_not_configured")
	e.expect(e.post("/v1/accounts/u1/checkout", e.charge, "", map[string]any{"checkout_mode": "gift"}), 400, "invalid_param")
}

func testReload(t *testing.T, e *env) {
	before := e.get("/v1/catalog", e.read).str("version")
	writeFile(t, e.catFile, []byte("name: broken\nactions: [\n"))
	e.expect(e.post("/v1/admin/catalog/reload", e.admin, "", nil), 400, "invalid")
	if v := e.get("/v1/catalog", e.read).str("version"); v != before {
		t.Fatalf("version %s after a bad reload, want %s", v, before)
	}
	e.expect(e.post("/v1/quotes", e.read, "", map[string]any{"action": "upscale"}), 200, "")
	writeCatalog(t, e.catFile, "wzrd-studio.yaml")
	r := e.post("/v1/admin/catalog/reload", e.admin, "", nil)
	e.expect(r, 200, "")
	if r.body["changed"] != true || e.get("/v1/catalog", e.read).str("version") == before {
		t.Fatalf("reload: %s", r.raw)
	}
	q := e.post("/v1/quotes", e.read, "", map[string]any{"action": "directors-cut"})
	e.expect(q, 200, "")
	if q.num("credits") != "12" {
		t.Fatalf("quote after reload: %s", q.raw)
	}
}

func testAdmin(t *testing.T, e *env) {
	e.account("u1", 10)
	e.expect(e.post("/v1/accounts/u1/charges", e.charge, "c1", map[string]any{"action": "upscale"}), 200, "")
	v := e.get("/v1/admin/verify", e.admin)
	e.expect(v, 200, "")
	if v.body["ok"] != true {
		t.Fatalf("verify: %s", v.raw)
	}
	ready := e.get("/readyz", "")
	e.expect(ready, 200, "")
	m := e.get("/metrics", e.read)
	for _, s := range []string{"scrip_http_request_duration_seconds", "scrip_operations_total", "scrip_queue_depth", "scrip_batch_size",
		`scrip_operations_total{result="ok",type="create_account"}`, `scrip_operations_total{result="ok",type="charge"}`} {
		if !strings.Contains(string(m.raw), s) {
			t.Errorf("/metrics lacks %s", s)
		}
	}
	if http.StatusOK != m.status {
		t.Fatal(m.status)
	}
	// The account's creation, its grant and the charge were three batches,
	// each begun, written and committed; none rolled back.
	for step, want := range map[string]int{"begin": 3, "apply": 3, "write": 3, "commit": 3, "rollback": 0} {
		series := `scrip_batch_step_duration_seconds_count{step="` + step + `"} `
		_, rest, ok := strings.Cut(string(m.raw), series)
		if !ok {
			t.Errorf("/metrics lacks %s", series)
			continue
		}
		line, _, _ := strings.Cut(rest, "\n")
		if line != strconv.Itoa(want) {
			t.Errorf("%s%s, want %d", series, line, want)
		}
	}
}
