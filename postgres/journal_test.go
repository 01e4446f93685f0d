package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scriphq/scrip/event"
	"github.com/scriphq/scrip/postgres"
	"github.com/scriphq/scrip/postgres/pgtest"
)

// journalRows are the rows fillJournal writes, a millisecond apart from
// journalStart: with their reasons, about ten of the BRIN index's page
// ranges.
const journalRows = 20000

var journalStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fillJournal writes journalRows journal rows straight into the table, as
// a burst of charges leaves them for the event watcher, the first of them
// the row after row from.
func fillJournal(t *testing.T, s *postgres.Store, from int) {
	t.Helper()
	_, err := postgres.Pool(s).Exec(context.Background(), `INSERT INTO transactions
		(id, account_id, seq, type, amount, reason, created_at, hash)
		SELECT 'tx_' || lpad(g::text, 6, '0'), 'acct_' || (g % 100), g, 'charge', 1000000, repeat('r', 500),
			$1::timestamptz + g * interval '1 millisecond', 'h'
		FROM generate_series($2::int + 1, $2::int + $3::int) g`, journalStart, from, journalRows)
	if err != nil {
		t.Fatal(err)
	}
}

// readJournal checks a read of the page after row from: the next 500
// rows, in order.
func readJournal(t *testing.T, s *postgres.Store, from int) {
	t.Helper()
	at := journalStart.Add(time.Duration(from) * time.Millisecond)
	rows, err := s.Outbox().JournalAfter(context.Background(), event.JournalCursor{At: at, ID: "tx_"},
		at.Add(time.Second), 500)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 500 || rows[0].CreatedAt.Sub(at) != 0 || rows[499].CreatedAt.Sub(at) != 499*time.Millisecond {
		t.Fatalf("%d rows from %v; want 500 from the cursor's own time on", len(rows), at)
	}
}

// summarize summarizes the journal's BRIN index where it is not yet and
// returns how many page ranges that was.
func summarize(t *testing.T, s *postgres.Store) int {
	t.Helper()
	var n int
	err := postgres.Pool(s).QueryRow(context.Background(),
		`SELECT brin_summarize_new_values('transactions_created')`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestJournalAfterSummarizes: a read of the journal brings the BRIN index's
// summary up to date first, so that it scans the rows of its window, not
// all those written since the last VACUUM; it still reads while the index
// is being summarized by another session.
func TestJournalAfterSummarizes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := postgres.Open(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	fillJournal(t, s, 0)
	readJournal(t, s, 10000)
	if n := summarize(t, s); n != 0 {
		t.Errorf("%d page ranges left unsummarized by the read", n)
	}
	// The next read summarizes the ranges written since.
	fillJournal(t, s, journalRows)
	readJournal(t, s, 30000)
	if n := summarize(t, s); n != 0 {
		t.Errorf("%d page ranges written after the first read left unsummarized by the second", n)
	}

	// Another session holds the lock summarizing takes, as VACUUM does.
	lock, err := postgres.Pool(s).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx)
	if _, err := lock.Exec(ctx, `LOCK TABLE transactions IN SHARE UPDATE EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	readJournal(t, s, 15000)
}

// TestJournalAfterNotOwner: a role that may read the journal but does not
// own it, and so may not summarize its index, reads it all the same.
func TestJournalAfterNotOwner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	owner, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owner.Close() })
	fillJournal(t, owner, 0)

	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	role := "scrip_test_reader_" + hex.EncodeToString(b)
	pool := postgres.Pool(owner)
	var schema string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`CREATE ROLE ` + role,
		`GRANT USAGE ON SCHEMA ` + pgx.Identifier{schema}.Sanitize() + ` TO ` + role,
		`GRANT SELECT ON ALL TABLES IN SCHEMA ` + pgx.Identifier{schema}.Sanitize() + ` TO ` + role,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, sql := range []string{`DROP OWNED BY ` + role, `DROP ROLE ` + role} {
			if _, err := pool.Exec(context.Background(), sql); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
	reader, err := postgres.Open(ctx, withParams(url, "role="+role))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	for _, from := range []int{1000, 2000} {
		readJournal(t, reader, from)
	}
	if n := summarize(t, owner); n == 0 {
		t.Error("the journal's index was summarized by a role that does not own it")
	}
}
