package httpapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/event"
	"github.com/scriphq/scrip/examples/catalogs"
	"github.com/scriphq/scrip/httpapi"
	"github.com/scriphq/scrip/httpapi/auth"
	"github.com/scriphq/scrip/ledger"
)

// withEventAPI mounts the outbox's admin API as scrip serve does.
func withEventAPI() envOption {
	return func(cfg *httpapi.Config) {
		ob := cfg.Keys.(interface{ Outbox() event.Store }).Outbox()
		for p, h := range (&event.API{Store: ob, Clock: cfg.Clock}).Handlers() {
			cfg.Routes = append(cfg.Routes, httpapi.Route{Pattern: p, Scope: auth.ScopeAdmin, Handle: h})
		}
	}
}

func TestExtraRoutes(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, b.open, withEventAPI())
			e.account("u1", 10)
			tok := e.post("/v1/accounts/u1/tokens", e.read, "", map[string]any{})
			e.expect(tok, http.StatusOK, "")
			// Credentials and scope are checked like any route's.
			e.expect(e.get("/v1/events", ""), http.StatusUnauthorized, "unauthorized")
			e.expect(e.get("/v1/events", e.charge), http.StatusForbidden, "forbidden")
			e.expect(e.get("/v1/events", tok.str("token")), http.StatusForbidden, "forbidden")
			e.expect(e.get("/v1/events", e.admin), http.StatusOK, "")
			// Errors are problem documents.
			e.expect(e.get("/v1/events/evt_missing", e.admin), http.StatusNotFound, "not_found")
			e.expect(e.get("/v1/events?limit=x", e.admin), http.StatusBadRequest, "invalid_param")
			r := e.post("/v1/event-endpoints", e.admin, "", map[string]any{"url": "https://platform.example/hook", "types": []string{"*"}})
			e.expect(r, http.StatusCreated, "")
			if r.str("secret") == "" || r.str("id") == "" {
				t.Fatalf("endpoint created without an id or secret: %s", r.raw)
			}
			e.expect(e.do(req{method: "DELETE", path: "/v1/event-endpoints/" + r.str("id"), key: e.admin}), http.StatusOK, "")
			e.expect(e.do(req{method: "DELETE", path: "/v1/event-endpoints/ep_none", key: e.admin}), http.StatusNotFound, "not_found")
			// Wrong method on a mounted path: 405 like the built-in routes.
			e.expect(e.do(req{method: "PUT", path: "/v1/events", key: e.admin}), http.StatusMethodNotAllowed, "")
		})
	}
}

func TestExtraRoutesChecked(t *testing.T) {
	h := func(http.ResponseWriter, *http.Request) error { return nil }
	for name, r := range map[string]httpapi.Route{
		"no scope":  {Pattern: "GET /v1/x", Handle: h},
		"bad scope": {Pattern: "GET /v1/x", Scope: "root", Handle: h},
		"no method": {Pattern: "/v1/x", Scope: auth.ScopeAdmin, Handle: h},
		"built in":  {Pattern: "GET /v1/admin/verify", Scope: auth.ScopeAdmin, Handle: h},
		"no handle": {Pattern: "GET /v1/x", Scope: auth.ScopeAdmin},
	} {
		t.Run(name, func(t *testing.T) {
			st := backends[0].open(t)
			t.Cleanup(func() { st.Close() })
			_, err := newServer(t, st, r)
			if err == nil {
				t.Fatalf("route %+v accepted", r)
			}
		})
	}
}

func newServer(t *testing.T, st store, r httpapi.Route) (*httpapi.Server, error) {
	t.Helper()
	eng := ledger.NewEngine(st, ledger.Options{SweepEvery: -1})
	t.Cleanup(func() { eng.Close(context.Background()) })
	holder, err := httpapi.NewCatalogHolder(func() (*catalog.Catalog, error) {
		b, err := catalogs.FS.ReadFile("site-builder.yaml")
		if err != nil {
			return nil, err
		}
		return catalog.Parse(b, "site-builder.yaml")
	})
	if err != nil {
		t.Fatal(err)
	}
	return httpapi.New(context.Background(), httpapi.Config{Engine: eng, Catalog: holder, Keys: st, Routes: []httpapi.Route{r}})
}
