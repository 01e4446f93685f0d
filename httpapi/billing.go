package httpapi

import (
	"context"
	"net/http"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// Billing is the subscription side of billing, which the billing package
// provides. The server works without it: plans then come from requests and
// billing-catalog shows no subscription.
type Billing interface {
	// Plan returns the code of the account's current plan, "" for none.
	Plan(ctx context.Context, accountID string) (string, error)
	// Subscription returns the account's subscription as billing-catalog
	// shows it, nil when it has none.
	Subscription(ctx context.Context, accountID string) (any, error)
}

// Payments starts paid checkouts (Stripe). Without it, checkout answers 503
// payments_not_configured.
type Payments interface {
	Checkout(ctx context.Context, req CheckoutRequest) (CheckoutSession, error)
}

// CheckoutRequest asks for a checkout of a pack or a plan.
type CheckoutRequest struct {
	AccountID string
	// Key is the request's idempotency key.
	Key string
	// Mode is "pack" or "subscription".
	Mode       string
	PackCode   string
	PlanCode   string
	SuccessURL string
	CancelURL  string
}

// CheckoutSession is where to send the user to pay.
type CheckoutSession struct {
	ID  string `json:"id,omitempty"`
	URL string `json:"checkout_url"`
}

// walletJSON is an account's credits as billing-catalog shows them.
type walletJSON struct {
	AvailableTotal credit.Amount                 `json:"available_total"`
	HeldTotal      credit.Amount                 `json:"held_total"`
	ByKind         map[ledger.Kind]credit.Amount `json:"by_kind"`
	Grants         []ledger.Grant                `json:"grants"`
}

type billingCatalogJSON struct {
	Object         string          `json:"object"`
	AccountID      string          `json:"account_id"`
	Subscription   any             `json:"subscription"`
	Wallet         walletJSON      `json:"wallet"`
	Plans          []*catalog.Plan `json:"plans"`
	CreditPacks    []*catalog.Pack `json:"credit_packs"`
	CatalogVersion string          `json:"catalog_version"`
	TopUpURL       string          `json:"top_up_url,omitempty"`
}

func (s *Server) getBillingCatalog(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	b, err := s.engine.Balance(r.Context(), id)
	if err != nil {
		return err
	}
	var sub any
	if s.cfg.Billing != nil {
		if sub, err = s.subscriptionView(r.Context(), id); err != nil {
			return err
		}
	}
	c := s.cfg.Catalog.Current()
	writeJSON(w, http.StatusOK, billingCatalogJSON{
		Object: "billing_catalog", AccountID: id, Subscription: sub,
		Wallet:         walletJSON{AvailableTotal: b.Available, HeldTotal: b.Held, ByKind: b.ByKind, Grants: nonNil(b.Grants)},
		Plans:          nonNil(c.Plans()),
		CreditPacks:    nonNil(c.Packs()),
		CatalogVersion: c.Version,
		TopUpURL:       s.topUpURL(id),
	})
	return nil
}

type checkoutRequest struct {
	CheckoutMode string `json:"checkout_mode"`
	PackCode     string `json:"pack_code"`
	PlanCode     string `json:"plan_code"`
	SuccessURL   string `json:"success_url"`
	CancelURL    string `json:"cancel_url"`
}

func (s *Server) createCheckout(w http.ResponseWriter, r *http.Request) error {
	var req checkoutRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	key, err := idempotencyKey(r, false)
	if err != nil {
		return err
	}
	c := s.cfg.Catalog.Current()
	switch req.CheckoutMode {
	case "pack":
		if _, ok := c.Pack(req.PackCode); !ok {
			return errorf(scrip.EInvalidParam, "pack_code", "pack %q not found", req.PackCode)
		}
	case "subscription":
		if _, ok := c.Plan(req.PlanCode); !ok {
			return errorf(scrip.EInvalidParam, "plan_code", "plan %q not found", req.PlanCode)
		}
	default:
		return errorf(scrip.EInvalidParam, "checkout_mode", "checkout_mode must be pack or subscription, got %q", req.CheckoutMode)
	}
	if s.cfg.Payments == nil {
		return scrip.Errorf(ePaymentsNotConfigured, "payments are not configured on this server")
	}
	id := r.PathValue("id")
	if _, err := s.engine.Account(r.Context(), id); err != nil {
		return err
	}
	sess, err := s.cfg.Payments.Checkout(r.Context(), CheckoutRequest{AccountID: id, Key: key, Mode: req.CheckoutMode,
		PackCode: req.PackCode, PlanCode: req.PlanCode, SuccessURL: req.SuccessURL, CancelURL: req.CancelURL})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sess)
	return nil
}
