package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/ledger/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ledger.Store {
		s, err := Open(filepath.Join(t.TempDir(), "scrip.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// The suite again, with every read the writer's cache serves read through
// SQLite as well: a difference fails the batch, and the test.
func TestStoreCheckedCache(t *testing.T) {
	if testing.Short() {
		t.Skip("the file-backed run covers the suite in -short mode")
	}
	storetest.Run(t, func(t *testing.T) ledger.Store {
		s, err := Open(filepath.Join(t.TempDir(), "scrip.db"))
		if err != nil {
			t.Fatal(err)
		}
		s.checkHeads = true
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestStoreMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("the file-backed run covers the suite in -short mode")
	}
	storetest.Run(t, func(t *testing.T) ledger.Store {
		s, err := Open(Memory)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
