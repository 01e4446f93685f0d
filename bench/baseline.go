package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/examples/catalogs"
	"github.com/scriphq/scrip/internal/rawconn"
)

// baselineConnsMax bounds the baseline's PostgreSQL connections: one per
// client, as a per-operation service would hold, below the server's limit.
const baselineConnsMax = 64

// The baseline is how most credit systems work: one database transaction
// per operation, a balance row per account debited with
// UPDATE ... WHERE balance >= amount, and a journal row. It keeps its own
// tables next to scrip's, and has idempotency keys too (a unique index), so
// the comparison is about the write path, not about features.
var baselineSchema = []string{
	`CREATE TABLE IF NOT EXISTS bench_baseline_balances (
		account_id TEXT PRIMARY KEY,
		balance    BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS bench_baseline_journal (
		id              TEXT PRIMARY KEY,
		account_id      TEXT NOT NULL,
		kind            TEXT NOT NULL,
		delta           BIGINT NOT NULL,
		amount          BIGINT NOT NULL,
		refunded        BIGINT NOT NULL DEFAULT 0,
		idempotency_key TEXT NOT NULL UNIQUE,
		created_at      BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS bench_baseline_holds (
		id         TEXT PRIMARY KEY,
		account_id TEXT NOT NULL,
		amount     BIGINT NOT NULL,
		status     TEXT NOT NULL)`,
}

// baselineTarget is the per-operation implementation scrip is compared
// with. Its SQL is written once with ? placeholders and runs on SQLite and
// PostgreSQL alike.
type baselineTarget struct {
	db      sqlDB
	catalog *catalog.Catalog
	ids     atomic.Int64
	prefix  string
}

// sqlDB runs the baseline's statements on one database.
type sqlDB interface {
	// inTx runs fn in one write transaction and commits it unless fn fails.
	inTx(ctx context.Context, fn func(q querier) error) error
	// read runs a read outside any write transaction.
	read() querier
	close()
}

type querier interface {
	exec(ctx context.Context, query string, args ...any) (rows int64, err error)
	// row scans the first row into dest; no row is sql.ErrNoRows.
	row(ctx context.Context, query string, dest []any, args ...any) error
}

func newBaselineTarget(ctx context.Context, db *database, cfg Config) (*baselineTarget, error) {
	cat, err := catalogs.LoadDemo()
	if err != nil {
		return nil, err
	}
	var d sqlDB
	switch db.kind {
	case "postgres":
		d, err = openPGBaseline(ctx, db.url, min(cfg.Concurrency, baselineConnsMax))
	case "sqlite":
		d, err = openSQLiteBaseline(db.url)
	default:
		err = fmt.Errorf("the baseline needs a database, not %q", db.kind)
	}
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	for _, s := range baselineSchema {
		if err := d.inTx(ctx, func(q querier) error { _, err := q.exec(ctx, s); return err }); err != nil {
			d.close()
			return nil, fmt.Errorf("baseline: create tables: %w", err)
		}
	}
	return &baselineTarget{db: d, catalog: cat, prefix: newRunID()}, nil
}

func (t *baselineTarget) name() string { return "baseline" }

func (t *baselineTarget) newID() string {
	return t.prefix + strconv.FormatInt(t.ids.Add(1), 36) + strconv.FormatUint(rand.Uint64()>>40, 36)
}

func now() int64 { return time.Now().UnixMicro() }

func insufficient(account string, amount credit.Amount) error {
	return scrip.Errorf(scrip.EInsufficientCredits, "account %q has fewer than %s credits available", account, amount)
}

const insertJournal = `INSERT INTO bench_baseline_journal (id, account_id, kind, delta, amount, idempotency_key, created_at)
	VALUES (?, ?, ?, ?, ?, ?, ?)`

func (t *baselineTarget) fund(ctx context.Context, account, key string, amount credit.Amount) error {
	return t.db.inTx(ctx, func(q querier) error {
		n, err := q.exec(ctx, `INSERT INTO bench_baseline_balances (account_id, balance) VALUES (?, ?)
			ON CONFLICT (account_id) DO NOTHING`, account, amount.Micros())
		if err != nil || n == 0 {
			return err
		}
		_, err = q.exec(ctx, insertJournal, t.newID(), account, "grant", amount.Micros(), amount.Micros(), key, now())
		return err
	})
}

