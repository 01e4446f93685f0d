package client

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// CreateAccount creates an account, or returns the existing one.
func (c *Client) CreateAccount(ctx context.Context, id string, metadata map[string]string) (Account, error) {
	var a Account
	err := c.call(ctx, "POST", "/v1/accounts", nil, "", map[string]any{"id": id, "metadata": metadata}, &a)
	return a, err
}

// Account returns an account.
func (c *Client) Account(ctx context.Context, id string) (Account, error) {
	var a Account
	err := c.call(ctx, "GET", "/v1/accounts/"+esc(id), nil, "", nil, &a)
	return a, err
}

// Balance returns an account's balance.
func (c *Client) Balance(ctx context.Context, accountID string) (Balance, error) {
	var b Balance
	err := c.call(ctx, "GET", "/v1/accounts/"+esc(accountID)+"/balance", nil, "", nil, &b)
	return b, err
}

// TransactionsParams filter and page history.
type TransactionsParams struct {
	Limit         int
	StartingAfter string
	Types         []ledger.TxType
	Since, Until  time.Time
}

// Transactions returns one page of an account's history, newest first.
func (c *Client) Transactions(ctx context.Context, accountID string, p TransactionsParams) (TransactionList, error) {
	q := url.Values{}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.StartingAfter != "" {
		q.Set("starting_after", p.StartingAfter)
	}
	for _, t := range p.Types {
		q.Add("type", string(t))
	}
	if !p.Since.IsZero() {
		q.Set("since", p.Since.Format(time.RFC3339Nano))
	}
	if !p.Until.IsZero() {
		q.Set("until", p.Until.Format(time.RFC3339Nano))
	}
	var l TransactionList
	err := c.call(ctx, "GET", "/v1/accounts/"+esc(accountID)+"/transactions", q, "", nil, &l)
	return l, err
}

// GrantParams describe credits to add (admin).
type GrantParams struct {
	Kind         ledger.Kind       `json:"kind,omitempty"`
	Amount       credit.Amount     `json:"amount"`
	Priority     *int              `json:"priority,omitempty"`
	EffectiveAt  *time.Time        `json:"effective_at,omitempty"`
	ExpiresAt    *time.Time        `json:"expires_at,omitempty"`
	Source       *ledger.Source    `json:"source,omitempty"`
	PaidAmount   int64             `json:"paid_amount,omitempty"`
	PaidCurrency string            `json:"paid_currency,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	// IdempotencyKey makes the grant safe to repeat.
	IdempotencyKey string `json:"-"`
}

// Grant adds credits to an account (admin).
func (c *Client) Grant(ctx context.Context, accountID string, p GrantParams) (Grant, error) {
	var g Grant
	err := c.call(ctx, "POST", "/v1/accounts/"+esc(accountID)+"/grants", nil, p.IdempotencyKey, p, &g)
	return g, err
}

// AdjustParams describe an admin correction.
type AdjustParams struct {
	Amount         credit.Amount `json:"amount"`
	Reason         string        `json:"reason"`
	ExpiresAt      *time.Time    `json:"expires_at,omitempty"`
	IdempotencyKey string        `json:"-"`
}

// Adjust corrects an account's credits with a reason (admin).
func (c *Client) Adjust(ctx context.Context, accountID string, p AdjustParams) (Adjustment, error) {
	var a Adjustment
	err := c.call(ctx, "POST", "/v1/accounts/"+esc(accountID)+"/adjustments", nil, p.IdempotencyKey, p, &a)
	return a, err
}

// RevokeGrant removes a grant's unspent remainder (admin).
func (c *Client) RevokeGrant(ctx context.Context, grantID, reason, idempotencyKey string) (Grant, error) {
	var g Grant
	err := c.call(ctx, "POST", "/v1/grants/"+esc(grantID)+"/revoke", nil, idempotencyKey, map[string]any{"reason": reason}, &g)
	return g, err
}

// HoldParams describe a hold: an action priced by the catalog, or explicit
// credits (admin keys).
type HoldParams struct {
	Action     string            `json:"action,omitempty"`
	Params     map[string]any    `json:"params,omitempty"`
	Plan       string            `json:"plan,omitempty"`
	Credits    *credit.Amount    `json:"credits,omitempty"`
	Job        string            `json:"job,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	TTLSeconds int64             `json:"ttl_seconds,omitempty"`
	// IdempotencyKey identifies the job; retries reuse it. A fresh one is
	// made when it is empty.
	IdempotencyKey string `json:"-"`
}

