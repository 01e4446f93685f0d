package postgres_test

import (
	"context"
	"testing"

	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/ledger/storetest"
	"github.com/scriphq/scrip/postgres"
	"github.com/scriphq/scrip/postgres/pgtest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ledger.Store {
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
