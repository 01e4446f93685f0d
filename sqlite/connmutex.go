package sqlite

import (
	"context"
	"database/sql/driver"
	"reflect"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// connector opens the store's connections, the writer's and the readers'.
// The pools keep them, but database/sql replaces a connection when the
// driver reports it unusable, as modernc's does after a statement on it was
// interrupted (a caller's context ended), so what each connection needs is
// done here, for every one a pool opens.
//
// The writer's cache (heads) holds for the data version the writer
// connection counted, and a new connection counts from its own start: each
// new writer connection empties the cache.
//
// And each connection runs without SQLite's connection mutex. The driver
// opens every connection with SQLITE_OPEN_FULLMUTEX, so SQLite locks and
// unlocks the connection's recursive mutex around every call into it: each
// step, each value bound, each column read. On the writer, with modernc's
// mutexes in Go, that was about 5 % of its CPU time at 64 clients, and on
// the readers 14 % of the event watcher's reads of the journal
// (docs/performance.md, "Per step", item 35). database/sql never lets two
// goroutines use a connection at the same time, and what the driver does
// from another goroutine, interrupting a statement whose context ends,
// takes no mutex: what SQLITE_OPEN_NOMUTEX is for. The connection's mutex
// is freed and its handle left without one, as a NOMUTEX open leaves it;
// SQLite keeps no other reference to it. SQLite's other mutexes, those of
// structures that connections share (the page cache's, the memory
// allocator's), stay.
type connector struct {
	driver.Connector
	heads *heads // the writer's cache; nil for a reader
}

// openConnector returns the connector of the database at dsn.
func openConnector(dsn string, h *heads) (connector, error) {
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return connector{}, err
	}
	return connector{Connector: c, heads: h}, nil
}

func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if c.heads != nil {
		c.heads.drop()
	}
	if h, ok := sqliteHandle(dc); ok {
		p := (*sqlite3.Tsqlite3)(unsafe.Add(nil, h))
		if m := p.Fmutex; m != 0 {
			p.Fmutex = 0
			tls := libc.NewTLS()
			sqlite3.Xsqlite3_mutex_free(tls, m)
			tls.Close()
		}
	}
	return dc, nil
}

// sqliteHandle returns the sqlite3 handle of a driver connection, if the
// driver keeps it where modernc's does.
func sqliteHandle(dc any) (uintptr, bool) {
	v := reflect.ValueOf(dc)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return 0, false
	}
	f := v.Elem().FieldByName("db")
	if !f.IsValid() || f.Kind() != reflect.Uintptr || f.Uint() == 0 {
		return 0, false
	}
	return uintptr(f.Uint()), true
}
