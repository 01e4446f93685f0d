package storetest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/ledger"
)

// gatedStore holds the next batch at Begin, once armed, until released, so
// that a test can queue operations behind it and have them share the batch
// after it.
type gatedStore struct {
	ledger.Store
	mu      sync.Mutex
	armed   bool
	entered chan struct{} // closed when the held batch reaches Begin
	release chan struct{}
}

func (s *gatedStore) arm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = true
	s.entered = make(chan struct{})
	s.release = make(chan struct{})
}

func (s *gatedStore) Begin(ctx context.Context) (ledger.Tx, error) {
	s.mu.Lock()
	armed := s.armed
	s.armed = false
	s.mu.Unlock()
	if armed {
		close(s.entered)
		<-s.release
	}
	return s.Store.Begin(ctx)
}

// batchSizes records the size of each batch an engine commits.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batchSizes) ObserveBatch(size int, _ time.Duration, _ error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sizes = append(b.sizes, size)
}

func (b *batchSizes) ObserveOp(ledger.TxType, string) {}

func (b *batchSizes) last() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sizes[len(b.sizes)-1]
}

// testCreateInBatch queues an account's creation, the operations on it and
// a second creation of it behind a held batch, so that all of them commit
// in one batch, in arrival order: an operation queued before the creation
// finds no account, those after it find the new one, and the second
// creation returns it.
func testCreateInBatch(t *testing.T, open Open) {
	e := newEnv(t, open)
	gate := &gatedStore{Store: e.store}
	sizes := &batchSizes{}
	eng := ledger.NewEngine(gate, ledger.Options{Clock: e.clock, SweepEvery: -1, Observer: sizes})
	t.Cleanup(func() { eng.Close(context.Background()) })
	ctx := e.ctx

	gate.arm()
	held := make(chan error, 1)
	go func() {
		_, _, err := eng.CreateAccount(ctx, "first", nil)
		held <- err
	}()
	<-gate.entered

	md := map[string]string{"plan": "pro"}
	var (
		early, grant, charge, otherGrant error
		created, again, other            ledger.Account
		createdNew, againNew, otherNew   bool
		wg                               sync.WaitGroup
	)
	// Each operation is queued before the next is submitted.
	queue := func(f func()) {
		depth := eng.QueueDepth()
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
		for eng.QueueDepth() == depth {
			time.Sleep(time.Millisecond)
		}
	}
	queue(func() {
		_, early = eng.Grant(ctx, ledger.GrantRequest{AccountID: "new", Key: "early", Kind: ledger.KindTopUp, Amount: amt("1")})
	})
	queue(func() {
		var err error
		created, createdNew, err = eng.CreateAccount(ctx, "new", md)
		if err != nil {
			t.Errorf("create: %v", err)
		}
	})
	queue(func() {
		_, grant = eng.Grant(ctx, ledger.GrantRequest{AccountID: "new", Key: "g", Kind: ledger.KindTopUp, Amount: amt("10")})
	})
	queue(func() {
		_, charge = eng.Charge(ctx, ledger.ChargeRequest{AccountID: "new", Key: "c", Amount: amt("3")})
	})
	queue(func() {
		var err error
		again, againNew, err = eng.CreateAccount(ctx, "new", map[string]string{"plan": "free"})
		if err != nil {
			t.Errorf("create again: %v", err)
		}
	})
	queue(func() {
		var err error
		other, otherNew, err = eng.CreateAccount(ctx, "other", nil)
		if err != nil {
			t.Errorf("create other: %v", err)
		}
	})
	queue(func() {
		_, otherGrant = eng.Grant(ctx, ledger.GrantRequest{AccountID: "other", Key: "g", Kind: ledger.KindTopUp, Amount: amt("2")})
	})
	close(gate.release)
	if err := <-held; err != nil {
		t.Fatalf("held batch: %v", err)
	}
	wg.Wait()
	if got := sizes.last(); got != 7 {
		t.Fatalf("the queued operations committed in batches of %v, want one batch of 7", sizes.sizes)
	}

	wantCode(t, early, scrip.EAccountNotFound)
	if !createdNew || againNew || !otherNew {
		t.Fatalf("created: new %v, new again %v, other %v; want true, false, true", createdNew, againNew, otherNew)
	}
	for _, err := range []error{grant, charge, otherGrant} {
		if err != nil {
			t.Fatalf("operation on an account created in its batch: %v", err)
		}
	}
	if created.ID != "new" || !created.CreatedAt.Equal(t0) || !maps.Equal(created.Metadata, md) {
		t.Fatalf("created %+v, want account new at %s with %v", created, t0, md)
	}
	if again.ID != "new" || !again.CreatedAt.Equal(t0) || !maps.Equal(again.Metadata, md) {
		t.Fatalf("second creation returned %+v, want the first's metadata %v", again, md)
	}
	if other.ID != "other" || other.Metadata != nil {
		t.Fatalf("other: %+v", other)
	}
	stored, err := e.eng.Account(ctx, "new")
	if err != nil {
		t.Fatal(err)
	}
	if !stored.CreatedAt.Equal(t0) || !maps.Equal(stored.Metadata, md) {
		t.Fatalf("stored %+v, want created at %s with %v", stored, t0, md)
	}
	e.wantAvailable("new", "7")
	e.wantAvailable("other", "2")
	hist, err := e.eng.History(ctx, ledger.HistoryQuery{AccountID: "new"})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Type != ledger.TxCharge || hist[1].Type != ledger.TxGrant {
		t.Fatalf("history of new: %+v, want the charge and the grant", hist)
	}
	e.verify()
}

// testCreateAccountsConcurrently creates the same accounts from many
// goroutines on two engines at once, as two scrip processes would: each
// account is created exactly once, and every call returns it as stored.
func testCreateAccountsConcurrently(t *testing.T, open Open) {
	e := newEnv(t, open, func(o *ledger.Options) { o.Committers = 2 })
	other := ledger.NewEngine(e.store, ledger.Options{Clock: e.clock, SweepEvery: -1, Committers: 2})
	t.Cleanup(func() { other.Close(context.Background()) })
	const accounts, workers = 150, 16
	var (
		mu      sync.Mutex
		created = map[string]int{}
		seen    = map[string][]ledger.Account{}
	)
	onTwoEngines(t, e.eng, other, workers, func(w int, eng *ledger.Engine) {
		for i := range accounts {
			// Each worker walks the accounts from its own start.
			id := fmt.Sprintf("acct-%03d", (i+w*accounts/workers)%accounts)
			a, isNew, err := eng.CreateAccount(context.Background(), id, map[string]string{"by": fmt.Sprint(w)})
			if err != nil {
				t.Errorf("create %s: %v", id, err)
				return
			}
			mu.Lock()
			if isNew {
				created[id]++
			}
			seen[id] = append(seen[id], a)
			mu.Unlock()
		}
	})
	if t.Failed() {
		return
	}
	ids, err := e.store.AccountIDs(e.ctx, "", accounts+1)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != accounts {
		t.Fatalf("%d accounts stored, want %d", len(ids), accounts)
	}
	for _, id := range slices.Sorted(maps.Keys(seen)) {
		if created[id] != 1 {
			t.Errorf("%s: created by %d calls, want 1", id, created[id])
		}
		stored, err := e.eng.Account(e.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range seen[id] {
			if a.ID != id || !a.CreatedAt.Equal(stored.CreatedAt) || !maps.Equal(a.Metadata, stored.Metadata) {
				t.Fatalf("%s: a call returned %+v, stored is %+v", id, a, stored)
			}
		}
	}
	e.verify()
}
