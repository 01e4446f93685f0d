package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/postgres"
	"github.com/scriphq/scrip/postgres/pgtest"
)

// TestAccountStateAfterServerError checks that a balance read which fails
// inside its transaction (here a lock timeout on the holds, which another
// session has locked) rolls the transaction back and gives its connection
// back to the pool in use, rather than have the pool close it and open
// another; and that a missing account leaves it there too.
func TestAccountStateAfterServerError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	s, err := postgres.Open(ctx, withParams(url, "pool_max_conns=1&lock_timeout=200"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	createAccounts(t, s, "u")
	pid := func() uint32 {
		t.Helper()
		c, err := postgres.Pool(s).Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		return c.Conn().PgConn().PID()
	}
	first := pid()

	if _, err := s.AccountState(ctx, "nobody"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("state of a missing account: %v, want ErrNotFound", err)
	}
	if p := pid(); p != first {
		t.Fatalf("after a missing account the pool's connection is backend %d, was %d", p, first)
	}

	locker, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	if _, err := locker.Exec(ctx, `BEGIN; LOCK TABLE holds IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AccountState(ctx, "u"); err == nil || !strings.Contains(err.Error(), "lock timeout") {
		t.Fatalf("state of an account whose holds are locked: %v, want a lock timeout", err)
	}
	if _, err := locker.Exec(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if p := pid(); p != first {
		t.Fatalf("after a read that failed in its transaction the pool's connection is backend %d, was %d", p, first)
	}
	st, err := s.AccountState(ctx, "u")
	if err != nil || st.Account.ID != "u" {
		t.Fatalf("state after the lock = %+v, %v", st, err)
	}
}
