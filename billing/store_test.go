package billing_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/scriphq/scrip/billing/billingtest"
	"github.com/scriphq/scrip/postgres"
	"github.com/scriphq/scrip/postgres/pgtest"
	"github.com/scriphq/scrip/sqlite"
)

func TestSQLite(t *testing.T) {
	billingtest.Run(t, func(t *testing.T) (billingtest.Store, func() billingtest.Store) {
		path := filepath.Join(t.TempDir(), "scrip.db")
		open := func() billingtest.Store {
			s, err := sqlite.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return open(), open
	})
}

func TestPostgres(t *testing.T) {
	billingtest.Run(t, func(t *testing.T) (billingtest.Store, func() billingtest.Store) {
		url := pgtest.URL(t)
		open := func() billingtest.Store {
			s, err := postgres.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return open(), open
	})
}
