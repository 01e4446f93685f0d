package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scriphq/scrip/ledger"
)

// journalPageRows bounds the rows Journal reads per query.
const journalPageRows = 1000

// rollbackTimeout bounds the ROLLBACK that takes a connection out of a
// read that failed inside its transaction.
const rollbackTimeout = 2 * time.Second

// Reads use the pool directly and take no locks.

// Begin opens the write transaction of one batch on a connection of its own;
// BEGIN goes out with the batch's first statements.
func (s *Store) Begin(ctx context.Context) (ledger.Tx, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: begin: %w", err)
	}
	return &Tx{conn: conn, copyRowsMin: s.copyRowsMin}, nil
}

func (s *Store) Account(ctx context.Context, id string) (ledger.Account, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = $1`, id))
	if err != nil {
		return a, notFound(err, "account", id)
	}
	return a, nil
}

// The live grants of an account, and its open holds, in the order
// ledger.Store promises.
const (
	grantsLiveSQL = `SELECT ` + grantColumns + ` FROM grants
		WHERE account_id = $1 AND NOT closed AND remaining > 0 ORDER BY created_at, id`
	openHoldsSQL = `SELECT ` + holdColumns + ` FROM holds
		WHERE account_id = $1 AND status = 'open' ORDER BY created_at, id`
)

// Grants returns all the account's grants in creation order.
func (s *Store) Grants(ctx context.Context, accountID string) ([]ledger.Grant, error) {
	gs, err := collect(ctx, s.pool, scanGrant, `SELECT `+grantColumns+` FROM grants
		WHERE account_id = $1 ORDER BY created_at, id`, accountID)
	if err != nil {
		return nil, fmt.Errorf("postgres: grants of %s: %w", accountID, err)
	}
	return gs, nil
}

// OpenHolds returns the account's open holds, oldest first.
func (s *Store) OpenHolds(ctx context.Context, accountID string) ([]ledger.Hold, error) {
	hs, err := collect(ctx, s.pool, scanHold, openHoldsSQL, accountID)
	if err != nil {
		return nil, fmt.Errorf("postgres: open holds of %s: %w", accountID, err)
	}
	return hs, nil
}

// AccountState reads the account, its live grants and its open holds in a
// read-only REPEATABLE READ transaction, which gives its statements one
// snapshot, sent with its BEGIN and COMMIT as one pipeline: one round trip
// once the connection has the statements prepared. An error from the server
// skips the rest of the pipeline and leaves the connection in the failed
// transaction; it is rolled back before the connection goes back to the
// pool, which would otherwise close it and open another.
func (s *Store) AccountState(ctx context.Context, id string) (ledger.AccountState, error) {
	var st ledger.AccountState
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return st, fmt.Errorf("postgres: state of account %s: %w", id, err)
	}
	defer conn.Release()
	b := &pgx.Batch{}
	b.Queue(`BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY`)
	b.Queue(`SELECT `+accountColumns+` FROM accounts WHERE id = $1`, id)
	b.Queue(grantsLiveSQL, id)
	b.Queue(openHoldsSQL, id)
	b.Queue(`COMMIT`)
	br := conn.SendBatch(ctx, b)
	err = func() error {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("postgres: state of account %s: %w", id, err)
		}
		var err error
		if st.Account, err = scanAccount(br.QueryRow()); err != nil {
			return notFound(err, "account", id)
		}
		if st.Grants, err = batchRows(br, scanGrant); err != nil {
			return fmt.Errorf("postgres: grants of %s: %w", id, err)
		}
		if st.Holds, err = batchRows(br, scanHold); err != nil {
			return fmt.Errorf("postgres: open holds of %s: %w", id, err)
		}
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("postgres: state of account %s: %w", id, err)
		}
		return nil
	}()
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("postgres: state of account %s: %w", id, cerr)
	}
	if c := conn.Conn(); err != nil && !c.IsClosed() && c.PgConn().TxStatus() != 'I' {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		_, _ = c.Exec(rctx, `ROLLBACK`) // failing, it leaves the pool to close the connection
		cancel()
	}
	return st, err
}

func (s *Store) Grant(ctx context.Context, id string) (ledger.Grant, error) {
	g, err := scanGrant(s.pool.QueryRow(ctx, `SELECT `+grantColumns+` FROM grants WHERE id = $1`, id))
	if err != nil {
		return g, notFound(err, "grant", id)
	}
	return g, nil
}

func (s *Store) Hold(ctx context.Context, id string) (ledger.Hold, error) {
	h, err := scanHold(s.pool.QueryRow(ctx, `SELECT `+holdColumns+` FROM holds WHERE id = $1`, id))
	if err != nil {
		return h, notFound(err, "hold", id)
	}
	return h, nil
}

func (s *Store) Charge(ctx context.Context, id string) (ledger.Charge, error) {
	c, err := scanCharge(s.pool.QueryRow(ctx, `SELECT `+chargeColumns+` FROM charges WHERE id = $1`, id))
	if err != nil {
		return c, notFound(err, "charge", id)
	}
	return c, nil
}

// Transactions returns an account's journal transactions newest first. A
// Limit of zero or less returns every match.
func (s *Store) Transactions(ctx context.Context, q ledger.HistoryQuery) ([]ledger.Transaction, error) {
	var (
		where strings.Builder
		args  = []any{q.AccountID}
	)
	where.WriteString(`account_id = $1`)
	arg := func(cond string, v any) {
		args = append(args, v)
		where.WriteString(" AND " + strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if len(q.Types) > 0 {
		types := make([]string, len(q.Types))
		for i, t := range q.Types {
			types[i] = string(t)
		}
		arg(`type = ANY(?)`, types)
	}
	if !q.Since.IsZero() {
		arg(`created_at >= ?`, q.Since)
	}
	if !q.Until.IsZero() {
		arg(`created_at < ?`, q.Until)
	}
	if q.BeforeSeq > 0 {
		arg(`seq < ?`, q.BeforeSeq)
	}
	sql := `SELECT ` + transactionColumns + ` FROM transactions WHERE ` + where.String() + ` ORDER BY seq DESC`
	if q.Limit > 0 {
		args = append(args, q.Limit)
		sql += ` LIMIT $` + strconv.Itoa(len(args))
	}
	ts, err := collect(ctx, s.pool, scanTransaction, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: transactions of %s: %w", q.AccountID, err)
	}
	return ts, nil
}

// DueGrants returns up to limit unclosed grants expired at or before now,
// soonest first.
func (s *Store) DueGrants(ctx context.Context, now time.Time, limit int) ([]ledger.Grant, error) {
	gs, err := collect(ctx, s.pool, scanGrant, `SELECT `+grantColumns+` FROM grants
		WHERE NOT closed AND expires_at IS NOT NULL AND expires_at <= $1
		ORDER BY expires_at, created_at, id LIMIT $2`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: due grants: %w", err)
	}
	return gs, nil
}

// DueHolds returns up to limit open holds expired at or before now, soonest
// first.
func (s *Store) DueHolds(ctx context.Context, now time.Time, limit int) ([]ledger.Hold, error) {
	hs, err := collect(ctx, s.pool, scanHold, `SELECT `+holdColumns+` FROM holds
		WHERE status = 'open' AND expires_at <= $1
		ORDER BY expires_at, created_at, id LIMIT $2`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: due holds: %w", err)
	}
	return hs, nil
}

// AccountIDs returns up to limit account ids greater than after, sorted.
func (s *Store) AccountIDs(ctx context.Context, after string, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM accounts WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: account ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: account ids: %w", err)
	}
	return ids, nil
}

// Journal calls fn for each of the account's transactions in sequence
// order. It reads in pages, so no query stays open while fn runs.
func (s *Store) Journal(ctx context.Context, accountID string, fn func(*ledger.Transaction) error) error {
	var after int64 = -1 << 63
	for {
		page, err := collect(ctx, s.pool, scanTransaction, `SELECT `+transactionColumns+` FROM transactions
			WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, accountID, after, journalPageRows)
		if err != nil {
			return fmt.Errorf("postgres: journal of %s: %w", accountID, err)
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

// ReadAccounts runs fn's reads in one read-only REPEATABLE READ
// transaction, so that they all see one snapshot (ledger.BulkReader).
func (s *Store) ReadAccounts(ctx context.Context, fn func(ledger.AccountsReader) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("postgres: begin snapshot: %w", err)
	}
	defer tx.Rollback(ctx)
	if err := fn(snapshot{tx}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: end snapshot: %w", err)
	}
	return nil
}

