package sqlite

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// direct runs the batch's inserts and updates on the writer's SQLite
// handle itself, not through database/sql and the driver: statements it
// prepared once, values bound from typed parameters, and the text values
// copied into one buffer of its own. Through the driver each value is
// boxed in an interface, converted by database/sql, and each text copied
// into memory allocated and freed for that statement alone: about a third
// of the write step's time at 1,024 clients, where a charge inserts two
// rows and updates two (docs/performance.md, "Per step", item 36).
//
// It runs only inside a batch's transaction, from the writer connection's
// Raw (Tx.Write), so that nothing else uses the handle meanwhile; the
// statements belong to the handle they were prepared on, and a new writer
// connection (the pool replaces one the driver reports unusable) gets its
// own. SQLite keeps a closed handle (sqlite3_close_v2) until its last
// statement is finalized, so finalizing the old ones stays valid.
type direct struct {
	tls   *libc.TLS
	db    uintptr // the handle the statements are prepared on
	stmts []*directStmt
	// text is C memory of textCap bytes (at least 1, so that an empty text
	// has an address and binds as '' rather than NULL).
	text    uintptr
	textCap int
	params  params
}

// directStmt is one statement of the write path; p is 0 until the first
// batch on the current handle prepares it.
type directStmt struct {
	query string
	p     uintptr
	n     int // its parameters
}

// String names the statement in errors: its text up to the VALUES of an
// insert, whose rows of placeholders would fill the message.
func (st *directStmt) String() string {
	q, rows, cut := strings.Cut(st.query, " VALUES ")
	if cut {
		q += fmt.Sprintf(" VALUES (%d rows)", strings.Count(rows, "("))
	}
	return q
}

func newDirect() *direct { return &direct{tls: libc.NewTLS()} }

// stmt registers a statement, prepared when first run.
func (d *direct) stmt(query string) *directStmt {
	st := &directStmt{query: query}
	d.stmts = append(d.stmts, st)
	return st
}

// use makes db the handle the statements run on.
func (d *direct) use(db uintptr) {
	if db != d.db {
		d.finalize()
		d.db = db
	}
}

// finalize finalizes the prepared statements.
func (d *direct) finalize() {
	for _, st := range d.stmts {
		if st.p != 0 {
			sqlite3.Xsqlite3_finalize(d.tls, st.p)
			st.p = 0
		}
	}
}

// close finalizes the statements and frees the buffer and the thread state.
// Nothing may use the writer connection meanwhile.
func (d *direct) close() {
	if d == nil || d.tls == nil {
		return
	}
	d.finalize()
	if d.text != 0 {
		libc.Xfree(d.tls, d.text)
		d.text, d.textCap = 0, 0
	}
	d.tls.Close()
	d.tls = nil
}

func (d *direct) prepare(st *directStmt) error {
	q, err := libc.CString(st.query)
	if err != nil {
		return err
	}
	defer libc.Xfree(d.tls, q)
	pp := d.tls.Alloc(int(unsafe.Sizeof(uintptr(0))))
	defer d.tls.Free(int(unsafe.Sizeof(uintptr(0))))
	if rc := sqlite3.Xsqlite3_prepare_v3(d.tls, d.db, q, -1, sqlite3.SQLITE_PREPARE_PERSISTENT, pp, 0); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("prepare %s: %w", st, d.error(rc))
	}
	st.p = *(*uintptr)(unsafe.Add(nil, pp))
	st.n = int(sqlite3.Xsqlite3_bind_parameter_count(d.tls, st.p))
	return nil
}

