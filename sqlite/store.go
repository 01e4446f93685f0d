package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/scriphq/scrip/ledger"
)

// Begin opens the write transaction of one batch with BEGIN IMMEDIATE on the
// writer connection; it waits while another batch holds the connection.
func (s *Store) Begin(ctx context.Context) (ledger.Tx, error) {
	conn, err := s.writer.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: begin: %w", err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("sqlite: begin: %w", err)
	}
	t := &Tx{s: s, conn: conn, tx: tx}
	var version int64
	if err := t.stmt(ctx, s.w.dataVersion).QueryRowContext(ctx).Scan(&version); err != nil {
		_ = tx.Rollback()
		conn.Close()
		return nil, fmt.Errorf("sqlite: begin: data version: %w", err)
	}
	s.heads.check(version)
	return t, nil
}

// notFound turns sql.ErrNoRows into ledger.ErrNotFound.
func notFound(what, id string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: %s %q: %w", what, id, ledger.ErrNotFound)
	}
	return fmt.Errorf("sqlite: %s %q: %w", what, id, err)
}

func (s *Store) Account(ctx context.Context, id string) (ledger.Account, error) {
	a, err := scanAccount(s.r.account.QueryRowContext(ctx, id))
	if err != nil {
		return ledger.Account{}, notFound("account", id, err)
	}
	return a, nil
}

// Grants returns all the account's grants in creation order.
func (s *Store) Grants(ctx context.Context, accountID string) ([]ledger.Grant, error) {
	rows, err := s.r.grantsAll.QueryContext(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: grants of %q: %w", accountID, err)
	}
	gs, err := collect(rows, scanGrant)
	if err != nil {
		return nil, fmt.Errorf("sqlite: grants of %q: %w", accountID, err)
	}
	return gs, nil
}

// AccountState reads the account, its live grants and its open holds in
// one read transaction: in WAL mode its first read fixes the snapshot the
// others see, whatever the writer commits meanwhile.
func (s *Store) AccountState(ctx context.Context, id string) (ledger.AccountState, error) {
	var st ledger.AccountState
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return st, fmt.Errorf("sqlite: state of account %q: %w", id, err)
	}
	defer tx.Rollback()
	if st.Account, err = scanAccount(tx.StmtContext(ctx, s.r.account).QueryRowContext(ctx, id)); err != nil {
		return st, notFound("account", id, err)
	}
	rows, err := tx.StmtContext(ctx, s.r.grantsLive).QueryContext(ctx, id)
	if err == nil {
		st.Grants, err = collect(rows, scanGrant)
	}
	if err != nil {
		return st, fmt.Errorf("sqlite: grants of %q: %w", id, err)
	}
	rows, err = tx.StmtContext(ctx, s.r.openHolds).QueryContext(ctx, id)
	if err == nil {
		st.Holds, err = collect(rows, scanHold)
	}
	if err != nil {
		return st, fmt.Errorf("sqlite: open holds of %q: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return st, fmt.Errorf("sqlite: state of account %q: %w", id, err)
	}
	return st, nil
}

func (s *Store) Grant(ctx context.Context, id string) (ledger.Grant, error) {
	g, err := scanGrant(s.r.grant.QueryRowContext(ctx, id))
	if err != nil {
		return ledger.Grant{}, notFound("grant", id, err)
	}
	return g, nil
}

func (s *Store) OpenHolds(ctx context.Context, accountID string) ([]ledger.Hold, error) {
	rows, err := s.r.openHolds.QueryContext(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open holds of %q: %w", accountID, err)
	}
	hs, err := collect(rows, scanHold)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open holds of %q: %w", accountID, err)
	}
	return hs, nil
}

func (s *Store) Hold(ctx context.Context, id string) (ledger.Hold, error) {
	h, err := scanHold(s.r.hold.QueryRowContext(ctx, id))
	if err != nil {
		return ledger.Hold{}, notFound("hold", id, err)
	}
	return h, nil
}

func (s *Store) Charge(ctx context.Context, id string) (ledger.Charge, error) {
	c, err := scanCharge(s.r.charge.QueryRowContext(ctx, id))
	if err != nil {
		return ledger.Charge{}, notFound("charge", id, err)
	}
	return c, nil
}

// Transactions returns the account's transactions newest first. A Limit of
// zero or less returns every match; callers bound their pages.
func (s *Store) Transactions(ctx context.Context, q ledger.HistoryQuery) ([]ledger.Transaction, error) {
	before := int64(math.MaxInt64)
	if q.BeforeSeq > 0 {
		before = q.BeforeSeq
	}
	since := int64(math.MinInt64)
	if !q.Since.IsZero() {
		since = micros(q.Since)
	}
	until := int64(math.MaxInt64)
	if !q.Until.IsZero() {
		until = micros(q.Until)
	}
	var types any
	if len(q.Types) > 0 {
		ts := make([]string, len(q.Types))
		for i, t := range q.Types {
			ts[i] = string(t)
		}
		types = encodeIDs(ts)
	}
	limit := int64(-1)
	if q.Limit > 0 {
		limit = int64(q.Limit)
	}
	rows, err := s.r.transactions.QueryContext(ctx, q.AccountID, before, since, until, types, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: transactions of %q: %w", q.AccountID, err)
	}
	ts, err := collect(rows, scanTransaction)
	if err != nil {
		return nil, fmt.Errorf("sqlite: transactions of %q: %w", q.AccountID, err)
	}
	return ts, nil
}

// sqlLimit maps a limit of zero or less to SQLite's "no limit".
func sqlLimit(n int) int64 {
	if n <= 0 {
		return -1
	}
	return int64(n)
}

func (s *Store) DueGrants(ctx context.Context, now time.Time, limit int) ([]ledger.Grant, error) {
	rows, err := s.r.dueGrants.QueryContext(ctx, micros(now), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: due grants: %w", err)
	}
	gs, err := collect(rows, scanGrant)
	if err != nil {
		return nil, fmt.Errorf("sqlite: due grants: %w", err)
	}
	return gs, nil
}

func (s *Store) DueHolds(ctx context.Context, now time.Time, limit int) ([]ledger.Hold, error) {
	rows, err := s.r.dueHolds.QueryContext(ctx, micros(now), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: due holds: %w", err)
	}
	hs, err := collect(rows, scanHold)
	if err != nil {
		return nil, fmt.Errorf("sqlite: due holds: %w", err)
	}
	return hs, nil
}

func (s *Store) AccountIDs(ctx context.Context, after string, limit int) ([]string, error) {
	rows, err := s.r.accountIDs.QueryContext(ctx, after, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: account ids: %w", err)
	}
	ids, err := collect(rows, func(sc scanner) (string, error) {
		var id string
		err := sc.Scan(&id)
		return id, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: account ids: %w", err)
	}
	return ids, nil
}

// Journal calls fn for each transaction of the account in sequence order.
// It reads a page at a time, so fn may take its time without holding a read
// transaction open; transactions committed meanwhile are seen if they come
// after the current page.
func (s *Store) Journal(ctx context.Context, accountID string, fn func(*ledger.Transaction) error) error {
	after := int64(math.MinInt64)
	for {
		rows, err := s.r.journal.QueryContext(ctx, accountID, after, journalPageRows)
		if err != nil {
			return fmt.Errorf("sqlite: journal of %q: %w", accountID, err)
		}
		page, err := collect(rows, scanTransaction)
		if err != nil {
			return fmt.Errorf("sqlite: journal of %q: %w", accountID, err)
		}
		for i := range page {
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
		if len(page) < journalPageRows {
			return nil
		}
		after = page[len(page)-1].Seq
	}
}
