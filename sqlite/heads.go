package sqlite

import (
	"slices"
	"strings"
	"sync"

	"github.com/scriphq/scrip/ledger"
)

// headsMax bounds the accounts the writer keeps in memory; past it, each
// account read in evicts another.
const headsMax = 32768

// heads keeps, for the writer, what a batch reads of the accounts it has
// read before: each account's row and its live grants (not closed, credits
// remaining), as the file holds them. On SQLite the writer is the only
// connection that changes accounts and grants, so after a batch commits
// its writes are what the file holds, and the next batch reads its
// accounts here instead of through SQLite, which was about a fifth of the
// writer's work on small batches.
//
// A write by any other connection, another process's or another store's
// on the same file, changes the file's data version (PRAGMA data_version,
// which the writer's own commits leave alone). Each batch reads it first,
// and a change empties the cache. Writes on the writer connection itself
// are seen only through Tx: accounts and grants change nowhere else, and
// Migrate empties the cache. The version is the writer connection's own
// count, so each new writer connection empties the cache too
// (connector).
//
// The values handed out share their metadata maps with the cache; the
// engine never changes a loaded account's or grant's metadata.
type heads struct {
	mu sync.Mutex
	// version is the data version the entries hold for; -1 before the
	// first batch and after a commit that failed.
	version  int64
	accounts map[string]*headEntry

	// Counts, for tests: reads served here and through SQLite, and the
	// times the cache was emptied.
	hits, misses, drops int
}

type headEntry struct {
	account ledger.Account
	// grants are the account's live grants in creation order; nil until
	// read (an account without any has an empty, non-nil slice).
	grants []ledger.Grant
}

func newHeads() *heads {
	return &heads{version: -1, accounts: make(map[string]*headEntry)}
}

// check empties the cache unless the file's data version is the one its
// entries hold for.
func (h *heads) check(version int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.version != version {
		if len(h.accounts) > 0 {
			h.drops++
		}
		clear(h.accounts)
		h.version = version
	}
}

// drop empties the cache until the next check: what the file holds is not
// known.
func (h *heads) drop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropLocked()
}

func (h *heads) dropLocked() {
	if len(h.accounts) > 0 {
		h.drops++
	}
	clear(h.accounts)
	h.version = -1
}

// commit runs commitTx, the SQL commit of a batch that wrote w (nil: one
// whose writes the cache cannot follow), and brings the cache to what the
// batch wrote if it committed, or empties it if not. The cache stays locked
// throughout: database/sql hands the connection to the next batch inside
// the commit, and that batch must not read the cache before it is known
// whether this one committed.
func (h *heads) commit(commitTx func() error, w *ledger.Writes) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := commitTx(); err != nil {
		h.dropLocked()
		return err
	}
	if w == nil {
		h.dropLocked()
		return nil
	}
	h.committedLocked(w)
	return nil
}

// lookAccounts returns the cached accounts of ids and the ids not cached.
func (h *heads) lookAccounts(ids []string) (found []ledger.Account, missing []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if e, ok := h.accounts[id]; ok {
			found = append(found, e.account)
		} else {
			missing = append(missing, id)
		}
	}
	h.hits += len(found)
	h.misses += len(missing)
	return found, missing
}

// putAccounts caches accounts read through SQLite.
func (h *heads) putAccounts(as []ledger.Account) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range as {
		if e, ok := h.accounts[a.ID]; ok {
			e.account = a
			continue
		}
		h.evict()
		h.accounts[a.ID] = &headEntry{account: a}
	}
}

// evict makes room for one more account: Go's map iteration starts at a
// random entry.
func (h *heads) evict() {
	if len(h.accounts) < headsMax {
		return
	}
	for id := range h.accounts {
		delete(h.accounts, id)
		return
	}
}

// lookGrants returns the cached live grants of accountIDs and the accounts
// whose grants are not cached.
func (h *heads) lookGrants(accountIDs []string) (found []ledger.Grant, missing []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range accountIDs {
		e, ok := h.accounts[id]
		if !ok || e.grants == nil {
			missing = append(missing, id)
			continue
		}
		found = append(found, e.grants...)
	}
	h.hits += len(accountIDs) - len(missing)
	h.misses += len(missing)
	return found, missing
}

// putGrants caches the live grants of accountIDs, read through SQLite, for
// those accounts that are cached.
func (h *heads) putGrants(accountIDs []string, gs []ledger.Grant) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range accountIDs {
		if e, ok := h.accounts[id]; ok {
			e.grants = []ledger.Grant{}
		}
	}
	for _, g := range gs {
		if e, ok := h.accounts[g.AccountID]; ok {
			e.grants = append(e.grants, g)
		}
	}
}

// committedLocked brings the cache to what a committed batch wrote: the
// accounts' heads and the grants' remaining credits, as the UPDATEs of
// Tx.write set them. An account that gained a grant, or whose grant is not where the
// cache expects it, has its grants read through SQLite next time, so that
// they come back as the file keeps them.
func (h *heads) committedLocked(w *ledger.Writes) {
	for i := range w.Accounts {
		if e, ok := h.accounts[w.Accounts[i].ID]; ok {
			e.account.Seq, e.account.Hash = w.Accounts[i].Seq, w.Accounts[i].Hash
		}
	}
	for i := range w.NewGrants {
		if e, ok := h.accounts[w.NewGrants[i].AccountID]; ok {
			e.grants = nil
		}
	}
	for i := range w.Grants {
		g := &w.Grants[i]
		e, ok := h.accounts[g.AccountID]
		if !ok || e.grants == nil {
			continue
		}
		j := slices.IndexFunc(e.grants, func(c ledger.Grant) bool { return c.ID == g.ID })
		if j < 0 {
			e.grants = nil
			continue
		}
		if g.Closed || g.Remaining <= 0 {
			e.grants = slices.Delete(e.grants, j, j+1)
			continue
		}
		e.grants[j].Remaining = g.Remaining
	}
}

// sortGrants puts grants in the order of the store's queries: by account,
// then creation, then id.
func sortGrants(gs []ledger.Grant) {
	slices.SortFunc(gs, func(a, b ledger.Grant) int {
		if c := strings.Compare(a.AccountID, b.AccountID); c != 0 {
			return c
		}
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
