package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// Column lists, in the order the scan functions read them.
const (
	accountCols = "id, created_at, metadata, seq, hash"
	grantCols   = "id, account_id, kind, amount, remaining, priority, effective_at, expires_at, " +
		"source_type, source_id, source_reason, paid_amount, paid_currency, created_at, metadata, closed"
	holdCols = "id, account_id, amount, allocations, status, expires_at, created_at, settled_at, " +
		"captured, charge_id, ref"
	chargeCols = "id, account_id, amount, refunded, allocations, hold_id, created_at, ref"
	txCols     = "id, account_id, seq, type, amount, grant_id, hold_id, charge_id, idempotency_key, " +
		"request_hash, ref, reason, entries, created_at, prev_hash, hash, available_after"
)

// Times are stored as unix microseconds; the zero time round-trips too.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// nullMicros stores the zero time as NULL.
func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}

// JSON columns hold NULL for a nil map or slice and JSON otherwise, so that
// nil and empty values come back as they went in. Amounts inside JSON are
// integers of micro-credits.

func encodeMap(m map[string]string) (any, error) {
	if m == nil {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func decodeMap(v sql.NullString) (map[string]string, error) {
	if !v.Valid {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(v.String), &m); err != nil {
		return nil, fmt.Errorf("decode metadata: %w", err)
	}
	return m, nil
}

type allocationJSON struct {
	GrantID string `json:"grant_id"`
	Amount  int64  `json:"amount"`
}

func encodeAllocations(as []ledger.Allocation) (any, error) {
	if as == nil {
		return nil, nil
	}
	js := make([]allocationJSON, len(as))
	for i, a := range as {
		js[i] = allocationJSON{GrantID: a.GrantID, Amount: a.Amount.Micros()}
	}
	b, err := json.Marshal(js)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func decodeAllocations(v sql.NullString) ([]ledger.Allocation, error) {
	if !v.Valid {
		return nil, nil
	}
	var js []allocationJSON
	if err := json.Unmarshal([]byte(v.String), &js); err != nil {
		return nil, fmt.Errorf("decode allocations: %w", err)
	}
	as := make([]ledger.Allocation, len(js))
	for i, j := range js {
		as[i] = ledger.Allocation{GrantID: j.GrantID, Amount: credit.Micros(j.Amount)}
	}
	return as, nil
}

type refJSON struct {
	Action string `json:"action,omitempty"`
	Job    string `json:"job,omitempty"`
	// A pointer, so that an empty map is kept and a nil one omitted.
	Metadata *map[string]string `json:"metadata,omitempty"`
}

func encodeRef(r ledger.Ref) (any, error) {
	if r.Action == "" && r.Job == "" && r.Metadata == nil {
		return nil, nil
	}
	j := refJSON{Action: r.Action, Job: r.Job}
	if r.Metadata != nil {
		j.Metadata = &r.Metadata
	}
	b, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func decodeRef(v sql.NullString) (ledger.Ref, error) {
	if !v.Valid {
		return ledger.Ref{}, nil
	}
	var j refJSON
	if err := json.Unmarshal([]byte(v.String), &j); err != nil {
		return ledger.Ref{}, fmt.Errorf("decode ref: %w", err)
	}
	r := ledger.Ref{Action: j.Action, Job: j.Job}
	if j.Metadata != nil {
		r.Metadata = *j.Metadata
		if r.Metadata == nil {
			r.Metadata = map[string]string{}
		}
	}
	return r, nil
}

type entryJSON struct {
	Account string `json:"account"`
	Grant   string `json:"grant,omitempty"`
	Hold    string `json:"hold,omitempty"`
	Amount  int64  `json:"amount"`
}

func encodeEntries(es []ledger.Entry) (any, error) {
	if es == nil {
		return nil, nil
	}
	js := make([]entryJSON, len(es))
	for i, e := range es {
		js[i] = entryJSON{Account: e.Account, Grant: e.Grant, Hold: e.Hold, Amount: e.Amount.Micros()}
	}
	b, err := json.Marshal(js)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func decodeEntries(v sql.NullString) ([]ledger.Entry, error) {
	if !v.Valid {
		return nil, nil
	}
	var js []entryJSON
	if err := json.Unmarshal([]byte(v.String), &js); err != nil {
		return nil, fmt.Errorf("decode entries: %w", err)
	}
	es := make([]ledger.Entry, len(js))
	for i, j := range js {
		es[i] = ledger.Entry{Account: j.Account, Grant: j.Grant, Hold: j.Hold, Amount: credit.Micros(j.Amount)}
	}
	return es, nil
}

func encodeIDs(ids []string) string {
	if ids == nil {
		ids = []string{}
	}
	b, _ := json.Marshal(ids) // a []string always marshals
	return string(b)
}

type scanner interface {
	Scan(dest ...any) error
}

func scanAccount(sc scanner) (ledger.Account, error) {
	var (
		a       ledger.Account
		created int64
		md      sql.NullString
	)
	if err := sc.Scan(&a.ID, &created, &md, &a.Seq, &a.Hash); err != nil {
		return a, err
	}
	a.CreatedAt = fromMicros(created)
	var err error
	a.Metadata, err = decodeMap(md)
	return a, err
}

func accountParams(p *params, a *ledger.Account) error {
	md, err := encodeMap(a.Metadata)
	if err != nil {
		return err
	}
	p.text(a.ID)
	p.int(micros(a.CreatedAt))
	p.value(md)
	p.int(a.Seq)
	p.text(a.Hash)
	return nil
}

func scanGrant(sc scanner) (ledger.Grant, error) {
	var (
		g                  ledger.Grant
		kind               string
		amount, remaining  int64
		effective, created int64
		expires            sql.NullInt64
		md                 sql.NullString
		closed             int64
	)
	err := sc.Scan(&g.ID, &g.AccountID, &kind, &amount, &remaining, &g.Priority, &effective, &expires,
		&g.Source.Type, &g.Source.ID, &g.Source.Reason, &g.PaidAmount, &g.PaidCurrency, &created, &md, &closed)
	if err != nil {
		return g, err
	}
	g.Kind = ledger.Kind(kind)
	g.Amount = credit.Micros(amount)
	g.Remaining = credit.Micros(remaining)
	g.EffectiveAt = fromMicros(effective)
	g.ExpiresAt = fromNullMicros(expires)
	g.CreatedAt = fromMicros(created)
	g.Closed = closed != 0
	g.Metadata, err = decodeMap(md)
	return g, err
}

func grantParams(p *params, g *ledger.Grant) error {
	md, err := encodeMap(g.Metadata)
	if err != nil {
		return err
	}
	p.text(g.ID)
	p.text(g.AccountID)
	p.text(string(g.Kind))
	p.int(g.Amount.Micros())
	p.int(g.Remaining.Micros())
	p.int(int64(g.Priority))
	p.int(micros(g.EffectiveAt))
	p.nullTime(g.ExpiresAt)
	p.text(g.Source.Type)
	p.text(g.Source.ID)
	p.text(g.Source.Reason)
	p.int(g.PaidAmount)
	p.text(g.PaidCurrency)
	p.int(micros(g.CreatedAt))
	p.value(md)
	p.int(boolInt(g.Closed))
	return nil
}

func scanHold(sc scanner) (ledger.Hold, error) {
	var (
		h                ledger.Hold
		amount, captured int64
		allocs, ref      sql.NullString
		status           string
		expires, created int64
		settled          sql.NullInt64
	)
	err := sc.Scan(&h.ID, &h.AccountID, &amount, &allocs, &status, &expires, &created, &settled,
		&captured, &h.ChargeID, &ref)
	if err != nil {
		return h, err
	}
	h.Amount = credit.Micros(amount)
	h.Status = ledger.HoldStatus(status)
	h.ExpiresAt = fromMicros(expires)
	h.CreatedAt = fromMicros(created)
	h.SettledAt = fromNullMicros(settled)
	h.Captured = credit.Micros(captured)
	if h.Allocations, err = decodeAllocations(allocs); err != nil {
		return h, err
	}
	h.Ref, err = decodeRef(ref)
	return h, err
}

func holdParams(p *params, h *ledger.Hold) error {
	allocs, err := encodeAllocations(h.Allocations)
	if err != nil {
		return err
	}
	ref, err := encodeRef(h.Ref)
	if err != nil {
		return err
	}
	p.text(h.ID)
	p.text(h.AccountID)
	p.int(h.Amount.Micros())
	p.value(allocs)
	p.text(string(h.Status))
	p.int(micros(h.ExpiresAt))
	p.int(micros(h.CreatedAt))
	p.nullTime(h.SettledAt)
	p.int(h.Captured.Micros())
	p.text(h.ChargeID)
	p.value(ref)
	return nil
}

func scanCharge(sc scanner) (ledger.Charge, error) {
	var (
		c                ledger.Charge
		amount, refunded int64
		allocs, ref      sql.NullString
		created          int64
	)
	err := sc.Scan(&c.ID, &c.AccountID, &amount, &refunded, &allocs, &c.HoldID, &created, &ref)
	if err != nil {
		return c, err
	}
	c.Amount = credit.Micros(amount)
	c.Refunded = credit.Micros(refunded)
	c.CreatedAt = fromMicros(created)
	if c.Allocations, err = decodeAllocations(allocs); err != nil {
		return c, err
	}
	c.Ref, err = decodeRef(ref)
	return c, err
}

func chargeParams(p *params, c *ledger.Charge) error {
	allocs, err := encodeAllocations(c.Allocations)
	if err != nil {
		return err
	}
	ref, err := encodeRef(c.Ref)
	if err != nil {
		return err
	}
	p.text(c.ID)
	p.text(c.AccountID)
	p.int(c.Amount.Micros())
	p.int(c.Refunded.Micros())
	p.value(allocs)
	p.text(c.HoldID)
	p.int(micros(c.CreatedAt))
	p.value(ref)
	return nil
}

func scanTransaction(sc scanner) (ledger.Transaction, error) {
	var (
		t            ledger.Transaction
		typ          string
		amount       int64
		ref, entries sql.NullString
		created      int64
		after        sql.NullInt64
	)
	err := sc.Scan(&t.ID, &t.AccountID, &t.Seq, &typ, &amount, &t.GrantID, &t.HoldID, &t.ChargeID,
		&t.IdempotencyKey, &t.RequestHash, &ref, &t.Reason, &entries, &created, &t.PrevHash, &t.Hash, &after)
	if err != nil {
		return t, err
	}
	t.Type = ledger.TxType(typ)
	t.Amount = credit.Micros(amount)
	t.CreatedAt = fromMicros(created)
	t.AvailableAfter = amountOrNil(after)
	if t.Ref, err = decodeRef(ref); err != nil {
		return t, err
	}
	t.Entries, err = decodeEntries(entries)
	return t, err
}

func transactionParams(p *params, t *ledger.Transaction) error {
	ref, err := encodeRef(t.Ref)
	if err != nil {
		return err
	}
	entries, err := encodeEntries(t.Entries)
	if err != nil {
		return err
	}
	p.text(t.ID)
	p.text(t.AccountID)
	p.int(t.Seq)
	p.text(string(t.Type))
	p.int(t.Amount.Micros())
	p.text(t.GrantID)
	p.text(t.HoldID)
	p.text(t.ChargeID)
	p.text(t.IdempotencyKey)
	p.text(t.RequestHash)
	p.value(ref)
	p.text(t.Reason)
	p.value(entries)
	p.int(micros(t.CreatedAt))
	p.text(t.PrevHash)
	p.text(t.Hash)
	if a := t.AvailableAfter; a != nil {
		p.int(a.Micros())
	} else {
		p.null() // a nil amount is stored as NULL
	}
	return nil
}

func amountOrNil(v sql.NullInt64) *credit.Amount {
	if !v.Valid {
		return nil
	}
	a := credit.Micros(v.Int64)
	return &a
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// collect scans every row with scan.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
