// Package httpapi serves scrip's HTTP API: JSON over HTTP on the ledger and
// the catalog, with secret-key and account-token authentication, problem
// documents for errors and an OpenAPI description at /openapi.json.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/httpapi/auth"
	"github.com/scriphq/scrip/ledger"
)

// Config wires a Server. Engine, Catalog and Keys are required.
type Config struct {
	Engine  *ledger.Engine
	Catalog *CatalogHolder
	Keys    auth.KeyStore
	// Clock defaults to the engine's clock.
	Clock  ledger.Clock
	Logger *slog.Logger

	// Billing, when nil, leaves billing-catalog's subscription null, takes
	// plans from requests only and makes the subscription endpoints answer
	// 503 billing_not_configured. *billing.Service implements it, and
	// Subscriptions, which the subscription endpoints need.
	Billing Billing
	// Payments, when nil, makes checkout answer 503 payments_not_configured.
	Payments Payments

	// AdminKey is a secret accepted with the admin scope besides the stored
	// keys (SCRIP_ADMIN_KEY). Empty: none.
	AdminKey string
	// KeyCacheAge is how long a verified secret key is trusted without
	// reading the key store again; a revocation takes at most this long to
	// reach every process. Zero: every request reads the store.
	KeyCacheAge time.Duration
	// TokenSecret signs account tokens. Empty: a secret generated once and
	// kept in the key store, shared by every process on that store.
	TokenSecret []byte
	// TopUpURL is sent with insufficient_credits; "{account_id}" is
	// replaced with the account's id.
	TopUpURL string
	// CORSOrigins lists the origins browsers may call from; "*" allows any.
	CORSOrigins []string
	// RateLimit is the sustained requests per second allowed per key or
	// account token, RateBurst the burst above it. Zero: no limit.
	RateLimit float64
	RateBurst int
	// Metrics, shared with the engine as its Observer; nil: the server
	// makes its own, without the ledger's operation and batch series.
	Metrics *Metrics
	// Public mounts extra handlers that answer without credentials, by
	// ServeMux pattern, such as payment webhooks that verify their own
	// signatures.
	Public map[string]http.Handler
	// Routes mounts extra endpoints behind authentication, each with the
	// scope it needs, such as the outbox's admin API. They are listed by
	// Server.Routes with the built-in ones.
	Routes []Route
}

// Server is the HTTP API. It is an http.Handler.
type Server struct {
	cfg         Config
	engine      *ledger.Engine
	clock       ledger.Clock
	log         *slog.Logger
	mux         *http.ServeMux
	tokenSecret []byte
	limiter     *limiter
	keys        *keyCache
	metrics     *Metrics
	routes      []route
}

// route is one API endpoint. scope "" answers without credentials.
type route struct {
	pattern string
	scope   auth.Scope
	// token allows account tokens; the route must then name the account
	// in {id} or let the handler check it.
	token bool
	h     func(w http.ResponseWriter, r *http.Request) error
}

// New builds a Server.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Engine == nil || cfg.Catalog == nil || cfg.Keys == nil {
		return nil, errors.New("httpapi: Engine, Catalog and Keys are required")
	}
	s := &Server{cfg: cfg, engine: cfg.Engine, clock: cfg.Clock, log: cfg.Logger, keys: newKeyCache(cfg.KeyCacheAge)}
	if s.clock == nil {
		s.clock = cfg.Engine.Clock()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.tokenSecret = cfg.TokenSecret
	if len(s.tokenSecret) == 0 {
		sec, err := cfg.Keys.Secret(ctx, auth.TokenSecretName, auth.NewSecret())
		if err != nil {
			return nil, fmt.Errorf("httpapi: load token secret: %w", err)
		}
		s.tokenSecret = sec
	}
	if cfg.RateLimit > 0 {
		s.limiter = newLimiter(cfg.RateLimit, cfg.RateBurst, s.clock)
	}
	s.metrics = cfg.Metrics
	if s.metrics == nil {
		m, err := NewMetrics(nil, nil)
		if err != nil {
			return nil, err
		}
		s.metrics = m
	}
	if err := s.metrics.watchEngine(cfg.Engine); err != nil {
		return nil, fmt.Errorf("httpapi: metrics: %w", err)
	}
	s.routes = s.routeTable()
	extra, err := extraRoutes(s.routes, cfg.Routes)
	if err != nil {
		return nil, err
	}
	s.routes = append(s.routes, extra...)
	s.mux = http.NewServeMux()
	for _, rt := range s.routes {
		s.mux.Handle(rt.pattern, s.wrap(rt))
	}
	for p, h := range cfg.Public {
		s.mux.Handle(p, h)
	}
	return s, nil
}

// Routes returns the registered route patterns.
func (s *Server) Routes() []string {
	out := make([]string, len(s.routes))
	for i, rt := range s.routes {
		out[i] = rt.pattern
	}
	return out
}

