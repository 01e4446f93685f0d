package sqlite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// The writer's write-ahead log goes through walVFSName: the system's VFS
// (unix, or win32) with one change, the frames of a commit reach the file in
// a few large writes instead of two per page (a 24-byte frame header, then
// the page). On a virtual machine, where every system call is expensive,
// those calls were a quarter of the writer's CPU time. SQLite computes
// frames and their checksums as before; only the number of write calls
// changes.
//
// The writes of a log file are held in a buffer and written, in order, as
// one write:
//   - when the header of a commit frame arrives (with everything before
//     it), and again when its page does, so that a commit is in the file
//     before SQLite publishes it to other connections, whatever the
//     synchronous setting; this holds as well when SQLite rewrites the
//     header of a commit frame already in the log (walRewriteChecksums),
//     which no page follows;
//   - before any other call on the file (sync, read, size, truncate, close,
//     file control), so that SQLite never observes the file without its own
//     writes;
//   - before a write that does not follow the buffer, or would grow it past
//     walBufferBytesMax.
//
// A failed write reports its error to the call that caused it, and the
// buffer is dropped. A write failing in xWrite fails the commit or the
// cache spill, as the failure of any single write would. One failing in
// another call is reported as SQLITE_IOERR_WRITE, whatever the system VFS
// said: a disk-full error from a read would let SQLite roll back only the
// statement and keep a transaction whose spilled frames were dropped, while
// an I/O error rolls back the whole transaction.
//
// A log file without powersafe overwrite (SQLite built with
// SQLITE_POWERSAFE_OVERWRITE=0) is not buffered: SQLite then pads each
// commit to a sector and syncs part way through it.
// Other files (the database, the shared memory) are the system VFS's,
// untouched.
const (
	walVFSName = "scrip-wal"
	// walBufferBytesMax bounds the buffer of one log: about a thousand 4 KiB
	// frames; a larger commit is written in several calls.
	walBufferBytesMax = 4 << 20
	// walFrameHeaderBytes is the size of a frame's header; its bytes 4–7 hold
	// the database size after the commit for a commit frame, 0 otherwise.
	walFrameHeaderBytes = 24
	// baseWriteBytesMax is the most one call of the system VFS writes: the
	// unix VFS keeps only the low 17 bits of a length.
	baseWriteBytesMax = 0x1ffff
)

var (
	walVFSOnce sync.Once
	errWALVFS  error

	// walVFS is the registered VFS: a copy of the system VFS but for xOpen.
	// baseVFS is the address of the system VFS itself, which opens the
	// files.
	walVFS   sqlite3.Tsqlite3_vfs
	baseVFS  uintptr
	baseOpen func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32

	// walIO is the method table of log files: baseIO's methods, each of
	// which first writes the buffer, and xWrite, which fills it. baseIO is
	// the table the system VFS gave the first log file, baseIOAddr its
	// address; a log opened with another table is left unbuffered.
	walIOMu    sync.Mutex
	walIO      sqlite3.Tsqlite3_io_methods
	baseIO     sqlite3.Tsqlite3_io_methods
	baseIOAddr uintptr

	walFilesMu sync.Mutex
	walFiles   = map[uintptr]*walFile{}

	// logWrites counts the write calls made to buffered log files.
	logWrites atomic.Int64
)

// walFile is the buffer of one open log file.
type walFile struct {
	buf []byte
	// off is the file offset of buf[0].
	off int64
	// commit: the last write was the header of a commit frame, so the next
	// one, its page, must reach the file at once.
	commit bool
}

// registerWALVFS registers walVFSName once per process.
func registerWALVFS() error {
	walVFSOnce.Do(func() { errWALVFS = registerWALVFSOnce() })
	return errWALVFS
}

func registerWALVFSOnce() error {
	tls := libc.NewTLS()
	defer tls.Close()
	baseVFS = sqlite3.Xsqlite3_vfs_find(tls, 0)
	if baseVFS == 0 {
		return errors.New("sqlite: no default VFS")
	}
	libc.Xmemcpy(tls, uintptr(unsafe.Pointer(&walVFS)), baseVFS, libc.Tsize_t(unsafe.Sizeof(walVFS)))
	baseOpen = *(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&walVFS.FxOpen))
	name, err := libc.CString(walVFSName)
	if err != nil {
		return err
	}
	walVFS.FzName = name
	walVFS.FpNext = 0
	*(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&walVFS.FxOpen)) = walOpen
	if rc := sqlite3.Xsqlite3_vfs_register(tls, uintptr(unsafe.Pointer(&walVFS)), 0); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("sqlite: register VFS %s: code %d", walVFSName, rc)
	}
	return nil
}

// mem is n bytes of SQLite's memory at p.
func mem(p uintptr, n int) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(nil, p)), n)
}

// methodsOf returns the address of the method table of the file at p.
func methodsOf(p uintptr) *uintptr {
	return (*uintptr)(unsafe.Add(nil, p))
}

func walOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	rc := baseOpen(tls, baseVFS, zName, pFile, flags, pOutFlags)
	if rc != sqlite3.SQLITE_OK || flags&sqlite3.SQLITE_OPEN_WAL == 0 {
		return rc
	}
	methods := methodsOf(pFile)
	if !powersafe(tls, pFile, *methods) || !useWALIO(tls, *methods) {
		return rc
	}
	walFilesMu.Lock()
	walFiles[pFile] = &walFile{}
	walFilesMu.Unlock()
	*methods = uintptr(unsafe.Pointer(&walIO))
	return rc
}

