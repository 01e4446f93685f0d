package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scriphq/scrip/billing"
)

var _ billing.Store = (*Store)(nil)

// Subscription returns the account's subscription.
func (s *Store) Subscription(ctx context.Context, accountID string) (billing.Subscription, error) {
	return subscriptionRow(s.pool.QueryRow(ctx, `SELECT data FROM billing_subscriptions WHERE account_id = $1`, accountID), accountID)
}

func subscriptionRow(row pgx.Row, accountID string) (billing.Subscription, error) {
	var data []byte
	err := row.Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return billing.Subscription{}, billing.ErrNotFound
	}
	if err != nil {
		return billing.Subscription{}, fmt.Errorf("postgres: subscription of %q: %w", accountID, err)
	}
	sub, err := billing.DecodeSubscription(data)
	if err != nil {
		return billing.Subscription{}, fmt.Errorf("postgres: subscription of %q: %w", accountID, err)
	}
	return sub, nil
}

// UpdateSubscription runs fn with the account's subscription row locked
// (FOR UPDATE) and saves its result in the same transaction. An account
// without a subscription is locked with a transaction-scoped advisory lock
// on its id, so two first subscriptions cannot both go ahead.
func (s *Store) UpdateSubscription(ctx context.Context, accountID string, fn billing.UpdateFunc) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: update subscription: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	const sel = `SELECT data FROM billing_subscriptions WHERE account_id = $1 FOR UPDATE`
	cur, err := subscriptionRow(tx.QueryRow(ctx, sel, accountID), accountID)
	if errors.Is(err, billing.ErrNotFound) {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('scrip billing ' || $1, 0))`, accountID); err != nil {
			return fmt.Errorf("postgres: update subscription: %w", err)
		}
		cur, err = subscriptionRow(tx.QueryRow(ctx, sel, accountID), accountID)
	}
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
	if err := saveSubscription(ctx, tx, next); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: update subscription: %w", err)
	}
	return nil
}

// ClaimDue locks the earliest due subscription no other transaction holds
// (FOR UPDATE SKIP LOCKED), runs fn on it and saves the result in the same
// transaction: schedulers in any number of processes never work on one
// subscription at once, and one that dies mid-way releases it.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, fn func(context.Context, billing.Subscription) (*billing.Subscription, error)) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("postgres: claim due subscription: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	sub, err := subscriptionRow(tx.QueryRow(ctx, `SELECT data FROM billing_subscriptions
		WHERE due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at, account_id
		LIMIT 1 FOR UPDATE SKIP LOCKED`, now), "")
	if errors.Is(err, billing.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	next, err := fn(ctx, sub)
	if err != nil {
		return true, err
	}
	if next != nil {
		if err := saveSubscription(ctx, tx, next); err != nil {
			return true, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return true, fmt.Errorf("postgres: claim due subscription: %w", err)
	}
	return true, nil
}

func saveSubscription(ctx context.Context, tx pgx.Tx, sub *billing.Subscription) error {
	data, err := billing.EncodeSubscription(sub)
	if err != nil {
		return fmt.Errorf("postgres: save subscription %s: %w", sub.ID, err)
	}
	var due *time.Time
	if !sub.DueAt.IsZero() {
		due = &sub.DueAt
	}
	_, err = tx.Exec(ctx, `INSERT INTO billing_subscriptions (account_id, id, status, due_at, data)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (account_id) DO UPDATE SET id = excluded.id, status = excluded.status,
			due_at = excluded.due_at, data = excluded.data`,
		sub.AccountID, sub.ID, string(sub.Status), due, data)
	if err != nil {
		return fmt.Errorf("postgres: save subscription %s: %w", sub.ID, err)
	}
	return nil
}

// CountDue counts the subscriptions due at or before now.
func (s *Store) CountDue(ctx context.Context, now time.Time) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM billing_subscriptions
		WHERE due_at IS NOT NULL AND due_at <= $1`, now).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count due subscriptions: %w", err)
	}
	return n, nil
}

// RecordCycle stores c unless its cycle is recorded and returns the stored
// record.
func (s *Store) RecordCycle(ctx context.Context, c billing.Cycle) (billing.Cycle, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return billing.Cycle{}, fmt.Errorf("postgres: record cycle: %w", err)
	}
	var stored []byte
	// The no-op update makes RETURNING give the row that already exists.
	err = s.pool.QueryRow(ctx, `INSERT INTO billing_cycles (subscription_id, cycle, account_id, created_at, data)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (subscription_id, cycle) DO UPDATE SET subscription_id = billing_cycles.subscription_id
		RETURNING data`, c.SubscriptionID, c.Cycle, c.AccountID, c.CreatedAt, data).Scan(&stored)
	if err != nil {
		return billing.Cycle{}, fmt.Errorf("postgres: record cycle %d of %s: %w", c.Cycle, c.SubscriptionID, err)
	}
	var out billing.Cycle
	if err := json.Unmarshal(stored, &out); err != nil {
		return billing.Cycle{}, fmt.Errorf("postgres: record cycle %d of %s: %w", c.Cycle, c.SubscriptionID, err)
	}
	return out, nil
}

