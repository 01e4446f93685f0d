package ledger

import (
	"time"

	"github.com/scriphq/scrip/credit"
)

// Clock tells the time. Everything time-dependent in scrip takes one, so
// tests run a year of cycles in milliseconds.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }

// Every mutation carries an idempotency key (Key), stored in the same
// transaction as its effect and scoped to the account. A replay returns the
// first result with Replayed set; the same key with other parameters fails
// with idempotency_conflict.

// GrantRequest adds credits to an account.
type GrantRequest struct {
	AccountID string
	Key       string
	Kind      Kind
	Amount    credit.Amount
	// Priority defaults to DefaultPriority(Kind) when nil.
	Priority *int
	// EffectiveAt defaults to now; credits are not spendable before it.
	EffectiveAt time.Time
	// ExpiresAt is zero for credits that never expire.
	ExpiresAt    time.Time
	Source       Source
	PaidAmount   int64
	PaidCurrency string
	Metadata     map[string]string
}

// HoldRequest reserves credits for a job. A zero amount is allowed: it
// records usage that costs nothing (an unlimited plan) through the same
// lifecycle.
type HoldRequest struct {
	AccountID string
	Key       string
	Amount    credit.Amount
	// TTL defaults to the engine's HoldTTLDefault and may not exceed HoldTTLMax.
	TTL time.Duration
	Ref Ref
	// Fingerprint, when set, identifies the request for idempotency in place
	// of its amount and reference: callers that derive the amount (from a
	// catalog that may be reloaded) pass a digest of what their client sent,
	// so a replay returns the first result even after a price change.
	Fingerprint string
}

// CaptureRequest settles a hold at the actual amount.
type CaptureRequest struct {
	HoldID string
	Key    string
	Amount credit.Amount
	// AllowOver permits capturing more than the hold when the extra is
	// available; otherwise Amount above the hold is invalid_amount.
	AllowOver bool
	// Ref, when set, replaces the hold's reference on the charge (for
	// instance the actual parameters).
	Ref *Ref
	// Fingerprint, when set, identifies the request for idempotency in place
	// of its amount and reference: callers that derive the amount (from a
	// catalog that may be reloaded) pass a digest of what their client sent,
	// so a replay returns the first result even after a price change.
	Fingerprint string
}

// ReleaseRequest ends a hold without charging (the provider failed).
type ReleaseRequest struct {
	HoldID string
	Key    string
	Reason string
}

// ChargeRequest debits credits in one step (a hold captured at once).
type ChargeRequest struct {
	AccountID string
	Key       string
	Amount    credit.Amount
	Ref       Ref
	// Fingerprint, when set, identifies the request for idempotency in place
	// of its amount and reference: callers that derive the amount (from a
	// catalog that may be reloaded) pass a digest of what their client sent,
	// so a replay returns the first result even after a price change.
	Fingerprint string
}

// RefundRequest returns a charge's credits, whole or in part, to the grants
// they were taken from.
type RefundRequest struct {
	ChargeID string
	Key      string
	// Amount zero refunds everything not yet refunded.
	Amount credit.Amount
	Reason string
}

// AdjustRequest is an admin correction. A positive amount becomes an
// adjustment grant; a negative one is debited in consumption order.
type AdjustRequest struct {
	AccountID string
	Key       string
	Amount    credit.Amount
	Reason    string
	// ExpiresAt applies to a positive adjustment; zero = never.
	ExpiresAt time.Time
}

// RevokeRequest removes a grant's unspent remainder (a refunded payment).
type RevokeRequest struct {
	GrantID string
	Key     string
	Reason  string
}

// Result is the outcome of one mutation.
type Result struct {
	Transaction Transaction `json:"transaction"`
	// Replayed is set when the key had already been applied and this is
	// the first result returned again.
	Replayed bool    `json:"replayed"`
	Grant    *Grant  `json:"grant,omitempty"`
	Hold     *Hold   `json:"hold,omitempty"`
	Charge   *Charge `json:"charge,omitempty"`
	// Available is the account's spendable balance right after the
	// operation (for a replay: now).
	Available credit.Amount `json:"available"`
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Accounts     int      `json:"accounts"`
	Transactions int64    `json:"transactions"`
	Problems     []string `json:"problems"`
	// Totals are the derived balances of the system accounts. Over a
	// ledger's life they may pass what one Amount holds.
	Totals map[string]credit.Sum `json:"totals"`
}

// OK reports whether Verify found nothing wrong.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }
