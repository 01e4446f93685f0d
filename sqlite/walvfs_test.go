package sqlite

import (
	"bytes"
	"database/sql"
	"path/filepath"
	"testing"
)

// openLog opens a database whose log goes through walVFSName, and a second
// handle on it through SQLite's own unix VFS, as the store's readers are.
func openLog(t *testing.T, pragmas ...string) (w, r *sql.DB, path string) {
	t.Helper()
	if err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "log.db")
	dsn := path + "?vfs=" + walVFSName + "&_pragma=journal_mode(WAL)"
	for _, p := range pragmas {
		dsn += "&_pragma=" + p
	}
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	w.SetMaxOpenConns(1)
	t.Cleanup(func() { w.Close() })
	if _, err := w.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	r, err = sql.Open("sqlite", path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return w, r, path
}

// value is the blob of row id: rows differ, so a page read from the wrong
// place shows.
func value(id, size int) []byte {
	return bytes.Repeat([]byte{byte(id), byte(id >> 8), 0x5c}, size/3)
}

// checkRows checks through db that t holds rows 0..n-1 as value wrote them
// and that the file is sound.
func checkRows(t *testing.T, db *sql.DB, n, size int) {
	t.Helper()
	var ok string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check: %q, %v", ok, err)
	}
	rows, err := db.Query(`SELECT id, v FROM t ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var (
			id int
			v  []byte
		)
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		if id != i || !bytes.Equal(v, value(id, size)) {
			t.Fatalf("row %d: id %d, %d bytes, not what was written", i, id, len(v))
		}
		i++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if i != n {
		t.Fatalf("%d rows, want %d", i, n)
	}
}

func insertRows(t *testing.T, tx *sql.Tx, from, to, size int) {
	t.Helper()
	for id := from; id < to; id++ {
		if _, err := tx.Exec(`INSERT INTO t (id, v) VALUES (?, ?)`, id, value(id, size)); err != nil {
			t.Fatal(err)
		}
	}
}

// A commit's frames reach the log in a few large writes, not two per page,
// and another connection reads them all.
func TestLogCommitInFewWrites(t *testing.T) {
	const (
		rows = 300
		size = 3000 // about one page per row
	)
	w, r, _ := openLog(t, "synchronous(FULL)")
	before := logWrites.Load()
	tx, err := w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	insertRows(t, tx, 0, rows, size)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	writes := logWrites.Load() - before

	// Two writes per frame without the buffer; with it one per
	// baseWriteBytesMax bytes of log.
	frames := int64(rows)
	if writes == 0 {
		t.Fatal("no write reached the log through the VFS")
	}
	if limit := frames*(4096+walFrameHeaderBytes)/baseWriteBytesMax + 2; writes > limit {
		t.Errorf("%d write calls for at least %d frames; want at most %d", writes, frames, limit)
	}
	t.Logf("%d write calls for the commit", writes)
	checkRows(t, r, rows, size)
}

// With synchronous=NORMAL no sync follows a commit: the commit frame itself
// must send the buffer to the file before other connections look.
func TestLogCommitVisibleWithoutSync(t *testing.T) {
	const size = 100
	w, r, _ := openLog(t, "synchronous(NORMAL)")
	for n := 1; n <= 50; n++ {
		tx, err := w.Begin()
		if err != nil {
			t.Fatal(err)
		}
		insertRows(t, tx, n-1, n, size)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		var count int
		if err := r.QueryRow(`SELECT count(*) FROM t`).Scan(&count); err != nil {
			t.Fatalf("after commit %d: %v", n, err)
		}
		if count != n {
			t.Fatalf("after commit %d the other connection sees %d rows", n, count)
		}
	}
	checkRows(t, r, 50, size)
}

// Transactions larger than the buffer and than the page cache: SQLite writes
// frames before the commit, reads some back from the log, rewrites others,
// and rolls back; what is committed is what every connection reads, before
// and after the database is reopened.
func TestLogLargeTransactions(t *testing.T) {
	const (
		size = 4000
		rows = 2000 // about 8 MiB, twice walBufferBytesMax
	)
	w, r, path := openLog(t, "synchronous(FULL)", "cache_size(20)")
	tx, err := w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	insertRows(t, tx, 0, rows, size)
	// Reads pages the cache had to spill to the log, and changes them again.
	if _, err := tx.Exec(`UPDATE t SET v = v WHERE id % 7 = 0`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	checkRows(t, r, rows, size)

	tx, err = w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	insertRows(t, tx, rows, 2*rows, size)
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	tx, err = w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	insertRows(t, tx, rows, rows+10, size)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	checkRows(t, r, rows+10, size)
	checkRows(t, w, rows+10, size)

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	checkRows(t, again, rows+10, size)
}
