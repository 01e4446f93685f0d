package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/postgres"
	"github.com/scriphq/scrip/postgres/pgtest"
)

// openOneConn opens a store on a fresh schema with a pool of one
// connection, so that every batch and a test's checks share it: prepared
// statements and their plans belong to a connection.
func openOneConn(t *testing.T) *postgres.Store {
	t.Helper()
	url := pgtest.URL(t)
	if strings.Contains(url, "://") {
		url += "&pool_max_conns=1"
	} else {
		url += " pool_max_conns=1"
	}
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Batches of one operation, as at light load, must run the batch
// statements on their generic plans rather than plan them at each
// execution, and the setting must end with each batch's transaction.
func TestLoneBatchesUseGenericPlans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openOneConn(t)
	e := ledger.NewEngine(s, ledger.Options{SweepEvery: -1})
	defer e.Close(ctx)

	const charges = 12
	if _, _, err := e.CreateAccount(ctx, "acct-1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Grant(ctx, ledger.GrantRequest{AccountID: "acct-1", Key: "g", Kind: ledger.KindTopUp, Amount: credit.Credits(100)}); err != nil {
		t.Fatal(err)
	}
	for i := range charges {
		if _, err := e.Charge(ctx, ledger.ChargeRequest{AccountID: "acct-1", Key: fmt.Sprintf("c%d", i), Amount: credit.Credits(1)}); err != nil {
			t.Fatal(err)
		}
	}

	// A batch whose first statement goes alone, not in the reads'
	// pipeline, begins the same way.
	for range charges {
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.LockAccounts(ctx, []string{"acct-1"}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}

	pool := postgres.Pool(s)
	rows, err := pool.Query(ctx, `SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
		WHERE statement LIKE '%unnest(%' OR statement LIKE '%= ANY(%'`)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for rows.Next() {
		var sql string
		var generic, custom int64
		if err := rows.Scan(&sql, &generic, &custom); err != nil {
			t.Fatal(err)
		}
		name := strings.Join(strings.Fields(sql)[:3], " ")
		if custom != 0 {
			t.Errorf("%s…: %d custom plans (%d generic), want none", name, custom, generic)
		}
		switch {
		case strings.HasPrefix(sql, "UPDATE grants"):
			seen["grant update"] = generic >= charges
		case strings.HasPrefix(sql, "UPDATE accounts"):
			seen["account update"] = generic >= charges
		case strings.Contains(sql, "FOR UPDATE"):
			seen["lock"] = generic >= 2*charges
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, what := range []string{"grant update", "account update", "lock"} {
		if !seen[what] {
			t.Errorf("the %s did not run on a generic plan in every batch", what)
		}
	}

	for setting, want := range map[string]string{"plan_cache_mode": "auto", "enable_seqscan": "on"} {
		var got string
		if err := pool.QueryRow(ctx, `SHOW `+setting).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s outside a batch is %q, want %q", setting, got, want)
		}
	}
}

// A batch statement's generic plan, made while its table is small, must
// still find rows through the index once the table has grown: the plan is
// kept until the table's statistics change, and a scan of a table that
// holds every hold ever made would make each capture read all of them.
func TestBatchPlansUseIndexesOnSmallTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openOneConn(t)
	pool := postgres.Pool(s)
	// Statistics of an empty holds table, as after an ANALYZE of a fresh
	// database.
	if _, err := pool.Exec(ctx, `ANALYZE holds`); err != nil {
		t.Fatal(err)
	}
	e := ledger.NewEngine(s, ledger.Options{SweepEvery: -1})
	defer e.Close(ctx)
	if _, _, err := e.CreateAccount(ctx, "acct-1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Grant(ctx, ledger.GrantRequest{AccountID: "acct-1", Key: "g", Kind: ledger.KindTopUp, Amount: credit.Credits(100)}); err != nil {
		t.Fatal(err)
	}
	// The first capture plans the holds lookup with one hold in the table.
	h, err := e.Hold(ctx, ledger.HoldRequest{AccountID: "acct-1", Key: "h", Amount: credit.Credits(1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Capture(ctx, ledger.CaptureRequest{HoldID: h.Hold.ID, Key: "c"}); err != nil {
		t.Fatal(err)
	}

	for what, pattern := range map[string]string{
		"holds lookup": "SELECT %FROM holds WHERE id = ANY($1)%",
		"holds update": "UPDATE holds h SET%",
	} {
		plan := keptPlan(t, pool, pattern)
		if strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Hash Join") || strings.Contains(plan, "Merge Join") ||
			!strings.Contains(plan, "Index Cond") {
			t.Errorf("the %s's kept plan does not find its rows by index probes:\n%s", what, plan)
		}
	}
}

// keptPlan returns the plan that the connection's one prepared statement
// whose text is like pattern keeps: EXPLAIN EXECUTE with every parameter
// NULL, in a transaction begun as a batch begins. A kept plan can be
// dropped at any moment (by an autovacuum ANALYZE, or when other sessions'
// catalog changes overflow the server's invalidation queue, as a test run's
// parallel schemas can); EXECUTE then plans again under the settings of the
// transaction it runs in, which for the batch statements are a batch's.
func keptPlan(t *testing.T, pool *pgxpool.Pool, pattern string) string {
	t.Helper()
	ctx := context.Background()
	var (
		name   string
		params int
	)
	err := pool.QueryRow(ctx, `SELECT name, cardinality(parameter_types) FROM pg_prepared_statements
		WHERE statement LIKE $1 AND statement NOT LIKE '%pg_prepared_statements%' AND generic_plans > 0`,
		pattern).Scan(&name, &params)
	if err != nil {
		t.Fatalf("a batch statement like %q on a generic plan: %v", pattern, err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, postgres.BatchSettings); err != nil {
		t.Fatal(err)
	}
	args := strings.TrimSuffix(strings.Repeat("NULL,", params), ",")
	rows, err := tx.Query(ctx, `EXPLAIN EXECUTE `+name+`(`+args+`)`)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}
