package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scriphq/scrip/ledger"
)

// Tx is the write transaction of one batch, on a connection held for it.
// BEGIN is not a round trip of its own: it goes out in front of the batch's
// first statements (beginQueries).
type Tx struct {
	conn        *pgxpool.Conn
	copyRowsMin int
	begun       bool
	// failed is set by any statement that failed: Commit then rolls back
	// and reports it, whatever the server would make of COMMIT.
	failed bool
}

var (
	_ ledger.Tx     = (*Tx)(nil)
	_ ledger.Loader = (*Tx)(nil)
)

var (
	errTxEnded  = errors.New("the transaction has ended")
	errTxFailed = errors.New("a statement of the transaction failed")
)

// db returns the connection for one statement, beginning the transaction
// first if no statement has.
func (t *Tx) db(ctx context.Context) (querier, error) {
	if t.conn == nil {
		return nil, errTxEnded
	}
	if !t.begun {
		br, err := t.send(ctx, &pgx.Batch{})
		if err != nil {
			return nil, err
		}
		if err := br.Close(); err != nil {
			t.failed = true
			return nil, fmt.Errorf("begin: %w", err)
		}
	}
	return t.conn, nil
}

// collectTx is collect on the batch's transaction.
func collectTx[T any](ctx context.Context, t *Tx, scan func(scanner) (T, error), sql string, args ...any) ([]T, error) {
	q, err := t.db(ctx)
	if err != nil {
		return nil, err
	}
	out, err := collect(ctx, q, scan, sql, args...)
	if err != nil {
		t.failed = true
	}
	return out, err
}

// beginQueries open a batch's transaction. The batch statements then take
// their generic plans, the same index probes for 1 row or 1,000, instead
// of being planned again at each execution: under PostgreSQL's default
// (plan_cache_mode=auto) a statement whose arrays hold a row or two keeps a
// custom plan, since the generic one is priced for ten rows, and planning
// each statement of a lone charge cost the server about 0.1 ms. With
// generic plans a charge at one client took PostgreSQL 326–401 µs of CPU
// instead of 628–683, and its p50 went from 0.95–1.12 to 0.60–0.81 ms
// (docs/performance.md, "Per step", item 14; under load they need the
// connection's allocatorWarmUpSQL). The setting ends with the transaction:
// the pool's other queries keep the default.
//
// A generic plan is made once per connection and kept until the table's
// statistics change or its definition does, and one made while a table is
// small scans it whole: on a fresh database a batch's holds lookup would go
// on reading every hold after the table had grown to 100,000 rows, until
// autovacuum analyzed it (the likely cause of hold+capture runs at half
// their rate, p99 0.6–0.7 s, in 2 of 9). Every batch statement finds its
// rows by key, so the batches turn off sequential scans, and hash and merge
// joins, which an UPDATE ... FROM unnest planned on a small table would
// otherwise use over the whole of its table's index: each row is then an
// index probe, whatever the table's size. (The one exception seen: a table
// last analyzed with a single row gets an UPDATE plan that walks its whole
// index, kept until the next analysis. Autovacuum first analyzes a table at
// 50 rows, so only an ANALYZE by hand makes that plan.) The settings are
// local to the transaction (set_config's third argument, as SET LOCAL). The
// plans are cached by statement text: no statement outside a batch may
// share a batch statement's text, or its plan could be made without these
// settings.
var beginQueries = []string{"BEGIN", batchSettings}

