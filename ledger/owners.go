package ledger

import "sync"

// ownersMaxDefault bounds each generation of the owners cache.
const ownersMaxDefault = 1 << 16

// owners remembers the account of the holds this engine created, so that
// a capture or release is routed to its account's committer without first
// reading the hold from the store. (Charges are not kept: most are never
// refunded, and a refund reads its charge.) An id's account never changes, so an entry is never stale; a miss
// (an older id, or one created by another process) reads the store.
//
// Two generations bound the memory: when the current one is full it
// becomes the old one and the previous old one is dropped, so the most
// recent ids, which are the ones about to be settled, stay.
type owners struct {
	mu       sync.Mutex
	cur, old map[string]string
	max      int
}

func newOwners(max int) *owners {
	return &owners{cur: make(map[string]string), max: max}
}

func (o *owners) get(id string) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if a, ok := o.cur[id]; ok {
		return a, true
	}
	a, ok := o.old[id]
	return a, ok
}

func (o *owners) put(id, accountID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.cur) >= o.max {
		o.old, o.cur = o.cur, make(map[string]string, o.max)
	}
	o.cur[id] = accountID
}
