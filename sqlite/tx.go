package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"reflect"
	"slices"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/scriphq/scrip/ledger"
)

// Tx is the write transaction of one batch, on the writer connection.
type Tx struct {
	s *Store
	// conn is the writer connection, held from Begin until the transaction
	// ends, and tx the transaction on it.
	conn *sql.Conn
	tx   *sql.Tx
	// stmts holds the transaction's handles of the store's prepared
	// statements; they are already prepared on the writer connection.
	stmts map[*sql.Stmt]*sql.Stmt
	// failed is the error of a Write that failed. SQLite may have ended
	// the transaction by then (the inserts are INSERT OR ROLLBACK), and a
	// write after it would run and commit on its own; or the transaction
	// may hold part of the batch. No Write or Commit runs after it.
	failed error
	// written is the batch's Write, for the writer's cache at commit;
	// rewritten marks a second Write, which the cache does not follow.
	written   *ledger.Writes
	rewritten bool
}

// cached reports whether the transaction's reads may come from the
// writer's cache: not once it has written, when the file holds the
// transaction's own writes.
func (t *Tx) cached() bool {
	return t.written == nil && t.failed == nil
}

var _ ledger.Tx = (*Tx)(nil)

func (t *Tx) stmt(ctx context.Context, st *sql.Stmt) *sql.Stmt {
	if ts, ok := t.stmts[st]; ok {
		return ts
	}
	if t.stmts == nil {
		t.stmts = make(map[*sql.Stmt]*sql.Stmt)
	}
	ts := t.tx.StmtContext(ctx, st)
	t.stmts[st] = ts
	return ts
}

// LockAccounts returns the accounts of ids that exist, in id order. The
// writer already holds SQLite's database-wide write lock (BEGIN IMMEDIATE),
// so nothing else can change them until the batch ends. Accounts the
// writer has read before come from its cache (heads).
func (t *Tx) LockAccounts(ctx context.Context, ids []string) ([]ledger.Account, error) {
	if !t.cached() {
		return t.lockAccounts(ctx, ids)
	}
	as, missing := t.s.heads.lookAccounts(ids)
	if len(missing) > 0 {
		read, err := t.lockAccounts(ctx, missing)
		if err != nil {
			return nil, err
		}
		t.s.heads.putAccounts(read)
		if len(as) == 0 {
			as = read
		} else {
			as = append(as, read...)
			slices.SortFunc(as, func(a, b ledger.Account) int { return strings.Compare(a.ID, b.ID) })
		}
	}
	return as, checkCached(t, ctx, "accounts", as, func() ([]ledger.Account, error) { return t.lockAccounts(ctx, ids) })
}

// lockAccounts reads the accounts of ids through SQLite.
func (t *Tx) lockAccounts(ctx context.Context, ids []string) ([]ledger.Account, error) {
	rows, err := t.stmt(ctx, t.s.w.lockAccounts).QueryContext(ctx, encodeIDs(ids))
	if err != nil {
		return nil, fmt.Errorf("sqlite: lock accounts: %w", err)
	}
	as, err := collect(rows, scanAccount)
	if err != nil {
		return nil, fmt.Errorf("sqlite: lock accounts: %w", err)
	}
	return as, nil
}

// LoadGrants returns the live grants of the accounts and the grants named by
// id, each once, by account then creation order. Without grants named, the
// live grants of accounts the writer has read before come from its cache.
func (t *Tx) LoadGrants(ctx context.Context, accountIDs, grantIDs []string) ([]ledger.Grant, error) {
	if len(grantIDs) > 0 || !t.cached() {
		return t.loadGrants(ctx, accountIDs, grantIDs)
	}
	gs, missing := t.s.heads.lookGrants(accountIDs)
	if len(missing) > 0 {
		read, err := t.loadGrants(ctx, missing, nil)
		if err != nil {
			return nil, err
		}
		t.s.heads.putGrants(missing, read)
		if len(gs) == 0 {
			gs = read
		} else {
			gs = append(gs, read...)
			sortGrants(gs)
		}
	}
	return gs, checkCached(t, ctx, "live grants", gs, func() ([]ledger.Grant, error) { return t.loadGrants(ctx, accountIDs, nil) })
}

// checkCached compares, when the store checks its cache (tests), what a
// read returned with what SQLite reads.
func checkCached[T any](t *Tx, ctx context.Context, what string, got []T, read func() ([]T, error)) error {
	if !t.s.checkHeads {
		return nil
	}
	want, err := read()
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("sqlite: the writer's cache of %s differs from the file:\n cache %+v\n file  %+v", what, got, want)
	}
	return nil
}

