package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scriphq/scrip/httpapi"
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