// exec runs st with the parameters gathered in d.params and returns the
// rows it changed. The parameters are emptied.
func (d *direct) exec(st *directStmt) (int64, error) {
	p := &d.params
	defer p.reset()
	if p.err != nil {
		return 0, p.err
	}
	if st.p == 0 {
		if err := d.prepare(st); err != nil {
			return 0, err
		}
	}
	if len(p.vs) != st.n {
		return 0, fmt.Errorf("%d values for the %d parameters of %s", len(p.vs), st.n, st)
	}
	if err := d.reserve(p.textLen); err != nil {
		return 0, err
	}
	off := d.text
	for i, v := range p.vs {
		var rc int32
		switch v.kind {
		case kindInt:
			rc = sqlite3.Xsqlite3_bind_int64(d.tls, st.p, int32(i+1), v.i)
		case kindNull:
			rc = sqlite3.Xsqlite3_bind_null(d.tls, st.p, int32(i+1))
		case kindText:
			copy(unsafe.Slice((*byte)(unsafe.Add(nil, off)), len(v.s)), v.s)
			// No destructor (SQLITE_STATIC): the buffer outlives the step,
			// and every parameter is bound again before the next one.
			rc = sqlite3.Xsqlite3_bind_text(d.tls, st.p, int32(i+1), off, int32(len(v.s)), 0)
			off += uintptr(len(v.s))
		}
		if rc != sqlite3.SQLITE_OK {
			sqlite3.Xsqlite3_reset(d.tls, st.p)
			return 0, d.error(rc)
		}
	}
	rc := sqlite3.Xsqlite3_step(d.tls, st.p)
	if rc != sqlite3.SQLITE_DONE {
		err := d.error(rc)
		sqlite3.Xsqlite3_reset(d.tls, st.p)
		return 0, err
	}
	n := sqlite3.Xsqlite3_changes64(d.tls, d.db)
	sqlite3.Xsqlite3_reset(d.tls, st.p)
	return n, nil
}

// reserve makes the text buffer hold at least n bytes, and one at least.
func (d *direct) reserve(n int) error {
	n = max(n, 1)
	if n <= d.textCap {
		return nil
	}
	n = max(n, 2*d.textCap, 4<<10)
	p := libc.Xmalloc(d.tls, libc.Tsize_t(n))
	if p == 0 {
		return fmt.Errorf("allocate %d bytes for the statement's text values", n)
	}
	if d.text != 0 {
		libc.Xfree(d.tls, d.text)
	}
	d.text, d.textCap = p, n
	return nil
}

// error is SQLite's error for result code rc on the handle.
func (d *direct) error(rc int32) error {
	code := int(sqlite3.Xsqlite3_extended_errcode(d.tls, d.db))
	if code&0xff != int(rc)&0xff {
		code = int(rc)
	}
	return &directError{code: code, msg: libc.GoString(sqlite3.Xsqlite3_errmsg(d.tls, d.db))}
}

// directError is SQLite's error of a statement direct ran: its extended
// result code and message.
type directError struct {
	code int
	msg  string
}

func (e *directError) Error() string { return fmt.Sprintf("%s (%d)", e.msg, e.code) }

// errDirectValue is a parameter of a type direct does not bind.
var errDirectValue = errors.New("a value of a type a statement does not take")

// params gathers a statement's values in order, typed, without boxing
// them; err keeps the first that could not be taken.
type params struct {
	vs      []param
	textLen int
	err     error
}

type paramKind uint8

const (
	kindNull paramKind = iota
	kindInt
	kindText
)

type param struct {
	kind paramKind
	i    int64
	s    string
}

func (p *params) int(v int64) { p.vs = append(p.vs, param{kind: kindInt, i: v}) }

func (p *params) text(s string) {
	p.vs = append(p.vs, param{kind: kindText, s: s})
	p.textLen += len(s)
}

func (p *params) null() { p.vs = append(p.vs, param{kind: kindNull}) }

// nullTime takes a time as nullMicros stores it: the zero time as NULL.
func (p *params) nullTime(t time.Time) {
	if t.IsZero() {
		p.null()
	} else {
		p.int(micros(t))
	}
}

// value takes what the codec's JSON encoders return: nil or a string.
func (p *params) value(v any) {
	switch v := v.(type) {
	case nil:
		p.null()
	case string:
		p.text(v)
	default:
		if p.err == nil {
			p.err = fmt.Errorf("%w: %T", errDirectValue, v)
		}
		p.null()
	}
}

// reset empties p, dropping its references to the batch's strings.
func (p *params) reset() {
	clear(p.vs)
	p.vs, p.textLen, p.err = p.vs[:0], 0, nil
}
