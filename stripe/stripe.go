// Package stripe connects scrip to Stripe: it starts Checkout Sessions for
// credit packs and plans, and turns Stripe's webhooks into ledger grants,
// revocations and subscription changes, each applied exactly once.
//
// Exactly once rests on the ledger: every credit effect carries an
// idempotency key derived from the Stripe object that caused it (the
// checkout session, the invoice, the subscription, the charge), never from
// the event, so a replayed or reordered event can only replay the first
// result. Applied events are also recorded, for replay answers and for
// operators.
package stripe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	sg "github.com/stripe/stripe-go/v85"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/event"
	"github.com/scriphq/scrip/httpapi"
	"github.com/scriphq/scrip/ledger"
)

// Environment variables read by ConfigFromEnv.
const (
	EnvSecretKey     = "SCRIP_STRIPE_SECRET_KEY"
	EnvWebhookSecret = "SCRIP_STRIPE_WEBHOOK_SECRET"
	EnvSuccessURL    = "SCRIP_STRIPE_SUCCESS_URL"
	EnvCancelURL     = "SCRIP_STRIPE_CANCEL_URL"
	EnvAPIURL        = "SCRIP_STRIPE_API_URL"
	EnvRefundPolicy  = "SCRIP_STRIPE_REFUND_POLICY"
)

// Metadata keys scrip sets on Checkout Sessions, their payment intents and
// subscriptions, and reads back from webhooks.
const (
	MetaAccount = "scrip_account_id"
	MetaPack    = "scrip_pack_code"
	MetaPlan    = "scrip_plan_code"
	MetaCredits = "scrip_credits"
)

// RefundPolicy says what a refunded pack purchase takes back.
type RefundPolicy string

const (
	// RefundRevoke revokes the pack's unspent credits; the spent part is
	// only reported (purchase.refunded). The default.
	RefundRevoke RefundPolicy = "revoke"
	// RefundClawBack also debits the spent part from the account's other
	// credits, as far as they go; the ledger never goes negative, so what
	// cannot be taken is reported as outstanding.
	RefundClawBack RefundPolicy = "claw_back"
)

const toleranceDefault = 5 * time.Minute

// Config is the Stripe side of the configuration. Payments are off unless
// both keys are set.
type Config struct {
	SecretKey     string
	WebhookSecret string
	// SuccessURL and CancelURL are where Checkout sends the user back when
	// the request names none; "{account_id}" is replaced.
	SuccessURL string
	CancelURL  string
	// APIURL overrides Stripe's API base URL (stripe-mock in tests).
	APIURL string
	// Tolerance bounds the age of a webhook signature (default 5 minutes).
	Tolerance    time.Duration
	RefundPolicy RefundPolicy
}

// ConfigFromEnv reads the SCRIP_STRIPE_* variables.
func ConfigFromEnv() Config {
	return Config{
		SecretKey:     os.Getenv(EnvSecretKey),
		WebhookSecret: os.Getenv(EnvWebhookSecret),
		SuccessURL:    os.Getenv(EnvSuccessURL),
		CancelURL:     os.Getenv(EnvCancelURL),
		APIURL:        os.Getenv(EnvAPIURL),
		RefundPolicy:  RefundPolicy(os.Getenv(EnvRefundPolicy)),
	}
}

// Enabled reports whether payments can run: both keys are set.
func (c *Config) Enabled() bool { return c.SecretKey != "" && c.WebhookSecret != "" }

// Subscriptions is what the webhook handler needs from billing. The
// requests carry idempotency keys derived from Stripe objects; a call
// repeated with the same key must apply once.
type Subscriptions interface {
	// Plan returns the code of the account's current plan, "" for none.
	Plan(ctx context.Context, accountID string) (string, error)
	// Subscribe starts the plan and grants its first cycle's allowance.
	Subscribe(ctx context.Context, r SubscribeRequest) error
	// Renew starts a new paid cycle and grants its allowance.
	Renew(ctx context.Context, r RenewRequest) error
	ChangePlan(ctx context.Context, r ChangePlanRequest) error
	// Cancel ends the subscription now or at the end of its period.
	Cancel(ctx context.Context, accountID string, atPeriodEnd bool) error
	// Resume withdraws a cancellation at period end.
	Resume(ctx context.Context, accountID string) error
	MarkPastDue(ctx context.Context, accountID string) error
	MarkPaid(ctx context.Context, accountID string) error
}

