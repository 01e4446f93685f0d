package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pressly/goose/v3"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// TestMigrateRebuildsJournalTables upgrades a database written at schema
// version 5, before holds, charges and transactions were rebuilt without
// their foreign key, and checks that every row, index and trigger survived.
func TestMigrateRebuildsJournalTables(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	old := fstest.MapFS{}
	err = fs.WalkDir(migrations, "migrations", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Compare(d.Name(), "00006") >= 0 {
			return err
		}
		b, err := migrations.ReadFile(p)
		old[d.Name()] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO accounts (id, created_at, seq, hash) VALUES ('a', 1, 2, 'h2')`,
		`INSERT INTO holds (id, account_id, amount, allocations, status, expires_at, created_at)
			VALUES ('hd_1', 'a', 5000000, '[{"grant_id":"g1","amount":5000000}]', 'open', 9000000000000000, 1)`,
		`INSERT INTO charges (id, account_id, amount, allocations, created_at)
			VALUES ('ch_1', 'a', 2000000, '[{"grant_id":"g1","amount":2000000}]', 2)`,
		`INSERT INTO transactions (id, account_id, seq, type, amount, hold_id, idempotency_key, created_at, hash)
			VALUES ('tx_1', 'a', 1, 'hold', 5000000, 'hd_1', 'k1', 1, 'h1'),
			       ('tx_2', 'a', 2, 'charge', 2000000, '', 'k2', 2, 'h2')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h, err := s.Hold(ctx, "hd_1")
	if err != nil {
		t.Fatal(err)
	}
	if h.AccountID != "a" || h.Amount != credit.Credits(5) || h.Status != ledger.HoldOpen || len(h.Allocations) != 1 {
		t.Errorf("hold after the upgrade: %+v", h)
	}
	open, err := s.OpenHolds(ctx, "a")
	if err != nil || len(open) != 1 {
		t.Errorf("open holds after the upgrade: %v, %v", open, err)
	}
	c, err := s.Charge(ctx, "ch_1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Amount != credit.Credits(2) || c.Allocations[0].GrantID != "g1" {
		t.Errorf("charge after the upgrade: %+v", c)
	}
	txs, err := s.Transactions(ctx, ledger.HistoryQuery{AccountID: "a", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(txs) != 2 || txs[0].ID != "tx_2" || txs[1].IdempotencyKey != "k1" {
		t.Errorf("journal after the upgrade: %+v", txs)
	}
	// Rows written before the journal recorded available credits have none.
	for _, tx := range txs {
		if tx.AvailableAfter != nil {
			t.Errorf("transaction %s written before the column records %s available", tx.ID, *tx.AvailableAfter)
		}
	}
	// The indexes and triggers were rebuilt with the tables.
	if _, err := s.writer.ExecContext(ctx, `INSERT INTO transactions (id, account_id, seq, type, amount, idempotency_key, created_at, hash)
		VALUES ('tx_3', 'a', 3, 'charge', 1, 'k1', 3, 'h3')`); err == nil {
		t.Error("a second transaction with key k1 was accepted")
	}
	if _, err := s.writer.ExecContext(ctx, `DELETE FROM transactions`); err == nil {
		t.Error("DELETE of transactions succeeded after the upgrade")
	}
}
