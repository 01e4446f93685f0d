package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/scriphq/scrip/billing"
	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/examples/catalogs"
	"github.com/scriphq/scrip/httpapi"
	"github.com/scriphq/scrip/httpapi/auth"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/postgres"
	"github.com/scriphq/scrip/postgres/pgtest"
	"github.com/scriphq/scrip/sqlite"
)

// store is what the server needs of a store.
type store interface {
	ledger.Store
	auth.KeyStore
}

// backends open a fresh store of each kind; the same API tests run on both.
var backends = []struct {
	name string
	open func(t *testing.T) store
}{
	{"sqlite", func(t *testing.T) store {
		s, err := sqlite.Open(filepath.Join(t.TempDir(), "scrip.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"postgres", func(t *testing.T) store {
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

// env is a running server on a fresh store with one key per scope.
type env struct {
	t       *testing.T
	srv     *httptest.Server
	api     *httpapi.Server
	engine  *ledger.Engine
	store   store
	clock   *ledger.ManualClock
	catFile string
	metrics *httpapi.Metrics
	// billing is set by withBilling.
	billing *billing.Service
	admin   string
	charge  string
	read    string
}

type envOption func(*httpapi.Config)

// withBilling runs subscriptions on the env's store, as scrip serve does.
func withBilling() envOption {
	return func(cfg *httpapi.Config) {
		cfg.Billing = billing.New(cfg.Engine, cfg.Keys.(billing.Store), cfg.Catalog.Current, billing.Options{Clock: cfg.Clock})
	}
}

func newEnv(t *testing.T, open func(t *testing.T) store, opts ...envOption) *env {
	t.Helper()
	st := open(t)
	clk := ledger.NewManualClock(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	metrics, err := httpapi.NewMetrics(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng := ledger.NewEngine(st, ledger.Options{Clock: clk, SweepEvery: -1, Observer: metrics})
	catFile := filepath.Join(t.TempDir(), "catalog.yaml")
	writeCatalog(t, catFile, "site-builder.yaml")
	holder, err := httpapi.NewCatalogHolder(func() (*catalog.Catalog, error) { return catalog.Load(catFile) })
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpapi.Config{Engine: eng, Catalog: holder, Keys: st, Clock: clk, Metrics: metrics,
		TopUpURL: "https://example.test/billing?account={account_id}"}
	for _, o := range opts {
		o(&cfg)
	}
	api, err := httpapi.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	e := &env{t: t, srv: srv, api: api, engine: eng, store: st, clock: clk, catFile: catFile, metrics: metrics}
	e.billing, _ = cfg.Billing.(*billing.Service)
	t.Cleanup(func() {
		srv.Close()
		eng.Close(context.Background())
		st.Close()
	})
	e.admin = e.newKey(auth.ScopeAdmin)
	e.charge = e.newKey(auth.ScopeCharge)
	e.read = e.newKey(auth.ScopeRead)
	return e
}

func writeCatalog(t *testing.T, path, name string) {
	t.Helper()
	b, err := catalogs.FS.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, b)
}

func (e *env) newKey(s auth.Scope) string {
	e.t.Helper()
	k, secret := auth.NewKey("test "+string(s), []auth.Scope{s}, e.clock.Now())
	if err := e.store.CreateKey(context.Background(), k); err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// response is a decoded reply.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r response) str(k string) string {
	s, _ := r.body[k].(string)
	return s
}

// num returns a JSON number field as its literal text.
func (r response) num(k string) string {
	n, ok := r.body[k].(json.Number)
	if !ok {
		return "<" + k + " missing>"
	}
	return n.String()
}

type req struct {
	method, path, key string
	body              any
	idem              string
	header            map[string]string
}

func (e *env) do(r req) response {
	e.t.Helper()
	var body io.Reader
	switch b := r.body.(type) {
	case nil:
	case string:
		body = bytes.NewBufferString(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		body = bytes.NewReader(j)
	}
	hr, err := http.NewRequest(r.method, e.srv.URL+r.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if r.key != "" {
		hr.Header.Set("Authorization", "Bearer "+r.key)
	}
	if r.idem != "" {
		hr.Header.Set("Idempotency-Key", r.idem)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := response{status: res.StatusCode, header: res.Header, raw: raw}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	d.Decode(&out.body)
	return out
}

func (e *env) post(path, key, idem string, body any) response {
	e.t.Helper()
	return e.do(req{method: "POST", path: path, key: key, idem: idem, body: body})
}

func (e *env) get(path, key string) response {
	e.t.Helper()
	return e.do(req{method: "GET", path: path, key: key})
}

// expect fails unless the reply has the status and, for errors, the code.
func (e *env) expect(r response, status int, code string) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if code != "" && r.str("code") != code {
		e.t.Fatalf("code %q, want %q: %s", r.str("code"), code, r.raw)
	}
	if status >= 400 && status != http.StatusPaymentRequired {
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			e.t.Fatalf("Content-Type %q, want application/problem+json", ct)
		}
	}
}

// account creates an account holding credits (a promotional grant).
func (e *env) account(id string, credits int) {
	e.t.Helper()
	e.expect(e.post("/v1/accounts", e.charge, "", map[string]any{"id": id}), http.StatusCreated, "")
	if credits > 0 {
		e.expect(e.post("/v1/accounts/"+id+"/grants", e.admin, "grant-"+id, map[string]any{"amount": credits, "kind": "promotional"}), http.StatusOK, "")
	}
}

func (e *env) available(id string) string {
	e.t.Helper()
	r := e.get("/v1/accounts/"+id+"/balance", e.read)
	e.expect(r, http.StatusOK, "")
	return r.num("available")
}
