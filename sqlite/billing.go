package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/scriphq/scrip/billing"
)

var _ billing.Store = (*Store)(nil)

// billingLocks holds one mutex per database path. SQLite has one writer
// and serves one process, so an in-process lock gives UpdateSubscription and
// ClaimDue their exclusion without holding the writer connection, which the
// ledger engine needs while they run.
var billingLocks sync.Map // path -> *sync.Mutex

func (s *Store) billingLock() *sync.Mutex {
	m, _ := billingLocks.LoadOrStore(s.path, &sync.Mutex{})
	return m.(*sync.Mutex)
}

// Subscription returns the account's subscription.
func (s *Store) Subscription(ctx context.Context, accountID string) (billing.Subscription, error) {
	return s.subscription(ctx, s.reader, accountID)
}

func (s *Store) subscription(ctx context.Context, db *sql.DB, accountID string) (billing.Subscription, error) {
	var data string
	err := db.QueryRowContext(ctx, `SELECT data FROM billing_subscriptions WHERE account_id = ?`, accountID).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return billing.Subscription{}, billing.ErrNotFound
	}
	if err != nil {
		return billing.Subscription{}, fmt.Errorf("sqlite: subscription of %q: %w", accountID, err)
	}
	sub, err := billing.DecodeSubscription([]byte(data))
	if err != nil {
		return billing.Subscription{}, fmt.Errorf("sqlite: subscription of %q: %w", accountID, err)
	}
	return sub, nil
}

// UpdateSubscription runs fn on the account's subscription under the
// store's billing lock and saves its result.
func (s *Store) UpdateSubscription(ctx context.Context, accountID string, fn billing.UpdateFunc) error {
	mu := s.billingLock()
	mu.Lock()
	defer mu.Unlock()
	cur, err := s.subscription(ctx, s.writer, accountID)
	var curp *billing.Subscription
	switch {
	case err == nil:
		curp = &cur
	case !errors.Is(err, billing.ErrNotFound):
		return err
	}
	next, err := fn(ctx, curp)
	if err != nil || next == nil {
		return err
	}
	return s.saveSubscription(ctx, next)
}

// ClaimDue runs fn on the earliest due subscription under the store's
// billing lock and saves its result.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, fn func(context.Context, billing.Subscription) (*billing.Subscription, error)) (bool, error) {
	mu := s.billingLock()
	mu.Lock()
	defer mu.Unlock()
	var data string
	err := s.writer.QueryRowContext(ctx, `SELECT data FROM billing_subscriptions
		WHERE due_at IS NOT NULL AND due_at <= ? ORDER BY due_at, account_id LIMIT 1`, micros(now)).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: claim due subscription: %w", err)
	}
	sub, err := billing.DecodeSubscription([]byte(data))
	if err != nil {
		return false, fmt.Errorf("sqlite: claim due subscription: %w", err)
	}
	next, err := fn(ctx, sub)
	if err != nil {
		return true, err
	}
	if next != nil {
		if err := s.saveSubscription(ctx, next); err != nil {
			return true, err
		}
	}
	return true, nil
}

func (s *Store) saveSubscription(ctx context.Context, sub *billing.Subscription) error {
	data, err := billing.EncodeSubscription(sub)
	if err != nil {
		return fmt.Errorf("sqlite: save subscription %s: %w", sub.ID, err)
	}
	_, err = s.writer.ExecContext(ctx, `INSERT INTO billing_subscriptions (account_id, id, status, due_at, data)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (account_id) DO UPDATE SET id = excluded.id, status = excluded.status,
			due_at = excluded.due_at, data = excluded.data`,
		sub.AccountID, sub.ID, string(sub.Status), nullMicros(sub.DueAt), string(data))
	if err != nil {
		return fmt.Errorf("sqlite: save subscription %s: %w", sub.ID, err)
	}
	return nil
}

// CountDue counts the subscriptions due at or before now.
func (s *Store) CountDue(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.reader.QueryRowContext(ctx, `SELECT count(*) FROM billing_subscriptions
		WHERE due_at IS NOT NULL AND due_at <= ?`, micros(now)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: count due subscriptions: %w", err)
	}
	return n, nil
}

// RecordCycle stores c unless its cycle is recorded and returns the stored
// record.
func (s *Store) RecordCycle(ctx context.Context, c billing.Cycle) (billing.Cycle, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return billing.Cycle{}, fmt.Errorf("sqlite: record cycle: %w", err)
	}
	if _, err := s.writer.ExecContext(ctx, `INSERT INTO billing_cycles (subscription_id, cycle, account_id, created_at, data)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (subscription_id, cycle) DO NOTHING`,
		c.SubscriptionID, c.Cycle, c.AccountID, micros(c.CreatedAt), string(data)); err != nil {
		return billing.Cycle{}, fmt.Errorf("sqlite: record cycle %d of %s: %w", c.Cycle, c.SubscriptionID, err)
	}
	var stored string
	if err := s.writer.QueryRowContext(ctx, `SELECT data FROM billing_cycles WHERE subscription_id = ? AND cycle = ?`,
		c.SubscriptionID, c.Cycle).Scan(&stored); err != nil {
		return billing.Cycle{}, fmt.Errorf("sqlite: record cycle %d of %s: %w", c.Cycle, c.SubscriptionID, err)
	}
	var out billing.Cycle
	if err := json.Unmarshal([]byte(stored), &out); err != nil {
		return billing.Cycle{}, fmt.Errorf("sqlite: record cycle %d of %s: %w", c.Cycle, c.SubscriptionID, err)
	}
	return out, nil
}

