// Package sqlite is the embedded default ledger.Store, on SQLite through the
// pure-Go modernc.org/sqlite driver.
//
// A Store keeps one writer connection, on which every batch runs as BEGIN
// IMMEDIATE, and a separate pool of read-only connections. The database is in
// WAL mode, so reads see the last committed state and never wait for the
// writer; synchronous=FULL makes every acknowledged commit durable.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver, for the checkpointer

	"github.com/scriphq/scrip/ledger"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Memory is the path of a private in-memory database. It runs on a single
// connection, so reads wait while a batch is being written.
const Memory = ":memory:"

const (
	busyTimeoutMillis = 5000
	// readConnsMax bounds the read pool.
	readConnsMax = 16
	// insertRowsMax is the most rows one INSERT statement carries; batches
	// are split into statements of 64, 32, ... 1 rows, each prepared once.
	insertRowsMax = 64
	insertSizes   = 7 // 1, 2, 4, ... insertRowsMax
	// journalPageRows is how many transactions Journal reads per query, so
	// no read transaction stays open for a whole account's history.
	journalPageRows = 512
)

// Store is a ledger.Store on one SQLite database file.
type Store struct {
	path string
	// writer has exactly one connection; reader is the read-only pool and
	// bulk the read-only pool of the reads over much of the ledger,
	// ReadAccounts and Journal (each the same handle as writer for an
	// in-memory database).
	writer *sql.DB
	reader *sql.DB
	bulk   *sql.DB
	w      writeStmts
	r      readStmts
	// heads is the writer's cache of the accounts and live grants that
	// batches read. With checkHeads (tests) every read it serves is read
	// through SQLite as well, and a difference fails the batch.
	heads      *heads
	checkHeads bool

	walFrames       int
	checkpointer    *sql.DB
	stopCheckpoints chan struct{}
	checkpointsDone chan struct{}
}

// Tuning of the file store.
const (
	writerCacheKiB  = 64 << 10
	mmapBytes       = 256 << 20
	checkpointEvery = 200 * time.Millisecond
	// bulkIdle is how long a connection of the bulk pool stays open
	// unused; see open.
	bulkIdle = time.Second
	// walFramesMax bounds the write-ahead log, in pages (256 MiB at 4 KiB
	// pages); see open.
	walFramesMax = 65536
)

var _ ledger.Store = (*Store)(nil)

// Open opens or creates the database at path, brings its schema up to date
// and returns the store. path may be Memory.
func Open(path string) (*Store, error) {
	return open(path, walFramesMax)
}

