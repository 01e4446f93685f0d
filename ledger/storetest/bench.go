package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// BenchBalance measures Engine.Balance on store, one reader at a time and
// with as many readers as GOMAXPROCS, for an account with three live
// grants and two open holds.
func BenchBalance(b *testing.B, store ledger.Store) {
	ctx := context.Background()
	eng := ledger.NewEngine(store, ledger.Options{SweepEvery: -1})
	b.Cleanup(func() { eng.Close(ctx) })
	if _, _, err := eng.CreateAccount(ctx, "u", nil); err != nil {
		b.Fatal(err)
	}
	for i := range 3 {
		if _, err := eng.Grant(ctx, ledger.GrantRequest{AccountID: "u", Key: fmt.Sprint("g", i), Kind: ledger.KindTopUp,
			Amount: credit.Credits(int64(10 + i))}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 2 {
		if _, err := eng.Hold(ctx, ledger.HoldRequest{AccountID: "u", Key: fmt.Sprint("h", i), Amount: credit.Credits(3)}); err != nil {
			b.Fatal(err)
		}
	}
	read := func() error {
		bal, err := eng.Balance(ctx, "u")
		if err == nil && (len(bal.Grants) != 3 || bal.Held != credit.Credits(6)) {
			err = fmt.Errorf("balance shows %d grants and %s held, want 3 and 6", len(bal.Grants), bal.Held)
		}
		return err
	}
	b.Run("readers=1", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := read(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("readers=GOMAXPROCS", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := read(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