// Cycles returns up to limit of the account's cycles, newest first.
func (s *Store) Cycles(ctx context.Context, accountID string, limit int) ([]billing.Cycle, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT data FROM billing_cycles WHERE account_id = ?
		ORDER BY created_at DESC, cycle DESC LIMIT ?`, accountID, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: cycles of %q: %w", accountID, err)
	}
	defer rows.Close()
	out := []billing.Cycle{}
	for rows.Next() {
		var data string
		var c billing.Cycle
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("sqlite: cycles of %q: %w", accountID, err)
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return nil, fmt.Errorf("sqlite: cycles of %q: %w", accountID, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

const quotaReservationCols = `id, account_id, key, quota, period, count, status, created_at, settled_at`

func scanQuotaReservation(sc scanner) (billing.QuotaReservation, error) {
	var r billing.QuotaReservation
	var status string
	var created int64
	var settled sql.NullInt64
	if err := sc.Scan(&r.ID, &r.AccountID, &r.Key, &r.Quota, &r.Period, &r.Count, &status, &created, &settled); err != nil {
		return r, err
	}
	r.Status, r.CreatedAt, r.SettledAt = billing.QuotaStatus(status), fromMicros(created), fromNullMicros(settled)
	return r, nil
}

// ReserveQuota stores a held reservation and counts it, within limit.
func (s *Store) ReserveQuota(ctx context.Context, r billing.QuotaReservation, limit int64) (billing.QuotaReservation, error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("sqlite: reserve quota: %w", err)
	}
	defer tx.Rollback()
	prev, err := scanQuotaReservation(tx.QueryRowContext(ctx, `SELECT `+quotaReservationCols+`
		FROM billing_quota_reservations WHERE account_id = ? AND key = ?`, r.AccountID, r.Key))
	switch {
	case err == nil:
		if prev.Quota != r.Quota || prev.Count != r.Count {
			return billing.QuotaReservation{}, billing.ErrKeyReused
		}
		return prev, nil
	case !errors.Is(err, sql.ErrNoRows):
		return billing.QuotaReservation{}, fmt.Errorf("sqlite: reserve quota: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO billing_quota_usage (account_id, quota, period, used)
		VALUES (?, ?, ?, 0) ON CONFLICT DO NOTHING`, r.AccountID, r.Quota, r.Period); err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("sqlite: reserve quota: %w", err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE billing_quota_usage SET used = used + ?1
		WHERE account_id = ?2 AND quota = ?3 AND period = ?4 AND (?5 < 0 OR used + ?1 <= ?5)`,
		r.Count, r.AccountID, r.Quota, r.Period, limit)
	if err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("sqlite: reserve quota: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("sqlite: reserve quota: %w", err)
	} else if n == 0 {
		return billing.QuotaReservation{}, billing.ErrQuotaExceeded
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO billing_quota_reservations (`+quotaReservationCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
		r.ID, r.AccountID, r.Key, r.Quota, r.Period, r.Count, string(r.Status), micros(r.CreatedAt)); err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("sqlite: reserve quota: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("sqlite: reserve quota: %w", err)
	}
	return r, nil
}

// SettleQuota consumes or releases a held reservation.
func (s *Store) SettleQuota(ctx context.Context, id string, status billing.QuotaStatus, at time.Time) (billing.QuotaReservation, error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("sqlite: settle quota: %w", err)
	}
	defer tx.Rollback()
	r, err := scanQuotaReservation(tx.QueryRowContext(ctx, `SELECT `+quotaReservationCols+`
		FROM billing_quota_reservations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return billing.QuotaReservation{}, billing.ErrNotFound
	}
	if err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("sqlite: settle quota %s: %w", id, err)
	}
	switch r.Status {
	case status:
		return r, nil
	case billing.QuotaHeld:
	default:
		return r, billing.ErrSettled
	}
	r.Status, r.SettledAt = status, at
	if _, err := tx.ExecContext(ctx, `UPDATE billing_quota_reservations SET status = ?, settled_at = ? WHERE id = ?`,
		string(status), micros(at), id); err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("sqlite: settle quota %s: %w", id, err)
	}
	if status == billing.QuotaReleased {
		if _, err := tx.ExecContext(ctx, `UPDATE billing_quota_usage SET used = used - ?
			WHERE account_id = ? AND quota = ? AND period = ?`, r.Count, r.AccountID, r.Quota, r.Period); err != nil {
			return billing.QuotaReservation{}, fmt.Errorf("sqlite: settle quota %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("sqlite: settle quota %s: %w", id, err)
	}
	return r, nil
}

// QuotaUsed returns the counts used per quota in the account's period.
func (s *Store) QuotaUsed(ctx context.Context, accountID, period string) (map[string]int64, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT quota, used FROM billing_quota_usage
		WHERE account_id = ? AND period = ?`, accountID, period)
	if err != nil {
		return nil, fmt.Errorf("sqlite: quota usage of %q: %w", accountID, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var q string
		var n int64
		if err := rows.Scan(&q, &n); err != nil {
			return nil, fmt.Errorf("sqlite: quota usage of %q: %w", accountID, err)
		}
		out[q] = n
	}
	return out, rows.Err()
}