// SubscribeRequest subscribes an account to a plan.
type SubscribeRequest struct {
	AccountID string
	PlanCode  string
	Key       string
	Start     time.Time
	// ExternalID is the Stripe subscription id.
	ExternalID string
}

// RenewRequest starts a paid cycle.
type RenewRequest struct {
	AccountID   string
	PlanCode    string
	Key         string
	PeriodStart time.Time
	PeriodEnd   time.Time
	ExternalID  string
}

// ChangePlanRequest moves an account to another plan.
type ChangePlanRequest struct {
	AccountID string
	PlanCode  string
	Key       string
	At        time.Time
}

// Options wire a Service. Engine, Catalog, Store and Outbox are required;
// without Subscriptions, subscription checkouts and events are refused.
type Options struct {
	Config        Config
	Engine        *ledger.Engine
	Catalog       func() *catalog.Catalog
	Subscriptions Subscriptions
	Store         Store
	Outbox        event.Store
	// HTTPClient is used for calls to Stripe's API.
	HTTPClient *http.Client
	Clock      ledger.Clock
	Logger     *slog.Logger
}

// Service is scrip's Stripe integration: it implements httpapi.Payments and
// serves the webhook (Handler).
type Service struct {
	opt    Options
	client *sg.Client
}

var _ httpapi.Payments = (*Service)(nil)

