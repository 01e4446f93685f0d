package pgtest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/scriphq/scrip/postgres/pgtest"
)

func TestURL(t *testing.T) {
	ctx := context.Background()
	var url, schema string
	t.Run("use", func(t *testing.T) {
		url = pgtest.URL(t)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(schema, "scrip_test_") {
			t.Fatalf("current schema %q, want scrip_test_...", schema)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE t (id int)"); err != nil {
			t.Fatal(err)
		}
		var where string
		if err := conn.QueryRow(ctx, "SELECT schemaname FROM pg_tables WHERE tablename = 't'").Scan(&where); err != nil || where != schema {
			t.Fatalf("table created in %q (%v), want %q", where, err, schema)
		}
		if other := pgtest.URL(t); other == url {
			t.Fatal("two calls returned the same schema")
		}
	})
	if t.Skipped() || schema == "" {
		return
	}
	// The schema is gone once the subtest has finished.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("schema %s still exists after the test", schema)
	}
}
