package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/scriphq/scrip/ledger"
)

var (
	_ ledger.BulkReader     = (*Store)(nil)
	_ ledger.AccountsReader = snapshot{}
)

// ReadAccounts runs fn's reads in one read transaction of a connection of
// the bulk pool, so that they all see one snapshot (ledger.BulkReader).
func (s *Store) ReadAccounts(ctx context.Context, fn func(ledger.AccountsReader) error) error {
	tx, err := s.bulk.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite: begin snapshot: %w", err)
	}
	defer tx.Rollback()
	if err := fn(snapshot{tx}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: end snapshot: %w", err)
	}
	return nil
}

// snapshot reads many accounts in a ReadAccounts transaction; the ids go
// in as one JSON array.
type snapshot struct{ tx *sql.Tx }

func (s snapshot) query(ctx context.Context, what string, ids []string, q string) (*sql.Rows, error) {
	rows, err := s.tx.QueryContext(ctx, q, encodeIDs(ids))
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s of %d accounts: %w", what, len(ids), err)
	}
	return rows, nil
}

// collectOf runs a snapshot query and scans every row with scan.
func collectOf[T any](ctx context.Context, s snapshot, what string, ids []string, q string, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := s.query(ctx, what, ids, q)
	if err != nil {
		return nil, err
	}
	out, err := collect(rows, scan)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s of %d accounts: %w", what, len(ids), err)
	}
	return out, nil
}

func (s snapshot) AccountsOf(ctx context.Context, ids []string) ([]ledger.Account, error) {
	return collectOf(ctx, s, "heads", ids, `SELECT `+accountCols+` FROM accounts
		WHERE id IN (SELECT value FROM json_each(?))`, scanAccount)
}

// JournalOf reads the rows as they come, account by account in sequence
// order.
func (s snapshot) JournalOf(ctx context.Context, ids []string, fn func(*ledger.Transaction) error) error {
	rows, err := s.query(ctx, "journal", ids, `SELECT `+txCols+` FROM transactions
		WHERE account_id IN (SELECT value FROM json_each(?)) ORDER BY account_id, seq`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		t, err := scanTransaction(rows)
		if err != nil {
			return fmt.Errorf("sqlite: journal of %d accounts: %w", len(ids), err)
		}
		if err := fn(&t); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: journal of %d accounts: %w", len(ids), err)
	}
	return nil
}

func (s snapshot) GrantsOf(ctx context.Context, ids []string) ([]ledger.Grant, error) {
	return collectOf(ctx, s, "grants", ids, `SELECT `+grantCols+` FROM grants
		WHERE account_id IN (SELECT value FROM json_each(?)) ORDER BY account_id, created_at, id`, scanGrant)
}

// LiveGrantsOf reads the accounts' live grants from grants_live, and the
// named grants that are not live by id, so that no grant comes twice.
func (s snapshot) LiveGrantsOf(ctx context.Context, ids, grantIDs []string) ([]ledger.Grant, error) {
	rows, err := s.tx.QueryContext(ctx, `SELECT `+grantCols+` FROM grants
		WHERE account_id IN (SELECT value FROM json_each(?1)) AND closed = 0 AND remaining > 0
		UNION ALL
		SELECT `+grantCols+` FROM grants
		WHERE id IN (SELECT value FROM json_each(?2)) AND (closed <> 0 OR remaining <= 0)`, encodeIDs(ids), encodeIDs(grantIDs))
	if err != nil {
		return nil, fmt.Errorf("sqlite: live grants of %d accounts: %w", len(ids), err)
	}
	gs, err := collect(rows, scanGrant)
	if err != nil {
		return nil, fmt.Errorf("sqlite: live grants of %d accounts: %w", len(ids), err)
	}
	return gs, nil
}

func (s snapshot) OpenHoldsOf(ctx context.Context, ids []string) ([]ledger.Hold, error) {
	return collectOf(ctx, s, "open holds", ids, `SELECT `+holdCols+` FROM holds
		WHERE account_id IN (SELECT value FROM json_each(?)) AND status = 'open'
		ORDER BY account_id, created_at, id`, scanHold)
}