// loadGrants reads through SQLite what LoadGrants returns.
func (t *Tx) loadGrants(ctx context.Context, accountIDs, grantIDs []string) ([]ledger.Grant, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if len(grantIDs) == 0 {
		rows, err = t.stmt(ctx, t.s.w.loadLiveGrants).QueryContext(ctx, encodeIDs(accountIDs))
	} else {
		rows, err = t.stmt(ctx, t.s.w.loadGrants).QueryContext(ctx, encodeIDs(accountIDs), encodeIDs(grantIDs))
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: load grants: %w", err)
	}
	gs, err := collect(rows, scanGrant)
	if err != nil {
		return nil, fmt.Errorf("sqlite: load grants: %w", err)
	}
	return gs, nil
}

// LoadHolds returns the holds of ids that exist.
func (t *Tx) LoadHolds(ctx context.Context, ids []string) ([]ledger.Hold, error) {
	rows, err := t.stmt(ctx, t.s.w.loadHolds).QueryContext(ctx, encodeIDs(ids))
	if err != nil {
		return nil, fmt.Errorf("sqlite: load holds: %w", err)
	}
	hs, err := collect(rows, scanHold)
	if err != nil {
		return nil, fmt.Errorf("sqlite: load holds: %w", err)
	}
	return hs, nil
}

// LoadCharges returns the charges of ids that exist.
func (t *Tx) LoadCharges(ctx context.Context, ids []string) ([]ledger.Charge, error) {
	rows, err := t.stmt(ctx, t.s.w.loadCharges).QueryContext(ctx, encodeIDs(ids))
	if err != nil {
		return nil, fmt.Errorf("sqlite: load charges: %w", err)
	}
	cs, err := collect(rows, scanCharge)
	if err != nil {
		return nil, fmt.Errorf("sqlite: load charges: %w", err)
	}
	return cs, nil
}

// LoadKeyed returns the transactions recorded under the keys.
func (t *Tx) LoadKeyed(ctx context.Context, keys []ledger.TxKey) ([]ledger.Transaction, error) {
	pairs := make([][2]string, 0, len(keys))
	for _, k := range keys {
		if k.Key != "" {
			pairs = append(pairs, [2]string{k.AccountID, k.Key})
		}
	}
	if len(pairs) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(pairs)
	if err != nil {
		return nil, fmt.Errorf("sqlite: load keyed: %w", err)
	}
	rows, err := t.stmt(ctx, t.s.w.loadKeyed).QueryContext(ctx, string(b))
	if err != nil {
		return nil, fmt.Errorf("sqlite: load keyed: %w", err)
	}
	ts, err := collect(rows, scanTransaction)
	if err != nil {
		return nil, fmt.Errorf("sqlite: load keyed: %w", err)
	}
	return ts, nil
}

// Write persists a batch: inserts in multi-row statements, inserts before
// updates (a row may be created and changed in one batch), the journal last.
func (t *Tx) Write(ctx context.Context, w *ledger.Writes) error {
	if t.failed != nil {
		return fmt.Errorf("sqlite: write after a failed write: %w", t.failed)
	}
	if err := ctx.Err(); err != nil {
		t.failed = err
		return fmt.Errorf("sqlite: write: %w", err)
	}
	// The writes run on the connection's SQLite handle (direct), which
	// nothing else uses while the transaction holds the connection; they
	// are short, and unlike the driver's calls they do not watch ctx.
	err := t.onHandle(func(d *direct) error { return t.write(d, w) })
	if err != nil {
		t.failed = err
		return fmt.Errorf("sqlite: write: %w", err)
	}
	t.rewritten = t.written != nil
	t.written = w
	return nil
}

// onHandle runs fn with the store's direct statements on the handle of the
// transaction's connection.
func (t *Tx) onHandle(fn func(*direct) error) error {
	return t.conn.Raw(func(dc any) error {
		db, ok := sqliteHandle(dc)
		if !ok {
			return fmt.Errorf("the driver's connection (%T) keeps no SQLite handle where the store looks for it", dc)
		}
		d := t.s.w.direct
		d.use(db)
		return fn(d)
	})
}

