package client

import (
	"time"

	"github.com/scriphq/scrip/billing"
	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// Op is what every response that moves credits carries.
type Op struct {
	// CreditsUsed is the authoritative amount the operation consumed, net
	// of refunds; zero for operations that only reserve or add credits.
	CreditsUsed   credit.Amount `json:"creditsUsed"`
	Available     credit.Amount `json:"available"`
	Replayed      bool          `json:"replayed"`
	TransactionID string        `json:"transaction_id"`
}

// Account is an end user or team of the platform.
type Account struct {
	ledger.Account
}

// Balance is an account's spendable position.
type Balance struct {
	ledger.Balance
}

// Grant is a bucket of credits; Op is set when it comes from a mutation.
type Grant struct {
	ledger.Grant
	Op
}

// Hold is credits reserved for a job. Charge is set once captured; Quote
// when the server priced the request.
type Hold struct {
	ledger.Hold
	Charge *ledger.Charge `json:"charge,omitempty"`
	Quote  *catalog.Quote `json:"quote,omitempty"`
	Op
}

// Charge is credits taken.
type Charge struct {
	ledger.Charge
	Quote *catalog.Quote `json:"quote,omitempty"`
	Op
}

// Refund is credits given back from a charge.
type Refund struct {
	ID       string         `json:"id"`
	ChargeID string         `json:"charge_id"`
	Amount   credit.Amount  `json:"amount"`
	Reason   string         `json:"reason,omitempty"`
	Charge   *ledger.Charge `json:"charge,omitempty"`
	Op
}

// Adjustment is an admin correction.
type Adjustment struct {
	ID        string        `json:"id"`
	AccountID string        `json:"account_id"`
	Amount    credit.Amount `json:"amount"`
	Reason    string        `json:"reason"`
	Grant     *ledger.Grant `json:"grant,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
	Op
}

// TransactionList is one page of history.
type TransactionList struct {
	Data       []ledger.Transaction `json:"data"`
	HasMore    bool                 `json:"has_more"`
	NextCursor string               `json:"next_cursor,omitempty"`
}

// Estimate is the price of several steps.
type Estimate struct {
	catalog.Estimate
	Workflow string `json:"workflow,omitempty"`
}

// Action is a catalog action with its price at default parameters.
type Action struct {
	ID          string           `json:"id"`
	Name        string           `json:"name"`
	Category    string           `json:"category"`
	Provider    string           `json:"provider,omitempty"`
	Speed       string           `json:"speed,omitempty"`
	Description string           `json:"description,omitempty"`
	Tags        []string         `json:"tags,omitempty"`
	Aliases     []string         `json:"aliases,omitempty"`
	MinPlan     string           `json:"min_plan,omitempty"`
	Params      []map[string]any `json:"params"`
	Credits     *credit.Amount   `json:"credits"`
	Fixed       bool             `json:"fixed"`
	Label       string           `json:"label"`
}

// Catalog is the catalog as a platform's UI needs it.
type Catalog struct {
	Version          string            `json:"version"`
	Name             string            `json:"name"`
	CategoryDefaults map[string]string `json:"category_defaults"`
	Actions          []Action          `json:"actions"`
	Plans            []catalog.Plan    `json:"plans"`
	Packs            []catalog.Pack    `json:"packs"`
	Categories       []map[string]any  `json:"categories"`
	Workflows        []map[string]any  `json:"workflows"`
}

// Wallet is an account's credits as billing-catalog shows them.
type Wallet struct {
	AvailableTotal credit.Amount                 `json:"available_total"`
	HeldTotal      credit.Amount                 `json:"held_total"`
	ByKind         map[ledger.Kind]credit.Amount `json:"by_kind"`
	Grants         []ledger.Grant                `json:"grants"`
}

// Subscription is an account's plan and billing cycle, with the plan's name
// and price, the next payment date (RenewsAt) and the quotas of the current
// period.
type Subscription struct {
	billing.View
}

// BillingCatalog is what a billing page shows for an account; Subscription
// is nil when it has none.
type BillingCatalog struct {
	AccountID      string         `json:"account_id"`
	Subscription   *Subscription  `json:"subscription"`
	Wallet         Wallet         `json:"wallet"`
	Plans          []catalog.Plan `json:"plans"`
	CreditPacks    []catalog.Pack `json:"credit_packs"`
	CatalogVersion string         `json:"catalog_version"`
	TopUpURL       string         `json:"top_up_url,omitempty"`
}

// AccountToken is a short-lived token that reads one account.
type AccountToken struct {
	Token     string    `json:"token"`
	AccountID string    `json:"account_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CheckoutSession is where to send the user to pay.
type CheckoutSession struct {
	ID  string `json:"id,omitempty"`
	URL string `json:"checkout_url"`
}

// CatalogReload is the outcome of a reload.
type CatalogReload struct {
	PreviousVersion string `json:"previous_version"`
	Version         string `json:"version"`
	Changed         bool   `json:"changed"`
}

// VerifyReport is what the journal check found.
type VerifyReport struct {
	ledger.VerifyReport
	OK bool `json:"ok"`
}
