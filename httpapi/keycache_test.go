package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriphq/scrip/httpapi"
	"github.com/scriphq/scrip/httpapi/auth"
)

// TestKeyCache checks that a verified key is trusted for the cache's age
// and no longer: a revocation reaches the server within that window.
func TestKeyCache(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, b.open, func(cfg *httpapi.Config) { cfg.KeyCacheAge = 5 * time.Second })
			e.account("u1", 10)
			e.expect(e.get("/v1/accounts/u1/balance", e.read), http.StatusOK, "")
			id := strings.SplitN(strings.TrimPrefix(e.read, "sk_"), "_", 2)[0]
			if err := e.store.RevokeKey(t.Context(), id, e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			// Still trusted from the cache...
			e.expect(e.get("/v1/accounts/u1/balance", e.read), http.StatusOK, "")
			// ... until the entry is as old as the cache's age.
			e.clock.Advance(5 * time.Second)
			e.expect(e.get("/v1/accounts/u1/balance", e.read), http.StatusUnauthorized, "unauthorized")
			// A wrong secret with a known id is never served from the cache.
			e.expect(e.get("/v1/accounts/u1/balance", e.admin+"x"), http.StatusUnauthorized, "unauthorized")
		})
	}
}

// blockingKeys counts the reads of keys and, once armed, holds the first
// read until released.
type blockingKeys struct {
	auth.KeyStore
	reads   atomic.Int32
	armed   atomic.Bool
	started chan struct{}
	release chan struct{}
}

func (k *blockingKeys) Key(ctx context.Context, id string) (auth.Key, error) {
	k.reads.Add(1)
	if k.armed.CompareAndSwap(true, false) {
		close(k.started)
		<-k.release
	}
	return k.KeyStore.Key(ctx, id)
}

// TestKeyCacheSharesReads checks that requests that find a key's entry
// expired at the same moment make one read of the key store between them,
// not one each, and are all answered.
func TestKeyCacheSharesReads(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			keys := &blockingKeys{started: make(chan struct{}), release: make(chan struct{})}
			e := newEnv(t, b.open, func(cfg *httpapi.Config) {
				keys.KeyStore = cfg.Keys
				cfg.Keys = keys
				cfg.KeyCacheAge = 5 * time.Second
			})
			e.account("u1", 10)
			e.expect(e.get("/v1/accounts/u1/balance", e.read), http.StatusOK, "")
			e.clock.Advance(5 * time.Second)
			keys.reads.Store(0)
			keys.armed.Store(true)

			const requests = 16
			statuses := make([]int, requests)
			var wg sync.WaitGroup
			for i := range requests {
				wg.Go(func() {
					req, _ := http.NewRequest("GET", e.srv.URL+"/v1/accounts/u1/balance", nil)
					req.Header.Set("Authorization", "Bearer "+e.read)
					resp, err := e.srv.Client().Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					statuses[i] = resp.StatusCode
				})
			}
			<-keys.started
			// The other requests reach the expired entry meanwhile and
			// wait for the read under way.
			time.Sleep(100 * time.Millisecond)
			close(keys.release)
			wg.Wait()
			for i, s := range statuses {
				if s != http.StatusOK {
					t.Fatalf("request %d: status %d, want 200", i, s)
				}
			}
			if n := keys.reads.Load(); n != 1 {
				t.Fatalf("%d requests on an expired entry read the key store %d times, want 1", requests, n)
			}
		})
	}
}
