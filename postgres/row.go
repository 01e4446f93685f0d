package postgres

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// Column lists and scanners, one per table, shared by reads and loads.
// jsonb columns hold nil slices and maps as SQL NULL and amounts as
// micro-credits, so every value comes back exactly as it went in.

type scanner interface {
	Scan(dest ...any) error
}

const accountColumns = `id, created_at, metadata, seq, hash`

func scanAccount(r scanner) (ledger.Account, error) {
	var (
		a  ledger.Account
		md []byte
	)
	if err := r.Scan(&a.ID, &a.CreatedAt, &md, &a.Seq, &a.Hash); err != nil {
		return a, err
	}
	a.CreatedAt = a.CreatedAt.UTC()
	if err := decodeJSON(md, &a.Metadata); err != nil {
		return a, fmt.Errorf("account %s metadata: %w", a.ID, err)
	}
	return a, nil
}

const grantColumns = `id, account_id, kind, amount, remaining, priority, effective_at, expires_at,
	source_type, source_id, source_reason, paid_amount, paid_currency, created_at, metadata, closed`

func scanGrant(r scanner) (ledger.Grant, error) {
	var (
		g        ledger.Grant
		amount   int64
		remain   int64
		priority int32
		expires  pgtype.Timestamptz
		md       []byte
	)
	err := r.Scan(&g.ID, &g.AccountID, &g.Kind, &amount, &remain, &priority, &g.EffectiveAt, &expires,
		&g.Source.Type, &g.Source.ID, &g.Source.Reason, &g.PaidAmount, &g.PaidCurrency, &g.CreatedAt, &md, &g.Closed)
	if err != nil {
		return g, err
	}
	g.Amount = credit.Amount(amount)
	g.Remaining = credit.Amount(remain)
	g.Priority = int(priority)
	g.EffectiveAt = g.EffectiveAt.UTC()
	g.ExpiresAt = fromNullTime(expires)
	g.CreatedAt = g.CreatedAt.UTC()
	if err := decodeJSON(md, &g.Metadata); err != nil {
		return g, fmt.Errorf("grant %s metadata: %w", g.ID, err)
	}
	return g, nil
}

const holdColumns = `id, account_id, amount, allocations, status, expires_at, created_at, settled_at,
	captured, charge_id, ref`

func scanHold(r scanner) (ledger.Hold, error) {
	var (
		h        ledger.Hold
		amount   int64
		allocs   []byte
		settled  pgtype.Timestamptz
		captured int64
		ref      []byte
	)
	err := r.Scan(&h.ID, &h.AccountID, &amount, &allocs, &h.Status, &h.ExpiresAt, &h.CreatedAt, &settled,
		&captured, &h.ChargeID, &ref)
	if err != nil {
		return h, err
	}
	h.Amount = credit.Amount(amount)
	h.ExpiresAt = h.ExpiresAt.UTC()
	h.CreatedAt = h.CreatedAt.UTC()
	h.SettledAt = fromNullTime(settled)
	h.Captured = credit.Amount(captured)
	if h.Allocations, err = decodeAllocations(allocs); err != nil {
		return h, fmt.Errorf("hold %s allocations: %w", h.ID, err)
	}
	if h.Ref, err = decodeRef(ref); err != nil {
		return h, fmt.Errorf("hold %s ref: %w", h.ID, err)
	}
	return h, nil
}

const chargeColumns = `id, account_id, amount, refunded, allocations, hold_id, created_at, ref`

func scanCharge(r scanner) (ledger.Charge, error) {
	var (
		c        ledger.Charge
		amount   int64
		refunded int64
		allocs   []byte
		ref      []byte
	)
	err := r.Scan(&c.ID, &c.AccountID, &amount, &refunded, &allocs, &c.HoldID, &c.CreatedAt, &ref)
	if err != nil {
		return c, err
	}
	c.Amount = credit.Amount(amount)
	c.Refunded = credit.Amount(refunded)
	c.CreatedAt = c.CreatedAt.UTC()
	if c.Allocations, err = decodeAllocations(allocs); err != nil {
		return c, fmt.Errorf("charge %s allocations: %w", c.ID, err)
	}
	if c.Ref, err = decodeRef(ref); err != nil {
		return c, fmt.Errorf("charge %s ref: %w", c.ID, err)
	}
	return c, nil
}

const transactionColumns = `id, account_id, seq, type, amount, grant_id, hold_id, charge_id,
	idempotency_key, request_hash, ref, reason, entries, created_at, prev_hash, hash, available_after`