// open is Open with the bound of the write-ahead log in pages.
func open(path string, walFrames int) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: open: empty path")
	}
	if path != Memory && strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("sqlite: open %q: path may not contain '?'", path)
	}
	s := &Store{path: path, walFrames: walFrames, heads: newHeads()}
	if err := s.open(); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) open() error {
	// Before anything that initializes SQLite: registerWALVFS's lookup does.
	installPageCache()
	ctx := context.Background()
	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMillis))
	common.Add("_pragma", "foreign_keys(1)")
	// Statement journals of multi-row writes and sorts stay in memory
	// instead of temporary files.
	common.Add("_pragma", "temp_store(MEMORY)")

	wq := url.Values{}
	for k, v := range common {
		wq[k] = append(wq[k], v...)
	}
	wq.Add("_pragma", "journal_mode(WAL)")
	wq.Add("_pragma", "synchronous(FULL)")
	wq.Set("_txlock", "immediate")
	if s.path != Memory {
		// A cache that holds the hot indexes: without it every batch pays
		// page reads for random index pages.
		wq.Add("_pragma", fmt.Sprintf("cache_size(-%d)", writerCacheKiB))
		wq.Add("_pragma", fmt.Sprintf("mmap_size(%d)", mmapBytes))
		// Checkpoints run on their own connection (see checkpointLoop),
		// not inside a batch's commit. But while batches keep coming that
		// connection never catches up with the last frame, and SQLite
		// starts the log over only after a checkpoint that did: the log
		// grew by the whole write rate (1 GB in 9 s of charges), and every
		// commit extended the file, each new page costing the kernel an
		// allocation. So once the log passes walFrames pages the writer
		// checkpoints after its commit what the background has not yet
		// copied, and the next batch writes the log from its start again,
		// over blocks already allocated.
		wq.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", s.walFrames))
		// Each commit's log frames in one write (walvfs.go).
		if err := registerWALVFS(); err != nil {
			return err
		}
		wq.Set("vfs", walVFSName)
	}

	wc, err := openConnector(s.path+"?"+wq.Encode(), s.heads)
	if err != nil {
		return err
	}
	s.writer = sql.OpenDB(wc)
	// One connection, kept for the life of the store: SQLite has one writer,
	// statements are prepared on it once, and an in-memory database lives
	// only as long as its connection.
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)
	s.writer.SetConnMaxLifetime(0)
	s.writer.SetConnMaxIdleTime(0)
	if err := s.writer.PingContext(ctx); err != nil {
		return err
	}

	if s.path == Memory {
		s.reader, s.bulk = s.writer, s.writer
	} else {
		rq := url.Values{}
		for k, v := range common {
			rq[k] = append(rq[k], v...)
		}
		rq.Add("_pragma", "query_only(1)")
		bq := url.Values{}
		for k, v := range rq {
			bq[k] = append(bq[k], v...)
		}
		// No memory map for the readers. While the writer commits, nearly
		// every read transaction finds the database changed since the
		// connection's last, and SQLite then drops its page cache and
		// unmaps the whole file, to map it again at the next page read:
		// every page a read touches is a fresh page fault, dearer on a
		// virtual machine than a read call per page
		// (docs/performance.md, "Per step", item 21).
		rq.Add("_pragma", "mmap_size(0)")
		rc, err := openConnector(s.path+"?"+rq.Encode(), nil)
		if err != nil {
			return err
		}
		s.reader = sql.OpenDB(rc)
		n := min(max(4, runtime.GOMAXPROCS(0)), readConnsMax)
		s.reader.SetMaxOpenConns(n)
		s.reader.SetMaxIdleConns(n)
		// Verification (ReadAccounts) and export (Journal) read much of
		// the file, in transactions that follow each other on a ledger at
		// rest: a pool of their own keeps the map between them and reads
		// the pages without a copy. Its connections close a second or two
		// after the last of those transactions, and with them their maps:
		// while they stayed open a minute, commits in the seconds after a
		// verification waited longer (docs/performance.md, "Per step",
		// item 31).
		bq.Add("_pragma", fmt.Sprintf("mmap_size(%d)", mmapBytes))
		bc, err := openConnector(s.path+"?"+bq.Encode(), nil)
		if err != nil {
			return err
		}
		s.bulk = sql.OpenDB(bc)
		s.bulk.SetMaxOpenConns(n)
		s.bulk.SetMaxIdleConns(n)
		s.bulk.SetConnMaxIdleTime(bulkIdle)
	}

	if err := s.Migrate(ctx); err != nil {
		return err
	}
	if err := s.w.prepare(ctx, s.writer); err != nil {
		return err
	}
	if err := s.r.prepare(ctx, s.reader, s.bulk); err != nil {
		return err
	}
	if s.path != Memory {
		ck, err := sql.Open("sqlite", s.path+"?"+common.Encode())
		if err != nil {
			return err
		}
		ck.SetMaxOpenConns(1)
		s.checkpointer = ck
		s.stopCheckpoints = make(chan struct{})
		s.checkpointsDone = make(chan struct{})
		go s.checkpointLoop()
	}
	return nil
}

// checkpointLoop copies the write-ahead log back into the database file in
// the background, so that commits only append to the log. PASSIVE never
// waits for readers or the writer. The log starts over once a checkpoint has
// caught up: here when writes pause, otherwise on the writer when the log
// reaches walFrames pages.
func (s *Store) checkpointLoop() {
	defer close(s.checkpointsDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopCheckpoints:
			return
		case <-t.C:
			if _, err := s.checkpointer.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
				// Busy or locked: the next tick tries again.
				continue
			}
		}
	}
}