// debit takes amount from the account's balance if it has that much.
func debit(ctx context.Context, q querier, account string, amount credit.Amount) error {
	n, err := q.exec(ctx, `UPDATE bench_baseline_balances SET balance = balance - ?
		WHERE account_id = ? AND balance >= ?`, amount.Micros(), account, amount.Micros())
	if err != nil {
		return err
	}
	if n == 0 {
		return insufficient(account, amount)
	}
	return nil
}

func creditBack(ctx context.Context, q querier, account string, amount int64) error {
	if amount == 0 {
		return nil
	}
	_, err := q.exec(ctx, `UPDATE bench_baseline_balances SET balance = balance + ? WHERE account_id = ?`, amount, account)
	return err
}

func (t *baselineTarget) charge(ctx context.Context, account, key string, amount credit.Amount) (string, error) {
	id := t.newID()
	err := t.db.inTx(ctx, func(q querier) error {
		if err := debit(ctx, q, account, amount); err != nil {
			return err
		}
		_, err := q.exec(ctx, insertJournal, id, account, "charge", -amount.Micros(), amount.Micros(), key, now())
		return err
	})
	return id, err
}

func (t *baselineTarget) hold(ctx context.Context, account, key string, amount credit.Amount) (string, error) {
	id := t.newID()
	err := t.db.inTx(ctx, func(q querier) error {
		if err := debit(ctx, q, account, amount); err != nil {
			return err
		}
		if _, err := q.exec(ctx, `INSERT INTO bench_baseline_holds (id, account_id, amount, status) VALUES (?, ?, ?, 'open')`,
			id, account, amount.Micros()); err != nil {
			return err
		}
		_, err := q.exec(ctx, insertJournal, t.newID(), account, "hold", -amount.Micros(), amount.Micros(), key, now())
		return err
	})
	return id, err
}

// settle ends an open hold with status, returning held-captured credits.
func (t *baselineTarget) settle(ctx context.Context, holdID, key, status string, captured credit.Amount) error {
	return t.db.inTx(ctx, func(q querier) error {
		var account string
		var held int64
		err := q.row(ctx, `UPDATE bench_baseline_holds SET status = ? WHERE id = ? AND status = 'open'
			RETURNING account_id, amount`, []any{&account, &held}, status, holdID)
		if errors.Is(err, sql.ErrNoRows) {
			return scrip.Errorf(scrip.EHoldNotFound, "open hold %q not found", holdID)
		}
		if err != nil {
			return err
		}
		if captured.Micros() > held {
			return scrip.Errorf(scrip.EInvalidAmount, "capture of %s exceeds the hold", captured)
		}
		back := held - captured.Micros()
		if err := creditBack(ctx, q, account, back); err != nil {
			return err
		}
		_, err = q.exec(ctx, insertJournal, t.newID(), account, status, back, captured.Micros(), key, now())
		return err
	})
}

func (t *baselineTarget) capture(ctx context.Context, holdID, key string, amount credit.Amount) error {
	return t.settle(ctx, holdID, key, "captured", amount)
}

func (t *baselineTarget) release(ctx context.Context, holdID, key string) error {
	return t.settle(ctx, holdID, key, "released", 0)
}

func (t *baselineTarget) refund(ctx context.Context, chargeID, key string, amount credit.Amount) error {
	return t.db.inTx(ctx, func(q querier) error {
		var account string
		err := q.row(ctx, `UPDATE bench_baseline_journal SET refunded = refunded + ?
			WHERE id = ? AND kind = 'charge' AND amount - refunded >= ? RETURNING account_id`,
			[]any{&account}, amount.Micros(), chargeID, amount.Micros())
		if errors.Is(err, sql.ErrNoRows) {
			return scrip.Errorf(scrip.EChargeNotFound, "charge %q not found or already refunded", chargeID)
		}
		if err != nil {
			return err
		}
		if err := creditBack(ctx, q, account, amount.Micros()); err != nil {
			return err
		}
		_, err = q.exec(ctx, insertJournal, t.newID(), account, "refund", amount.Micros(), amount.Micros(), key, now())
		return err
	})
}

func (t *baselineTarget) balance(ctx context.Context, account string) (credit.Amount, error) {
	var b int64
	err := t.db.read().row(ctx, `SELECT balance FROM bench_baseline_balances WHERE account_id = ?`, []any{&b}, account)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, scrip.Errorf(scrip.EAccountNotFound, "account %q not found", account)
	}
	return credit.Micros(b), err
}

