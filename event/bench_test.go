package event_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/event"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/postgres"
	"github.com/scriphq/scrip/postgres/pgtest"
	"github.com/scriphq/scrip/sqlite"
)

// BenchmarkWatcherJournal reads back a journal of 2,000 accounts, each
// funded by a grant and then charged, as the watcher of a server does
// after a burst of sign-ups: every grant.created with its grant, every
// account's balance and alert state. One op is the whole journal; the
// events are published once before the clock starts, so each op makes the
// reads and finds the events already there. With closed=12 each account
// also has a year of expired monthly grants behind it, which the page
// does not name.
func BenchmarkWatcherJournal(b *testing.B) {
	for _, closed := range []int{0, 12} {
		b.Run(fmt.Sprintf("sqlite/closed=%d", closed), func(b *testing.B) {
			s, err := sqlite.Open(filepath.Join(b.TempDir(), "scrip.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchWatcher(b, s, s.Outbox(), closed)
		})
		b.Run(fmt.Sprintf("postgres/closed=%d", closed), func(b *testing.B) {
			s, err := postgres.Open(context.Background(), pgtest.URL(b))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchWatcher(b, s, s.Outbox(), closed)
		})
	}
}

func benchWatcher(b *testing.B, st ledger.Store, outbox event.Store, closed int) {
	const accounts = 2000
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// The history is a year before the journal the watcher reads.
	clock := ledger.NewManualClock(start.AddDate(-1, 0, 0))
	eng := ledger.NewEngine(st, ledger.Options{Clock: clock, SweepEvery: -1})
	defer eng.Close(ctx)
	// Many clients at once, so that the engine batches the set-up.
	parallel := func(each func(id string) error) {
		b.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for c := range 64 {
			wg.Go(func() {
				for i := c; i < accounts; i += 64 {
					if err := each(fmt.Sprintf("acct_%05d", i)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	parallel(func(id string) error {
		_, _, err := eng.CreateAccount(ctx, id, nil)
		for m := range closed {
			if err != nil {
				break
			}
			_, err = eng.Grant(ctx, ledger.GrantRequest{AccountID: id, Key: fmt.Sprintf("m%d_%s", m, id), Kind: ledger.KindSubscription,
				Amount: credit.Credits(50), ExpiresAt: clock.Now().Add(time.Duration(m+1) * 24 * time.Hour)})
		}
		return err
	})
	if closed > 0 {
		clock.Set(start.Add(-time.Hour))
		for {
			n, err := eng.ExpireDue(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
	}
	clock.Set(start)
	parallel(func(id string) error {
		if _, err := eng.Grant(ctx, ledger.GrantRequest{AccountID: id, Key: "g_" + id, Kind: ledger.KindTopUp, Amount: credit.Credits(100)}); err != nil {
			return err
		}
		_, err := eng.Charge(ctx, ledger.ChargeRequest{AccountID: id, Key: "c_" + id, Amount: credit.Credits(3)})
		return err
	})
	w := event.NewWatcher(outbox, eng, event.WatcherOptions{Clock: clock, Since: start.Add(-time.Second), Settle: time.Second,
		Thresholds: event.Thresholds{Default: credit.Credits(20)}})
	clock.Advance(2 * time.Second)
	if n, err := w.Poll(ctx); err != nil || n != accounts {
		b.Fatalf("first poll: %d events (want %d), %v", n, accounts, err)
	}
	from := fmt.Sprintf(`{"at":%q,"id":""}`, start.Add(-time.Second).Format(time.RFC3339Nano))
	for b.Loop() {
		if err := outbox.SetState(ctx, "journal", from); err != nil {
			b.Fatal(err)
		}
		if n, err := w.Poll(ctx); err != nil || n != 0 {
			b.Fatalf("poll: %d new events, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/accounts, "µs/account")
}

// BenchmarkWatcherBacklog reads back a journal of 20,000 charges over
// 1,000 accounts, written at 10,000 a second, as the watcher of a server
// does that fell behind by a burst: 40 pages, their balances and alert
// states. One op is the whole backlog, read by as many polls as it takes.
func BenchmarkWatcherBacklog(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		s, err := sqlite.Open(filepath.Join(b.TempDir(), "scrip.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchBacklog(b, s, s.Outbox())
	})
	b.Run("postgres", func(b *testing.B) {
		s, err := postgres.Open(context.Background(), pgtest.URL(b))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchBacklog(b, s, s.Outbox())
	})
}

func benchBacklog(b *testing.B, st ledger.Store, outbox event.Store) {
	const (
		accounts = 1000
		charges  = 20000
		clients  = 100 // charges a millisecond
	)
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := ledger.NewManualClock(start)
	eng := ledger.NewEngine(st, ledger.Options{Clock: clock, SweepEvery: -1})
	defer eng.Close(ctx)
	for i := range accounts {
		id := fmt.Sprintf("acct_%05d", i)
		if _, _, err := eng.CreateAccount(ctx, id, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := eng.Grant(ctx, ledger.GrantRequest{AccountID: id, Key: "g", Kind: ledger.KindTopUp, Amount: credit.Credits(1000)}); err != nil {
			b.Fatal(err)
		}
	}
	for r := range charges / clients {
		reqs := make([]ledger.ChargeRequest, clients)
		for c := range reqs {
			n := r*clients + c
			reqs[c] = ledger.ChargeRequest{AccountID: fmt.Sprintf("acct_%05d", n%accounts), Key: fmt.Sprint("c", n), Amount: credit.Credits(1)}
		}
		chargeAtOnce(b, eng, reqs)
		clock.Advance(time.Millisecond)
	}
	clock.Advance(2 * time.Second)
	w := event.NewWatcher(outbox, eng, event.WatcherOptions{Clock: clock, Since: start.Add(-time.Second), Settle: time.Second,
		Thresholds: event.Thresholds{Default: credit.Credits(20)}})
	from := fmt.Sprintf(`{"at":%q,"id":""}`, start.Add(-time.Second).Format(time.RFC3339Nano))
	for b.Loop() {
		if err := outbox.SetState(ctx, "journal", from); err != nil {
			b.Fatal(err)
		}
		for prev := ""; ; {
			if _, err := w.Poll(ctx); err != nil {
				b.Fatal(err)
			}
			cur, err := outbox.State(ctx, "journal")
			if err != nil {
				b.Fatal(err)
			}
			if cur == prev {
				break
			}
			prev = cur
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/charges, "µs/row")
}
