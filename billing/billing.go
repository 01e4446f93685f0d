// Package billing turns the catalog's plans into credits over time:
// subscriptions, billing cycles, renewals, upgrades, rollover, past-due
// handling, count quotas and one-time sign-up grants.
//
// Every credit movement goes through the ledger Engine with a deterministic
// idempotency key ("sub:<subscription id>:cycle:<n>", ...), so a renewal run
// twice, by a retry after a crash or by two scheduler processes at once,
// grants once. Subscription state lives in a Store that the sqlite and
// postgres packages implement; the Store serializes changes per account and
// hands due subscriptions to one scheduler at a time.
package billing

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/scriphq/scrip/credit"
)

// Status is the state of a subscription.
type Status string

const (
	// StatusActive: paid up; each cycle grants the plan's allowance.
	StatusActive Status = "active"
	// StatusPastDue: a payment failed. The account keeps its plan until the
	// grace period ends, but no new allowance is granted until it is paid.
	StatusPastDue Status = "past_due"
	// StatusCanceled: ended. The account has no plan; credits already
	// granted stay until they expire.
	StatusCanceled Status = "canceled"
)

// Carry-in kinds: what moves into a cycle from the one before it.
const (
	carryNone     = ""
	carryRollover = "rollover"
	carryUpgrade  = "upgrade"
)

// Subscription is an account's plan and billing cycle. Its JSON form is what
// the API shows; bookkeeping fields are persisted by EncodeSubscription.
type Subscription struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	PlanCode  string `json:"plan"`
	Status    Status `json:"status"`
	// Interval is the plan's payment interval, "month" or "year"; credits
	// reset every month either way.
	Interval string `json:"interval"`
	// Anchor is the start of the cycle sequence; each cycle starts on the
	// anchor's day of the month (or the month's last day).
	Anchor time.Time `json:"anchor"`
	// Cycle numbers the subscription's cycles from 1; an upgrade starts a
	// new one.
	Cycle              int64     `json:"cycle"`
	CurrentPeriodStart time.Time `json:"current_period_start"`
	CurrentPeriodEnd   time.Time `json:"current_period_end"`
	// PendingPlanCode is the plan that takes over at the period end (a
	// downgrade).
	PendingPlanCode   string    `json:"pending_plan,omitempty"`
	CancelAtPeriodEnd bool      `json:"cancel_at_period_end"`
	PastDueSince      time.Time `json:"past_due_since,omitzero"`
	// GraceEndsAt is when a past-due subscription is canceled unless paid.
	GraceEndsAt time.Time `json:"grace_ends_at,omitzero"`
	CanceledAt  time.Time `json:"canceled_at,omitzero"`
	// ExternalID is the payment provider's subscription id.
	ExternalID string    `json:"external_id,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// LastError is the last reason scheduled work on the subscription
	// failed; it is retried.
	LastError string `json:"last_error,omitempty"`

	// Bookkeeping, persisted but not shown.

	// PeriodIndex is the number of months from Anchor to the current
	// period's start.
	PeriodIndex int64 `json:"-"`
	// GrantedCycle is the last cycle whose carried-in credits were granted,
	// AllowanceCycle the last whose allowance was.
	GrantedCycle   int64 `json:"-"`
	AllowanceCycle int64 `json:"-"`
	// CarryIn is what moves into the current cycle (rollover, upgrade or
	// nothing) and CarryEnd the expiry of the grants it moves from.
	CarryIn  string    `json:"-"`
	CarryEnd time.Time `json:"-"`
	// Key is the idempotency key of the request that created the
	// subscription, ChangeKey that of the last plan change.
	Key       string `json:"-"`
	ChangeKey string `json:"-"`
	// RenewKey is the idempotency key of the last paid renewal (Renew).
	RenewKey string `json:"-"`
	// DueAt is when the scheduler next has work on the subscription; zero
	// for none.
	DueAt time.Time `json:"-"`
}

// record is the persisted form of a Subscription.
type record struct {
	ID                 string    `json:"id"`
	AccountID          string    `json:"account_id"`
	PlanCode           string    `json:"plan"`
	Status             Status    `json:"status"`
	Interval           string    `json:"interval"`
	Anchor             time.Time `json:"anchor"`
	Cycle              int64     `json:"cycle"`
	CurrentPeriodStart time.Time `json:"period_start"`
	CurrentPeriodEnd   time.Time `json:"period_end"`
	PendingPlanCode    string    `json:"pending_plan,omitempty"`
	CancelAtPeriodEnd  bool      `json:"cancel_at_period_end,omitempty"`
	PastDueSince       time.Time `json:"past_due_since,omitzero"`
	GraceEndsAt        time.Time `json:"grace_ends_at,omitzero"`
	CanceledAt         time.Time `json:"canceled_at,omitzero"`
	ExternalID         string    `json:"external_id,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
	LastError          string    `json:"last_error,omitempty"`
	PeriodIndex        int64     `json:"period_index"`
	GrantedCycle       int64     `json:"granted_cycle"`
	AllowanceCycle     int64     `json:"allowance_cycle"`
	CarryIn            string    `json:"carry_in,omitempty"`
	CarryEnd           time.Time `json:"carry_end,omitzero"`
	Key                string    `json:"key,omitempty"`
	ChangeKey          string    `json:"change_key,omitempty"`
	RenewKey           string    `json:"renew_key,omitempty"`
	DueAt              time.Time `json:"due_at,omitzero"`
}

