package billing

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/scriphq/scrip/internal/flight"
)

// subCacheEntriesMax bounds the cache (an entry is 136 bytes and its key);
// past it the cache starts empty again.
const subCacheEntriesMax = 100_000

// subReadTimeout bounds a read of a subscription that requests share.
const subReadTimeout = 10 * time.Second

// subCache keeps the plan terms of the subscriptions Plan read, for
// Options.PlanCacheAge, so that pricing a request does not read the store
// each time. Writes through the Service forget the account's entry; a
// generation number keeps a read that raced a write from putting back what
// the write replaced. Misses of the same account at once share one read
// (load).
type subCache struct {
	age   time.Duration
	mu    sync.Mutex
	gen   uint64
	m     map[string]cachedSub
	reads flight.Group[cachedSub]
}

// cachedSub is what decides an account's plan as read at at; found false:
// the account had no subscription.
type cachedSub struct {
	terms planTerms
	found bool
	at    time.Time
}

func newSubCache(age time.Duration) *subCache {
	if age <= 0 {
		return nil
	}
	c := &subCache{age: age, m: map[string]cachedSub{}}
	c.reads.Timeout = subReadTimeout
	return c
}

// load returns the account's entry from the cache while it is younger than
// the cache's age at now, else from read, and keeps what read returned.
// Misses of the account while a read of it is under way wait for that
// read, unless a write was forgotten since it began: a hot account's entry
// expires under every request in flight on it at once, and this process's
// own writes still show at once. Without a cache, load is read.
func (c *subCache) load(ctx context.Context, accountID string, now time.Time, read func(context.Context) (cachedSub, error)) (cachedSub, error) {
	if c == nil {
		return read(ctx)
	}
	e, ok, gen := c.get(accountID, now)
	if ok {
		return e, nil
	}
	return c.reads.Do(ctx, strconv.FormatUint(gen, 10)+" "+accountID, func(ctx context.Context) (cachedSub, error) {
		e, err := read(ctx)
		if err == nil {
			c.put(accountID, e, gen)
		}
		return e, err
	})
}

// get returns the entry of the account if it is younger than the cache's
// age at now, and the generation a read of the store must give put.
func (c *subCache) get(accountID string, now time.Time) (cachedSub, bool, uint64) {
	if c == nil {
		return cachedSub{}, false, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[accountID]
	if !ok || now.Sub(e.at) >= c.age || now.Before(e.at) {
		return cachedSub{}, false, c.gen
	}
	return e, true, c.gen
}

// put keeps what a read of the store returned, unless a write was
// forgotten since the generation gen was handed out.
func (c *subCache) put(accountID string, e cachedSub, gen uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.m) >= subCacheEntriesMax {
		c.m = map[string]cachedSub{}
	}
	c.m[accountID] = e
}

// forget drops the account's entry after a write to its subscription.
func (c *subCache) forget(accountID string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.m, accountID)
}
