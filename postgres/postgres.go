// Package postgres is the ledger.Store on PostgreSQL, for production: many
// stateless scrip processes share one database.
//
// The write path is built for batches: a ledger.Tx locks the batch's
// accounts in one query, loads with one query per kind of row, and Write
// sends every insert and update of the batch as set-based statements in one
// pipelined round trip, with the journal of a large batch in a COPY after it.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/scriphq/scrip/internal/rawconn"
	"github.com/scriphq/scrip/ledger"
)

//go:embed migrations/*.sql
var migrations embed.FS

// poolConnsDefault is the pool size when the URL sets no pool_max_conns:
// the committers plus concurrent readers.
const poolConnsDefault = 16

// CommittersDefault is the batches an engine keeps in flight on PostgreSQL
// unless told otherwise: while one waits on the network, the server and
// the log's flush, the other is built and sent, on its own accounts (about
// twice the charges of one committer; docs/performance.md).
const CommittersDefault = 2

// allocatorWarmUpSQL runs once on each new connection. Its 4 MiB string is
// allocated by the server process outside its heap and freed at the end of
// the query. With glibc's malloc (Debian's and Ubuntu's packages, the
// official Debian-based images; not Alpine's musl) that raises the size
// from which the process maps memory of its own to 4 MiB, and the free
// space it keeps at the top of its heap to 8 MiB. Without it a backend
// gives back after each large batch the memory the batch's arrays and rows
// took, and takes it again page by page in the next one, a page fault
// each. With the batches on generic plans (Tx.send) that doubled the
// faults at 1,024 clients and cost 11–32 % of the charges per second
// (docs/performance.md, "Per step", item 14). A process keeps at most
// 8 MiB free at the top of its heap; another allocator is not affected.
const allocatorWarmUpSQL = `SELECT length(repeat('x', 4194304))`

// Store is the ledger.Store on PostgreSQL. Other files of this package reach
// the database through pool.
type Store struct {
	pool *pgxpool.Pool
	// copyRowsMin is the number of journal rows from which a batch writes
	// its journal with COPY (see Tx.copyTransactions).
	copyRowsMin int
	// noSummarize is set once the role may not summarize the journal's
	// BRIN index (outbox.JournalAfter): it is not the index's owner.
	noSummarize atomic.Bool
	// journalSummarized is the first block of the journal whose BRIN page
	// range the next read summarizes (summarizeJournalSQL).
	journalSummarized atomic.Int64
}

var (
	_ ledger.Store          = (*Store)(nil)
	_ ledger.BulkReader     = (*Store)(nil)
	_ ledger.AccountsReader = snapshot{}
)

// Options adjusts Open to the program that opens the store.
type Options struct {
	// WarmPool makes the pool open all its connections at start, in the
	// background, and replace the ones that close the same way, unless the
	// URL sets pool_min_conns; their lifetimes (pool_max_conn_lifetime,
	// an hour by default) then end spread over a fifth of it more, unless
	// the URL sets pool_max_conn_lifetime_jitter, so that they do not all
	// close at once. Otherwise a connection is opened when a
	// query finds none idle, and that query waits while PostgreSQL starts
	// a process for it and the connection warms up: about 0.1 s on the
	// idle machine of docs/performance.md's latest figures, and up to a
	// second for the requests of a server that grew its pool under load
	// there ("Per step", item 19). For servers; a command that runs a few
	// queries leaves it off.
	WarmPool bool
}

// Open connects to the database at url and applies pending migrations.
//
// The URL takes the pgx parameters, among them pool_max_conns (default 16),
// pool_min_conns (default 0, or pool_max_conns with Options.WarmPool) and
// search_path: tables and goose's version table land in the first schema
// of the search path.
func Open(ctx context.Context, url string) (*Store, error) {
	return OpenWith(ctx, url, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, url string, opt Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	// The pool's parameters the URL sets, which pgxpool's config no longer
	// tells from its defaults: pgconn keeps every setting it does not know
	// as a run-time parameter, whatever the URL's form or a service file.
	given, err := pgconn.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	sets := func(name string) bool { _, ok := given.RuntimeParams[name]; return ok }
	if !sets("pool_max_conns") {
		cfg.MaxConns = poolConnsDefault
	}
	if opt.WarmPool && !sets("pool_min_conns") {
		cfg.MinConns = cfg.MaxConns
	}
	if opt.WarmPool && !sets("pool_max_conn_lifetime_jitter") {
		// Opened together, the connections would reach their lifetime
		// together and leave the pool empty until it refills.
		cfg.MaxConnLifetimeJitter = cfg.MaxConnLifetime / 5
	}
	// The batches touch a few hundred rows by key in tables of thousands.
	// At the default random_page_cost of 4 the planner prices that as a
	// sequential scan and a hash of the whole table, two to three times the
	// CPU of index probes on pages that are in memory anyway. 1.1 is the
	// usual figure for SSDs and cached data; the URL may set another.
	//
	// The batch statements are prepared once per connection and run on
	// their generic plans (Tx.send); the pool's other queries keep
	// PostgreSQL's default, a custom plan where the values matter.
	if _, ok := cfg.ConnConfig.RuntimeParams["random_page_cost"]; !ok {
		cfg.ConnConfig.RuntimeParams["random_page_cost"] = "1.1"
	}
	// Reads and writes of the server's socket never block; made as raw
	// system calls they spare the scheduler's hand-offs (internal/rawconn).
	cfg.ConnConfig.DialFunc = rawconn.Dial(cfg.ConnConfig.DialFunc)
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if _, err := c.Exec(ctx, allocatorWarmUpSQL); err != nil {
			return fmt.Errorf("postgres: warm up the connection: %w", err)
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool, copyRowsMin: journalCopyRowsMin}
	if err := s.Migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Migrate applies the pending migrations. It is idempotent, and safe when
// several processes start at once: they take turns under an advisory lock
// scoped to the current schema.
func (s *Store) Migrate(ctx context.Context) error {
	var current *string
	if err := s.pool.QueryRow(ctx, "SELECT current_schema()").Scan(&current); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if current == nil {
		return errors.New("postgres: migrate: no schema of the search_path exists")
	}
	schema := *current
	h := fnv.New64a()
	h.Write([]byte("scrip migrate " + schema))
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(h.Sum64())),
		lock.WithLockTimeout(1, 300), // every second, up to five minutes
	)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("postgres: migrate schema %s: %w", schema, err)
	}
	return nil
}

var _ ledger.CommitterCounter = (*Store)(nil)

// Committers returns the committers an engine runs on this store by
// default.
func (s *Store) Committers() int { return CommittersDefault }

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}