// powersafe reports whether the file at pFile, with the method table at
// addr, is on a device with powersafe overwrite.
func powersafe(tls *libc.TLS, pFile, addr uintptr) bool {
	io := (*sqlite3.Tsqlite3_io_methods)(unsafe.Add(nil, addr))
	characteristics := *(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&io.FxDeviceCharacteristics))
	return characteristics(tls, pFile)&sqlite3.SQLITE_IOCAP_POWERSAFE_OVERWRITE != 0
}

// useWALIO reports whether log files opened with the method table at addr
// can be buffered: the first one sets walIO up.
func useWALIO(tls *libc.TLS, addr uintptr) bool {
	walIOMu.Lock()
	defer walIOMu.Unlock()
	if baseIOAddr != 0 {
		return addr == baseIOAddr
	}
	libc.Xmemcpy(tls, uintptr(unsafe.Pointer(&baseIO)), addr, libc.Tsize_t(unsafe.Sizeof(baseIO)))
	walIO = baseIO
	*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&walIO.FxClose)) = walClose
	*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&walIO.FxRead)) = walRead
	*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&walIO.FxWrite)) = walWrite
	*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&walIO.FxTruncate)) = walTruncate
	*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&walIO.FxSync)) = walSync
	*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&walIO.FxFileSize)) = walFileSize
	*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&walIO.FxFileControl)) = walFileControl
	baseIOAddr = addr
	return true
}

func fileOf(pFile uintptr) *walFile {
	walFilesMu.Lock()
	f := walFiles[pFile]
	walFilesMu.Unlock()
	return f
}

// flush writes the buffer of the log file at pFile and empties it.
func flush(tls *libc.TLS, pFile uintptr) int32 {
	f := fileOf(pFile)
	if len(f.buf) == 0 {
		return sqlite3.SQLITE_OK
	}
	rc := baseWrite(tls, pFile, uintptr(unsafe.Pointer(&f.buf[0])), len(f.buf), f.off)
	f.buf = f.buf[:0]
	f.commit = false
	return rc
}

// baseWrite writes n bytes at p to the file at offset off through the system
// VFS, in calls of at most baseWriteBytesMax bytes.
func baseWrite(tls *libc.TLS, pFile, p uintptr, n int, off int64) int32 {
	write := *(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&baseIO.FxWrite))
	for n > 0 {
		size := min(n, baseWriteBytesMax)
		logWrites.Add(1)
		if rc := write(tls, pFile, p, int32(size), off); rc != sqlite3.SQLITE_OK {
			return rc
		}
		p += uintptr(size)
		off += int64(size)
		n -= size
	}
	return sqlite3.SQLITE_OK
}

func walWrite(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	f := fileOf(pFile)
	n := int(iAmt)
	if len(f.buf) > 0 && (iOfst != f.off+int64(len(f.buf)) || len(f.buf)+n > walBufferBytesMax) {
		if rc := flush(tls, pFile); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	if n > walBufferBytesMax {
		return baseWrite(tls, pFile, zBuf, n, iOfst)
	}
	if len(f.buf) == 0 {
		f.off = iOfst
	}
	data := mem(zBuf, n)
	f.buf = append(f.buf, data...)
	commitHeader := n == walFrameHeaderBytes && binary.BigEndian.Uint32(data[4:8]) != 0
	if !f.commit && !commitHeader {
		return sqlite3.SQLITE_OK
	}
	// flush clears commit; a commit header sets it again, for its page.
	rc := flush(tls, pFile)
	f.commit = commitHeader && rc == sqlite3.SQLITE_OK
	return rc
}

func walClose(tls *libc.TLS, pFile uintptr) int32 {
	rc := flush(tls, pFile)
	walFilesMu.Lock()
	delete(walFiles, pFile)
	walFilesMu.Unlock()
	closeRC := (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&baseIO.FxClose)))(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return closeRC
}

func walRead(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	if flush(tls, pFile) != sqlite3.SQLITE_OK {
		return sqlite3.SQLITE_IOERR_WRITE
	}
	return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&baseIO.FxRead)))(tls, pFile, zBuf, iAmt, iOfst)
}

func walTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	if flush(tls, pFile) != sqlite3.SQLITE_OK {
		return sqlite3.SQLITE_IOERR_WRITE
	}
	return (*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&baseIO.FxTruncate)))(tls, pFile, size)
}

func walSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	if flush(tls, pFile) != sqlite3.SQLITE_OK {
		return sqlite3.SQLITE_IOERR_WRITE
	}
	return (*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&baseIO.FxSync)))(tls, pFile, flags)
}

func walFileSize(tls *libc.TLS, pFile, pSize uintptr) int32 {
	if flush(tls, pFile) != sqlite3.SQLITE_OK {
		return sqlite3.SQLITE_IOERR_WRITE
	}
	return (*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&baseIO.FxFileSize)))(tls, pFile, pSize)
}

func walFileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	if flush(tls, pFile) != sqlite3.SQLITE_OK {
		return sqlite3.SQLITE_IOERR_WRITE
	}
	return (*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&baseIO.FxFileControl)))(tls, pFile, op, pArg)
}
