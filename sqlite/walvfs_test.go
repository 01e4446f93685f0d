package sqlite

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
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
	// baseWriteBytesMax bytes of log, and the commit frame's header and
	// page each on their own.
	frames := int64(rows)
	if writes == 0 {
		t.Fatal("no write reached the log through the VFS")
	}
	if limit := frames*(4096+walFrameHeaderBytes)/baseWriteBytesMax + 3; writes > limit {
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

// rawLog opens a log file through walVFSName as SQLite opens one, for tests
// that write frames themselves.
func rawLog(t *testing.T) (tls *libc.TLS, pFile uintptr, path string) {
	t.Helper()
	if err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "raw.db")
	// The unix VFS gives a log the permissions of its database file.
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	path = db + "-wal"
	tls = libc.NewTLS()
	// SQLite passes file names followed by NULs (and URI parameters).
	name, err := libc.CString(path + "\x00\x00")
	if err != nil {
		t.Fatal(err)
	}
	pFile = libc.Xcalloc(tls, 1, libc.Tsize_t(walVFS.FszOsFile))
	flags := int32(sqlite3.SQLITE_OPEN_WAL | sqlite3.SQLITE_OPEN_CREATE | sqlite3.SQLITE_OPEN_READWRITE)
	if rc := walOpen(tls, uintptr(unsafe.Pointer(&walVFS)), name, pFile, flags, 0); rc != sqlite3.SQLITE_OK {
		t.Fatalf("open the log: code %d", rc)
	}
	if fileOf(pFile) == nil {
		t.Fatal("the log is not buffered")
	}
	t.Cleanup(func() {
		walClose(tls, pFile)
		libc.Xfree(tls, pFile)
		libc.Xfree(tls, name)
		tls.Close()
	})
	return tls, pFile, path
}

// rawWrite writes b at off through the log's xWrite, from SQLite's memory as
// SQLite does.
func rawWrite(t *testing.T, tls *libc.TLS, pFile uintptr, b []byte, off int64) {
	t.Helper()
	p := libc.Xmalloc(tls, libc.Tsize_t(len(b)))
	defer libc.Xfree(tls, p)
	copy(mem(p, len(b)), b)
	if rc := walWrite(tls, pFile, p, int32(len(b)), off); rc != sqlite3.SQLITE_OK {
		t.Fatalf("write %d bytes at %d: code %d", len(b), off, rc)
	}
}

const rawPage = 4096

// rawFrameOffset is the file offset of frame k (from 1) of a log of
// rawPage-byte pages.
func rawFrameOffset(k int) int64 {
	return 32 + int64(k-1)*(walFrameHeaderBytes+rawPage)
}

// rawHeader is a frame header for page k; commit is the database size
// after a commit frame, 0 for others. salt fills the checksum fields.
func rawHeader(k int, commit uint32, salt byte) []byte {
	h := bytes.Repeat([]byte{salt}, walFrameHeaderBytes)
	binary.BigEndian.PutUint32(h[0:4], uint32(k))
	binary.BigEndian.PutUint32(h[4:8], commit)
	return h
}

// rawFrame writes frame k as SQLite does: its header, then its page.
func rawFrame(t *testing.T, tls *libc.TLS, pFile uintptr, k int, commit uint32) {
	t.Helper()
	off := rawFrameOffset(k)
	rawWrite(t, tls, pFile, rawHeader(k, commit, 1), off)
	rawWrite(t, tls, pFile, bytes.Repeat([]byte{byte(k)}, rawPage), off+walFrameHeaderBytes)
}

// A commit frame whose header still fits the buffer but whose page does
// not: the page is written all the same, before the commit is published.
func TestLogCommitFrameAtBufferLimit(t *testing.T) {
	tls, pFile, path := rawLog(t)
	rawWrite(t, tls, pFile, make([]byte, 32), 0)
	// 32 + 1018 frames + a header fit in walBufferBytesMax; the 1019th
	// frame's page does not.
	const frames = (walBufferBytesMax-32)/(walFrameHeaderBytes+rawPage) + 1
	for k := 1; k < frames; k++ {
		rawFrame(t, tls, pFile, k, 0)
	}
	rawFrame(t, tls, pFile, frames, frames)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := rawFrameOffset(frames + 1); fi.Size() != want {
		t.Fatalf("after the commit frame the log holds %d bytes; want %d", fi.Size(), want)
	}
}