// Migrate applies the embedded migrations not yet applied. It is idempotent.
func (s *Store) Migrate(ctx context.Context) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.writer, fsys)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// A migration may change accounts or grants through the writer, which
	// the data version does not show it.
	if s.heads != nil {
		s.heads.drop()
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Close closes the store's statements and connections.
func (s *Store) Close() error {
	var errs []error
	if s.checkpointer != nil {
		close(s.stopCheckpoints)
		<-s.checkpointsDone
		// Leave a compact database file behind.
		_, err := s.checkpointer.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
		errs = append(errs, err, s.checkpointer.Close())
		s.checkpointer = nil
	}
	errs = append(errs, s.w.close(), s.r.close())
	s.w.direct.close()
	for _, db := range []*sql.DB{s.reader, s.bulk} {
		if db != nil && db != s.writer {
			errs = append(errs, db.Close())
		}
	}
	if s.writer != nil {
		errs = append(errs, s.writer.Close())
	}
	return errors.Join(errs...)
}

// stmtSet prepares and closes a group of statements.
type stmtSet struct {
	all []*sql.Stmt
	err error
}

func (ss *stmtSet) prep(ctx context.Context, db *sql.DB, query string) *sql.Stmt {
	if ss.err != nil {
		return nil
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		ss.err = fmt.Errorf("prepare %q: %w", query, err)
		return nil
	}
	ss.all = append(ss.all, st)
	return st
}

func (ss *stmtSet) close() error {
	var errs []error
	for _, st := range ss.all {
		errs = append(errs, st.Close())
	}
	ss.all = nil
	return errors.Join(errs...)
}

// inserter holds one INSERT per power-of-two row count up to insertRowsMax.
//
// Each is INSERT OR ROLLBACK: a row the table refuses ends the whole
// transaction, not the statement alone. A batch that fails is rolled back
// and run again anyway (ledger.ErrKeyExists), and a statement that can be
// undone alone costs SQLite a copy of every page it changes, in a statement
// journal, before it changes it: 8 % of the committer's CPU at 1,024
// clients. (A foreign key still needs it: grants keep theirs, and their
// inserts still undo alone a row the key refuses. Holds, charges and the
// journal, which every operation writes, have none.)
type inserter struct {
	stmts [insertSizes]*directStmt
}

func newInserter(d *direct, table, cols string) inserter {
	n := strings.Count(cols, ",") + 1
	var ins inserter
	for i := range insertSizes {
		ins.stmts[i] = d.stmt("INSERT OR ROLLBACK INTO " + table + " (" + cols + ") VALUES " + valueRows(1<<i, n))
	}
	return ins
}

// valueRows returns the VALUES list of rows rows of cols placeholders.
func valueRows(rows, cols int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	return strings.TrimSuffix(strings.Repeat(row+",", rows), ",")
}

// Statements of the write path. The reads are prepared on the writer
// connection when the store opens: a statement cannot be prepared there
// while a batch holds it. The inserts and updates run on the writer's
// handle directly (direct), prepared by the first batch that runs them.
type writeStmts struct {
	stmtSet
	lockAccounts                                         *sql.Stmt
	loadGrants, loadHolds, loadCharges, loadKeyed        *sql.Stmt
	loadLiveGrants, dataVersion                          *sql.Stmt
	direct                                               *direct
	updateAccount, updateGrant, updateHold, updateCharge *directStmt
	spendGrant                                           *directStmt
	accounts, grants, holds, charges, transactions       inserter
}

func (w *writeStmts) prepare(ctx context.Context, db *sql.DB) error {
	w.lockAccounts = w.prep(ctx, db, `SELECT `+accountCols+` FROM accounts
		WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`)
	// Most batches name no grant by id; without the UNION, SQLite reads
	// grants_live in order and neither sorts nor removes duplicates.
	w.loadLiveGrants = w.prep(ctx, db, `SELECT `+grantCols+` FROM grants
		WHERE account_id IN (SELECT value FROM json_each(?)) AND closed = 0 AND remaining > 0
		ORDER BY account_id, created_at, id`)
	w.loadGrants = w.prep(ctx, db, `SELECT `+grantCols+` FROM grants
		WHERE account_id IN (SELECT value FROM json_each(?1)) AND closed = 0 AND remaining > 0
		UNION
		SELECT `+grantCols+` FROM grants WHERE id IN (SELECT value FROM json_each(?2))
		ORDER BY account_id, created_at, id`)
	w.loadHolds = w.prep(ctx, db, `SELECT `+holdCols+` FROM holds
		WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`)
	w.loadCharges = w.prep(ctx, db, `SELECT `+chargeCols+` FROM charges
		WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`)
	w.loadKeyed = w.prep(ctx, db, `SELECT `+prefixed("t.", txCols)+`
		FROM json_each(?) AS k
		JOIN transactions AS t
		  ON t.account_id = json_extract(k.value, '$[0]')
		 AND t.idempotency_key = json_extract(k.value, '$[1]')
		WHERE t.idempotency_key <> ''
		ORDER BY t.account_id, t.seq`)
	w.dataVersion = w.prep(ctx, db, `PRAGMA data_version`)
	d := newDirect()
	w.direct = d
	w.updateAccount = d.stmt(`UPDATE accounts SET seq = ?, hash = ? WHERE id = ?`)
	w.updateGrant = d.stmt(`UPDATE grants SET remaining = ?, closed = ? WHERE id = ?`)
	// closed is in the WHERE clause of grants_live and grants_due: SQLite
	// rewrites the entries of both whenever an UPDATE names it, even with
	// the same value. A grant that stays open changes remaining alone.
	w.spendGrant = d.stmt(`UPDATE grants SET remaining = ? WHERE id = ?`)
	w.updateHold = d.stmt(`UPDATE holds SET status = ?, settled_at = ?, captured = ?, charge_id = ?
		WHERE id = ?`)
	w.updateCharge = d.stmt(`UPDATE charges SET refunded = ?, allocations = ? WHERE id = ?`)
	w.accounts = newInserter(d, "accounts", accountCols)
	w.grants = newInserter(d, "grants", grantCols)
	w.holds = newInserter(d, "holds", holdCols)
	w.charges = newInserter(d, "charges", chargeCols)
	w.transactions = newInserter(d, "transactions", txCols)
	return w.err
}

// Statements of the read path, on the read pool but for journal, on the
// bulk pool: Journal reads whole journals (scrip export).
type readStmts struct {
	stmtSet
	account, grant, grantsLive, grantsAll, openHolds, hold, charge *sql.Stmt
	transactions, dueGrants, dueHolds, accountIDs, journal         *sql.Stmt
}

func (r *readStmts) prepare(ctx context.Context, db, bulk *sql.DB) error {
	r.account = r.prep(ctx, db, `SELECT `+accountCols+` FROM accounts WHERE id = ?`)
	r.grant = r.prep(ctx, db, `SELECT `+grantCols+` FROM grants WHERE id = ?`)
	r.grantsLive = r.prep(ctx, db, `SELECT `+grantCols+` FROM grants
		WHERE account_id = ? AND closed = 0 AND remaining > 0 ORDER BY created_at, id`)
	r.grantsAll = r.prep(ctx, db, `SELECT `+grantCols+` FROM grants
		WHERE account_id = ? ORDER BY created_at, id`)
	r.openHolds = r.prep(ctx, db, `SELECT `+holdCols+` FROM holds
		WHERE account_id = ? AND status = 'open' ORDER BY created_at, id`)
	r.hold = r.prep(ctx, db, `SELECT `+holdCols+` FROM holds WHERE id = ?`)
	r.charge = r.prep(ctx, db, `SELECT `+chargeCols+` FROM charges WHERE id = ?`)
	// The seq bound is always present so the (account_id, seq) index gives
	// a range scan for any cursor; absent filters get neutral values.
	r.transactions = r.prep(ctx, db, `SELECT `+txCols+` FROM transactions
		WHERE account_id = ?1 AND seq < ?2 AND created_at >= ?3 AND created_at < ?4
		  AND (?5 IS NULL OR type IN (SELECT value FROM json_each(?5)))
		ORDER BY seq DESC LIMIT ?6`)
	r.dueGrants = r.prep(ctx, db, `SELECT `+grantCols+` FROM grants
		WHERE closed = 0 AND expires_at IS NOT NULL AND expires_at <= ?
		ORDER BY expires_at, id LIMIT ?`)
	r.dueHolds = r.prep(ctx, db, `SELECT `+holdCols+` FROM holds
		WHERE status = 'open' AND expires_at <= ?
		ORDER BY expires_at, id LIMIT ?`)
	r.accountIDs = r.prep(ctx, db, `SELECT id FROM accounts WHERE id > ? ORDER BY id LIMIT ?`)
	r.journal = r.prep(ctx, bulk, `SELECT `+txCols+` FROM transactions
		WHERE account_id = ? AND seq > ? ORDER BY seq LIMIT ?`)
	return r.err
}

func prefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}