// EncodeSubscription is the persisted form of s, for stores.
func EncodeSubscription(s *Subscription) ([]byte, error) {
	return json.Marshal(record(*s))
}

// DecodeSubscription reads what EncodeSubscription wrote.
func DecodeSubscription(b []byte) (Subscription, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return Subscription{}, err
	}
	return Subscription(r), nil
}

// Cycle records one billing cycle of a subscription as it began: the plan,
// the period, the allowance and the credits carried in. It is written once;
// a renewal retried after a crash reads the carry from it instead of
// computing it again.
type Cycle struct {
	SubscriptionID string        `json:"subscription_id"`
	AccountID      string        `json:"account_id"`
	Cycle          int64         `json:"cycle"`
	PlanCode       string        `json:"plan"`
	PeriodStart    time.Time     `json:"period_start"`
	PeriodEnd      time.Time     `json:"period_end"`
	Allowance      credit.Amount `json:"allowance"`
	// CarryIn is "rollover", "upgrade" or empty; Carry the credits it moved.
	CarryIn   string        `json:"carry_in,omitempty"`
	Carry     credit.Amount `json:"carry"`
	CreatedAt time.Time     `json:"created_at"`
}

// QuotaStatus is the state of a quota reservation.
type QuotaStatus string

const (
	QuotaHeld     QuotaStatus = "held"
	QuotaConsumed QuotaStatus = "consumed"
	QuotaReleased QuotaStatus = "released"
)

// QuotaReservation is a count reserved against a plan quota ("sites": 1)
// for one job. It counts against the period it was made in until released.
type QuotaReservation struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	Key       string `json:"-"`
	Quota     string `json:"quota"`
	// Period identifies the billing period the count belongs to.
	Period    string      `json:"period"`
	Count     int64       `json:"count"`
	Status    QuotaStatus `json:"status"`
	CreatedAt time.Time   `json:"created_at"`
	SettledAt time.Time   `json:"settled_at,omitzero"`
}

// QuotaUsage is a quota's standing in the current period. Limit -1 means
// the plan sets none.
type QuotaUsage struct {
	Quota string `json:"quota"`
	Limit int64  `json:"limit"`
	Used  int64  `json:"used"`
}

// Errors a Store returns.
var (
	// ErrNotFound: no such row.
	ErrNotFound = errors.New("billing: not found")
	// ErrQuotaExceeded: the reservation would take usage above the limit.
	ErrQuotaExceeded = errors.New("billing: quota exceeded")
	// ErrKeyReused: a quota reservation key was used with other parameters.
	ErrKeyReused = errors.New("billing: idempotency key reused")
	// ErrSettled: the quota reservation was already settled otherwise.
	ErrSettled = errors.New("billing: reservation already settled")
)

// UpdateFunc computes an account's next subscription from the current one
// (nil when it has none). Returning nil changes nothing.
type UpdateFunc func(ctx context.Context, cur *Subscription) (*Subscription, error)

// Store persists subscriptions, their cycles and quota usage.
//
// UpdateSubscription and ClaimDue hold the subscription (or, for an account
// without one, the account) exclusively while fn runs, against every other
// UpdateSubscription and ClaimDue on the same database, in this process or
// another. fn calls the ledger engine, so a store must not hold a connection
// the engine needs for writing (SQLite's single writer) while fn runs.
type Store interface {
	// Subscription returns the account's subscription, or ErrNotFound.
	Subscription(ctx context.Context, accountID string) (Subscription, error)
	// UpdateSubscription runs fn on the account's subscription under the
	// lock and stores its result; an error from fn stores nothing.
	UpdateSubscription(ctx context.Context, accountID string, fn UpdateFunc) error
	// ClaimDue picks the subscription with the earliest DueAt at or before
	// now that no one else holds, runs fn on it under the lock and stores
	// its result. It reports false when nothing was due and free.
	ClaimDue(ctx context.Context, now time.Time, fn func(ctx context.Context, s Subscription) (*Subscription, error)) (bool, error)
	// CountDue counts the subscriptions due at or before now (metrics).
	CountDue(ctx context.Context, now time.Time) (int, error)

	// RecordCycle stores c unless the subscription's cycle is already
	// recorded, and returns the stored record either way.
	RecordCycle(ctx context.Context, c Cycle) (Cycle, error)
	// Cycles returns up to limit of the account's cycles, newest first.
	Cycles(ctx context.Context, accountID string, limit int) ([]Cycle, error)

	// ReserveQuota stores r (Status held) and adds r.Count to the usage of
	// (account, quota, period) if the result stays within limit (limit < 0:
	// no limit); else ErrQuotaExceeded. A reservation with the same account
	// and key is returned as it was stored when its quota, period and count
	// match, else ErrKeyReused.
	ReserveQuota(ctx context.Context, r QuotaReservation, limit int64) (QuotaReservation, error)
	// SettleQuota moves a held reservation to status (consumed or
	// released; released gives its count back) and returns it. Settling to
	// the status it already has returns it unchanged; otherwise a settled
	// reservation gives ErrSettled, a missing one ErrNotFound.
	SettleQuota(ctx context.Context, id string, status QuotaStatus, at time.Time) (QuotaReservation, error)
	// QuotaUsed returns the counts used per quota in an account's period.
	QuotaUsed(ctx context.Context, accountID, period string) (map[string]int64, error)
}
