package stripe

import (
	"context"
	"errors"
	"time"

	"github.com/scriphq/scrip/credit"
)

// ErrNotFound is returned by a Store for a missing row.
var ErrNotFound = errors.New("not found")

// Processed is a Stripe event scrip has applied, and what applying it did.
type Processed struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	AccountID string    `json:"account_id,omitempty"`
	ObjectID  string    `json:"object_id,omitempty"`
	Created   time.Time `json:"created"`
	Received  time.Time `json:"received_at"`
	Result    string    `json:"result"`
}

// Purchase kinds.
const (
	KindPack         = "pack"
	KindSubscription = "subscription"
)

// Purchase is a paid checkout, kept so that a refunded charge finds the
// credits it bought.
type Purchase struct {
	// ID is the checkout session's id.
	ID            string
	AccountID     string
	Kind          string
	Code          string
	PaymentIntent string
	GrantID       string
	Credits       credit.Amount
	PaidAmount    int64
	Currency      string
	CreatedAt     time.Time
}

// Subscription is a Stripe subscription scrip knows, with the time of the
// last event applied to it, so an older update delivered late is skipped.
type Subscription struct {
	ID                string
	AccountID         string
	PlanCode          string
	Status            string
	CancelAtPeriodEnd bool
	// EventCreated is the creation time (unix seconds) of the last event
	// applied.
	EventCreated int64
	UpdatedAt    time.Time
}

// Store persists what the webhook handler needs besides the ledger.
// Implementations: sqlite and postgres.
type Store interface {
	// ProcessedEvent returns the record of an applied event, ErrNotFound if
	// it was not applied.
	ProcessedEvent(ctx context.Context, id string) (Processed, error)
	// RecordEvent stores an applied event unless it is stored already.
	RecordEvent(ctx context.Context, p Processed) error
	// ProcessedEvents returns the latest applied events, newest first.
	ProcessedEvents(ctx context.Context, limit int) ([]Processed, error)

	// SavePurchase stores a purchase unless one with its id exists.
	SavePurchase(ctx context.Context, p Purchase) error
	PurchaseByPaymentIntent(ctx context.Context, paymentIntent string) (Purchase, error)

	// SaveSubscription inserts or replaces the subscription's row.
	SaveSubscription(ctx context.Context, s Subscription) error
	Subscription(ctx context.Context, id string) (Subscription, error)
}