func (t *Tx) write(d *direct, w *ledger.Writes) error {
	s := &t.s.w
	p := &d.params
	if err := insert(d, &s.accounts, w.NewAccounts, accountParams); err != nil {
		if isAccountTaken(err) {
			return fmt.Errorf("insert accounts: %w: %w", ledger.ErrAccountExists, err)
		}
		return fmt.Errorf("insert accounts: %w", err)
	}
	for i := range w.Accounts {
		a := &w.Accounts[i]
		p.int(a.Seq)
		p.text(a.Hash)
		p.text(a.ID)
		if err := update(d, s.updateAccount, "account", a.ID); err != nil {
			return err
		}
	}
	err := insert(d, &s.grants, w.NewGrants, grantParams)
	if err != nil {
		return fmt.Errorf("insert grants: %w", err)
	}
	for i := range w.Grants {
		g := &w.Grants[i]
		st := s.spendGrant // a grant is never reopened: open here, open in the file
		p.int(g.Remaining.Micros())
		if g.Closed {
			st = s.updateGrant
			p.int(1)
		}
		p.text(g.ID)
		if err := update(d, st, "grant", g.ID); err != nil {
			return err
		}
	}
	if err := insert(d, &s.holds, w.NewHolds, holdParams); err != nil {
		return fmt.Errorf("insert holds: %w", err)
	}
	for i := range w.Holds {
		h := &w.Holds[i]
		p.text(string(h.Status))
		p.nullTime(h.SettledAt)
		p.int(h.Captured.Micros())
		p.text(h.ChargeID)
		p.text(h.ID)
		if err := update(d, s.updateHold, "hold", h.ID); err != nil {
			return err
		}
	}
	if err := insert(d, &s.charges, w.NewCharges, chargeParams); err != nil {
		return fmt.Errorf("insert charges: %w", err)
	}
	for i := range w.Charges {
		c := &w.Charges[i]
		allocs, err := encodeAllocations(c.Allocations)
		if err != nil {
			return fmt.Errorf("charge %q: %w", c.ID, err)
		}
		p.int(c.Refunded.Micros())
		p.value(allocs)
		p.text(c.ID)
		if err := update(d, s.updateCharge, "charge", c.ID); err != nil {
			return err
		}
	}
	if err := insert(d, &s.transactions, w.Transactions, transactionParams); err != nil {
		if isKeyTaken(err) {
			return fmt.Errorf("insert transactions: %w: %w", ledger.ErrKeyExists, err)
		}
		return fmt.Errorf("insert transactions: %w", err)
	}
	return nil
}

// isKeyTaken reports whether err is the journal's unique index on account
// and idempotency key refusing a row.
func isKeyTaken(err error) bool {
	return isSQLiteError(err, sqlite3.SQLITE_CONSTRAINT_UNIQUE, "transactions.idempotency_key")
}

// isAccountTaken reports whether err is the accounts table's primary key
// refusing a row.
func isAccountTaken(err error) bool {
	return isSQLiteError(err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, "accounts.id")
}

// isNoTransaction reports whether err is SQLite refusing a ROLLBACK because
// no transaction is open: it has ended it itself.
func isNoTransaction(err error) bool {
	return isSQLiteError(err, sqlite3.SQLITE_ERROR, "no transaction is active")
}

// isSQLiteError reports whether err is SQLite's error code with text in its
// message, from the driver or from a statement the store ran itself.
func isSQLiteError(err error, code int, text string) bool {
	if e, ok := errors.AsType[*sqlite.Error](err); ok {
		return e.Code() == code && strings.Contains(e.Error(), text)
	}
	if e, ok := errors.AsType[*directError](err); ok {
		return e.code == code && strings.Contains(e.msg, text)
	}
	return false
}

// update runs an UPDATE of one row, with the values in d.params, which must
// exist: the batch loaded it.
func update(d *direct, st *directStmt, what, id string) error {
	n, err := d.exec(st)
	if err != nil {
		return fmt.Errorf("update %s %q: %w", what, id, err)
	}
	if n != 1 {
		return fmt.Errorf("update %s %q: %w", what, id, ledger.ErrNotFound)
	}
	return nil
}

// insert writes rows with the fewest statements: runs of 64, 32, ... 1 rows.
func insert[T any](d *direct, ins *inserter, rows []T, params func(*params, *T) error) error {
	for len(rows) > 0 {
		size := ins.size(len(rows))
		for i := range size {
			if err := params(&d.params, &rows[i]); err != nil {
				d.params.reset()
				return err
			}
		}
		if _, err := d.exec(ins.stmts[bits.TrailingZeros(uint(size))]); err != nil {
			return err
		}
		rows = rows[size:]
	}
	return nil
}

// size returns the largest statement size, a power of two, for n rows.
func (ins *inserter) size(n int) int {
	return min(1<<(bits.Len(uint(n))-1), insertRowsMax)
}

// Commit commits the batch; after a failed Write it fails and commits nothing.
func (t *Tx) Commit(ctx context.Context) error {
	if t.failed != nil {
		return fmt.Errorf("sqlite: commit after a failed write: %w", t.failed)
	}
	w := t.written
	if t.rewritten {
		w = nil
	}
	err := t.s.heads.commit(t.tx.Commit, w)
	t.release()
	if err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// Rollback ends the transaction without writing; after Commit it does
// nothing, so callers may defer it. After a failed Write, SQLite may have
// rolled the transaction back already, and its error for rolling back none
// is not reported.
func (t *Tx) Rollback(ctx context.Context) error {
	err := t.tx.Rollback()
	t.release()
	if err != nil && !errors.Is(err, sql.ErrTxDone) && !(t.failed != nil && isNoTransaction(err)) {
		return fmt.Errorf("sqlite: rollback: %w", err)
	}
	return nil
}

// release gives the writer connection back to its pool once the
// transaction has ended.
func (t *Tx) release() {
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
}
