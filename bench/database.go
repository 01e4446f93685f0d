package bench

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// schemaPrefix starts the name of each PostgreSQL schema a run creates.
const schemaPrefix = "scrip_bench_"

// database is where a run writes: a SQLite file or a PostgreSQL schema
// made for the run, dropped at the end unless kept.
type database struct {
	kind string // "sqlite", "postgres", or "http" without a database
	// url is what the stores open: the SQLite path, or the PostgreSQL URL
	// with search_path set to the run's schema.
	url     string
	baseURL string
	schema  string // created by the run; "" when reusing
	created bool   // the SQLite file did not exist before the run
	// postmaster is the process id of the PostgreSQL server when it runs
	// on this machine (localServer), 0 otherwise.
	postmaster int
	keep       bool
}

func isPostgres(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

func openDatabase(ctx context.Context, cfg Config) (*database, error) {
	if cfg.DatabaseURL == "" {
		return &database{kind: "http"}, nil
	}
	db := &database{url: cfg.DatabaseURL, baseURL: cfg.DatabaseURL, keep: cfg.Keep}
	if !isPostgres(cfg.DatabaseURL) {
		db.kind = "sqlite"
		fi, err := os.Stat(cfg.DatabaseURL)
		switch {
		case os.IsNotExist(err):
			db.created = true
		case err != nil:
			return nil, err
		// A run writes accounts of its own: into a file that holds
		// something, only when asked to. Over HTTP the file is the
		// server's, which the baseline shares by design.
		case fi.Size() > 0 && !cfg.Reuse && cfg.HTTP == "":
			return nil, fmt.Errorf("%s exists and is not empty; the run would add its accounts to it: give a new file, or --reuse to run in this one", cfg.DatabaseURL)
		}
		return db, nil
	}
	db.kind = "postgres"
	// Over HTTP the database only shows the server's CPU time, unless the
	// baseline runs in it.
	if cfg.Reuse || cfg.HTTP != "" && !cfg.Baseline {
		return db, nil
	}
	db.schema = schemaPrefix + newRunID()
	if err := pgExec(ctx, cfg.DatabaseURL, "CREATE SCHEMA "+pgx.Identifier{db.schema}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create schema %s: %w", db.schema, err)
	}
	u, err := url.Parse(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	q := u.Query()
	q.Set("search_path", db.schema)
	u.RawQuery = q.Encode()
	db.url = u.String()
	return db, nil
}

// describe names the database without credentials.
func (db *database) describe() string {
	if db.kind != "postgres" {
		return db.url
	}
	u, err := url.Parse(db.baseURL)
	if err != nil {
		return "postgres"
	}
	u.User = nil
	u.RawQuery = ""
	s := u.String()
	if db.schema != "" {
		s += " (schema " + db.schema + ")"
	}
	return s
}

// withPoolSize returns the URL with pool_max_conns set unless it sets one.
// Whether it does is read from pgconn's parse, as the store reads it, so
// that a password or a value containing the name does not count.
func (db *database) withPoolSize(n int) string {
	if db.kind != "postgres" {
		return db.url
	}
	c, err := pgconn.ParseConfig(db.url)
	if err != nil {
		return db.url
	}
	if _, ok := c.RuntimeParams["pool_max_conns"]; ok {
		return db.url
	}
	u, err := url.Parse(db.url)
	if err != nil {
		return db.url
	}
	q := u.Query()
	q.Set("pool_max_conns", fmt.Sprint(n))
	u.RawQuery = q.Encode()
	return u.String()
}

// analyze gathers PostgreSQL's planner statistics for the tables of the
// run's schema, as autovacuum would have on a database in service. Without
// them the planner takes the freshly funded tables for empty and prices
// every batch query as a sequential scan. A schema the run did not create
// (--reuse) is left to autovacuum.
func (db *database) analyze(ctx context.Context) error {
	if db.kind != "postgres" || db.schema == "" {
		return nil
	}
	return pgExec(ctx, db.url, `DO $$
		DECLARE t text;
		BEGIN
			FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() LOOP
				EXECUTE format('ANALYZE %I', t);
			END LOOP;
		END $$`)
}

func (db *database) cleanup(ctx context.Context) error {
	if db.keep {
		return nil
	}
	switch {
	case db.schema != "":
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return pgExec(ctx, db.baseURL, "DROP SCHEMA IF EXISTS "+pgx.Identifier{db.schema}.Sanitize()+" CASCADE")
	case db.kind == "sqlite" && db.created:
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(db.url + suffix); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return nil
}

func pgExec(ctx context.Context, connString, sql string) error {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// localServer returns the process id of the PostgreSQL server's postmaster
// when the server runs on this machine, found through the backend that
// serves a connection; 0 for a server elsewhere (or in a container of
// its own), or where /proc does not tell. The postmaster must have started
// when the server says it did, so that a local process that happens to
// have the id a remote backend has is not taken for it.
func (db *database) localServer(ctx context.Context) int {
	if db.kind != "postgres" {
		return 0
	}
	conn, err := pgx.Connect(ctx, db.baseURL)
	if err != nil {
		return 0
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var (
		backend int
		started time.Time
	)
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid(), pg_postmaster_start_time()").Scan(&backend, &started); err != nil {
		return 0
	}
	if !isPostgresBackend(procRoot, backend) {
		return 0
	}
	postmaster, ok := parentOf(filepath.Join(procRoot, strconv.Itoa(backend)))
	if !ok {
		return 0
	}
	if t, ok := startTime(procRoot, postmaster); !ok || t.Sub(started).Abs() > startSkewMax {
		return 0
	}
	return postmaster
}

// startSkewMax bounds the difference between a postmaster's start as the
// server records it and as the system does (whole seconds of boot time,
// and the time the server takes to record it).
const startSkewMax = 5 * time.Second
