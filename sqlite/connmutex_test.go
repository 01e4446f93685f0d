package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
	"unsafe"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// writerHandle returns the sqlite3 handle of the writer's connection and
// its mutex.
func writerHandle(t *testing.T, s *Store) (handle, mutex uintptr) {
	t.Helper()
	return handleOf(t, s.writer)
}

// handleOf returns the sqlite3 handle of a connection of the pool, and its
// mutex.
func handleOf(t *testing.T, db *sql.DB) (handle, mutex uintptr) {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Raw(func(dc any) error {
		h, ok := sqliteHandle(dc)
		if !ok {
			return errors.New("the driver's connection holds no sqlite3 handle where the store looks for it")
		}
		handle, mutex = h, (*sqlite3.Tsqlite3)(unsafe.Add(nil, h)).Fmutex
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return handle, mutex
}

// interrupt runs a statement on the pool that runs until its context
// ends, which has the driver report its connection unusable.
func interrupt(t *testing.T, db *sql.DB) {
	t.Helper()
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	var n int64
	err := db.QueryRowContext(short, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)
		SELECT count(*) FROM c`).Scan(&n)
	if err == nil || errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("an endless statement ended with %v", err)
	}
}

// The writer's connection runs without SQLite's connection mutex, and so
// does the one the pool opens when the driver has it discard the first
// (after an interrupted statement); that one also empties the writer's
// cache, since it counts the file's data version afresh.
func TestWriterConnections(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	first, m := writerHandle(t, s)
	if m != 0 {
		t.Errorf("the writer's connection has mutex %#x, want none", m)
	}
	createAccounts(t, s, "a")
	write(t, s, fixture())
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.LockAccounts(ctx, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if found, _ := s.heads.lookAccounts([]string{"a"}); len(found) != 1 {
		t.Fatal("account a is not cached")
	}

	interrupt(t, s.writer)
	second, m := writerHandle(t, s)
	if second == first {
		t.Fatal("the pool kept the interrupted connection; this test no longer opens a second one")
	}
	if m != 0 {
		t.Errorf("the writer's second connection has mutex %#x, want none", m)
	}
	if found, _ := s.heads.lookAccounts([]string{"a"}); len(found) != 0 {
		t.Error("the cache kept its accounts across a new writer connection")
	}
	// The store writes on the new connection, with its own statements: those
	// of the first were prepared on the handle the pool has closed.
	tx, err = s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if as, err := tx.LockAccounts(ctx, []string{"a"}); err != nil || len(as) != 1 {
		t.Fatalf("lock a on the new connection: %v, %d accounts", err, len(as))
	}
	if err := tx.Write(ctx, &ledger.Writes{
		Accounts:   []ledger.Account{{ID: "a", CreatedAt: t0, Seq: 3, Hash: "hash-3"}},
		NewCharges: []ledger.Charge{{ID: "c9", AccountID: "a", Amount: credit.Credits(2), CreatedAt: t0}},
	}); err != nil {
		t.Fatalf("write on the new connection: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if d := s.w.direct; d.db != second {
		t.Errorf("the writes ran on handle %#x, want the new connection's %#x", d.db, second)
	}
	if a, err := s.Account(ctx, "a"); err != nil || a.Seq != 3 || a.Hash != "hash-3" {
		t.Errorf("account a after the write on the new connection: %+v, %v", a, err)
	}
	if c, err := s.Charge(ctx, "c9"); err != nil || c.Amount != credit.Credits(2) {
		t.Errorf("charge c9 after the write on the new connection: %+v, %v", c, err)
	}
}

// The readers' connections, and the bulk readers', run without SQLite's
// connection mutex too, and serve reads from many goroutines at once
// while the writer commits.
func TestReaderConnections(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	for _, p := range []struct {
		name string
		db   *sql.DB
	}{{"reader", s.reader}, {"bulk reader", s.bulk}} {
		if _, m := handleOf(t, p.db); m != 0 {
			t.Errorf("a %s's connection has mutex %#x, want none", p.name, m)
		}
	}
	createAccounts(t, s, "a")
	write(t, s, fixture())
	want, err := s.AccountState(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for range 50 {
				got, err := s.AccountState(ctx, "a")
				if err != nil {
					errs <- err
					return
				}
				if !reflect.DeepEqual(got, want) {
					errs <- fmt.Errorf("account state read %+v, want %+v", got, want)
					return
				}
			}
		})
	}
	// The pool's connections stay usable after a read interrupted by its
	// context, as the writer's do.
	interrupt(t, s.reader)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, m := handleOf(t, s.reader); m != 0 {
		t.Errorf("a reader's connection after the interrupted read has mutex %#x, want none", m)
	}
}
