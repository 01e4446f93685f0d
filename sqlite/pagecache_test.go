package sqlite

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func TestMain(m *testing.M) {
	// Every test of the package runs on the store's page cache, set before
	// any connection initializes SQLite.
	installPageCache()
	os.Exit(m.Run())
}

// TestPageCacheKeepsBound writes rows under random keys in transactions
// that split pages, committing some and rolling back others, with the
// wrapped page cache: SQLite moves pages through the temporary number, the
// bound is kept, so that no commit walks the whole cache, and the file
// stays sound with exactly the committed rows, rollbacks included. It does
// not run in parallel: the counters are the process's.
func TestPageCacheKeepsBound(t *testing.T) {
	if !pageCacheInstalled {
		t.Fatal("the page cache was not installed before SQLite initialized")
	}
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "split.db")+"?_pragma=journal_mode(WAL)&_pragma=cache_size(-65536)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, v BLOB NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	kept, walks := boundsKept.Load(), fullWalks.Load()
	committed := 0
	for round := range 12 {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for range 400 {
			if _, err := tx.Exec(`INSERT INTO t (k, v) VALUES (?, randomblob(200))`, fmt.Sprintf("%016x", rng.Uint64())); err != nil {
				t.Fatal(err)
			}
		}
		if round%3 == 2 {
			err = tx.Rollback()
		} else {
			err = tx.Commit()
			committed += 400
		}
		if err != nil {
			t.Fatal(err)
		}
		var n int
		var check string
		if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil {
			t.Fatal(err)
		}
		if n != committed || check != "ok" {
			t.Fatalf("round %d: %d rows (want %d), integrity check %q", round, n, committed, check)
		}
	}
	if boundsKept.Load() == kept {
		t.Error("no page moved through the temporary number: the test no longer exercises the wrapper")
	}
	if n := fullWalks.Load() - walks; n > 0 {
		t.Errorf("%d truncations walked the whole cache", n)
	}
}