// New returns a Service. It fails when payments are not configured.
func New(opt Options) (*Service, error) {
	if !opt.Config.Enabled() {
		return nil, fmt.Errorf("stripe: %s and %s are required", EnvSecretKey, EnvWebhookSecret)
	}
	if opt.Engine == nil || opt.Catalog == nil || opt.Store == nil || opt.Outbox == nil {
		return nil, errors.New("stripe: Engine, Catalog, Store and Outbox are required")
	}
	switch opt.Config.RefundPolicy {
	case "":
		opt.Config.RefundPolicy = RefundRevoke
	case RefundRevoke, RefundClawBack:
	default:
		return nil, fmt.Errorf("stripe: refund policy %q is not %s or %s", opt.Config.RefundPolicy, RefundRevoke, RefundClawBack)
	}
	if opt.Config.Tolerance <= 0 {
		opt.Config.Tolerance = toleranceDefault
	}
	if opt.Clock == nil {
		opt.Clock = opt.Engine.Clock()
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	bc := &sg.BackendConfig{HTTPClient: opt.HTTPClient, LeveledLogger: &sg.LeveledLogger{Level: sg.LevelNull}}
	if opt.Config.APIURL != "" {
		bc.URL = sg.String(strings.TrimSuffix(opt.Config.APIURL, "/"))
	}
	client := sg.NewClient(opt.Config.SecretKey, sg.WithBackends(sg.NewBackendsWithConfig(bc)))
	return &Service{opt: opt, client: client}, nil
}

func (s *Service) now() time.Time { return s.opt.Clock.Now().UTC() }

// Checkout creates a Stripe Checkout Session for a pack or a plan.
func (s *Service) Checkout(ctx context.Context, req httpapi.CheckoutRequest) (httpapi.CheckoutSession, error) {
	c := s.opt.Catalog()
	md := map[string]string{MetaAccount: req.AccountID}
	p := &sg.CheckoutSessionCreateParams{ClientReferenceID: sg.String(req.AccountID), Metadata: md}
	var price string
	switch req.Mode {
	case "pack":
		pack, ok := c.Pack(req.PackCode)
		if !ok {
			return httpapi.CheckoutSession{}, &scrip.Error{Code: scrip.EInvalidParam, Field: "pack_code",
				Message: fmt.Sprintf("pack %q not found", req.PackCode)}
		}
		if pack.StripePrice == "" {
			return httpapi.CheckoutSession{}, &scrip.Error{Code: scrip.EInvalidParam, Field: "pack_code",
				Message: fmt.Sprintf("pack %q cannot be bought: it has no stripe_price in the catalog", pack.Code)}
		}
		price = pack.StripePrice
		md[MetaPack], md[MetaCredits] = pack.Code, pack.Credits.String()
		p.Mode = sg.String(string(sg.CheckoutSessionModePayment))
		// The charge carries the account, so a refund is recognized as
		// scrip's even when it arrives before the purchase.
		p.PaymentIntentData = &sg.CheckoutSessionCreatePaymentIntentDataParams{Metadata: map[string]string{
			MetaAccount: req.AccountID, MetaPack: pack.Code}}
	case "subscription":
		plan, ok := c.Plan(req.PlanCode)
		if !ok {
			return httpapi.CheckoutSession{}, &scrip.Error{Code: scrip.EInvalidParam, Field: "plan_code",
				Message: fmt.Sprintf("plan %q not found", req.PlanCode)}
		}
		if plan.StripePrice == "" {
			return httpapi.CheckoutSession{}, &scrip.Error{Code: scrip.EInvalidParam, Field: "plan_code",
				Message: fmt.Sprintf("plan %q cannot be bought: it has no stripe_price in the catalog", plan.Code)}
		}
		if s.opt.Subscriptions == nil {
			return httpapi.CheckoutSession{}, scrip.Errorf(scrip.EUnavailable, "subscriptions are not available on this server")
		}
		cur, err := s.opt.Subscriptions.Plan(ctx, req.AccountID)
		if err != nil {
			return httpapi.CheckoutSession{}, fmt.Errorf("stripe: plan of %s: %w", req.AccountID, err)
		}
		switch {
		case cur == plan.Code:
			return httpapi.CheckoutSession{}, &scrip.Error{Code: scrip.EConflict, Field: "plan_code",
				Message: fmt.Sprintf("account %q is already subscribed to plan %q", req.AccountID, plan.Code)}
		case cur != "":
			return httpapi.CheckoutSession{}, &scrip.Error{Code: scrip.EConflict, Field: "plan_code",
				Message: fmt.Sprintf("account %q is subscribed to plan %q: change the plan of that subscription instead of starting a second one", req.AccountID, cur)}
		}
		price = plan.StripePrice
		md[MetaPlan] = plan.Code
		p.Mode = sg.String(string(sg.CheckoutSessionModeSubscription))
		p.SubscriptionData = &sg.CheckoutSessionCreateSubscriptionDataParams{Metadata: map[string]string{
			MetaAccount: req.AccountID, MetaPlan: plan.Code}}
	default:
		return httpapi.CheckoutSession{}, &scrip.Error{Code: scrip.EInvalidParam, Field: "checkout_mode",
			Message: fmt.Sprintf("checkout_mode must be pack or subscription, got %q", req.Mode)}
	}
	p.LineItems = []*sg.CheckoutSessionCreateLineItemParams{{Price: sg.String(price), Quantity: sg.Int64(1)}}
	success, err := s.returnURL("success_url", req.SuccessURL, s.opt.Config.SuccessURL, req.AccountID)
	if err != nil {
		return httpapi.CheckoutSession{}, err
	}
	cancel, err := s.returnURL("cancel_url", req.CancelURL, s.opt.Config.CancelURL, req.AccountID)
	if err != nil {
		return httpapi.CheckoutSession{}, err
	}
	p.SuccessURL, p.CancelURL = sg.String(success), sg.String(cancel)
	if req.Key != "" {
		// The caller's key makes a retried request return the same session.
		p.SetIdempotencyKey("scrip-checkout:" + req.AccountID + ":" + req.Key)
	}
	sess, err := s.client.V1CheckoutSessions.Create(ctx, p)
	if err != nil {
		return httpapi.CheckoutSession{}, stripeError("create checkout session", err)
	}
	return httpapi.CheckoutSession{ID: sess.ID, URL: sess.URL}, nil
}

func (s *Service) returnURL(field, fromRequest, configured, accountID string) (string, error) {
	u := fromRequest
	if u == "" {
		u = configured
	}
	if u == "" {
		return "", &scrip.Error{Code: scrip.EInvalidParam, Field: field,
			Message: fmt.Sprintf("%s is required: none in the request and none configured (%s, %s)", field, EnvSuccessURL, EnvCancelURL)}
	}
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return "", &scrip.Error{Code: scrip.EInvalidParam, Field: field, Message: fmt.Sprintf("%s %q is not an http(s) URL", field, u)}
	}
	return strings.ReplaceAll(u, "{account_id}", accountID), nil
}

// stripeError keeps Stripe's message for invalid requests (a wrong price
// id) and hides the rest as unavailable.
func stripeError(what string, err error) error {
	var se *sg.Error
	if errors.As(err, &se) {
		if se.HTTPStatusCode >= 400 && se.HTTPStatusCode < 500 && se.HTTPStatusCode != http.StatusTooManyRequests &&
			se.HTTPStatusCode != http.StatusUnauthorized {
			return &scrip.Error{Code: scrip.EInvalid, Message: fmt.Sprintf("stripe refused to %s: %s", what, se.Msg)}
		}
	}
	return &scrip.Error{Code: scrip.EUnavailable, Message: fmt.Sprintf("stripe: %s failed; try again", what)}
}