func (s *Server) routeTable() []route {
	const (
		public = auth.Scope("")
		read   = auth.ScopeRead
		charge = auth.ScopeCharge
		admin  = auth.ScopeAdmin
	)
	return []route{
		{pattern: "GET /healthz", scope: public, h: s.healthz},
		{pattern: "GET /readyz", scope: public, h: s.readyz},
		{pattern: "GET /openapi.json", scope: public, h: s.openapi},
		{pattern: "GET /metrics", scope: read, h: s.serveMetrics},

		{pattern: "GET /v1/me", scope: read, token: true, h: s.getMe},
		{pattern: "GET /v1/catalog", scope: read, token: true, h: s.getCatalog},
		{pattern: "GET /v1/catalog/actions", scope: read, token: true, h: s.listActions},
		{pattern: "POST /v1/quotes", scope: read, token: true, h: s.createQuote},
		{pattern: "POST /v1/quotes/estimate", scope: read, token: true, h: s.createEstimate},

		{pattern: "GET /v1/accounts", scope: read, h: s.listAccounts},
		{pattern: "POST /v1/accounts", scope: charge, h: s.createAccount},
		{pattern: "GET /v1/accounts/{id}", scope: read, token: true, h: s.getAccount},
		{pattern: "GET /v1/accounts/{id}/balance", scope: read, token: true, h: s.getBalance},
		{pattern: "GET /v1/accounts/{id}/transactions", scope: read, token: true, h: s.listTransactions},
		{pattern: "GET /v1/accounts/{id}/billing-catalog", scope: read, token: true, h: s.getBillingCatalog},
		{pattern: "GET /v1/accounts/{id}/subscription", scope: read, token: true, h: s.getSubscription},
		{pattern: "POST /v1/accounts/{id}/subscription", scope: admin, h: s.createSubscription},
		{pattern: "POST /v1/accounts/{id}/subscription/cancel", scope: admin, h: s.cancelSubscription},
		{pattern: "POST /v1/accounts/{id}/subscription/resume", scope: admin, h: s.resumeSubscription},
		{pattern: "POST /v1/accounts/{id}/tokens", scope: read, h: s.createToken},
		{pattern: "POST /v1/accounts/{id}/checkout", scope: charge, h: s.createCheckout},
		{pattern: "POST /v1/accounts/{id}/grants", scope: admin, h: s.createGrant},
		{pattern: "POST /v1/accounts/{id}/adjustments", scope: admin, h: s.createAdjustment},
		{pattern: "POST /v1/grants/{id}/revoke", scope: admin, h: s.revokeGrant},

		{pattern: "POST /v1/accounts/{id}/holds", scope: charge, h: s.createHold},
		{pattern: "GET /v1/accounts/{id}/holds", scope: read, h: s.listOpenHolds},
		{pattern: "GET /v1/holds/{id}", scope: read, h: s.getHold},
		{pattern: "POST /v1/holds/{id}/capture", scope: charge, h: s.captureHold},
		{pattern: "POST /v1/holds/{id}/release", scope: charge, h: s.releaseHold},
		{pattern: "POST /v1/accounts/{id}/charges", scope: charge, h: s.createCharge},
		{pattern: "GET /v1/charges/{id}", scope: read, h: s.getCharge},
		{pattern: "POST /v1/charges/{id}/refunds", scope: charge, h: s.createRefund},

		{pattern: "POST /v1/admin/catalog/reload", scope: admin, h: s.reloadCatalog},
		{pattern: "GET /v1/admin/verify", scope: admin, h: s.verify},
	}
}

// ServeHTTP applies CORS, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cors(w, r) {
		return
	}
	st := &state{}
	r = r.WithContext(withState(r.Context(), st))
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	if h, pattern := s.mux.Handler(r); pattern == "" {
		s.unrouted(rw, r, h)
	} else {
		s.mux.ServeHTTP(rw, r)
	}
	route := r.Pattern
	if route == "" || route == "/" {
		route = "unmatched"
	}
	s.metrics.request(route, rw.status, time.Since(start))
}

// wrap authenticates, authorizes and rate-limits, then runs the handler.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := stateOf(r)
		if rt.scope != "" {
			p, err := s.authenticate(r)
			if err == nil {
				err = s.authorize(r, rt, p)
			}
			if err == nil && s.limiter != nil && !s.limiter.allow(p.rateKey()) {
				err = scrip.Errorf(scrip.ERateLimited, "too many requests for this credential; slow down")
				w.Header().Set("Retry-After", "1")
			}
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			st.principal = p
		}
		if id := r.PathValue("id"); id != "" && strings.HasPrefix(rt.pattern[strings.IndexByte(rt.pattern, ' ')+1:], "/v1/accounts/{id}") {
			st.account = id
		}
		if err := rt.h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// unrouted answers a request no route matches with a problem document: 405
