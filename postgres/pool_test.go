package postgres_test

import (
	"context"
	neturl "net/url"
	"testing"
	"time"

	"github.com/scriphq/scrip/postgres"
	"github.com/scriphq/scrip/postgres/pgtest"
)

// TestWarmPool checks that Options.WarmPool opens the whole pool without
// waiting for queries to need it, that pool_min_conns in the URL takes
// precedence, as does its lifetime jitter, and that without the option the
// pool grows only on demand.
func TestWarmPool(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	open := func(t *testing.T, params string, opt postgres.Options) *postgres.Store {
		s, err := postgres.OpenWith(context.Background(), withParams(url, params), opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	// conns waits until the pool holds at least want connections or a
	// minute has passed, and returns how many it holds.
	conns := func(s *postgres.Store, want int32) int32 {
		deadline := time.Now().Add(time.Minute)
		for {
			n := postgres.Pool(s).Stat().TotalConns()
			if n >= want || time.Now().After(deadline) {
				return n
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// The store's own queries at Open (its migrations) take at most two
	// connections at once.
	const opened = 2

	t.Run("warm", func(t *testing.T) {
		s := open(t, "pool_max_conns=6", postgres.Options{WarmPool: true})
		if n := conns(s, 6); n != 6 {
			t.Fatalf("a warm pool of 6 holds %d connections", n)
		}
		cfg := postgres.Pool(s).Config()
		if cfg.MaxConnLifetimeJitter != cfg.MaxConnLifetime/5 {
			t.Fatalf("a warm pool's connections end their lifetime of %v spread over %v, want a fifth of it",
				cfg.MaxConnLifetime, cfg.MaxConnLifetimeJitter)
		}
	})
	t.Run("url's parameters", func(t *testing.T) {
		s := open(t, "pool_max_conns=6&pool_min_conns=4&pool_max_conn_lifetime_jitter=1m", postgres.Options{WarmPool: true})
		if n := postgres.Pool(s).Config().MinConns; n != 4 {
			t.Fatalf("a warm pool with pool_min_conns=4 in its URL keeps at least %d connections", n)
		}
		if j := postgres.Pool(s).Config().MaxConnLifetimeJitter; j != time.Minute {
			t.Fatalf("a warm pool with pool_max_conn_lifetime_jitter=1m in its URL has %v", j)
		}
		if n := conns(s, 4); n < 4 {
			t.Fatalf("a pool with pool_min_conns=4 holds %d connections", n)
		}
	})
	t.Run("the parameter's name elsewhere in the URL", func(t *testing.T) {
		// A password (which trust authentication ignores) that reads like
		// a pool parameter sets none.
		withPassword := url + " password=pool_min_conns"
		if u, err := neturl.Parse(url); err == nil && u.Scheme != "" {
			u.User = neturl.UserPassword(u.User.Username(), "pool_min_conns")
			withPassword = u.String()
		}
		s, err := postgres.OpenWith(context.Background(), withPassword, postgres.Options{WarmPool: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if cfg := postgres.Pool(s).Config(); cfg.MinConns != cfg.MaxConns {
			t.Fatalf("a warm pool whose URL sets no pool_min_conns keeps %d of its %d connections", cfg.MinConns, cfg.MaxConns)
		}
	})
	t.Run("lazy", func(t *testing.T) {
		s := open(t, "pool_max_conns=6", postgres.Options{})
		time.Sleep(200 * time.Millisecond) // what a warm pool would open, it has begun to
		if n := postgres.Pool(s).Config().MinConns; n != 0 {
			t.Fatalf("a pool without WarmPool keeps at least %d connections", n)
		}
		if n := postgres.Pool(s).Stat().TotalConns(); n > opened {
			t.Fatalf("a pool without WarmPool holds %d connections after Open, want at most %d", n, opened)
		}
	})
}
