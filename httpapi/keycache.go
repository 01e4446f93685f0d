package httpapi

import (
	"context"
	"sync"
	"time"

	"github.com/scriphq/scrip/httpapi/auth"
	"github.com/scriphq/scrip/internal/flight"
)

// keyCacheEntriesMax bounds the cache; past it, it starts over empty.
const keyCacheEntriesMax = 10_000

// keyReadTimeout bounds a read of the key store that requests share.
const keyReadTimeout = 10 * time.Second

// keyCache keeps verified keys for a short time, so a request does not read
// the key store and hash its secret again. A revocation made elsewhere takes
// effect on this process once the entry is older than the cache's age.
// Requests that miss the same secret at once share one read of the store
// (load).
type keyCache struct {
	age   time.Duration
	mu    sync.Mutex
	m     map[string]cachedKey // by the full secret
	reads flight.Group[auth.Key]
}

type cachedKey struct {
	key auth.Key
	at  time.Time
}

func newKeyCache(age time.Duration) *keyCache {
	if age <= 0 {
		return nil
	}
	c := &keyCache{age: age, m: map[string]cachedKey{}}
	c.reads.Timeout = keyReadTimeout
	return c
}

// load returns the key of secret from the cache while its entry is younger
// than the cache's age at now, else from read, and keeps what read
// verified. Misses of the same secret while a read of it is under way wait
// for that read: when an entry expires every request in flight with that
// key misses it together. Without a cache, load is read.
func (c *keyCache) load(ctx context.Context, secret string, now time.Time, read func(context.Context) (auth.Key, error)) (auth.Key, error) {
	if c == nil {
		return read(ctx)
	}
	if k, ok := c.get(secret, now); ok {
		return k, nil
	}
	return c.reads.Do(ctx, secret, func(ctx context.Context) (auth.Key, error) {
		k, err := read(ctx)
		if err == nil {
			c.put(secret, k, now)
		}
		return k, err
	})
}

func (c *keyCache) get(secret string, now time.Time) (auth.Key, bool) {
	if c == nil {
		return auth.Key{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[secret]
	if !ok || now.Sub(e.at) >= c.age || now.Before(e.at) {
		return auth.Key{}, false
	}
	return e.key, true
}

func (c *keyCache) put(secret string, k auth.Key, now time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= keyCacheEntriesMax {
		c.m = map[string]cachedKey{}
	}
	c.m[secret] = cachedKey{key: k, at: now}
}