// with Allow when the path exists under another method, 404 otherwise.
func (s *Server) unrouted(w http.ResponseWriter, r *http.Request, h http.Handler) {
	probe := &headerProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", probe.header.Get("Allow"))
		s.writeError(w, r, scrip.Errorf(eMethodNotAllowed, "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, probe.header.Get("Allow")))
		return
	}
	s.writeError(w, r, scrip.Errorf(eRouteNotFound, "no route for %s %s", r.Method, r.URL.Path))
}

// headerProbe records what a handler would answer without sending it.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header         { return p.header }
func (p *headerProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *headerProbe) WriteHeader(code int)        { p.status = code }

func (s *Server) authenticate(r *http.Request) (principal, error) {
	h := r.Header.Get("Authorization")
	cred, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || cred == "" {
		return principal{}, scrip.Errorf(scrip.EUnauthorized, "missing credentials: send Authorization: Bearer <secret key or account token>")
	}
	cred = strings.TrimSpace(cred)
	if auth.IsToken(cred) {
		c, err := auth.VerifyToken(s.tokenSecret, cred, s.clock.Now())
		if errors.Is(err, auth.ErrTokenExpired) {
			return principal{}, scrip.Errorf(eTokenExpired, "account token expired")
		}
		if err != nil {
			return principal{}, scrip.Errorf(scrip.EUnauthorized, "invalid account token")
		}
		return principal{account: c.AccountID, scopes: []auth.Scope{auth.ScopeRead}}, nil
	}
	if s.cfg.AdminKey != "" && constantTimeEqual(cred, s.cfg.AdminKey) {
		return principal{keyID: "admin_key", scopes: []auth.Scope{auth.ScopeAdmin}}, nil
	}
	// Before the cache: a malformed secret starts no read to share.
	id, ok := auth.ParseKeyID(cred)
	if !ok {
		return principal{}, scrip.Errorf(scrip.EUnauthorized, "invalid API key")
	}
	k, err := s.keys.load(r.Context(), cred, s.clock.Now(), func(ctx context.Context) (auth.Key, error) {
		return s.verifyKey(ctx, id, cred)
	})
	if err != nil {
		return principal{}, err
	}
	return principal{keyID: k.ID, name: k.Name, scopes: k.Scopes}, nil
}

// verifyKey reads the key id from the store and checks the secret, which
// names it, against it.
func (s *Server) verifyKey(ctx context.Context, id, secret string) (auth.Key, error) {
	k, err := s.cfg.Keys.Key(ctx, id)
	if errors.Is(err, auth.ErrKeyNotFound) || (err == nil && (!k.Match(secret) || k.Revoked())) {
		return auth.Key{}, scrip.Errorf(scrip.EUnauthorized, "invalid API key")
	}
	if err != nil {
		return auth.Key{}, fmt.Errorf("load key: %w", err)
	}
	return k, nil
}

func (s *Server) authorize(r *http.Request, rt route, p principal) error {
	if p.token() {
		if !rt.token {
			return scrip.Errorf(scrip.EForbidden, "account tokens may only read their own account's balance, history, quotes and the catalog")
		}
		if id := r.PathValue("id"); id != "" && id != p.account {
			return scrip.Errorf(scrip.EForbidden, "this account token is for another account")
		}
		return nil
	}
	if !auth.Allows(p.scopes, rt.scope) {
		return scrip.Errorf(scrip.EForbidden, "this key lacks the %s scope", rt.scope)
	}
	return nil
}

// meJSON is the credential a request is made with: a key, or an account
// token.
type meJSON struct {
	Object    string       `json:"object"`
	ID        string       `json:"id,omitempty"`
	Name      string       `json:"name,omitempty"`
	AccountID string       `json:"account_id,omitempty"`
	Scopes    []auth.Scope `json:"scopes"`
}

// getMe tells a client what its credential may do, so that a page can
// leave out what the key may not.
func (s *Server) getMe(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	p := stateOf(r).principal
	if p.token() {
		writeJSON(w, http.StatusOK, meJSON{Object: "account_token", AccountID: p.account, Scopes: p.scopes})
		return nil
	}
	writeJSON(w, http.StatusOK, meJSON{Object: "api_key", ID: p.keyID, Name: p.name, Scopes: p.scopes})
	return nil
}

func (p principal) rateKey() string {
	if p.token() {
		return "acct:" + p.account
	}
	return "key:" + p.keyID
}

// requireScope checks a scope a request needs beyond its route's, such as
// admin for holds of explicit credits.
func requireScope(r *http.Request, want auth.Scope, what string) error {
	st := stateOf(r)
	if st == nil || st.principal.token() || !auth.Allows(st.principal.scopes, want) {
		return scrip.Errorf(scrip.EForbidden, "%s needs the %s scope", what, want)
	}
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

func constantTimeEqual(a, b string) bool {
	return auth.HashSecret(a) == auth.HashSecret(b)
}