// snapshot reads many accounts in a ReadAccounts transaction.
type snapshot struct{ tx pgx.Tx }

// AccountsOf returns those of the accounts ids that exist.
func (s snapshot) AccountsOf(ctx context.Context, ids []string) ([]ledger.Account, error) {
	as, err := collect(ctx, s.tx, scanAccount, `SELECT `+accountColumns+` FROM accounts WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("postgres: %d accounts: %w", len(ids), err)
	}
	return as, nil
}

// JournalOf calls fn with every transaction of the accounts ids, account
// by account in sequence order, as one query whose rows are read as they
// come.
func (s snapshot) JournalOf(ctx context.Context, ids []string, fn func(*ledger.Transaction) error) error {
	rows, err := s.tx.Query(ctx, `SELECT `+transactionColumns+` FROM transactions
		WHERE account_id = ANY($1) ORDER BY account_id, seq`, ids)
	if err != nil {
		return fmt.Errorf("postgres: journal of %d accounts: %w", len(ids), err)
	}
	defer rows.Close()
	for rows.Next() {
		t, err := scanTransaction(rows)
		if err != nil {
			return fmt.Errorf("postgres: journal of %d accounts: %w", len(ids), err)
		}
		if err := fn(&t); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: journal of %d accounts: %w", len(ids), err)
	}
	return nil
}

// GrantsOf returns every grant of the accounts ids, each account's in
// creation order.
func (s snapshot) GrantsOf(ctx context.Context, ids []string) ([]ledger.Grant, error) {
	gs, err := collect(ctx, s.tx, scanGrant, `SELECT `+grantColumns+` FROM grants
		WHERE account_id = ANY($1) ORDER BY account_id, created_at, id`, ids)
	if err != nil {
		return nil, fmt.Errorf("postgres: grants of %d accounts: %w", len(ids), err)
	}
	return gs, nil
}

// LiveGrantsOf joins the ids to the grants rather than testing each row
// against them with = ANY: on a small table the planner scans it whole,
// and a generic plan compares every row with every id of the array. The
// named grants that are live come from the first part only.
func (s snapshot) LiveGrantsOf(ctx context.Context, ids, grantIDs []string) ([]ledger.Grant, error) {
	gs, err := collect(ctx, s.tx, scanGrant, `SELECT `+grantColumns+`
		FROM unnest($1::text[]) AS a(account) JOIN grants ON account_id = a.account
		WHERE NOT closed AND remaining > 0
		UNION ALL
		SELECT `+grantColumns+` FROM unnest($2::text[]) AS n(grant_id) JOIN grants ON id = n.grant_id
		WHERE closed OR remaining <= 0`, ids, grantIDs)
	if err != nil {
		return nil, fmt.Errorf("postgres: live grants of %d accounts: %w", len(ids), err)
	}
	return gs, nil
}

// OpenHoldsOf returns the open holds of the accounts ids, each account's
// oldest first.
func (s snapshot) OpenHoldsOf(ctx context.Context, ids []string) ([]ledger.Hold, error) {
	hs, err := collect(ctx, s.tx, scanHold, `SELECT `+holdColumns+` FROM holds
		WHERE account_id = ANY($1) AND status = 'open' ORDER BY account_id, created_at, id`, ids)
	if err != nil {
		return nil, fmt.Errorf("postgres: open holds of %d accounts: %w", len(ids), err)
	}
	return hs, nil
}

// querier is what pgxpool.Pool and pgx.Tx have in common for reading.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// collect runs a query and scans every row with scan.
func collect[T any](ctx context.Context, q querier, scan func(scanner) (T, error), sql string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, sql, args...)
	return scanRows(rows, err, scan)
}

// batchRows scans every row of the next query of a pipeline.
func batchRows[T any](br pgx.BatchResults, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := br.Query()
	return scanRows(rows, err, scan)
}

// scanRows scans every row of a query that returned err, and closes rows.
func scanRows[T any](rows pgx.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// notFound turns pgx.ErrNoRows into ledger.ErrNotFound.
func notFound(err error, what, id string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s %q: %w", what, id, ledger.ErrNotFound)
	}
	return fmt.Errorf("postgres: %s %s: %w", what, id, err)
}