// SQLite rewrites the headers of frames a transaction changed twice
// (walRewriteChecksums): it reads each frame back and writes its header
// alone, the commit frame's last, with no page after it.
func TestLogRewrittenCommitHeader(t *testing.T) {
	tls, pFile, path := rawLog(t)
	rawWrite(t, tls, pFile, make([]byte, 32), 0)
	rawFrame(t, tls, pFile, 1, 0)
	rawFrame(t, tls, pFile, 2, 2)
	buf := libc.Xmalloc(tls, walFrameHeaderBytes+rawPage)
	defer libc.Xfree(tls, buf)
	for k := 1; k <= 2; k++ {
		if rc := walRead(tls, pFile, buf, walFrameHeaderBytes+rawPage, rawFrameOffset(k)); rc != sqlite3.SQLITE_OK {
			t.Fatalf("read frame %d: code %d", k, rc)
		}
		rawWrite(t, tls, pFile, rawHeader(k, uint32(k/2*2), 9), rawFrameOffset(k))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 2; k++ {
		off := rawFrameOffset(k)
		if got, want := b[off:off+walFrameHeaderBytes], rawHeader(k, uint32(k/2*2), 9); !bytes.Equal(got, want) {
			t.Fatalf("frame %d's header in the file is %x; want the rewritten %x", k, got, want)
		}
	}
}

// With synchronous=NORMAL a commit must survive the crash of the process
// (not of the machine): the files as they stand while the writer is still
// open, copied, hold it. The transaction spills pages and then changes
// them again, so SQLite rewrites frame headers at the commit.
func TestLogCommitSurvivesProcessCrash(t *testing.T) {
	const rows, size = 200, 3000
	w, _, path := openLog(t, "synchronous(NORMAL)", "cache_size(20)")
	tx, err := w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	insertRows(t, tx, 0, rows, size)
	if _, err := tx.Exec(`UPDATE t SET v = zeroblob(length(v)) WHERE id % 7 = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`UPDATE t SET v = ? WHERE id % 7 = 0`, value(0, size)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(t.TempDir(), "crashed.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crashed+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := sql.Open("sqlite", crashed)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var n, same int
	if err := c.QueryRow(`SELECT count(*), count(*) FILTER (WHERE id % 7 <> 0 OR v = ?) FROM t`, value(0, size)).Scan(&n, &same); err != nil {
		t.Fatal(err)
	}
	if n != rows || same != rows {
		t.Fatalf("after the crash %d rows, %d as committed; want %d of each", n, same, rows)
	}
}

// failLogWrites makes the system VFS's writes fail with SQLITE_FULL (disk
// full) while the flag it returns is set.
func failLogWrites(t *testing.T) *atomic.Bool {
	var on atomic.Bool
	saved := baseIO.FxWrite
	write := *(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&saved))
	failing := func(tls *libc.TLS, pFile, p uintptr, n int32, off int64) int32 {
		if on.Load() {
			return sqlite3.SQLITE_FULL
		}
		return write(tls, pFile, p, n, off)
	}
	*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&baseIO.FxWrite)) = failing
	t.Cleanup(func() {
		baseIO.FxWrite = saved
		// The table holds the closure as a bare address, which the
		// collector does not see.
		runtime.KeepAlive(failing)
	})
	return &on
}

// The disk fills while a transaction's spilled frames wait in the buffer,
// and the write fails in a read of the log: the whole transaction must go,
// not only the statement, or its commit would name frames never written.
func TestLogWriteFailureEndsTransaction(t *testing.T) {
	const rows, size = 200, 3000
	w, r, _ := openLog(t, "synchronous(FULL)", "cache_size(20)")
	tx, err := w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	insertRows(t, tx, 0, 10, size)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	fail := failLogWrites(t)
	tx, err = w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	insertRows(t, tx, 10, rows, size)
	fail.Store(true)
	_, err = tx.Exec(`UPDATE t SET v = zeroblob(10) WHERE id < 15`)
	fail.Store(false)
	if err == nil {
		t.Fatal("the update succeeded though the log could not be written")
	}
	if err := tx.Commit(); err == nil {
		t.Fatal("the transaction committed after its spilled frames were lost")
	}
	checkRows(t, r, 10, size)
	tx, err = w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	insertRows(t, tx, 10, 20, size)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	checkRows(t, r, 20, size)
}
