package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// Under writes that never pause, the background checkpoints never catch up
// with the last frame; the write-ahead log must still start over once it
// passes its bound, instead of growing with everything written.
func TestLogBoundedUnderSustainedWrites(t *testing.T) {
	const (
		walFrames = 256
		accounts  = 1000
		clients   = 64
		charges   = 6000
	)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scrip.db")
	s, err := open(path, walFrames)
	if err != nil {
		t.Fatal(err)
	}
	e := ledger.NewEngine(s, ledger.Options{BatchSizeMax: 32})
	defer func() {
		if err := e.Close(ctx); err != nil {
			t.Error(err)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	for i := range accounts {
		id := fmt.Sprintf("acct-%03d", i)
		if _, _, err := e.CreateAccount(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Grant(ctx, ledger.GrantRequest{AccountID: id, Key: "fund", Kind: ledger.KindTopUp, Amount: credit.Credits(1_000_000)}); err != nil {
			t.Fatal(err)
		}
	}

	walSize := func() int64 {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		maxWAL  int64
		failure error
	)
	next := make(chan int)
	go func() {
		for i := range charges {
			next <- i
		}
		close(next)
	}()
	for range clients {
		wg.Go(func() {
			for i := range next {
				_, err := e.Charge(ctx, ledger.ChargeRequest{
					AccountID: fmt.Sprintf("acct-%03d", i%accounts),
					Key:       fmt.Sprintf("charge-%d", i),
					Amount:    credit.Credits(1),
				})
				mu.Lock()
				if err != nil && failure == nil {
					failure = err
				}
				maxWAL = max(maxWAL, walSize())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failure != nil {
		t.Fatal(failure)
	}

	// The log may exceed the bound by what one batch writes before its
	// commit checkpoints; without the bound it grows with everything the
	// run writes, several times this.
	var pageSize int64
	if err := s.writer.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	frame := pageSize + 24
	if limit := 2 * walFrames * frame; maxWAL > limit {
		t.Errorf("write-ahead log reached %d bytes (%d frames); bound %d frames", maxWAL, maxWAL/frame, walFrames)
	}
	t.Logf("largest write-ahead log: %d frames", maxWAL/frame)

	rep, err := e.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify: %+v", rep)
	}
}