// batchSettings is the statement of beginQueries that sets a batch's
// planner settings.
const batchSettings = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true),
	set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true),
	set_config('enable_mergejoin', 'off', true)`

// send sends b as one pipeline, with beginQueries in front if no statement
// has begun the transaction, and returns its results with theirs already
// read.
func (t *Tx) send(ctx context.Context, b *pgx.Batch) (pgx.BatchResults, error) {
	if t.conn == nil {
		return nil, errTxEnded
	}
	if t.begun {
		return t.conn.SendBatch(ctx, b), nil
	}
	t.begun = true
	begin := make([]*pgx.QueuedQuery, len(beginQueries), len(beginQueries)+len(b.QueuedQueries))
	for i, sql := range beginQueries {
		begin[i] = &pgx.QueuedQuery{SQL: sql}
	}
	b.QueuedQueries = append(begin, b.QueuedQueries...)
	br := t.conn.SendBatch(ctx, b)
	for range beginQueries {
		if _, err := br.Exec(); err != nil {
			br.Close()
			t.failed = true
			return nil, fmt.Errorf("begin: %w", err)
		}
	}
	return br, nil
}

// The batch's reads. Each is one query whatever the number of rows.
const (
	lockAccountsSQL = `SELECT ` + accountColumns + ` FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE`
	// Two index scans rather than one OR, which the planner may turn into a
	// sequential scan of a table that churns with every debit.
	loadGrantsSQL = `SELECT ` + grantColumns + ` FROM grants
		WHERE account_id = ANY($1) AND NOT closed AND remaining > 0
		UNION ALL
		SELECT ` + grantColumns + ` FROM grants
		WHERE id = ANY($2) AND NOT (account_id = ANY($1) AND NOT closed AND remaining > 0)`
	loadHoldsSQL   = `SELECT ` + holdColumns + ` FROM holds WHERE id = ANY($1) ORDER BY id`
	loadChargesSQL = `SELECT ` + chargeColumns + ` FROM charges WHERE id = ANY($1) ORDER BY id`
	// LIMIT 1 keeps the subquery from being flattened into a join, so each
	// key is one probe of transactions_account_key whatever the statistics.
	loadKeyedSQL = `SELECT ` + transactionColumns + `
		FROM unnest($1::text[], $2::text[]) AS k(acct, key),
		LATERAL (SELECT * FROM transactions t
			WHERE t.account_id = k.acct AND t.idempotency_key = k.key AND t.idempotency_key <> ''
			LIMIT 1) t
		ORDER BY account_id, seq`
)

// LockAccounts locks the accounts, given in ascending id order, in one
// query and returns those that exist. Every batch locks in the same order,
// so two batches never deadlock on accounts.
func (t *Tx) LockAccounts(ctx context.Context, ids []string) ([]ledger.Account, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	as, err := collectTx(ctx, t, scanAccount, lockAccountsSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("postgres: lock accounts: %w", err)
	}
	return as, nil
}

// LoadGrants returns the live grants of the accounts and the grants named
// by id whatever their state.
func (t *Tx) LoadGrants(ctx context.Context, accountIDs, grantIDs []string) ([]ledger.Grant, error) {
	if len(accountIDs) == 0 && len(grantIDs) == 0 {
		return nil, nil
	}
	gs, err := collectTx(ctx, t, scanGrant, loadGrantsSQL, nonNil(accountIDs), nonNil(grantIDs))
	if err != nil {
		return nil, fmt.Errorf("postgres: load grants: %w", err)
	}
	sortGrants(gs)
	return gs, nil
}

// sortGrants puts grants in the order LoadGrants returns them: by account,
// then creation.
func sortGrants(gs []ledger.Grant) {
	slices.SortFunc(gs, func(a, b ledger.Grant) int {
		return cmp.Or(strings.Compare(a.AccountID, b.AccountID), a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
}

func (t *Tx) LoadHolds(ctx context.Context, ids []string) ([]ledger.Hold, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	hs, err := collectTx(ctx, t, scanHold, loadHoldsSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("postgres: load holds: %w", err)
	}
	return hs, nil
}

func (t *Tx) LoadCharges(ctx context.Context, ids []string) ([]ledger.Charge, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cs, err := collectTx(ctx, t, scanCharge, loadChargesSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("postgres: load charges: %w", err)
	}
	return cs, nil
}

// LoadKeyed returns the transactions recorded under the idempotency keys.
// Empty keys name nothing.
func (t *Tx) LoadKeyed(ctx context.Context, keys []ledger.TxKey) ([]ledger.Transaction, error) {
	accounts, ks := keyedArgs(keys)
	if len(ks) == 0 {
		return nil, nil
	}
	ts, err := collectTx(ctx, t, scanTransaction, loadKeyedSQL, accounts, ks)
	if err != nil {
		return nil, fmt.Errorf("postgres: load keyed transactions: %w", err)
	}
	return ts, nil
}

// keyedArgs splits the non-empty keys into the two arrays loadKeyedSQL takes.
func keyedArgs(keys []ledger.TxKey) (accounts, ks []string) {
	accounts = make([]string, 0, len(keys))
	ks = make([]string, 0, len(keys))
	for _, k := range keys {
		if k.Key == "" {
			continue
		}
		accounts = append(accounts, k.AccountID)
		ks = append(ks, k.Key)
	}
	return accounts, ks
}

// Load locks the batch's accounts and makes all of its reads in one
// pipelined round trip (ledger.Loader): the same queries as LockAccounts and
// the Load methods, run by the server one after the other, the lock first.
func (t *Tx) Load(ctx context.Context, r ledger.LoadRequest) (ledger.Loaded, error) {
	var (
		out ledger.Loaded
		b   pgx.Batch
	)
	b.Queue(lockAccountsSQL, nonNil(r.Accounts))
	if len(r.Holds) > 0 {
		b.Queue(loadHoldsSQL, r.Holds)
	}
	if len(r.Charges) > 0 {
		b.Queue(loadChargesSQL, r.Charges)
	}
	b.Queue(loadGrantsSQL, nonNil(r.Accounts), nonNil(r.Grants))
	accounts, keys := keyedArgs(r.Keys)
	if len(keys) > 0 {
		b.Queue(loadKeyedSQL, accounts, keys)
	}

	br, err := t.send(ctx, &b)
	if err != nil {
		return ledger.Loaded{}, fmt.Errorf("postgres: load: %w", err)
	}
	err = func() error {
		var err error
		if out.Accounts, err = batchRows(br, scanAccount); err != nil {
			return fmt.Errorf("lock accounts: %w", err)
		}
		if len(r.Holds) > 0 {
			if out.Holds, err = batchRows(br, scanHold); err != nil {
				return fmt.Errorf("load holds: %w", err)
			}
		}
		if len(r.Charges) > 0 {
			if out.Charges, err = batchRows(br, scanCharge); err != nil {
				return fmt.Errorf("load charges: %w", err)
			}
		}
		if out.Grants, err = batchRows(br, scanGrant); err != nil {
			return fmt.Errorf("load grants: %w", err)
		}
		sortGrants(out.Grants)
		if len(keys) > 0 {
			if out.Keyed, err = batchRows(br, scanTransaction); err != nil {
				return fmt.Errorf("load keyed transactions: %w", err)
			}
		}
		return nil
	}()
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		t.failed = true
		return ledger.Loaded{}, fmt.Errorf("postgres: %w", err)
	}
	return out, nil
}

// Commit commits the transaction and gives the connection back.
func (t *Tx) Commit(ctx context.Context) error {
	if t.conn == nil {
		return fmt.Errorf("postgres: commit: %w", errTxEnded)
	}
	if t.failed {
		return errors.Join(fmt.Errorf("postgres: commit: %w", errTxFailed), t.Rollback(ctx))
	}
	var err error
	if t.begun {
		var tag pgconn.CommandTag
		tag, err = t.conn.Exec(ctx, "COMMIT")
		// COMMIT of a transaction that failed rolls it back without an
		// error.
		if err == nil && tag.String() == "ROLLBACK" {
			err = pgx.ErrTxCommitRollback
		}
	}
	t.release()
	if err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// Rollback aborts the transaction; after Commit it does nothing.
func (t *Tx) Rollback(ctx context.Context) error {
	if t.conn == nil {
		return nil
	}
	var err error
	if t.begun {
		_, err = t.conn.Exec(ctx, "ROLLBACK")
	}
	t.release()
	if err != nil {
		return fmt.Errorf("postgres: rollback: %w", err)
	}
	return nil
}

// release gives the connection back to the pool, which closes it rather than
// reuse it if it is still inside a transaction.
func (t *Tx) release() {
	t.conn.Release()
	t.conn = nil
}

// Write persists a batch in one pipelined round trip: one set-based
// statement per table and kind of change, inserts before updates so a row
// created and changed in the same batch ends in its final state, the
// journal last; a large batch writes its journal with COPY after the
// pipeline instead (copyTransactions). Each update must hit exactly the
// rows it names, all loaded in this Tx; anything else is a bug and fails
// the batch: after a failed Write, Commit rolls back.
func (t *Tx) Write(ctx context.Context, w *ledger.Writes) error {
	err := t.write(ctx, w)
	if err != nil {
		t.failed = true
	}
	return err
}

func (t *Tx) write(ctx context.Context, w *ledger.Writes) error {
	if w.Empty() {
		return nil
	}
	var (
		b     pgx.Batch
		steps []step
	)
	add := func(name string, rows int, sql string, args ...any) {
		b.Queue(sql, args...)
		steps = append(steps, step{name: name, rows: int64(rows)})
	}
	if err := queueAccountInserts(w.NewAccounts, add); err != nil {
		return err
	}
	if err := queueGrantInserts(w.NewGrants, add); err != nil {
		return err
	}
	if err := queueHoldInserts(w.NewHolds, add); err != nil {
		return err
	}
	if err := queueChargeInserts(w.NewCharges, add); err != nil {
		return err
	}
	queueGrantUpdates(w.Grants, add)
	queueHoldUpdates(w.Holds, add)
	if err := queueChargeUpdates(w.Charges, add); err != nil {
		return err
	}
	queueAccountUpdates(w.Accounts, add)
	byCopy := len(w.Transactions) > 0 && len(w.Transactions) >= t.copyRowsMin
	if !byCopy {
		if err := queueTransactionInserts(w.Transactions, add); err != nil {
			return err
		}
	}

	br, err := t.send(ctx, &b)
	if err != nil {
		return fmt.Errorf("postgres: write: %w", err)
	}
	for _, s := range steps {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return writeError(s.name, err)
		}
		if tag.RowsAffected() != s.rows {
			br.Close()
			return fmt.Errorf("postgres: write %s: %d rows affected, want %d", s.name, tag.RowsAffected(), s.rows)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("postgres: write: %w", err)
	}
	if byCopy {
		return t.copyTransactions(ctx, w.Transactions)
	}
	return nil
}

// journalCopyRowsMin is the number of journal rows from which a batch writes
// them with COPY rather than in its pipeline. COPY costs about one more
// round trip; the server then reads binary rows straight into the table
// where INSERT ... SELECT FROM unnest decodes sixteen arrays and copies
// every row into a tuplestore first. On uniform charges at 1,024 clients
// (batches of about 230) that took PostgreSQL's CPU per charge from
// 59–67 µs to 48–52 µs (docs/performance.md, "Where the time goes").
// Batches of a few dozen, as over HTTP, keep the single round trip.
const journalCopyRowsMin = 64

// copyTransactions writes the journal rows with COPY, inside the batch's
// transaction. A key already recorded fails it as the INSERT would.
func (t *Tx) copyTransactions(ctx context.Context, ts []ledger.Transaction) error {
	src := &journalRows{ts: ts, i: -1, row: make([]any, len(journalCopyColumns))}
	n, err := t.conn.CopyFrom(ctx, pgx.Identifier{"transactions"}, journalCopyColumns, src)
	if err != nil {
		return writeError("transactions", err)
	}
	if n != int64(len(ts)) {
		return fmt.Errorf("postgres: write transactions: %d rows copied, want %d", n, len(ts))
	}
	return nil
}

// journalCopyColumns are transactionColumns as COPY takes them.
var journalCopyColumns = strings.Split(strings.Join(strings.Fields(transactionColumns), ""), ",")

// journalRows is the pgx.CopyFromSource of a batch's journal rows. pgx
// encodes each row before it asks for the next, so one slice serves them
// all.
type journalRows struct {
	ts  []ledger.Transaction
	i   int
	row []any
	err error
}

func (r *journalRows) Next() bool {
	r.i++
	return r.i < len(r.ts) && r.err == nil
}

func (r *journalRows) Values() ([]any, error) {
	t := &r.ts[r.i]
	ref, err := encodeRef(t.Ref)
	if err != nil {
		r.err = fmt.Errorf("transaction %s ref: %w", t.ID, err)
		return nil, r.err
	}
	entries, err := encodeEntries(t.Entries)
	if err != nil {
		r.err = fmt.Errorf("transaction %s entries: %w", t.ID, err)
		return nil, r.err
	}
	copy(r.row, []any{t.ID, t.AccountID, t.Seq, string(t.Type), t.Amount.Micros(),
		t.GrantID, t.HoldID, t.ChargeID, t.IdempotencyKey, t.RequestHash,
		ref, t.Reason, entries, t.CreatedAt, t.PrevHash, t.Hash, nullAmount(t.AvailableAfter)})
	return r.row, nil
}

func (r *journalRows) Err() error { return r.err }

// writeError reports a failed write of what. A key already in the journal
// is ledger.ErrKeyExists, and an account another process created
// ledger.ErrAccountExists; the engine answers either by running the batch
// again.
func writeError(what string, err error) error {
	switch {
	case isKeyTaken(err):
		return fmt.Errorf("postgres: write %s: %w: %w", what, ledger.ErrKeyExists, err)
	case isAccountTaken(err):
		return fmt.Errorf("postgres: write %s: %w: %w", what, ledger.ErrAccountExists, err)
	}
	return fmt.Errorf("postgres: write %s: %w", what, err)
}

// isAccountTaken reports whether err is the accounts table's primary key
// refusing a row.
func isAccountTaken(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "accounts_pkey"
}

// isKeyTaken reports whether err is the journal's unique index on account
// and idempotency key refusing a row.
func isKeyTaken(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "transactions_account_key"
}

type step struct {
	name string
	rows int64
}

type queueFunc func(name string, rows int, sql string, args ...any)

func queueAccountInserts(as []ledger.Account, add queueFunc) error {
	if len(as) == 0 {
		return nil
	}
	n := len(as)
	var (
		ids, hashes = make([]string, n), make([]string, n)
		created     = make([]time.Time, n)
		metadata    = make([][]byte, n)
		seqs        = make([]int64, n)
	)
	for i, a := range as {
		md, err := encodeMap(a.Metadata)
		if err != nil {
			return fmt.Errorf("postgres: write account %s metadata: %w", a.ID, err)
		}
		ids[i], created[i], metadata[i], seqs[i], hashes[i] = a.ID, a.CreatedAt, md, a.Seq, a.Hash
	}
	add("new accounts", n, `INSERT INTO accounts (`+accountColumns+`)
		SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::jsonb[], $4::bigint[], $5::text[])`,
		ids, created, metadata, seqs, hashes)
	return nil
}

func queueGrantInserts(gs []ledger.Grant, add queueFunc) error {
	if len(gs) == 0 {
		return nil
	}
	n := len(gs)
	var (
		ids, accounts, kinds         = make([]string, n), make([]string, n), make([]string, n)
		amounts, remaining           = make([]int64, n), make([]int64, n)
		priorities                   = make([]int32, n)
		effective, created           = make([]time.Time, n), make([]time.Time, n)
		expires                      = make([]pgtype.Timestamptz, n)
		srcTypes, srcIDs, srcReasons = make([]string, n), make([]string, n), make([]string, n)
		paid                         = make([]int64, n)
		currencies                   = make([]string, n)
		metadata                     = make([][]byte, n)
		closed                       = make([]bool, n)
	)
	for i, g := range gs {
		md, err := encodeMap(g.Metadata)
		if err != nil {
			return fmt.Errorf("postgres: write grant %s metadata: %w", g.ID, err)
		}
		ids[i], accounts[i], kinds[i] = g.ID, g.AccountID, string(g.Kind)
		amounts[i], remaining[i] = g.Amount.Micros(), g.Remaining.Micros()
		priorities[i] = int32(g.Priority)
		effective[i], expires[i], created[i] = g.EffectiveAt, nullTime(g.ExpiresAt), g.CreatedAt
		srcTypes[i], srcIDs[i], srcReasons[i] = g.Source.Type, g.Source.ID, g.Source.Reason
		paid[i], currencies[i] = g.PaidAmount, g.PaidCurrency
		metadata[i], closed[i] = md, g.Closed
	}
	add("new grants", n, `INSERT INTO grants (`+grantColumns+`)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::integer[],
			$7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::text[],
			$14::timestamptz[], $15::jsonb[], $16::boolean[])`,
		ids, accounts, kinds, amounts, remaining, priorities, effective, expires,
		srcTypes, srcIDs, srcReasons, paid, currencies, created, metadata, closed)
	return nil
}

func queueHoldInserts(hs []ledger.Hold, add queueFunc) error {
	if len(hs) == 0 {
		return nil
	}
	n := len(hs)
	var (
		ids, accounts, statuses, chargeIDs = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		amounts, captured                  = make([]int64, n), make([]int64, n)
		allocs, refs                       = make([][]byte, n), make([][]byte, n)
		expires, created                   = make([]time.Time, n), make([]time.Time, n)
		settled                            = make([]pgtype.Timestamptz, n)
	)
	for i, h := range hs {
		var err error
		if allocs[i], err = encodeAllocations(h.Allocations); err != nil {
			return fmt.Errorf("postgres: write hold %s allocations: %w", h.ID, err)
		}
		if refs[i], err = encodeRef(h.Ref); err != nil {
			return fmt.Errorf("postgres: write hold %s ref: %w", h.ID, err)
		}
		ids[i], accounts[i], statuses[i], chargeIDs[i] = h.ID, h.AccountID, string(h.Status), h.ChargeID
		amounts[i], captured[i] = h.Amount.Micros(), h.Captured.Micros()
		expires[i], created[i], settled[i] = h.ExpiresAt, h.CreatedAt, nullTime(h.SettledAt)
	}
	add("new holds", n, `INSERT INTO holds (`+holdColumns+`)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::jsonb[], $5::text[], $6::timestamptz[],
			$7::timestamptz[], $8::timestamptz[], $9::bigint[], $10::text[], $11::jsonb[])`,
		ids, accounts, amounts, allocs, statuses, expires, created, settled, captured, chargeIDs, refs)
	return nil
}

func queueChargeInserts(cs []ledger.Charge, add queueFunc) error {
	if len(cs) == 0 {
		return nil
	}
	n := len(cs)
	var (
		ids, accounts, holdIDs = make([]string, n), make([]string, n), make([]string, n)
		amounts, refunded      = make([]int64, n), make([]int64, n)
		allocs, refs           = make([][]byte, n), make([][]byte, n)
		created                = make([]time.Time, n)
	)
	for i, c := range cs {
		var err error
		if allocs[i], err = encodeAllocations(c.Allocations); err != nil {
			return fmt.Errorf("postgres: write charge %s allocations: %w", c.ID, err)
		}
		if refs[i], err = encodeRef(c.Ref); err != nil {
			return fmt.Errorf("postgres: write charge %s ref: %w", c.ID, err)
		}
		ids[i], accounts[i], holdIDs[i] = c.ID, c.AccountID, c.HoldID
		amounts[i], refunded[i] = c.Amount.Micros(), c.Refunded.Micros()
		created[i] = c.CreatedAt
	}
	add("new charges", n, `INSERT INTO charges (`+chargeColumns+`)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::jsonb[], $6::text[],
			$7::timestamptz[], $8::jsonb[])`,
		ids, accounts, amounts, refunded, allocs, holdIDs, created, refs)
	return nil
}

func queueTransactionInserts(ts []ledger.Transaction, add queueFunc) error {
	if len(ts) == 0 {
		return nil
	}
	n := len(ts)
	var (
		ids, accounts, types         = make([]string, n), make([]string, n), make([]string, n)
		seqs, amounts                = make([]int64, n), make([]int64, n)
		grantIDs, holdIDs, chargeIDs = make([]string, n), make([]string, n), make([]string, n)
		keys, requestHashes, reasons = make([]string, n), make([]string, n), make([]string, n)
		refs, entries                = make([][]byte, n), make([][]byte, n)
		created                      = make([]time.Time, n)
		prevHashes, hashes           = make([]string, n), make([]string, n)
		after                        = make([]*int64, n)
	)
	for i, t := range ts {
		var err error
		if refs[i], err = encodeRef(t.Ref); err != nil {
			return fmt.Errorf("postgres: write transaction %s ref: %w", t.ID, err)
		}
		if entries[i], err = encodeEntries(t.Entries); err != nil {
			return fmt.Errorf("postgres: write transaction %s entries: %w", t.ID, err)
		}
		ids[i], accounts[i], types[i] = t.ID, t.AccountID, string(t.Type)
		seqs[i], amounts[i] = t.Seq, t.Amount.Micros()
		grantIDs[i], holdIDs[i], chargeIDs[i] = t.GrantID, t.HoldID, t.ChargeID
		keys[i], requestHashes[i], reasons[i] = t.IdempotencyKey, t.RequestHash, t.Reason
		created[i], prevHashes[i], hashes[i] = t.CreatedAt, t.PrevHash, t.Hash
		after[i] = nullAmount(t.AvailableAfter)
	}
	add("transactions", n, `INSERT INTO transactions (`+transactionColumns+`)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[],
			$7::text[], $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::text[], $13::jsonb[],
			$14::timestamptz[], $15::text[], $16::text[], $17::bigint[])`,
		ids, accounts, seqs, types, amounts, grantIDs, holdIDs, chargeIDs,
		keys, requestHashes, refs, reasons, entries, created, prevHashes, hashes, after)
	return nil
}

func queueGrantUpdates(gs []ledger.Grant, add queueFunc) {
	gs = lastByID(gs, func(g *ledger.Grant) string { return g.ID })
	if len(gs) == 0 {
		return
	}
	ids := make([]string, len(gs))
	remaining := make([]int64, len(gs))
	closed := make([]bool, len(gs))
	for i, g := range gs {
		ids[i], remaining[i], closed[i] = g.ID, g.Remaining.Micros(), g.Closed
	}
	add("grants", len(gs), `UPDATE grants g SET remaining = v.remaining, closed = v.closed
		FROM unnest($1::text[], $2::bigint[], $3::boolean[]) AS v(id, remaining, closed)
		WHERE g.id = v.id`, ids, remaining, closed)
}

func queueHoldUpdates(hs []ledger.Hold, add queueFunc) {
	hs = lastByID(hs, func(h *ledger.Hold) string { return h.ID })
	if len(hs) == 0 {
		return
	}
	n := len(hs)
	ids, statuses, chargeIDs := make([]string, n), make([]string, n), make([]string, n)
	settled := make([]pgtype.Timestamptz, n)
	captured := make([]int64, n)
	for i, h := range hs {
		ids[i], statuses[i], chargeIDs[i] = h.ID, string(h.Status), h.ChargeID
		settled[i], captured[i] = nullTime(h.SettledAt), h.Captured.Micros()
	}
	add("holds", n, `UPDATE holds h SET status = v.status, settled_at = v.settled_at,
			captured = v.captured, charge_id = v.charge_id
		FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::text[])
			AS v(id, status, settled_at, captured, charge_id)
		WHERE h.id = v.id`, ids, statuses, settled, captured, chargeIDs)
}

func queueChargeUpdates(cs []ledger.Charge, add queueFunc) error {
	cs = lastByID(cs, func(c *ledger.Charge) string { return c.ID })
	if len(cs) == 0 {
		return nil
	}
	n := len(cs)
	ids := make([]string, n)
	refunded := make([]int64, n)
	allocs := make([][]byte, n)
	for i, c := range cs {
		var err error
		if allocs[i], err = encodeAllocations(c.Allocations); err != nil {
			return fmt.Errorf("postgres: write charge %s allocations: %w", c.ID, err)
		}
		ids[i], refunded[i] = c.ID, c.Refunded.Micros()
	}
	add("charges", n, `UPDATE charges c SET refunded = v.refunded, allocations = v.allocations
		FROM unnest($1::text[], $2::bigint[], $3::jsonb[]) AS v(id, refunded, allocations)
		WHERE c.id = v.id`, ids, refunded, allocs)
	return nil
}

func queueAccountUpdates(as []ledger.Account, add queueFunc) {
	as = lastByID(as, func(a *ledger.Account) string { return a.ID })
	if len(as) == 0 {
		return
	}
	ids := make([]string, len(as))
	seqs := make([]int64, len(as))
	hashes := make([]string, len(as))
	for i, a := range as {
		ids[i], seqs[i], hashes[i] = a.ID, a.Seq, a.Hash
	}
	add("accounts", len(as), `UPDATE accounts a SET seq = v.seq, hash = v.hash
		FROM unnest($1::text[], $2::bigint[], $3::text[]) AS v(id, seq, hash)
		WHERE a.id = v.id`, ids, seqs, hashes)
}

// lastByID keeps the last of rows sharing an id, in first-seen order: an
// UPDATE ... FROM with two source rows for one target applies only one of
// them, and not a chosen one.
func lastByID[T any](rows []T, id func(*T) string) []T {
	if len(rows) < 2 {
		return rows
	}
	at := make(map[string]int, len(rows))
	out := make([]T, 0, len(rows))
	for i := range rows {
		k := id(&rows[i])
		if j, ok := at[k]; ok {
			out[j] = rows[i]
			continue
		}
		at[k] = len(out)
		out = append(out, rows[i])
	}
	return out
}

// nonNil makes a nil slice an empty array rather than NULL.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
