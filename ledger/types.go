// Package ledger holds scrip's credit ledger: accounts, grants, holds,
// charges, refunds and the append-only double-entry journal they write.
//
// Domain logic lives here, once; a Store only loads and persists. Writes go
// through the Engine's batching committer (see engine.go).
package ledger

import (
	"time"

	"github.com/scriphq/scrip/credit"
)

// Kind is the kind of a grant.
type Kind string

const (
	KindSubscription Kind = "subscription"
	KindTopUp        Kind = "top_up"
	KindPromotional  Kind = "promotional"
	KindAdjustment   Kind = "adjustment"
)

// Kinds lists every grant kind.
var Kinds = []Kind{KindSubscription, KindTopUp, KindPromotional, KindAdjustment}

// DefaultPriority is the priority a grant of the kind gets when the caller
// sets none. Lower is spent first: plan credits before top-up credits.
func DefaultPriority(k Kind) int {
	if k == KindTopUp {
		return 200
	}
	return 100
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool {
	for _, x := range Kinds {
		if k == x {
			return true
		}
	}
	return false
}

// Limits on identifiers and attached data.
const (
	accountIDBytesMax = 128
	keyBytesMax       = 255
	metadataKeysMax   = 32
	metadataBytesMax  = 4096
	// textBytesMax bounds the free text an operation records: reasons and
	// a grant's source.
	textBytesMax = 1024
)

// Account is one end user (or team) of the platform, keyed by its own id.
type Account struct {
	ID        string            `json:"id"`
	CreatedAt time.Time         `json:"created_at"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	// Seq is the number of journal transactions of the account and Hash the
	// hash of the last one: the head of the account's chain.
	Seq  int64  `json:"-"`
	Hash string `json:"-"`
}

// Source says where a grant's credits came from.
type Source struct {
	// Type is "plan_cycle", "purchase", "admin", "signup", ... as the caller needs.
	Type   string `json:"type,omitempty"`
	ID     string `json:"id,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Grant is a bucket of credits in an account.
type Grant struct {
	ID        string        `json:"id"`
	AccountID string        `json:"account_id"`
	Kind      Kind          `json:"kind"`
	Amount    credit.Amount `json:"amount"`
	// Remaining is what is left in the grant and not held.
	Remaining   credit.Amount `json:"remaining"`
	Priority    int           `json:"priority"`
	EffectiveAt time.Time     `json:"effective_at"`
	// ExpiresAt is the zero time for a grant that never expires.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Source    Source    `json:"source"`
	// PaidAmount is the cost basis in minor units of PaidCurrency.
	PaidAmount   int64             `json:"paid_amount,omitempty"`
	PaidCurrency string            `json:"paid_currency,omitempty"`
	CreatedAt    time.Time         `json:"created_at"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	// Closed is set once the grant has expired or been revoked; returned
	// credits then leave it again at once.
	Closed bool `json:"closed,omitempty"`
}

// Never reports whether the grant never expires.
func (g *Grant) Never() bool { return g.ExpiresAt.IsZero() }

// Allocation is the part of an amount taken from one grant.
type Allocation struct {
	GrantID string        `json:"grant_id"`
	Amount  credit.Amount `json:"amount"`
}

// HoldStatus is the state of a hold; every hold ends exactly once.
type HoldStatus string

const (
	HoldOpen     HoldStatus = "open"
	HoldCaptured HoldStatus = "captured"
	HoldReleased HoldStatus = "released"
	HoldExpired  HoldStatus = "expired"
)

// Ref is what the caller attached to a movement for later analysis.
type Ref struct {
	Action   string            `json:"action,omitempty"`
	Job      string            `json:"job,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Hold is credits reserved for one job.
type Hold struct {
	ID          string        `json:"id"`
	AccountID   string        `json:"account_id"`
	Amount      credit.Amount `json:"amount"`
	Allocations []Allocation  `json:"allocations"`
	Status      HoldStatus    `json:"status"`
	ExpiresAt   time.Time     `json:"expires_at"`
	CreatedAt   time.Time     `json:"created_at"`
	SettledAt   time.Time     `json:"settled_at,omitzero"`
	// Captured is the amount charged when the hold was captured.
	Captured credit.Amount `json:"captured"`
	ChargeID string        `json:"charge_id,omitempty"`
	Ref      Ref           `json:"ref"`
}

// Charge is credits taken, from a captured hold or in one step.
type Charge struct {
	ID        string        `json:"id"`
	AccountID string        `json:"account_id"`
	Amount    credit.Amount `json:"amount"`
	Refunded  credit.Amount `json:"refunded"`
	// Allocations are what is still refundable, per grant.
	Allocations []Allocation `json:"allocations"`
	HoldID      string       `json:"hold_id,omitempty"`
	CreatedAt   time.Time    `json:"created_at"`
	Ref         Ref          `json:"ref"`
}

// TxType is the type of a journal transaction.
type TxType string

const (
	TxGrant       TxType = "grant"
	TxHold        TxType = "hold"
	TxCapture     TxType = "capture"
	TxRelease     TxType = "release"
	TxHoldExpiry  TxType = "hold_expiry"
	TxCharge      TxType = "charge"
	TxRefund      TxType = "refund"
	TxAdjustment  TxType = "adjustment"
	TxRevocation  TxType = "revocation"
	TxGrantExpiry TxType = "grant_expiry"
)

// OpCreateAccount is the operation an account's creation is observed as
// (Observer.ObserveOp). It goes through the committer like the others but
// writes no journal transaction, so no transaction has this type.
const OpCreateAccount TxType = "create_account"

// System accounts. Their balances are derived from the journal, never kept
// in a row every operation would update.
const (
	SystemIssued   = "@issued"
	SystemSpent    = "@spent"
	SystemRefunded = "@refunded"
	SystemExpired  = "@expired"
	SystemRevoked  = "@revoked"
	SystemAdjusted = "@adjusted"
)

// Entry is one leg of a journal transaction. Exactly one of Grant and Hold
// is set for an entry on a user account; neither for a system account.
type Entry struct {
	Account string        `json:"account"`
	Grant   string        `json:"grant,omitempty"`
	Hold    string        `json:"hold,omitempty"`
	Amount  credit.Amount `json:"amount"`
}

// Transaction is one journal transaction: the record of one operation. Its
// entries sum to zero.
type Transaction struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	Seq       int64  `json:"seq"`
	Type      TxType `json:"type"`
	// Amount is the credits the operation moved: creditsUsed for a charge
	// or capture, the amount granted, held, released, refunded or expired.
	Amount         credit.Amount `json:"amount"`
	GrantID        string        `json:"grant_id,omitempty"`
	HoldID         string        `json:"hold_id,omitempty"`
	ChargeID       string        `json:"charge_id,omitempty"`
	IdempotencyKey string        `json:"idempotency_key,omitempty"`
	// RequestHash identifies the parameters of the request, so that a
	// replay with different parameters is detected.
	RequestHash string    `json:"-"`
	Ref         Ref       `json:"ref"`
	Reason      string    `json:"reason,omitempty"`
	Entries     []Entry   `json:"entries"`
	CreatedAt   time.Time `json:"created_at"`
	// AvailableAfter is the account's available credits once the
	// transaction applied, as the engine computed them at CreatedAt; nil
	// on transactions written before it was recorded. The hash leaves it
	// out (older transactions have none); Verify checks each account's
	// latest against its grants.
	AvailableAfter *credit.Amount `json:"available_after,omitempty"`
	PrevHash       string         `json:"prev_hash"`
	Hash           string         `json:"hash"`
}

// Balance is an account's spendable position, projected from its grants
// and open holds.
type Balance struct {
	AccountID string        `json:"account_id"`
	Available credit.Amount `json:"available"`
	Held      credit.Amount `json:"held"`
	// ByKind totals the available credits per grant kind.
	ByKind map[Kind]credit.Amount `json:"by_kind"`
	Grants []Grant                `json:"grants"`
	AsOf   time.Time              `json:"as_of"`
}
