package postgres_test

import (
	"testing"

	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/ledger/storetest"
	"github.com/scriphq/scrip/postgres"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ledger.Store { return openStore(t) })
}

// TestStoreJournalByCopy runs the conformance suite with every batch's
// journal written with COPY, which the store otherwise keeps for batches
// larger than the suite's.
func TestStoreJournalByCopy(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ledger.Store {
		s := openStore(t)
		postgres.SetJournalCopyRowsMin(s, 1)
		return s
	})
}