func scanTransaction(r scanner) (ledger.Transaction, error) {
	var (
		t       ledger.Transaction
		amount  int64
		ref     []byte
		entries []byte
		after   *int64
	)
	err := r.Scan(&t.ID, &t.AccountID, &t.Seq, &t.Type, &amount, &t.GrantID, &t.HoldID, &t.ChargeID,
		&t.IdempotencyKey, &t.RequestHash, &ref, &t.Reason, &entries, &t.CreatedAt, &t.PrevHash, &t.Hash, &after)
	if err != nil {
		return t, err
	}
	t.Amount = credit.Amount(amount)
	t.AvailableAfter = amountOrNil(after)
	t.CreatedAt = t.CreatedAt.UTC()
	if t.Ref, err = decodeRef(ref); err != nil {
		return t, fmt.Errorf("transaction %s ref: %w", t.ID, err)
	}
	if t.Entries, err = decodeEntries(entries); err != nil {
		return t, fmt.Errorf("transaction %s entries: %w", t.ID, err)
	}
	return t, nil
}

// nullAmount maps a nil amount to NULL.
func nullAmount(a *credit.Amount) *int64 {
	if a == nil {
		return nil
	}
	m := a.Micros()
	return &m
}

func amountOrNil(m *int64) *credit.Amount {
	if m == nil {
		return nil
	}
	a := credit.Micros(*m)
	return &a
}

// nullTime maps the zero time to NULL.
func nullTime(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: t, Valid: true}
}

func fromNullTime(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// The stored forms of the jsonb columns. Amounts are micro-credits, exact
// in JSON as integers.

type allocationRow struct {
	Grant  string `json:"grant_id"`
	Amount int64  `json:"amount"`
}

type entryRow struct {
	Account string `json:"account"`
	Grant   string `json:"grant,omitempty"`
	Hold    string `json:"hold,omitempty"`
	Amount  int64  `json:"amount"`
}

// refRow keeps a nil and an empty metadata map apart.
type refRow struct {
	Action   string            `json:"action,omitempty"`
	Job      string            `json:"job,omitempty"`
	Metadata map[string]string `json:"metadata"`
}

// encodeMap returns nil (SQL NULL) for a nil map.
func encodeMap(m map[string]string) ([]byte, error) {
	if m == nil {
		return nil, nil
	}
	return json.Marshal(m)
}

func encodeAllocations(as []ledger.Allocation) ([]byte, error) {
	if as == nil {
		return nil, nil
	}
	rows := make([]allocationRow, len(as))
	for i, a := range as {
		rows[i] = allocationRow{Grant: a.GrantID, Amount: a.Amount.Micros()}
	}
	return json.Marshal(rows)
}

func decodeAllocations(b []byte) ([]ledger.Allocation, error) {
	if b == nil {
		return nil, nil
	}
	var rows []allocationRow
	if err := json.Unmarshal(b, &rows); err != nil {
		return nil, err
	}
	as := make([]ledger.Allocation, len(rows))
	for i, r := range rows {
		as[i] = ledger.Allocation{GrantID: r.Grant, Amount: credit.Amount(r.Amount)}
	}
	return as, nil
}

func encodeEntries(es []ledger.Entry) ([]byte, error) {
	if es == nil {
		return nil, nil
	}
	rows := make([]entryRow, len(es))
	for i, e := range es {
		rows[i] = entryRow{Account: e.Account, Grant: e.Grant, Hold: e.Hold, Amount: e.Amount.Micros()}
	}
	return json.Marshal(rows)
}

func decodeEntries(b []byte) ([]ledger.Entry, error) {
	if b == nil {
		return nil, nil
	}
	var rows []entryRow
	if err := json.Unmarshal(b, &rows); err != nil {
		return nil, err
	}
	es := make([]ledger.Entry, len(rows))
	for i, r := range rows {
		es[i] = ledger.Entry{Account: r.Account, Grant: r.Grant, Hold: r.Hold, Amount: credit.Amount(r.Amount)}
	}
	return es, nil
}

func encodeRef(r ledger.Ref) ([]byte, error) {
	return json.Marshal(refRow{Action: r.Action, Job: r.Job, Metadata: r.Metadata})
}

func decodeRef(b []byte) (ledger.Ref, error) {
	if b == nil {
		return ledger.Ref{}, nil
	}
	var r refRow
	if err := json.Unmarshal(b, &r); err != nil {
		return ledger.Ref{}, err
	}
	return ledger.Ref{Action: r.Action, Job: r.Job, Metadata: r.Metadata}, nil
}

func decodeJSON(b []byte, v any) error {
	if b == nil {
		return nil
	}
	return json.Unmarshal(b, v)
}
