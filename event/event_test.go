package event_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/event"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/postgres"
	"github.com/scriphq/scrip/postgres/pgtest"
	"github.com/scriphq/scrip/sqlite"
)

type stores struct {
	ledger ledger.Store
	outbox event.Store
}

// eachStore runs fn on SQLite and on PostgreSQL.
func eachStore(t *testing.T, fn func(t *testing.T, s stores)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		s, err := sqlite.Open(filepath.Join(t.TempDir(), "scrip.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, stores{s, s.Outbox()})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, stores{s, s.Outbox()})
	})
}

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"id":"evt_1"}`)
	sig := event.Sign("secret_0123456789", now, body)
	if !strings.HasPrefix(sig, "t=1700000000,v1=") {
		t.Fatalf("signature %q", sig)
	}
	if err := event.Verify("secret_0123456789", sig, body, time.Minute, now.Add(time.Second)); err != nil {
		t.Errorf("valid signature refused: %v", err)
	}
	for name, err := range map[string]error{
		"other secret": event.Verify("secret_other_000000", sig, body, time.Minute, now),
		"other body":   event.Verify("secret_0123456789", sig, []byte(`{"id":"evt_2"}`), time.Minute, now),
		"too old":      event.Verify("secret_0123456789", sig, body, time.Minute, now.Add(time.Hour)),
		"malformed":    event.Verify("secret_0123456789", "garbage", body, time.Minute, now),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if event.ID("grant.created", "tx_1") != event.ID("grant.created", "tx_1") || event.ID("grant.created", "tx_1") == event.ID("hold.expired", "tx_1") {
		t.Error("event ids are not stable per type and cause")
	}
}

// receiver fails the first failures requests, then accepts; it checks each
// signature.
type receiver struct {
	mu       sync.Mutex
	secret   string
	failures int
	got      []string // event ids accepted
	requests int
	badSig   int
	bad      []string // why each badly signed request was refused, and what sent it
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	if err := event.Verify(rc.secret, r.Header.Get(event.SignatureHeader), body, 5*time.Minute, time.Now()); err != nil {
		rc.badSig++
		rc.bad = append(rc.bad, fmt.Sprintf("%v (%s %s from %q, event %q)", err, r.Method, r.URL.Path, r.UserAgent(), r.Header.Get("Scrip-Event-Id")))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if rc.requests <= rc.failures {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var e event.Event
	json.Unmarshal(body, &e)
	rc.got = append(rc.got, e.ID)
	w.WriteHeader(http.StatusNoContent)
}

// TestRunDrainsBacklog: a backlog larger than a claim is delivered at
// once, without waiting a poll per claim, and each delivery's attempt and
// state are recorded.
func TestRunDrainsBacklog(t *testing.T) {
	eachStore(t, func(t *testing.T, s stores) {
		ctx := context.Background()
		var mu sync.Mutex
		got := map[string]int{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got[r.Header.Get("Scrip-Event-Id")]++
			mu.Unlock()
		}))
		defer srv.Close()
		at := time.Now().Add(-time.Minute)
		if _, err := event.AddEndpoint(ctx, s.outbox, srv.URL, "", []string{"*"}, at); err != nil {
			t.Fatal(err)
		}
		const backlog = 300 // claims of 16 (4 × 4)
		var evs []event.Event
		for i := range backlog {
			e, err := event.New(event.GrantCreated, fmt.Sprint("tx_backlog_", i), "acct_b", at, map[string]any{"i": i})
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, e)
		}
		if n, err := s.outbox.Publish(ctx, evs); err != nil || n != backlog {
			t.Fatalf("publish: %d, %v", n, err)
		}
		// Polls an hour apart: only the first poll's claims can deliver.
		d := event.NewDispatcher(s.outbox, event.DispatcherOptions{Concurrency: 4, PollEvery: time.Hour})
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- d.Run(runCtx) }()
		delivered := func() int {
			mu.Lock()
			defer mu.Unlock()
			return len(got)
		}
		for wait := time.Now().Add(30 * time.Second); delivered() < backlog && time.Now().Before(wait); {
			time.Sleep(10 * time.Millisecond)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := delivered(); n != backlog {
			t.Fatalf("%d of %d events delivered by the first poll", n, backlog)
		}
		mu.Lock()
		defer mu.Unlock()
		for id, n := range got {
			if n != 1 {
				t.Errorf("%s delivered %d times", id, n)
			}
		}
		for _, i := range []int{0, 15, 16, 299} {
			det, err := event.Show(ctx, s.outbox, evs[i].ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(det.Deliveries) != 1 || det.Deliveries[0].Status != event.Delivered || det.Deliveries[0].Attempts != 1 ||
				len(det.Attempts) != 1 || det.Attempts[0].StatusCode != 200 || det.Attempts[0].Number != 1 {
				t.Errorf("event %d: deliveries %+v, attempts %+v; want one delivered on its first attempt", i, det.Deliveries, det.Attempts)
			}
		}
	})
}

// TestDeliverDueStopping: a dispatcher stopped in the middle of a claim
// finishes and records the requests in flight and gives back the rest, due
// at once, for any dispatcher to send.
func TestDeliverDueStopping(t *testing.T) {
	eachStore(t, func(t *testing.T, s stores) {
		ctx := context.Background()
		var mu sync.Mutex
		got := map[string]int{}
		started, release := make(chan struct{}, 16), make(chan struct{})
		var hold sync.Once
		blocking := true
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got[r.Header.Get("Scrip-Event-Id")]++
			b := blocking
			mu.Unlock()
			if b {
				started <- struct{}{}
				<-release
			}
		}))
		defer srv.Close()
		defer hold.Do(func() { close(release) })
		at := time.Now().Add(-time.Minute)
		if _, err := event.AddEndpoint(ctx, s.outbox, srv.URL, "", []string{"*"}, at); err != nil {
			t.Fatal(err)
		}
		var evs []event.Event
		for i := range 10 {
			e, err := event.New(event.GrantCreated, fmt.Sprint("tx_stop_", i), "acct_s", at.Add(time.Duration(i)*time.Millisecond), map[string]any{"i": i})
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, e)
		}
		if _, err := s.outbox.Publish(ctx, evs); err != nil {
			t.Fatal(err)
		}
		d := event.NewDispatcher(s.outbox, event.DispatcherOptions{Concurrency: 2}) // claims 8
		runCtx, stop := context.WithCancel(ctx)
		type result struct {
			n   int
			err error
		}
		done := make(chan result, 1)
		go func() {
			n, err := d.DeliverDue(runCtx)
			done <- result{n, err}
		}()
		<-started
		<-started // both requests of the first round are in flight
		// Stopped before a slot frees: the claim starts nothing more.
		stop()
		mu.Lock()
		blocking = false
		mu.Unlock()
		hold.Do(func() { close(release) })
		r := <-done
		if r.err != nil || r.n != 8 {
			t.Fatalf("DeliverDue: %d claimed, %v; want 8", r.n, r.err)
		}
		mu.Lock()
		sent := len(got)
		mu.Unlock()
		if sent != 2 {
			t.Fatalf("%d deliveries sent after the stop, want the 2 in flight", sent)
		}
		// The 6 given back and the 2 never claimed are due now.
		n, err := event.NewDispatcher(s.outbox, event.DispatcherOptions{}).DeliverDue(ctx)
		if err != nil || n != 8 {
			t.Fatalf("next dispatcher: %d deliveries, %v; want 8", n, err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range evs {
			det, err := event.Show(ctx, s.outbox, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			if dl := det.Deliveries[0]; dl.Status != event.Delivered || dl.Attempts != 1 || len(det.Attempts) != 1 || got[e.ID] != 1 {
				t.Errorf("%s: %+v, %d attempts recorded, sent %d times; want delivered once", e.ID, dl, len(det.Attempts), got[e.ID])
			}
		}
	})
}

// TestLateRecord: an attempt that ends after its delivery was retried and
// sent again by another claim is recorded, but does not overwrite the
// state the later claim gave the delivery.
func TestLateRecord(t *testing.T) {
	eachStore(t, func(t *testing.T, s stores) {
		ctx := context.Background()
		var calls atomic.Int32
		started, release := make(chan struct{}, 1), make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				started <- struct{}{}
				<-release
				w.WriteHeader(http.StatusBadGateway) // the first, slow send fails
			}
		}))
		defer srv.Close()
		var unblock sync.Once
		defer unblock.Do(func() { close(release) })
		at := time.Now().Add(-time.Minute)
		ep, err := event.AddEndpoint(ctx, s.outbox, srv.URL, "", []string{"*"}, at)
		if err != nil {
			t.Fatal(err)
		}
		e, err := event.New(event.GrantCreated, "tx_late", "acct_l", at, map[string]any{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.outbox.Publish(ctx, []event.Event{e}); err != nil {
			t.Fatal(err)
		}
		slow := make(chan error, 1)
		go func() {
			_, err := event.NewDispatcher(s.outbox, event.DispatcherOptions{}).DeliverDue(ctx)
			slow <- err
		}()
		<-started
		// An operator retries it while the first send hangs, and another
		// dispatcher delivers it.
		if err := s.outbox.Retry(ctx, e.ID, ep.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		if n, err := event.NewDispatcher(s.outbox, event.DispatcherOptions{}).DeliverDue(ctx); err != nil || n != 1 {
			t.Fatalf("second dispatcher: %d deliveries, %v; want 1", n, err)
		}
		unblock.Do(func() { close(release) })
		if err := <-slow; err != nil {
			t.Fatal(err)
		}
		det, err := event.Show(ctx, s.outbox, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if dl := det.Deliveries[0]; dl.Status != event.Delivered || dl.LastStatus != http.StatusOK {
			t.Errorf("delivery %+v after the late failure; want it delivered, as the later send left it", dl)
		}
		if len(det.Attempts) != 2 {
			t.Errorf("%d attempts recorded, want both", len(det.Attempts))
		}
	})
}

func TestDeliveryRetries(t *testing.T) {
	eachStore(t, func(t *testing.T, s stores) {
		ctx := context.Background()
		rc := &receiver{secret: "whsec_receiver_0123456789", failures: 2}
		srv := httptest.NewServer(rc)
		defer srv.Close()
		dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
		defer dead.Close()

		clock := ledger.NewManualClock(time.Now())
		ep, err := event.AddEndpoint(ctx, s.outbox, srv.URL, rc.secret, []string{event.PurchaseCompleted}, clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		deadEP, err := event.AddEndpoint(ctx, s.outbox, dead.URL, "", []string{"*"}, clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := event.AddEndpoint(ctx, s.outbox, "ftp://x", "", []string{"*"}, clock.Now()); err == nil {
			t.Error("ftp endpoint accepted")
		}
		if _, err := event.AddEndpoint(ctx, s.outbox, srv.URL, "", []string{"nope"}, clock.Now()); err == nil {
			t.Error("unknown event type accepted")
		}

		e, err := event.New(event.PurchaseCompleted, "cs_1", "acct_1", clock.Now(), map[string]any{"credits": credit.Credits(100)})
		if err != nil {
			t.Fatal(err)
		}
		other, _ := event.New(event.HoldExpired, "tx_9", "acct_1", clock.Now(), map[string]any{})
		if n, err := s.outbox.Publish(ctx, []event.Event{e, other}); err != nil || n != 2 {
			t.Fatalf("publish: %d, %v", n, err)
		}
		// Publishing the same cause again inserts nothing.
		if n, err := s.outbox.Publish(ctx, []event.Event{e}); err != nil || n != 0 {
			t.Fatalf("republish: %d, %v", n, err)
		}

		d := event.NewDispatcher(s.outbox, event.DispatcherOptions{Clock: clock, AttemptsMax: 4,
			BackoffBase: time.Second, BackoffMax: 3 * time.Second})
		// Attempt 1 fails; nothing is due again until the backoff passes.
		if n, err := d.DeliverDue(ctx); err != nil || n != 3 {
			t.Fatalf("first pass: %d deliveries, %v", n, err)
		}
		if n, _ := d.DeliverDue(ctx); n != 0 {
			t.Fatalf("%d deliveries retried before their backoff", n)
		}
		for range 6 {
			clock.Advance(4 * time.Second)
			if _, err := d.DeliverDue(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if len(rc.got) != 1 || rc.got[0] != e.ID || rc.badSig != 0 {
			t.Fatalf("receiver got %v (bad signatures %d: %q), want %s once", rc.got, rc.badSig, rc.bad, e.ID)
		}
		det, err := event.Show(ctx, s.outbox, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		byEP := map[string]event.Delivery{}
		for _, dl := range det.Deliveries {
			byEP[dl.EndpointID] = dl
		}
		if dl := byEP[ep.ID]; dl.Status != event.Delivered || dl.Attempts != 3 || dl.DeliveredAt.IsZero() {
			t.Errorf("delivery to the flaky receiver: %+v, want delivered on attempt 3", dl)
		}
		if dl := byEP[deadEP.ID]; dl.Status != event.Failed || dl.Attempts != 4 || dl.LastStatus != 500 {
			t.Errorf("delivery to the dead receiver: %+v, want failed after 4 attempts", dl)
		}
		if len(det.Attempts) != 7 {
			t.Errorf("%d attempts recorded, want 7 (3 + 4)", len(det.Attempts))
		}
		// An operator retries the failed delivery.
		if err := s.outbox.Retry(ctx, e.ID, deadEP.ID, clock.Now()); err != nil {
			t.Fatal(err)
		}
		if n, _ := d.DeliverDue(ctx); n != 1 {
			t.Errorf("%d deliveries after a manual retry, want 1", n)
		}
		// A disabled endpoint gets nothing more.
		if err := s.outbox.DisableEndpoint(ctx, deadEP.ID); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Hour)
		if n, _ := d.DeliverDue(ctx); n != 0 {
			t.Errorf("%d deliveries to a disabled endpoint", n)
		}
	})
}

func TestBackoff(t *testing.T) {
	d := event.NewDispatcher(nil, event.DispatcherOptions{BackoffBase: 10 * time.Second, BackoffMax: time.Minute})
	for n, want := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second, 4: time.Minute, 30: time.Minute} {
		got := d.Backoff(n)
		if got > want || got < want*4/5 {
			t.Errorf("backoff after %d failures: %s, want within [%s, %s]", n, got, want*4/5, want)
		}
	}
}

func TestWatcher(t *testing.T) {
	eachStore(t, func(t *testing.T, s stores) {
		ctx := context.Background()
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		clock := ledger.NewManualClock(start)
		eng := ledger.NewEngine(s.ledger, ledger.Options{Clock: clock, SweepEvery: -1, HoldTTLMax: 24 * time.Hour})
		defer eng.Close(ctx)
		w := event.NewWatcher(s.outbox, eng, event.WatcherOptions{Clock: clock, Since: start.Add(-time.Second),
			Settle: time.Second, ExpiringWithin: 3 * 24 * time.Hour,
			Thresholds: event.Thresholds{Default: credit.Credits(20)}})
		if _, _, err := eng.CreateAccount(ctx, "acct_w", nil); err != nil {
			t.Fatal(err)
		}
		must := applied(t)
		last := 500 // spent after the top-up
		must(eng.Grant(ctx, ledger.GrantRequest{AccountID: "acct_w", Key: "g1", Kind: ledger.KindTopUp, Amount: credit.Credits(100)}))
		must(eng.Grant(ctx, ledger.GrantRequest{AccountID: "acct_w", Key: "g2", Kind: ledger.KindPromotional, Amount: credit.Credits(5),
			Priority: &last, ExpiresAt: start.Add(10 * 24 * time.Hour)}))
		poll := poller(t, clock, w)
		count := func(typ string) int {
			t.Helper()
			evs, err := s.outbox.Events(ctx, event.Query{AccountID: "acct_w", Type: typ, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			return len(evs)
		}
		// Another account's grant in the same page of the journal.
		if _, _, err := eng.CreateAccount(ctx, "acct_v", nil); err != nil {
			t.Fatal(err)
		}
		must(eng.Grant(ctx, ledger.GrantRequest{AccountID: "acct_v", Key: "gv", Kind: ledger.KindTopUp, Amount: credit.Credits(7)}))
		// Spent before the watcher reads it, so no longer live: its
		// grant.created still carries it.
		must(eng.Charge(ctx, ledger.ChargeRequest{AccountID: "acct_v", Key: "cv", Amount: credit.Credits(7)}))
		poll()
		if count(event.GrantCreated) != 2 || count(event.GrantExpiring) != 0 || count(event.BalanceLow) != 0 {
			t.Fatalf("after two grants: %d grant.created, %d grant.expiring, %d balance.low",
				count(event.GrantCreated), count(event.GrantExpiring), count(event.BalanceLow))
		}
		// Each grant.created carries its own grant as it was created, whole
		// and open, though acct_v's was spent before the watcher read it.
		for _, acct := range []string{"acct_w", "acct_v"} {
			grants, err := s.ledger.Grants(ctx, acct)
			if err != nil {
				t.Fatal(err)
			}
			evs, err := s.outbox.Events(ctx, event.Query{AccountID: acct, Type: event.GrantCreated, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, e := range evs {
				var d struct {
					AccountID string       `json:"account_id"`
					Grant     ledger.Grant `json:"grant"`
				}
				if err := json.Unmarshal(e.Data, &d); err != nil {
					t.Fatal(err)
				}
				if d.AccountID != acct || d.Grant.AccountID != acct {
					t.Errorf("%s: grant.created %s names account %s and a grant of %s", acct, e.ID, d.AccountID, d.Grant.AccountID)
				}
				if d.Grant.Remaining != d.Grant.Amount || d.Grant.Closed {
					t.Errorf("%s: grant.created %s carries grant %s with %s of %s remaining, closed %v; want it as created",
						acct, e.ID, d.Grant.ID, d.Grant.Remaining, d.Grant.Amount, d.Grant.Closed)
				}
				got[d.Grant.ID] = d.Grant.Amount.String()
			}
			if len(got) != len(grants) {
				t.Errorf("%s: grant.created for %v, want one for each of %d grants", acct, got, len(grants))
			}
			for _, g := range grants {
				if got[g.ID] != g.Amount.String() {
					t.Errorf("%s: grant.created gives grant %s an amount of %q, want %s", acct, g.ID, got[g.ID], g.Amount)
				}
			}
		}
		// Spending below the threshold fires balance.low once.
		must(eng.Charge(ctx, ledger.ChargeRequest{AccountID: "acct_w", Key: "c1", Amount: credit.Credits(90)}))
		poll()
		must(eng.Charge(ctx, ledger.ChargeRequest{AccountID: "acct_w", Key: "c2", Amount: credit.Credits(1)}))
		poll()
		if n := count(event.BalanceLow); n != 1 {
			t.Errorf("%d balance.low events, want 1", n)
		}
		// A hold left to expire.
		must(eng.Hold(ctx, ledger.HoldRequest{AccountID: "acct_w", Key: "h1", Amount: credit.Credits(2), TTL: time.Minute}))
		clock.Advance(2 * time.Minute)
		if _, err := eng.ExpireDue(ctx); err != nil {
			t.Fatal(err)
		}
		poll()
		if n := count(event.HoldExpired); n != 1 {
			t.Errorf("%d hold.expired events, want 1", n)
		}
		// Seven days on, the promotional grant is three days from expiry.
		clock.Advance(7*24*time.Hour + time.Minute)
		poll()
		poll()
		if n := count(event.GrantExpiring); n != 1 {
			t.Errorf("%d grant.expiring events, want 1", n)
		}
		// Spending everything fires credits.exhausted once.
		must(eng.Charge(ctx, ledger.ChargeRequest{AccountID: "acct_w", Key: "c3", Amount: credit.Credits(14)}))
		poll()
		if n := count(event.CreditsExhausted); n != 1 {
			t.Errorf("%d credits.exhausted events, want 1", n)
		}
		// Topping up re-arms the alerts: the next dip fires again.
		must(eng.Grant(ctx, ledger.GrantRequest{AccountID: "acct_w", Key: "g3", Kind: ledger.KindTopUp, Amount: credit.Credits(50)}))
		poll()
		must(eng.Charge(ctx, ledger.ChargeRequest{AccountID: "acct_w", Key: "c4", Amount: credit.Credits(40)}))
		poll()
		if n := count(event.BalanceLow); n != 2 {
			t.Errorf("%d balance.low events after re-arming, want 2", n)
		}
		// Polling again, even from an older cursor, adds nothing.
		before := count("")
		if err := s.outbox.SetState(ctx, "journal", `{"at":"2025-12-31T00:00:00Z","id":""}`); err != nil {
			t.Fatal(err)
		}
		poll()
		if after := count(""); after != before {
			evs, _ := s.outbox.Events(ctx, event.Query{AccountID: "acct_w", Limit: 100})
			for _, e := range evs {
				t.Logf("%s %s %s", e.CreatedAt, e.Type, e.Data)
			}
			t.Errorf("re-reading the journal added %d events", after-before)
		}
	})
}

// TestWatcherStartsNow: a watcher with no starting point and no cursor
// stored starts at its first poll, keeps that start, and publishes what the
// journal gets afterwards, but not what it held before.
func TestWatcherStartsNow(t *testing.T) {
	eachStore(t, func(t *testing.T, s stores) {
		ctx := context.Background()
		clock := ledger.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		eng := ledger.NewEngine(s.ledger, ledger.Options{Clock: clock, SweepEvery: -1})
		defer eng.Close(ctx)
		w := event.NewWatcher(s.outbox, eng, event.WatcherOptions{Clock: clock, Settle: time.Second})
		if _, _, err := eng.CreateAccount(ctx, "acct_n", nil); err != nil {
			t.Fatal(err)
		}
		grant := func(key string) string {
			t.Helper()
			r, err := eng.Grant(ctx, ledger.GrantRequest{AccountID: "acct_n", Key: key, Kind: ledger.KindTopUp, Amount: credit.Credits(10)})
			if err != nil {
				t.Fatal(err)
			}
			return r.Transaction.ID
		}
		poll := poller(t, clock, w)

		grant("before")
		clock.Advance(time.Minute)
		poll() // the start is this poll's settle point, after "before"
		after := grant("after")
		for range 3 {
			poll()
		}
		evs, err := s.outbox.Events(ctx, event.Query{AccountID: "acct_n", Type: event.GrantCreated, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if want := event.ID(event.GrantCreated, after); len(evs) != 1 || evs[0].ID != want {
			t.Errorf("grant.created events %v, want one, %s, for the grant made after the watcher started", evs, want)
		}
	})
}

// TestWatcherBacklog: a watcher behind by more than a poll's pages of
// journal, spread over time with a day's gap in it, reads all of it at
// its start, though its next poll is an hour away: each grant announced
// once and each account's last charge, at the end of the journal, firing
// its balance.low.
func TestWatcherBacklog(t *testing.T) {
	eachStore(t, func(t *testing.T, s stores) {
		const (
			accounts = 10
			rounds   = 170 // of 64 charges: 10,880 journal rows, over 21 pages
		)
		ctx := context.Background()
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		clock := ledger.NewManualClock(start)
		eng := ledger.NewEngine(s.ledger, ledger.Options{Clock: clock, SweepEvery: -1})
		defer eng.Close(ctx)
		must := applied(t)
		id := func(i int) string { return fmt.Sprintf("acct_bl%d", i%accounts) }
		grantAll := func(key string, amount credit.Amount) {
			t.Helper()
			for i := range accounts {
				must(eng.Grant(ctx, ledger.GrantRequest{AccountID: id(i), Key: key, Kind: ledger.KindTopUp, Amount: amount}))
			}
		}
		for i := range accounts {
			if _, _, err := eng.CreateAccount(ctx, id(i), nil); err != nil {
				t.Fatal(err)
			}
		}
		grantAll("g1", credit.Credits(1000))
		// 64 clients at a time, a millisecond apart, as a busy server's
		// batches are.
		for r := range rounds {
			if r == rounds/2 {
				clock.Advance(24 * time.Hour)
				grantAll("g2", credit.Credits(10))
			}
			reqs := make([]ledger.ChargeRequest, 64)
			for c := range reqs {
				reqs[c] = ledger.ChargeRequest{AccountID: id(c), Key: fmt.Sprintf("c%d_%d", r, c), Amount: credit.Credits(1) / 2}
			}
			chargeAtOnce(t, eng, reqs)
			clock.Advance(time.Millisecond)
		}
		// Each account's last charge takes it below the threshold.
		end := clock.Now()
		for i := range accounts {
			b, err := eng.Balance(ctx, id(i))
			if err != nil {
				t.Fatal(err)
			}
			must(eng.Charge(ctx, ledger.ChargeRequest{AccountID: id(i), Key: "last", Amount: b.Available - credit.Credits(10)}))
		}
		clock.Advance(2 * time.Second)

		w := event.NewWatcher(s.outbox, eng, event.WatcherOptions{Clock: clock, Since: start.Add(-time.Second),
			Settle: time.Second, PollEvery: time.Hour, Thresholds: event.Thresholds{Default: credit.Credits(20)}})
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- w.Run(runCtx) }()
		count := func(typ string) int {
			t.Helper()
			evs, err := s.outbox.Events(ctx, event.Query{Type: typ, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			return len(evs)
		}
		cursor := func() event.JournalCursor {
			t.Helper()
			var c event.JournalCursor
			v, err := s.outbox.State(ctx, "journal")
			if err == nil {
				err = json.Unmarshal([]byte(v), &c)
			}
			if err != nil && !errors.Is(err, event.ErrNotFound) {
				t.Fatal(err)
			}
			return c
		}
		for wait := time.Now().Add(30 * time.Second); cursor().At.Before(end) && time.Now().Before(wait); {
			time.Sleep(20 * time.Millisecond)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if c := cursor(); !c.At.Equal(end) {
			t.Fatalf("the watcher read the journal up to %v, want to its end, %v, by its first poll", c.At, end)
		}
		if n := count(event.BalanceLow); n != accounts {
			t.Errorf("%d balance.low events, want %d", n, accounts)
		}
		if n := count(event.GrantCreated); n != 2*accounts {
			t.Errorf("%d grant.created events, want %d, one for each grant before and after the gap", n, 2*accounts)
		}
	})
}

// TestWatcherReadsFewAccounts: the watcher decides balance alerts from the
// available credits each journal row records and reads from the ledger
// only the accounts it must: those with a grant in the page, those first
// seen (for their metadata's threshold), those whose rows predate the
// record, and those whose alert fires (for their held credits). A page
// with events writes them, its alert states and the cursor in one
// transaction, and a poll stores its cursor once, however many pages it
// read without an event.
func TestWatcherReadsFewAccounts(t *testing.T) {
	eachStore(t, func(t *testing.T, s stores) {
		ctx, clock, eng, opt := watched(t, s)
		counted := &countingLedger{Engine: eng}
		spy := &outboxSpy{Store: s.outbox}
		w := event.NewWatcher(spy, counted, opt)
		must := applied(t)
		if _, _, err := eng.CreateAccount(ctx, "fa1", map[string]string{event.ThresholdMetadataKey: "50"}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"fa1", "fa2", "fa3"} {
			if id != "fa1" {
				if _, _, err := eng.CreateAccount(ctx, id, nil); err != nil {
					t.Fatal(err)
				}
			}
			must(eng.Grant(ctx, ledger.GrantRequest{AccountID: id, Key: "g", Kind: ledger.KindTopUp, Amount: credit.Credits(100)}))
		}
		must(eng.Hold(ctx, ledger.HoldRequest{AccountID: "fa1", Key: "h", Amount: credit.Credits(5), TTL: time.Hour}))
		poll := poller(t, clock, w)
		step := func(what string, wantRead []string, wantWrites int) {
			t.Helper()
			counted.take()
			spy.take()
			poll()
			if got := counted.take(); !slices.Equal(got, wantRead) {
				t.Errorf("%s: the watcher read accounts %v, want %v", what, got, wantRead)
			}
			if got := spy.take(); got != wantWrites {
				t.Errorf("%s: the watcher wrote to the outbox %d times, want %d", what, got, wantWrites)
			}
		}
		step("grants", []string{"fa1", "fa2", "fa3"}, 1)

		// fa1 falls below its own threshold of 50; the others stay above 20.
		must(eng.Charge(ctx, ledger.ChargeRequest{AccountID: "fa1", Key: "c1", Amount: credit.Credits(50)}))
		must(eng.Charge(ctx, ledger.ChargeRequest{AccountID: "fa2", Key: "c1", Amount: credit.Credits(30)}))
		must(eng.Charge(ctx, ledger.ChargeRequest{AccountID: "fa3", Key: "c1", Amount: credit.Credits(10)}))
		step("fa1 low", []string{"fa1"}, 1)
		evs, err := s.outbox.Events(ctx, event.Query{Type: event.BalanceLow, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].AccountID != "fa1" {
			t.Fatalf("balance.low events %v, want one for fa1", evs)
		}
		var d struct{ Available, Held, Threshold credit.Amount }
		if err := json.Unmarshal(evs[0].Data, &d); err != nil {
			t.Fatal(err)
		}
		if d.Available != credit.Credits(45) || d.Held != credit.Credits(5) || d.Threshold != credit.Credits(50) {
			t.Errorf("balance.low of fa1 gives %s available, %s held, threshold %s; want 45, 5 and 50", d.Available, d.Held, d.Threshold)
		}

		// Three pages of charges that cross nothing: no account read, one
		// store of the cursor, at the journal's end.
		var reqs []ledger.ChargeRequest
		for i := range 1100 {
			reqs = append(reqs, ledger.ChargeRequest{AccountID: []string{"fa2", "fa3"}[i%2], Key: fmt.Sprintf("m%d", i), Amount: credit.Credits(1) / 100})
		}
		chargeAtOnce(t, eng, reqs)
		step("three quiet pages", nil, 1)
		v, err := s.outbox.State(ctx, "journal")
		if err != nil {
			t.Fatal(err)
		}
		var c event.JournalCursor
		if err := json.Unmarshal([]byte(v), &c); err != nil {
			t.Fatal(err)
		}
		if rest, err := s.outbox.JournalAfter(ctx, c, clock.Now(), 10); err != nil || len(rest) != 0 {
			t.Errorf("after the stored cursor %+v the journal holds %d rows (%v), want none", c, len(rest), err)
		}

		// Rows without the record, as written before it: their accounts
		// are read, and fa2 falling below 20 still fires.
		spy.strip = true
		must(eng.Charge(ctx, ledger.ChargeRequest{AccountID: "fa2", Key: "c2", Amount: credit.Credits(55)}))
		step("rows without available credits", []string{"fa2"}, 1)
		if evs, err := s.outbox.Events(ctx, event.Query{AccountID: "fa2", Type: event.BalanceLow, Limit: 10}); err != nil || len(evs) != 1 {
			t.Errorf("balance.low events of fa2: %v, %v; want one", evs, err)
		}
	})
}

// countingLedger records the accounts the watcher reads.
type countingLedger struct {
	*ledger.Engine
	mu   sync.Mutex
	read []string
}

func (c *countingLedger) Balances(ctx context.Context, ids, grantIDs []string) (map[string]ledger.AccountBalance, error) {
	c.mu.Lock()
	c.read = append(c.read, ids...)
	c.mu.Unlock()
	return c.Engine.Balances(ctx, ids, grantIDs)
}

// take returns the accounts read since the last take, sorted.
func (c *countingLedger) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.read
	c.read = nil
	slices.Sort(r)
	return r
}

// outboxSpy counts the watcher's write transactions (events, states or
// both), with strip hands out journal rows without their available
// credits, and runs afterRead after each journal read.
type outboxSpy struct {
	event.Store
	strip bool
	// afterRead, if set, runs after each journal read with their count.
	afterRead func(n int)
	reads     int
	mu        sync.Mutex
	writes    int
}

func (o *outboxSpy) JournalAfter(ctx context.Context, c event.JournalCursor, until time.Time, limit int) ([]event.JournalRow, error) {
	rows, err := o.Store.JournalAfter(ctx, c, until, limit)
	if o.afterRead != nil {
		o.reads++
		o.afterRead(o.reads)
	}
	if o.strip {
		for i := range rows {
			rows[i].AvailableAfter = nil
		}
	}
	return rows, err
}

func (o *outboxSpy) SetState(ctx context.Context, name, value string) error {
	return o.SetStates(ctx, map[string]string{name: value})
}

func (o *outboxSpy) SetStates(ctx context.Context, states map[string]string) error {
	o.wrote()
	return o.Store.SetStates(ctx, states)
}

func (o *outboxSpy) Publish(ctx context.Context, evs []event.Event) (int, error) {
	o.wrote()
	return o.Store.Publish(ctx, evs)
}

func (o *outboxSpy) PublishWith(ctx context.Context, evs []event.Event, states map[string]string) (int, error) {
	o.wrote()
	return o.Store.PublishWith(ctx, evs, states)
}

func (o *outboxSpy) wrote() {
	o.mu.Lock()
	o.writes++
	o.mu.Unlock()
}

// take returns the writes since the last take.
func (o *outboxSpy) take() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.writes
	o.writes = 0
	return n
}

// TestPublishWith: the events and the states go in together; events
// already published are not new again, and their states still change.
func TestPublishWith(t *testing.T) {
	eachStore(t, func(t *testing.T, s stores) {
		ctx := context.Background()
		at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		e, err := event.New(event.GrantCreated, "tx_with", "acct_w", at, map[string]any{})
		if err != nil {
			t.Fatal(err)
		}
		state := func(name string) string {
			t.Helper()
			v, err := s.outbox.State(ctx, name)
			if err != nil {
				t.Fatalf("state %s: %v", name, err)
			}
			return v
		}
		for i, want := range []int{1, 0} {
			v := fmt.Sprint("v", i)
			n, err := s.outbox.PublishWith(ctx, []event.Event{e}, map[string]string{"a": v, "b": v})
			if err != nil || n != want {
				t.Fatalf("publish %d: %d new, %v; want %d new", i, n, err, want)
			}
			if state("a") != v || state("b") != v {
				t.Fatalf("publish %d: states a=%q b=%q, want %q", i, state("a"), state("b"), v)
			}
		}
		if got, err := s.outbox.Event(ctx, e.ID); err != nil || got.ID != e.ID {
			t.Fatalf("event %s: %+v, %v", e.ID, got, err)
		}
		if n, err := s.outbox.PublishWith(ctx, nil, map[string]string{"a": "alone"}); err != nil || n != 0 || state("a") != "alone" {
			t.Fatalf("states alone: %d new, %v, a=%q; want 0, nil, alone", n, err, state("a"))
		}
	})
}

// TestListPages: the events API pages through events created at one
// instant, as a batch's are, each exactly once and in the list's order.
func TestListPages(t *testing.T) {
	eachStore(t, func(t *testing.T, s stores) {
		ctx := context.Background()
		at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		var evs []event.Event
		for i := range 25 {
			e, err := event.New(event.GrantCreated, fmt.Sprint("tx_page_", i), "acct_p", at, map[string]any{"n": i})
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, e)
		}
		if n, err := s.outbox.Publish(ctx, evs); err != nil || n != len(evs) {
			t.Fatalf("publish: %d, %v", n, err)
		}
		api := &event.API{Store: s.outbox}
		get := func(query string) (int, map[string]any) {
			t.Helper()
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/events?"+query, nil))
			var out map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatalf("%s: %v: %s", query, err, rec.Body)
			}
			return rec.Code, out
		}
		seen := map[string]bool{}
		var order []string
		cursor := ""
		for page := 0; ; page++ {
			if page > 5 {
				t.Fatal("more pages than 25 events of 10 a page make")
			}
			q := "account_id=acct_p&limit=10"
			if cursor != "" {
				q += "&starting_after=" + cursor
			}
			code, out := get(q)
			if code != http.StatusOK {
				t.Fatalf("%s: %d %v", q, code, out)
			}
			for _, e := range out["data"].([]any) {
				id := e.(map[string]any)["id"].(string)
				if seen[id] {
					t.Errorf("event %s listed twice", id)
				}
				seen[id] = true
				order = append(order, id)
			}
			if out["has_more"] != true {
				if _, ok := out["next_cursor"]; ok {
					t.Errorf("the last page has a next_cursor: %v", out["next_cursor"])
				}
				break
			}
			cursor = out["next_cursor"].(string)
		}
		if len(seen) != len(evs) {
			t.Errorf("%d events listed over the pages, want %d", len(seen), len(evs))
		}
		if !slices.IsSortedFunc(order, func(a, b string) int { return strings.Compare(b, a) }) {
			t.Errorf("events listed out of order: %v", order)
		}
		for _, c := range []struct{ query, field string }{
			{"starting_after=evt_none", "starting_after"},
			{"starting_after=" + order[0] + "&before=2026-03-02T00:00:00Z", "starting_after"},
		} {
			if code, out := get(c.query); code != http.StatusBadRequest || out["code"] != "invalid_param" {
				t.Errorf("%s: %d %v, want 400 invalid_param", c.query, code, out)
			}
		}
	})
}

// TestInitState: the first value stored under a name stays; a later
// InitState gets it back, SetState still moves it, and States reads it.
func TestInitState(t *testing.T) {
	eachStore(t, func(t *testing.T, s stores) {
		ctx := context.Background()
		for _, c := range []struct{ value, want string }{{"first", "first"}, {"second", "first"}} {
			if got, err := s.outbox.InitState(ctx, "start", c.value); err != nil || got != c.want {
				t.Errorf("InitState(%q): %q, %v; want %q", c.value, got, err, c.want)
			}
		}
		if err := s.outbox.SetState(ctx, "start", "moved"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.outbox.InitState(ctx, "start", "third"); err != nil || got != "moved" {
			t.Errorf("InitState after SetState: %q, %v; want moved", got, err)
		}
		if got, err := s.outbox.States(ctx, []string{"start", "none"}); err != nil || len(got) != 1 || got["start"] != "moved" {
			t.Errorf("States(start, none): %v, %v; want start=moved alone", got, err)
		}
	})
}

// TestSetStates: states stored together, new and existing names alike,
// more of them than one statement writes.
func TestSetStates(t *testing.T) {
	eachStore(t, func(t *testing.T, s stores) {
		ctx := context.Background()
		if err := s.outbox.SetState(ctx, "s_0", "old"); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		var names []string
		for i := range 250 {
			name := fmt.Sprint("s_", i)
			want[name], names = fmt.Sprint("v", i, " ' \"\\ ü"), append(names, name)
		}
		if err := s.outbox.SetStates(ctx, want); err != nil {
			t.Fatal(err)
		}
		if err := s.outbox.SetStates(ctx, nil); err != nil {
			t.Errorf("no states: %v", err)
		}
		got, err := s.outbox.States(ctx, names)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("%d states stored, want %d", len(got), len(want))
		}
		for name, v := range want {
			if got[name] != v {
				t.Errorf("%s = %q, want %q", name, got[name], v)
			}
		}
		// Watchers of several processes store the same names at once, a
		// cursor and the alerts of a page, without deadlocking each other.
		var wg sync.WaitGroup
		errs := make(chan error, 4*50)
		for w := range 4 {
			wg.Go(func() {
				for i := range 50 {
					page := map[string]string{"journal": fmt.Sprint(w, "/", i)}
					for a := range 20 {
						page[fmt.Sprint("alert:acct_", a)] = fmt.Sprint(w, ":", i)
					}
					if err := s.outbox.SetStates(ctx, page); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent SetStates: %v", err)
		}
	})
}

// TestPublishMany: a page of events, more than one statement writes, some
// published before and one given twice, inserts the new ones once each,
// byte for byte, with one delivery to each endpoint that wants it.
func TestPublishMany(t *testing.T) {
	eachStore(t, func(t *testing.T, s stores) {
		ctx := context.Background()
		at := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
		all, err := event.AddEndpoint(ctx, s.outbox, "http://127.0.0.1:9/all", "", []string{"*"}, at)
		if err != nil {
			t.Fatal(err)
		}
		low, err := event.AddEndpoint(ctx, s.outbox, "http://127.0.0.1:9/low", "", []string{event.BalanceLow}, at)
		if err != nil {
			t.Fatal(err)
		}
		var evs []event.Event
		for i := range 230 {
			typ := event.GrantCreated
			if i%3 == 0 {
				typ = event.BalanceLow
			}
			e, err := event.New(typ, fmt.Sprint("tx_many_", i), fmt.Sprint("acct_m", i%7), at.Add(time.Duration(i)*time.Microsecond),
				json.RawMessage(fmt.Sprintf(`{"n":%d,"amount":123456789012.345678,"note":"\u00fc <&>"}`, i)))
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, e)
		}
		// Data as a store receives it from other code than New: raw bytes,
		// not re-encoded, with multi-byte UTF-8, quotes and backslashes.
		for i := range 3 {
			evs = append(evs, event.Event{ID: fmt.Sprint("evt_raw_", i), Type: event.GrantCreated, AccountID: "acct_ü'\"",
				CreatedAt: at, Data: json.RawMessage(fmt.Sprintf(`{"i":%d,"note":"ü 'q' \"\\ <&> \u2028","n":1.50}`, i))})
		}
		if n, err := s.outbox.Publish(ctx, evs[:40]); err != nil || n != 40 {
			t.Fatalf("first 40: %d new, %v", n, err)
		}
		// The 40 again, the rest, and the last one twice.
		n, err := s.outbox.Publish(ctx, append(evs[:len(evs):len(evs)], evs[len(evs)-1]))
		if err != nil || n != len(evs)-40 {
			t.Fatalf("publish: %d new, %v; want %d", n, err, len(evs)-40)
		}
		for _, i := range []int{0, 39, 40, 99, 100, 101, 200, 229, 230, 232} {
			e := evs[i]
			got, err := event.Show(ctx, s.outbox, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Data) != string(e.Data) || got.Type != e.Type || got.AccountID != e.AccountID || !got.CreatedAt.Equal(e.CreatedAt) {
				t.Errorf("event %d stored as %s %s %s %s, want %s %s %s %s", i, got.Type, got.AccountID, got.CreatedAt, got.Data,
					e.Type, e.AccountID, e.CreatedAt, e.Data)
			}
			want := map[string]bool{all.ID: true}
			if e.Type == event.BalanceLow {
				want[low.ID] = true
			}
			if len(got.Deliveries) != len(want) {
				t.Errorf("event %d (%s): %d deliveries, want %d", i, e.Type, len(got.Deliveries), len(want))
			}
			for _, d := range got.Deliveries {
				if !want[d.EndpointID] || d.Status != event.Pending || !d.NextAt.Equal(e.CreatedAt) {
					t.Errorf("event %d: delivery %+v", i, d)
				}
				delete(want, d.EndpointID)
			}
		}
		listed, err := s.outbox.Events(ctx, event.Query{Limit: 1000})
		if err != nil || len(listed) != len(evs) {
			t.Errorf("%d events listed, %v; want %d", len(listed), err, len(evs))
		}
	})
}

// TestAlertsOfTwoWatchers: two processes' watchers that read an account's
// alert state before either stores the new one, their pages ending at
// different transactions, fire one balance.low between them.
func TestAlertsOfTwoWatchers(t *testing.T) {
	eachStore(t, func(t *testing.T, s stores) {
		ctx, clock, eng, opt := watched(t, s)
		w := event.NewWatcher(s.outbox, eng, opt)
		if _, _, err := eng.CreateAccount(ctx, "acct_2w", nil); err != nil {
			t.Fatal(err)
		}
		must := applied(t)
		poll := poller(t, clock, w)
		state := func(name string) string {
			t.Helper()
			v, err := s.outbox.State(ctx, name)
			if err != nil && !errors.Is(err, event.ErrNotFound) {
				t.Fatal(err)
			}
			return v
		}
		must(eng.Grant(ctx, ledger.GrantRequest{AccountID: "acct_2w", Key: "g1", Kind: ledger.KindTopUp, Amount: credit.Credits(100)}))
		poll()
		cursor, alert := state("journal"), state("alert:acct_2w")

		// The first watcher's page ends at the charge that crosses 20.
		must(eng.Charge(ctx, ledger.ChargeRequest{AccountID: "acct_2w", Key: "c1", Amount: credit.Credits(85)}))
		poll()
		// The second read the states before the first stored its own, and
		// its page ends one charge later.
		for name, v := range map[string]string{"journal": cursor, "alert:acct_2w": alert} {
			if err := s.outbox.SetState(ctx, name, v); err != nil {
				t.Fatal(err)
			}
		}
		must(eng.Charge(ctx, ledger.ChargeRequest{AccountID: "acct_2w", Key: "c2", Amount: credit.Credits(1)}))
		poll()
		evs, err := s.outbox.Events(ctx, event.Query{AccountID: "acct_2w", Type: event.BalanceLow, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 {
			t.Errorf("%d balance.low events for one dip, want 1", len(evs))
		}
	})
}

// TestAlertsReadAgain: journal rows read again after their account's alert
// state moved past them (a watcher whose poll began before another stored
// its state, or a cursor moved back) fire nothing: a level decided from an
// older transaction's credits is older than the state.
func TestAlertsReadAgain(t *testing.T) {
	eachStore(t, func(t *testing.T, s stores) {
		ctx, clock, eng, opt := watched(t, s)
		w := event.NewWatcher(s.outbox, eng, opt)
		must := applied(t)
		if _, _, err := eng.CreateAccount(ctx, "acct_ra", nil); err != nil {
			t.Fatal(err)
		}
		poll := poller(t, clock, w)
		must(eng.Grant(ctx, ledger.GrantRequest{AccountID: "acct_ra", Key: "g1", Kind: ledger.KindTopUp, Amount: credit.Credits(100)}))
		poll()
		before, err := s.outbox.State(ctx, "journal")
		if err != nil {
			t.Fatal(err)
		}
		must(eng.Charge(ctx, ledger.ChargeRequest{AccountID: "acct_ra", Key: "c1", Amount: credit.Credits(85)})) // 15: low
		dipAt := clock.Now()
		poll()
		must(eng.Grant(ctx, ledger.GrantRequest{AccountID: "acct_ra", Key: "g2", Kind: ledger.KindTopUp, Amount: credit.Credits(100)})) // 115: re-armed
		poll()
		state := func() string {
			t.Helper()
			v, err := s.outbox.State(ctx, "alert:acct_ra")
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		rearmed := state()

		// A watcher whose settle point falls between the dip and the
		// top-up, from the cursor before the dip, then one to the end.
		if err := s.outbox.SetState(ctx, "journal", before); err != nil {
			t.Fatal(err)
		}
		lagging := opt
		lagging.Clock = ledger.NewManualClock(dipAt.Add(opt.Settle + time.Millisecond))
		if _, err := event.NewWatcher(s.outbox, eng, lagging).Poll(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.outbox.SetState(ctx, "journal", before); err != nil {
			t.Fatal(err)
		}
		poll()
		evs, err := s.outbox.Events(ctx, event.Query{AccountID: "acct_ra", Type: event.BalanceLow, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 {
			t.Errorf("%d balance.low events for one dip read three times, want 1", len(evs))
		}
		if got := state(); got != rearmed {
			t.Errorf("alert state %q after the journal was read again, want %q", got, rearmed)
		}
	})
}

// TestWatcherKeepsLaterCursor: a watcher does not move back the cursor
// another process's watcher stored past its own meanwhile, whether that
// happens between its pages or after its last one.
func TestWatcherKeepsLaterCursor(t *testing.T) {
	eachStore(t, func(t *testing.T, s stores) {
		ctx, clock, eng, opt := watched(t, s)
		if _, _, err := eng.CreateAccount(ctx, "acct_lc", nil); err != nil {
			t.Fatal(err)
		}
		applied(t)(eng.Grant(ctx, ledger.GrantRequest{AccountID: "acct_lc", Key: "g", Kind: ledger.KindTopUp, Amount: credit.Credits(100)}))
		poller(t, clock, event.NewWatcher(s.outbox, eng, opt))()
		before, err := s.outbox.State(ctx, "journal")
		if err != nil {
			t.Fatal(err)
		}
		var reqs []ledger.ChargeRequest
		for i := range 600 { // two pages
			reqs = append(reqs, ledger.ChargeRequest{AccountID: "acct_lc", Key: fmt.Sprint("c", i), Amount: credit.Credits(1) / 100})
		}
		chargeAtOnce(t, eng, reqs)
		clock.Advance(2 * time.Second)
		// A charge this process's watcher leaves for its next poll (not
		// settled yet) and the other process's has read.
		r, err := eng.Charge(ctx, ledger.ChargeRequest{AccountID: "acct_lc", Key: "late", Amount: credit.Credits(1)})
		if err != nil {
			t.Fatal(err)
		}
		later, _ := json.Marshal(event.JournalCursor{At: r.Transaction.CreatedAt, ID: r.Transaction.ID})
		for _, read := range []int{1, 2} {
			if err := s.outbox.SetState(ctx, "journal", before); err != nil {
				t.Fatal(err)
			}
			spy := &outboxSpy{Store: s.outbox, afterRead: func(n int) {
				if n == read {
					if err := s.outbox.SetState(ctx, "journal", string(later)); err != nil {
						t.Error(err)
					}
				}
			}}
			if _, err := event.NewWatcher(spy, eng, opt).Poll(ctx); err != nil {
				t.Fatal(err)
			}
			if v, err := s.outbox.State(ctx, "journal"); err != nil || v != string(later) {
				t.Errorf("the other process stored %s after page %d; the cursor is %s after the poll (%v)", later, read, v, err)
			}
		}
	})
}

// watched returns an engine on s at a manual clock from the start of 2026,
// closed at the test's end, and the options of its watchers: from a second
// before that start, settling in a second, with a balance.low threshold of
// 20 credits.
func watched(t *testing.T, s stores) (context.Context, *ledger.ManualClock, *ledger.Engine, event.WatcherOptions) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := ledger.NewManualClock(start)
	eng := ledger.NewEngine(s.ledger, ledger.Options{Clock: clock, SweepEvery: -1})
	t.Cleanup(func() { eng.Close(context.Background()) })
	return context.Background(), clock, eng, event.WatcherOptions{Clock: clock, Since: start.Add(-time.Second),
		Settle: time.Second, Thresholds: event.Thresholds{Default: credit.Credits(20)}}
}

// chargeAtOnce makes the charges concurrently, as many clients would, so
// that the engine commits them in batches; any error fails tb.
func chargeAtOnce(tb testing.TB, eng *ledger.Engine, reqs []ledger.ChargeRequest) {
	tb.Helper()
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() { _, errs[i] = eng.Charge(context.Background(), reqs[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}
}

// poller returns a poll of w two seconds on: past a watcher's settle of one
// second.
func poller(t *testing.T, clock *ledger.ManualClock, w *event.Watcher) func() {
	return func() {
		t.Helper()
		clock.Advance(2 * time.Second)
		if _, err := w.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// applied fails the test on a ledger operation's error.
func applied(t *testing.T) func(ledger.Result, error) {
	return func(_ ledger.Result, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}
