package sqlite

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	sqlite3 "modernc.org/sqlite/lib"
)

// The store runs SQLite's own page cache (pcache1), for every connection of
// the process, with one change, to what it remembers of the page numbers
// it holds.
//
// pcache1 keeps a bound on the page numbers it holds (iMaxKey: raised by
// every number it files a page under, lowered when it drops pages), and
// at the end of every write transaction SQLite asks it to drop the pages
// past the end of the database. When that number is far past the end, it
// walks every slot of its hash table and every page in them: for the
// writer's 64 MiB cache, 16,384 slots and some 10,000 pages, after every
// commit. And the number is far past the end after nearly every batch:
// when a B-tree page splits, SQLite puts the pages it balances in
// ascending order by swapping their numbers (balance_nonroot), filing the
// page in flight under a temporary number, that of the page holding the
// file's lock bytes at 1 GiB (262,145 with 4 KiB pages), and the random
// keys of the journal's indexes split pages in most batches.
//
// The method that files a page under a new number (xRekey) is wrapped: on
// a move to the temporary number the largest number is put back as it
// was. The page leaves that number two calls later, for the number of
// another page of the same split, which the cache held already, so the
// bound again covers every page the cache holds. The commit step of
// batches of a few dozen charges became a fifth to a quarter shorter
// (docs/performance.md, "Per step", item 15).
//
// The methods must be set before SQLite initializes, which the first
// connection of the process does, or a VFS lookup or registration, or an
// extension registered for every connection. installPageCache runs first
// in the store's open; if SQLite was initialized before, the cache stays
// as it is and only the time of the commits differs.

// pendingByte is the offset of SQLite's lock bytes (PENDING_BYTE): the page
// that holds them is never part of a database, and balance_nonroot files
// the page in flight under its number.
const pendingByte = 0x40000000

var (
	pageCacheOnce sync.Once
	// pageCacheInstalled reports whether the wrapped methods are SQLite's.
	pageCacheInstalled bool
	// baseRekey and baseTruncate are pcache1's xRekey and xTruncate.
	baseRekey    func(tls *libc.TLS, cache, page uintptr, oldKey, newKey uint32)
	baseTruncate func(tls *libc.TLS, cache uintptr, limit uint32)
	// boundsKept counts the moves to the temporary number whose bound was
	// put back, fullWalks the truncations that walked a whole cache.
	boundsKept atomic.Int64
	fullWalks  atomic.Int64
	// pageCacheMethods is what SQLite reads the methods from (a variable
	// of its own, at an address that does not move during the calls).
	pageCacheMethods sqlite3.Tsqlite3_pcache_methods2
)

// installPageCache sets SQLite's page cache methods once per process, before
// SQLite initializes; see above.
func installPageCache() {
	pageCacheOnce.Do(func() { pageCacheInstalled = installPageCacheOnce() })
}

func installPageCacheOnce() bool {
	tls := libc.NewTLS()
	defer tls.Close()
	methods := &pageCacheMethods
	args := libc.Xmalloc(tls, types.Size_t(unsafe.Sizeof(uintptr(0))))
	if args == 0 {
		return false
	}
	defer libc.Xfree(tls, args)
	config := func(op int32) bool {
		return sqlite3.Xsqlite3_config(tls, op, libc.VaList(args, uintptr(unsafe.Pointer(methods)))) == sqlite3.SQLITE_OK
	}
	// Methods without xInit make SQLite fall back to pcache1, whose
	// methods it then hands back: whatever was configured before, the
	// wrapper below wraps pcache1, the cache whose layout it relies on.
	if !config(sqlite3.SQLITE_CONFIG_PCACHE2) || !config(sqlite3.SQLITE_CONFIG_GETPCACHE2) ||
		methods.FxRekey == 0 || methods.FxTruncate == 0 {
		return false
	}
	rekey := (*func(*libc.TLS, uintptr, uintptr, uint32, uint32))(unsafe.Pointer(&methods.FxRekey))
	truncate := (*func(*libc.TLS, uintptr, uint32))(unsafe.Pointer(&methods.FxTruncate))
	baseRekey, baseTruncate = *rekey, *truncate
	*rekey, *truncate = rekeyKeepingBound, truncateCounting
	return config(sqlite3.SQLITE_CONFIG_PCACHE2)
}

// rekeyKeepingBound is pcache1's xRekey, but a move to the temporary number
// of balance_nonroot leaves the cache's largest page number as it was.
func rekeyKeepingBound(tls *libc.TLS, cache, page uintptr, oldKey, newKey uint32) {
	c := (*sqlite3.TPCache1)(unsafe.Add(nil, cache))
	bound := c.FiMaxKey
	baseRekey(tls, cache, page, oldKey, newKey)
	if newKey > bound && c.FszPage > 0 && newKey == pendingByte/uint32(c.FszPage)+1 {
		c.FiMaxKey = bound
		boundsKept.Add(1)
	}
}

// truncateCounting is pcache1's xTruncate, counting the calls that walk the
// whole cache: those whose bound lies a hash table's worth or more past
// the limit.
func truncateCounting(tls *libc.TLS, cache uintptr, limit uint32) {
	c := (*sqlite3.TPCache1)(unsafe.Add(nil, cache))
	if limit <= c.FiMaxKey && c.FiMaxKey-limit >= c.FnHash {
		fullWalks.Add(1)
	}
	baseTruncate(tls, cache, limit)
}