func (t *baselineTarget) quote(context.Context) error {
	_, err := t.catalog.Quote(catalog.QuoteRequest{Action: quoteAction})
	return err
}

// verify checks that every balance equals the sum of its journal and is
// not negative.
func (t *baselineTarget) verify(ctx context.Context, _ func(int)) (Verify, error) {
	v := Verify{OK: true}
	var accounts, txs, bad int64
	err := t.db.read().row(ctx, `SELECT
			(SELECT COUNT(*) FROM bench_baseline_balances),
			(SELECT COUNT(*) FROM bench_baseline_journal),
			(SELECT COUNT(*) FROM bench_baseline_balances b
			  LEFT JOIN (SELECT account_id, SUM(delta) AS total FROM bench_baseline_journal GROUP BY account_id) j
			    ON j.account_id = b.account_id
			  WHERE b.balance < 0 OR b.balance <> COALESCE(j.total, 0))`,
		[]any{&accounts, &txs, &bad})
	if err != nil {
		return v, err
	}
	v.Accounts, v.Transactions = int(accounts), txs
	if bad > 0 {
		v.addProblem(fmt.Sprintf("%d baseline balances differ from their journal or are negative", bad))
	}
	return v, nil
}

func (t *baselineTarget) batches() *BatchStats { return nil }

func (t *baselineTarget) close(context.Context) error {
	t.db.close()
	return nil
}

// pgBaseline runs the baseline on PostgreSQL through a pgx pool.
type pgBaseline struct{ pool *pgxpool.Pool }

func openPGBaseline(ctx context.Context, rawURL string, conns int) (*pgBaseline, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(max(conns, 1))
	// The same socket calls as the store's, so that the ratio compares
	// the write paths alone.
	cfg.ConnConfig.DialFunc = rawconn.Dial(cfg.ConnConfig.DialFunc)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &pgBaseline{pool: pool}, nil
}

func (d *pgBaseline) inTx(ctx context.Context, fn func(q querier) error) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(pgq{tx}); err != nil {
		tx.Rollback(ctx)
		return err
	}
	return tx.Commit(ctx)
}

func (d *pgBaseline) read() querier { return pgq{d.pool} }

func (d *pgBaseline) close() { d.pool.Close() }

// pgq adapts a pgx pool or transaction.
type pgq struct {
	q interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	}
}

func (p pgq) exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := p.q.Exec(ctx, dollars(query), args...)
	return tag.RowsAffected(), err
}

func (p pgq) row(ctx context.Context, query string, dest []any, args ...any) error {
	err := p.q.QueryRow(ctx, dollars(query), args...).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return sql.ErrNoRows
	}
	return err
}

// dollars turns ? placeholders into PostgreSQL's $1, $2, ...
func dollars(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sqliteBaseline runs the baseline on SQLite with the same settings as
// scrip's store: WAL, synchronous=FULL, one writer connection and a read
// pool.
type sqliteBaseline struct{ writer, reader *sql.DB }

func openSQLiteBaseline(path string) (*sqliteBaseline, error) {
	common := url.Values{}
	common.Add("_pragma", "busy_timeout(5000)")
	wq := url.Values{}
	for k, v := range common {
		wq[k] = v
	}
	wq.Add("_pragma", "journal_mode(WAL)")
	wq.Add("_pragma", "synchronous(FULL)")
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	r, err := sql.Open("sqlite", path+"?"+common.Encode())
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	return &sqliteBaseline{writer: w, reader: r}, nil
}

func (d *sqliteBaseline) inTx(ctx context.Context, fn func(q querier) error) error {
	tx, err := d.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(sqlq{tx}); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (d *sqliteBaseline) read() querier { return sqlq{d.reader} }

func (d *sqliteBaseline) close() { d.writer.Close(); d.reader.Close() }

// sqlq adapts a database/sql handle or transaction.
type sqlq struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
}

func (s sqlq) exec(ctx context.Context, query string, args ...any) (int64, error) {
	r, err := s.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

func (s sqlq) row(ctx context.Context, query string, dest []any, args ...any) error {
	return s.q.QueryRowContext(ctx, query, args...).Scan(dest...)
}