// Cycles returns up to limit of the account's cycles, newest first.
func (s *Store) Cycles(ctx context.Context, accountID string, limit int) ([]billing.Cycle, error) {
	rows, err := s.pool.Query(ctx, `SELECT data FROM billing_cycles WHERE account_id = $1
		ORDER BY created_at DESC, cycle DESC LIMIT $2`, accountID, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: cycles of %q: %w", accountID, err)
	}
	defer rows.Close()
	out := []billing.Cycle{}
	for rows.Next() {
		var data []byte
		var c billing.Cycle
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("postgres: cycles of %q: %w", accountID, err)
		}
		if err := json.Unmarshal(data, &c); err != nil {
			return nil, fmt.Errorf("postgres: cycles of %q: %w", accountID, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

const quotaReservationCols = `id, account_id, key, quota, period, count, status, created_at, settled_at`

func scanQuotaReservation(row pgx.Row) (billing.QuotaReservation, error) {
	var r billing.QuotaReservation
	var status string
	var settled *time.Time
	if err := row.Scan(&r.ID, &r.AccountID, &r.Key, &r.Quota, &r.Period, &r.Count, &status, &r.CreatedAt, &settled); err != nil {
		return r, err
	}
	r.Status, r.CreatedAt = billing.QuotaStatus(status), r.CreatedAt.UTC()
	if settled != nil {
		r.SettledAt = settled.UTC()
	}
	return r, nil
}

// ReserveQuota stores a held reservation and counts it, within limit. The
// conditional update keeps concurrent reservations from passing the limit.
func (s *Store) ReserveQuota(ctx context.Context, r billing.QuotaReservation, limit int64) (billing.QuotaReservation, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("postgres: reserve quota: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	tag, err := tx.Exec(ctx, `INSERT INTO billing_quota_reservations (`+quotaReservationCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL) ON CONFLICT (account_id, key) DO NOTHING`,
		r.ID, r.AccountID, r.Key, r.Quota, r.Period, r.Count, string(r.Status), r.CreatedAt)
	if err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("postgres: reserve quota: %w", err)
	}
	if tag.RowsAffected() == 0 {
		prev, err := scanQuotaReservation(tx.QueryRow(ctx, `SELECT `+quotaReservationCols+`
			FROM billing_quota_reservations WHERE account_id = $1 AND key = $2`, r.AccountID, r.Key))
		if err != nil {
			return billing.QuotaReservation{}, fmt.Errorf("postgres: reserve quota: %w", err)
		}
		if prev.Quota != r.Quota || prev.Count != r.Count {
			return billing.QuotaReservation{}, billing.ErrKeyReused
		}
		return prev, nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO billing_quota_usage (account_id, quota, period, used)
		VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING`, r.AccountID, r.Quota, r.Period); err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("postgres: reserve quota: %w", err)
	}
	tag, err = tx.Exec(ctx, `UPDATE billing_quota_usage SET used = used + $1
		WHERE account_id = $2 AND quota = $3 AND period = $4 AND ($5 < 0 OR used + $1 <= $5)`,
		r.Count, r.AccountID, r.Quota, r.Period, limit)
	if err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("postgres: reserve quota: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return billing.QuotaReservation{}, billing.ErrQuotaExceeded
	}
	if err := tx.Commit(ctx); err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("postgres: reserve quota: %w", err)
	}
	return r, nil
}

// SettleQuota consumes or releases a held reservation.
func (s *Store) SettleQuota(ctx context.Context, id string, status billing.QuotaStatus, at time.Time) (billing.QuotaReservation, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("postgres: settle quota: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	r, err := scanQuotaReservation(tx.QueryRow(ctx, `SELECT `+quotaReservationCols+`
		FROM billing_quota_reservations WHERE id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return billing.QuotaReservation{}, billing.ErrNotFound
	}
	if err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("postgres: settle quota %s: %w", id, err)
	}
	switch r.Status {
	case status:
		return r, nil
	case billing.QuotaHeld:
	default:
		return r, billing.ErrSettled
	}
	r.Status, r.SettledAt = status, at.UTC()
	if _, err := tx.Exec(ctx, `UPDATE billing_quota_reservations SET status = $1, settled_at = $2 WHERE id = $3`,
		string(status), at, id); err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("postgres: settle quota %s: %w", id, err)
	}
	if status == billing.QuotaReleased {
		if _, err := tx.Exec(ctx, `UPDATE billing_quota_usage SET used = used - $1
			WHERE account_id = $2 AND quota = $3 AND period = $4`, r.Count, r.AccountID, r.Quota, r.Period); err != nil {
			return billing.QuotaReservation{}, fmt.Errorf("postgres: settle quota %s: %w", id, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return billing.QuotaReservation{}, fmt.Errorf("postgres: settle quota %s: %w", id, err)
	}
	return r, nil
}

// QuotaUsed returns the counts used per quota in the account's period.
func (s *Store) QuotaUsed(ctx context.Context, accountID, period string) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT quota, used FROM billing_quota_usage
		WHERE account_id = $1 AND period = $2`, accountID, period)
	if err != nil {
		return nil, fmt.Errorf("postgres: quota usage of %q: %w", accountID, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var q string
		var n int64
		if err := rows.Scan(&q, &n); err != nil {
			return nil, fmt.Errorf("postgres: quota usage of %q: %w", accountID, err)
		}
		out[q] = n
	}
	return out, rows.Err()
}
