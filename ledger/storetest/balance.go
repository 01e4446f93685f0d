package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriphq/scrip/ledger"
)

// testBalanceWhileWriting reads an account's balance while holds are placed
// on it and released: credits only move between available and held, so
// every balance must show their sum unchanged. A balance whose grants and
// holds were read at different moments shows a hold's credits twice, or
// not at all.
func testBalanceWhileWriting(t *testing.T, open Open) {
	e := newEnv(t, open)
	e.account("u")
	e.grant("u", ledger.KindTopUp, "100", time.Time{})
	want := amt("100")

	const pairs = 150
	ctx, stop := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	var reads, holding atomic.Int64 // balances read, and those that saw a hold
	torn := make(chan ledger.Balance, 1)
	for range 3 {
		wg.Go(func() {
			for ctx.Err() == nil {
				b, err := e.eng.Balance(ctx, "u")
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("balance: %v", err)
					}
					return
				}
				reads.Add(1)
				if b.Held != 0 {
					holding.Add(1)
				}
				if b.Available+b.Held != want {
					select {
					case torn <- b:
					default:
					}
					return
				}
			}
		})
	}
	for i := range pairs {
		h, err := e.eng.Hold(e.ctx, ledger.HoldRequest{AccountID: "u", Key: e.key(), Amount: amt("10")})
		if err != nil {
			t.Fatalf("hold %d: %v", i, err)
		}
		if _, err := e.eng.Release(e.ctx, ledger.ReleaseRequest{HoldID: h.Hold.ID, Key: e.key()}); err != nil {
			t.Fatalf("release %d: %v", i, err)
		}
		if len(torn) > 0 {
			break
		}
	}
	stop()
	wg.Wait()
	select {
	case b := <-torn:
		t.Fatalf("a balance showed %s available and %s held; the two always add up to %s", b.Available, b.Held, want)
	default:
	}
	// Reads that never overlapped a hold would prove nothing.
	if holding.Load() == 0 {
		t.Fatalf("none of %d balance reads during %d holds and releases saw a hold", reads.Load(), pairs)
	}
	t.Logf("%d balance reads during %d holds and releases, %d of them during a hold", reads.Load(), pairs, holding.Load())
}