// Hold reserves credits for a job.
func (c *Client) Hold(ctx context.Context, accountID string, p HoldParams) (Hold, error) {
	var h Hold
	err := c.call(ctx, "POST", "/v1/accounts/"+esc(accountID)+"/holds", nil, p.IdempotencyKey, p, &h)
	return h, err
}

// GetHold returns a hold.
func (c *Client) GetHold(ctx context.Context, holdID string) (Hold, error) {
	var h Hold
	err := c.call(ctx, "GET", "/v1/holds/"+esc(holdID), nil, "", nil, &h)
	return h, err
}

// CaptureParams say what the job really cost: its actual parameters, or
// credits; with neither, the price quoted at hold time.
type CaptureParams struct {
	Params         map[string]any    `json:"params,omitempty"`
	Credits        *credit.Amount    `json:"credits,omitempty"`
	AllowOver      bool              `json:"allow_over,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	IdempotencyKey string            `json:"-"`
}

// Capture settles a hold.
func (c *Client) Capture(ctx context.Context, holdID string, p CaptureParams) (Hold, error) {
	var h Hold
	err := c.call(ctx, "POST", "/v1/holds/"+esc(holdID)+"/capture", nil, p.IdempotencyKey, p, &h)
	return h, err
}

// Release ends a hold without charging.
func (c *Client) Release(ctx context.Context, holdID, reason, idempotencyKey string) (Hold, error) {
	var h Hold
	err := c.call(ctx, "POST", "/v1/holds/"+esc(holdID)+"/release", nil, idempotencyKey, map[string]any{"reason": reason}, &h)
	return h, err
}

// ChargeParams describe a one-shot charge.
type ChargeParams struct {
	Action         string            `json:"action,omitempty"`
	Params         map[string]any    `json:"params,omitempty"`
	Plan           string            `json:"plan,omitempty"`
	Credits        *credit.Amount    `json:"credits,omitempty"`
	Job            string            `json:"job,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	IdempotencyKey string            `json:"-"`
}

// Charge debits credits in one step.
func (c *Client) Charge(ctx context.Context, accountID string, p ChargeParams) (Charge, error) {
	var ch Charge
	err := c.call(ctx, "POST", "/v1/accounts/"+esc(accountID)+"/charges", nil, p.IdempotencyKey, p, &ch)
	return ch, err
}

// GetCharge returns a charge.
func (c *Client) GetCharge(ctx context.Context, chargeID string) (Charge, error) {
	var ch Charge
	err := c.call(ctx, "GET", "/v1/charges/"+esc(chargeID), nil, "", nil, &ch)
	return ch, err
}

// RefundParams describe a refund; no Credits refunds everything left.
type RefundParams struct {
	Credits        *credit.Amount `json:"credits,omitempty"`
	Reason         string         `json:"reason,omitempty"`
	IdempotencyKey string         `json:"-"`
}

// Refund returns a charge's credits to the grants they came from.
func (c *Client) Refund(ctx context.Context, chargeID string, p RefundParams) (Refund, error) {
	var r Refund
	err := c.call(ctx, "POST", "/v1/charges/"+esc(chargeID)+"/refunds", nil, p.IdempotencyKey, p, &r)
	return r, err
}

// QuoteParams ask the price of one action.
type QuoteParams struct {
	Action    string         `json:"action"`
	Params    map[string]any `json:"params,omitempty"`
	Plan      string         `json:"plan,omitempty"`
	AccountID string         `json:"account_id,omitempty"`
}

// Quote prices one action.
func (c *Client) Quote(ctx context.Context, p QuoteParams) (catalog.Quote, error) {
	var q catalog.Quote
	err := c.call(ctx, "POST", "/v1/quotes", nil, "", p, &q)
	return q, err
}

// EstimateParams ask the price of a workflow or of steps.
type EstimateParams struct {
	Workflow  string         `json:"workflow,omitempty"`
	Steps     []catalog.Step `json:"steps,omitempty"`
	Plan      string         `json:"plan,omitempty"`
	AccountID string         `json:"account_id,omitempty"`
}

// Estimate prices several steps.
func (c *Client) Estimate(ctx context.Context, p EstimateParams) (Estimate, error) {
	var e Estimate
	err := c.call(ctx, "POST", "/v1/quotes/estimate", nil, "", p, &e)
	return e, err
}

// Catalog returns the catalog as a platform's UI needs it.
func (c *Client) Catalog(ctx context.Context) (Catalog, error) {
	var cat Catalog
	err := c.call(ctx, "GET", "/v1/catalog", nil, "", nil, &cat)
	return cat, err
}

