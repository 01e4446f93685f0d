// Package event is scrip's outgoing event system: a durable outbox of events
// for the platform (purchase.completed, balance.low, ...), the endpoints the
// operator registered, and a dispatcher that delivers each event to each
// endpoint at least once, signed, with retries and a record of every attempt.
//
// Events carry stable ids derived from what caused them, so a cause seen
// twice (a replayed Stripe webhook, a journal transaction read again after a
// restart) inserts nothing new and receivers can deduplicate on the id.
package event

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// Event types sent to the platform.
const (
	PurchaseCompleted   = "purchase.completed"
	PurchaseRefunded    = "purchase.refunded"
	GrantCreated        = "grant.created"
	GrantExpiring       = "grant.expiring"
	BalanceLow          = "balance.low"
	CreditsExhausted    = "credits.exhausted"
	HoldExpired         = "hold.expired"
	SubscriptionRenewed = "subscription.renewed"
	SubscriptionChanged = "subscription.changed"
)

// Types lists every event type.
var Types = []string{PurchaseCompleted, PurchaseRefunded, GrantCreated, GrantExpiring, BalanceLow,
	CreditsExhausted, HoldExpired, SubscriptionRenewed, SubscriptionChanged}

// Limits.
const (
	endpointsMax     = 100
	urlBytesMax      = 2048
	dataBytesMax     = 64 << 10
	listLimitMax     = 500
	listLimitDefault = 50
	secretBytesMin   = 16
)

// ErrNotFound is returned by a Store for a missing event or endpoint.
var ErrNotFound = errors.New("not found")

// Event is one outgoing event. Data is its JSON payload.
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	AccountID string          `json:"account_id,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// New builds an event whose id is derived from its type and cause: the same
// cause always yields the same id, so publishing it again is a no-op.
func New(typ, cause, accountID string, at time.Time, data any) (Event, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("event %s: encode data: %w", typ, err)
	}
	if len(b) > dataBytesMax {
		return Event{}, fmt.Errorf("event %s: data is %d bytes, above the limit of %d", typ, len(b), dataBytesMax)
	}
	return Event{ID: ID(typ, cause), Type: typ, AccountID: accountID,
		CreatedAt: at.UTC().Truncate(time.Microsecond), Data: b}, nil
}

// ID returns the stable id of the event of type typ caused by cause.
func ID(typ, cause string) string {
	h := sha256.Sum256([]byte(typ + "\x00" + cause))
	return "evt_" + hex.EncodeToString(h[:12])
}

// Body is what is POSTed to an endpoint.
func (e *Event) Body() []byte {
	b, _ := json.Marshal(e) // fields are plain values and raw JSON
	return b
}

// Endpoint is a URL of the platform that receives events of some types.
type Endpoint struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Secret signs every delivery (Scrip-Signature).
	Secret string `json:"-"`
	// Types are the event types sent; "*" sends all.
	Types     []string  `json:"types"`
	CreatedAt time.Time `json:"created_at"`
	Disabled  bool      `json:"disabled,omitempty"`
}

// Wants reports whether the endpoint receives events of type typ.
func (ep *Endpoint) Wants(typ string) bool {
	return !ep.Disabled && (slices.Contains(ep.Types, "*") || slices.Contains(ep.Types, typ))
}

// Check validates an endpoint before it is stored.
func (ep *Endpoint) Check() error {
	u, err := url.Parse(ep.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(ep.URL) > urlBytesMax {
		return &scrip.Error{Code: scrip.EInvalidParam, Field: "url",
			Message: fmt.Sprintf("endpoint url %q must be an absolute http or https URL of at most %d bytes", ep.URL, urlBytesMax)}
	}
	if len(ep.Secret) < secretBytesMin {
		return &scrip.Error{Code: scrip.EInvalidParam, Field: "secret",
			Message: fmt.Sprintf("endpoint secret must be at least %d bytes", secretBytesMin)}
	}
	if len(ep.Types) == 0 {
		return &scrip.Error{Code: scrip.EInvalidParam, Field: "types", Message: "endpoint needs at least one event type (or *)"}
	}
	for _, t := range ep.Types {
		if t != "*" && !slices.Contains(Types, t) {
			return &scrip.Error{Code: scrip.EInvalidParam, Field: "types",
				Message: fmt.Sprintf("unknown event type %q (want one of %s, or *)", t, strings.Join(Types, ", "))}
		}
	}
	return nil
}

// Delivery states.
const (
	Pending   = "pending"
	Delivered = "delivered"
	Failed    = "failed"
)

// Delivery is the state of one event's delivery to one endpoint.
type Delivery struct {
	EventID     string    `json:"event_id"`
	EndpointID  string    `json:"endpoint_id"`
	Status      string    `json:"status"`
	Attempts    int       `json:"attempts"`
	NextAt      time.Time `json:"next_at,omitzero"`
	LastStatus  int       `json:"last_status,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
}

