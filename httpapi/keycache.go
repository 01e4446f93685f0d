package httpapi

import (
	"sync"
	"time"

	"github.com/scriphq/scrip/httpapi/auth"
)

// keyCacheEntriesMax bounds the cache; past it, it starts over empty.
const keyCacheEntriesMax = 10_000

// keyCache keeps verified keys for a short time, so a request does not read
// the key store and hash its secret again. A revocation made elsewhere takes
// effect on this process once the entry is older than the cache's age.
type keyCache struct {
	age time.Duration
	mu  sync.Mutex
	m   map[string]cachedKey // by the full secret
}

type cachedKey struct {
	key auth.Key
	at  time.Time
}

func newKeyCache(age time.Duration) *keyCache {
	if age <= 0 {
		return nil
	}
	return &keyCache{age: age, m: map[string]cachedKey{}}
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