// Actions lists the catalog's actions, of one category when it is not "".
func (c *Client) Actions(ctx context.Context, category string) ([]Action, error) {
	q := url.Values{}
	if category != "" {
		q.Set("category", category)
	}
	var l struct {
		Data []Action `json:"data"`
	}
	err := c.call(ctx, "GET", "/v1/catalog/actions", q, "", nil, &l)
	return l.Data, err
}

// BillingCatalog returns an account's subscription, wallet, plans and packs.
func (c *Client) BillingCatalog(ctx context.Context, accountID string) (BillingCatalog, error) {
	var b BillingCatalog
	err := c.call(ctx, "GET", "/v1/accounts/"+esc(accountID)+"/billing-catalog", nil, "", nil, &b)
	return b, err
}

// Subscription returns an account's subscription; a 404 not_found error
// when it has never had one.
func (c *Client) Subscription(ctx context.Context, accountID string) (Subscription, error) {
	var s Subscription
	err := c.call(ctx, "GET", "/v1/accounts/"+esc(accountID)+"/subscription", nil, "", nil, &s)
	return s, err
}

// SubscribeParams name the plan to subscribe to or change to (admin).
type SubscribeParams struct {
	Plan string `json:"plan"`
	// IdempotencyKey makes the request safe to retry; a fresh one is made
	// when it is empty.
	IdempotencyKey string `json:"-"`
}

// Subscribe subscribes an account to a plan, or changes the plan of its
// live subscription: an upgrade at once, a downgrade at the period end
// (admin).
func (c *Client) Subscribe(ctx context.Context, accountID string, p SubscribeParams) (Subscription, error) {
	var s Subscription
	err := c.call(ctx, "POST", "/v1/accounts/"+esc(accountID)+"/subscription", nil, p.IdempotencyKey, p, &s)
	return s, err
}

// CancelSubscription cancels an account's subscription at the period end
// or, with atPeriodEnd false, at once (admin).
func (c *Client) CancelSubscription(ctx context.Context, accountID string, atPeriodEnd bool) (Subscription, error) {
	var s Subscription
	err := c.call(ctx, "POST", "/v1/accounts/"+esc(accountID)+"/subscription/cancel", nil, "",
		map[string]any{"at_period_end": atPeriodEnd}, &s)
	return s, err
}

// ResumeSubscription undoes a cancellation scheduled for the period end
// (admin).
func (c *Client) ResumeSubscription(ctx context.Context, accountID string) (Subscription, error) {
	var s Subscription
	err := c.call(ctx, "POST", "/v1/accounts/"+esc(accountID)+"/subscription/resume", nil, "", nil, &s)
	return s, err
}

// CreateToken mints an account token for a browser; ttl 0 takes the
// server's default.
func (c *Client) CreateToken(ctx context.Context, accountID string, ttl time.Duration) (AccountToken, error) {
	body := map[string]any{}
	if ttl > 0 {
		body["ttl_seconds"] = int64(ttl / time.Second)
	}
	var t AccountToken
	err := c.call(ctx, "POST", "/v1/accounts/"+esc(accountID)+"/tokens", nil, "", body, &t)
	return t, err
}

// CheckoutParams start a checkout of a pack or a plan.
type CheckoutParams struct {
	Mode       string `json:"checkout_mode"`
	PackCode   string `json:"pack_code,omitempty"`
	PlanCode   string `json:"plan_code,omitempty"`
	SuccessURL string `json:"success_url,omitempty"`
	CancelURL  string `json:"cancel_url,omitempty"`
}

// Checkout starts a paid checkout.
func (c *Client) Checkout(ctx context.Context, accountID string, p CheckoutParams) (CheckoutSession, error) {
	var s CheckoutSession
	err := c.call(ctx, "POST", "/v1/accounts/"+esc(accountID)+"/checkout", nil, "", p, &s)
	return s, err
}

// ReloadCatalog makes the server load its catalog again (admin).
func (c *Client) ReloadCatalog(ctx context.Context) (CatalogReload, error) {
	var r CatalogReload
	err := c.call(ctx, "POST", "/v1/admin/catalog/reload", nil, "", nil, &r)
	return r, err
}

// Verify runs the journal check (admin).
func (c *Client) Verify(ctx context.Context) (VerifyReport, error) {
	var r VerifyReport
	err := c.call(ctx, "GET", "/v1/admin/verify", nil, "", nil, &r)
	return r, err
}