// Attempt is one HTTP request of a delivery.
type Attempt struct {
	EventID    string        `json:"event_id"`
	EndpointID string        `json:"endpoint_id"`
	Number     int           `json:"number"`
	At         time.Time     `json:"at"`
	StatusCode int           `json:"status_code,omitempty"`
	Error      string        `json:"error,omitempty"`
	Duration   time.Duration `json:"duration_ns"`
}

// Outcome is an attempt at a delivery and the delivery's state after it.
type Outcome struct {
	Attempt  Attempt
	Delivery Delivery
	// Lease is the lease of the claim that sent the attempt. The delivery
	// takes its new state only while that lease is still its own: a retry
	// by an operator, or another claim after the lease ran out, has the
	// last word over an attempt that ended later, which is only recorded.
	Lease time.Time
}

// Job is a claimed delivery with what it needs to be sent.
type Job struct {
	Delivery Delivery
	Event    Event
	Endpoint Endpoint
}

// Query selects events, newest first.
type Query struct {
	AccountID string
	Type      string
	// Before keeps events created before it (the cursor), when not zero;
	// with BeforeID, also those created at Before whose id sorts before
	// BeforeID, the events that follow one in the list's order.
	Before   time.Time
	BeforeID string
	Limit    int
}

// JournalCursor is a position in the journal's time order.
type JournalCursor struct {
	At time.Time `json:"at"`
	ID string    `json:"id"`
}

// JournalRow is what the watcher reads of a journal transaction: not its
// entries, reference or hashes, which no event needs and which would cost
// the store and the watcher most of the read.
type JournalRow struct {
	ID        string
	AccountID string
	Type      ledger.TxType
	Amount    credit.Amount
	GrantID   string
	HoldID    string
	CreatedAt time.Time
	// AvailableAfter is the account's available credits once the
	// transaction applied; nil when its row predates the record.
	AvailableAfter *credit.Amount
}

// Store persists the outbox. Implementations: sqlite and postgres.
type Store interface {
	// Publish inserts the events whose ids are new, each with a pending
	// delivery to every enabled endpoint that wants it, in one transaction,
	// and returns how many were new.
	Publish(ctx context.Context, evs []Event) (int, error)
	// PublishWith is Publish that also stores each of states' values (as
	// SetStates does) in the same transaction: a watcher's events and its
	// cursor past them are written together.
	PublishWith(ctx context.Context, evs []Event, states map[string]string) (int, error)
	Event(ctx context.Context, id string) (Event, error)
	Events(ctx context.Context, q Query) ([]Event, error)

	CreateEndpoint(ctx context.Context, ep Endpoint) error
	Endpoints(ctx context.Context) ([]Endpoint, error)
	// DisableEndpoint stops deliveries to the endpoint; its history stays.
	DisableEndpoint(ctx context.Context, id string) error

	// Claim leases up to limit pending deliveries due at or before now
	// until leaseUntil, so no other dispatcher takes them meanwhile.
	Claim(ctx context.Context, now, leaseUntil time.Time, limit int) ([]Job, error)
	// RecordAll stores attempts and the new states of their deliveries
	// that are still pending under the outcome's lease, all in one
	// transaction.
	RecordAll(ctx context.Context, os []Outcome) error
	Deliveries(ctx context.Context, eventID string) ([]Delivery, error)
	Attempts(ctx context.Context, eventID string) ([]Attempt, error)
	// Retry makes a delivery pending again, due at at.
	Retry(ctx context.Context, eventID, endpointID string, at time.Time) error

	// State and SetState keep the watcher's cursors and alert states.
	State(ctx context.Context, name string) (string, error)
	SetState(ctx context.Context, name, value string) error
	// SetStates stores each name's value, all in one transaction.
	SetStates(ctx context.Context, states map[string]string) error
	// States returns the values stored under names, by name; a name
	// without one is left out.
	States(ctx context.Context, names []string) (map[string]string, error)
	// InitState stores value under name unless a value is stored there
	// already, and returns the value stored, its own or the one before.
	InitState(ctx context.Context, name, value string) (string, error)
	// JournalAfter returns up to limit journal transactions of any account
	// after the cursor and created at or before until, in (created_at, id)
	// order.
	JournalAfter(ctx context.Context, c JournalCursor, until time.Time, limit int) ([]JournalRow, error)
	// ExpiringAfter returns up to limit open grants with credits remaining
	// whose expiry is after the cursor and at or before until, in
	// (expires_at, id) order.
	ExpiringAfter(ctx context.Context, c JournalCursor, until time.Time, limit int) ([]ledger.Grant, error)
}

// SignatureHeader is the header carrying a delivery's signature.
const SignatureHeader = "Scrip-Signature"

// Sign returns the Scrip-Signature value of body sent at t:
// "t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>".
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a Scrip-Signature header against body, as receivers do: one
// v1 signature must match and t must be within tolerance of now.
func Verify(secret, header string, body []byte, tolerance time.Duration, now time.Time) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return errors.New("malformed signature header")
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return errors.New("signature header needs t and v1")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("signature timestamp is %s away from now, beyond the tolerance of %s", d.Round(time.Second), tolerance)
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return errors.New("no signature matches")
}
