package sqlite

import (
	"context"
	"database/sql"
	"reflect"
	"unsafe"

	sqlite3 "modernc.org/sqlite/lib"
)

// connMutex takes SQLite's connection mutex off the writer connection.
//
// The driver opens every connection with SQLITE_OPEN_FULLMUTEX, so SQLite
// locks and unlocks the connection's recursive mutex around every call
// into it: each step, each value bound, each column read. On the writer,
// with modernc's mutexes in Go, that was about 5 % of its CPU time at 64
// clients. database/sql never lets two goroutines use a connection at
// once, the writer connection is the store's alone, and what the driver
// does from another goroutine, interrupting a statement whose context ends,
// takes no mutex: what SQLITE_OPEN_NOMUTEX is for. The store clears the
// handle's mutex when it opens the writer and puts it back before it
// closes it, so that SQLite frees it. SQLite's other mutexes, those of
// structures that connections share (the page cache's, the memory
// allocator's), stay.
type connMutex struct {
	db    uintptr // the sqlite3 handle whose mutex was taken; 0: none
	mutex uintptr
}

// release clears the mutex of db's one connection. A driver whose
// connection does not hold its handle where this one does keeps its mutex.
func (m *connMutex) release(ctx context.Context, db *sql.DB) error {
	return rawHandle(ctx, db, func(h uintptr) {
		p := (*sqlite3.Tsqlite3)(unsafe.Add(nil, h))
		m.db, m.mutex = h, p.Fmutex
		p.Fmutex = 0
	})
}

// restore puts the mutex back, if db's connection is still the one it was
// taken from.
func (m *connMutex) restore(ctx context.Context, db *sql.DB) error {
	if m.db == 0 {
		return nil
	}
	return rawHandle(ctx, db, func(h uintptr) {
		if h == m.db {
			(*sqlite3.Tsqlite3)(unsafe.Add(nil, h)).Fmutex = m.mutex
			m.db = 0
		}
	})
}

// rawHandle calls fn with the sqlite3 handle of a connection of db, while
// nothing else may use that connection.
func rawHandle(ctx context.Context, db *sql.DB, fn func(uintptr)) error {
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Raw(func(dc any) error {
		v := reflect.ValueOf(dc)
		if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			return nil
		}
		f := v.Elem().FieldByName("db")
		if !f.IsValid() || f.Kind() != reflect.Uintptr || f.Uint() == 0 {
			return nil
		}
		fn(uintptr(f.Uint()))
		return nil
	})
}
