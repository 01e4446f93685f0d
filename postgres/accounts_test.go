package postgres_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// writeGate is a store whose batches stop before their Write until the
// test lets each one go, so that another process's commit can come between
// a batch's reads and its writes.
type writeGate struct {
	ledger.Store
	writing chan *ledger.Writes // a batch is about to write
	proceed chan struct{}
}

func (s *writeGate) Begin(ctx context.Context) (ledger.Tx, error) {
	tx, err := s.Store.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return gatedTx{Tx: tx, gate: s}, nil
}

type gatedTx struct {
	ledger.Tx
	gate *writeGate
}

func (t gatedTx) Load(ctx context.Context, r ledger.LoadRequest) (ledger.Loaded, error) {
	return t.Tx.(ledger.Loader).Load(ctx, r)
}

func (t gatedTx) Write(ctx context.Context, w *ledger.Writes) error {
	t.gate.writing <- w
	<-t.gate.proceed
	return t.Tx.Write(ctx, w)
}

// TestCreateRacesAnotherProcess has another engine create an account
// between a batch's reads, which found no such account, and its write,
// which creates it and grants it credits. The batch's insert fails, it runs
// again, finds the other's account and grants the credits to it.
func TestCreateRacesAnotherProcess(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	gate := &writeGate{Store: s, writing: make(chan *ledger.Writes), proceed: make(chan struct{})}
	slow := ledger.NewEngine(gate, ledger.Options{SweepEvery: -1})
	fast := ledger.NewEngine(s, ledger.Options{SweepEvery: -1})
	t.Cleanup(func() {
		// A failed test may leave the slow engine's batch at the gate.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		slow.Close(ctx)
		fast.Close(ctx)
	})

	// A first batch holds the committer while the creation and the grant
	// queue behind it, so that those two share the next batch.
	held := make(chan error, 1)
	go func() {
		_, _, err := slow.CreateAccount(ctx, "first", nil)
		held <- err
	}()
	recv(t, gate.writing)
	type created struct {
		a     ledger.Account
		isNew bool
		err   error
	}
	creation := make(chan created, 1)
	go func() {
		a, isNew, err := slow.CreateAccount(ctx, "x", map[string]string{"by": "slow"})
		creation <- created{a, isNew, err}
	}()
	waitQueued(t, slow, 1)
	granted := make(chan error, 1)
	go func() {
		_, err := slow.Grant(ctx, ledger.GrantRequest{AccountID: "x", Key: "g", Kind: ledger.KindTopUp, Amount: credit.Credits(5)})
		granted <- err
	}()
	waitQueued(t, slow, 2)
	gate.proceed <- struct{}{}
	if err := recv(t, held); err != nil {
		t.Fatal(err)
	}

	w := recv(t, gate.writing)
	if len(w.NewAccounts) != 1 || w.NewAccounts[0].ID != "x" || w.NewAccounts[0].Seq != 1 || len(w.Transactions) != 1 {
		t.Fatalf("the batch writes %+v, want account x created with its grant", w)
	}
	theirs, isNew, err := fast.CreateAccount(ctx, "x", map[string]string{"by": "fast"})
	if err != nil || !isNew {
		t.Fatalf("the other engine's creation: new %v, %v", isNew, err)
	}
	gate.proceed <- struct{}{} // fails: x exists
	w = recv(t, gate.writing)
	if len(w.NewAccounts) != 0 || len(w.Accounts) != 1 || w.Accounts[0].ID != "x" || w.Accounts[0].Seq != 1 {
		t.Fatalf("the batch's second run writes %+v, want the grant to the existing x", w)
	}
	gate.proceed <- struct{}{}

	c := recv(t, creation)
	if c.err != nil {
		t.Fatal(c.err)
	}
	if c.isNew || !c.a.CreatedAt.Equal(theirs.CreatedAt) || !maps.Equal(c.a.Metadata, map[string]string{"by": "fast"}) {
		t.Fatalf("creation that lost the race: new %v, %+v; want the other's %+v", c.isNew, c.a, theirs)
	}
	if err := recv(t, granted); err != nil {
		t.Fatalf("grant: %v", err)
	}
	b, err := fast.Balance(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if b.Available != credit.Credits(5) {
		t.Fatalf("available %s, want 5", b.Available)
	}
	r, err := fast.Verify(ctx)
	if err != nil || !r.OK() {
		t.Fatalf("verify: %v %v", err, r.Problems)
	}
}

// recv waits for a value on c; half a minute without one is a deadlock.
func recv[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("nothing came within 30s")
		panic("unreachable")
	}
}

func waitQueued(t *testing.T, e *ledger.Engine, n int) {
	t.Helper()
	for e.QueueDepth() < n {
		time.Sleep(time.Millisecond)
	}
}
