package ledger

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/credit"
)

// Bounds of the write path.
const (
	batchSizeMaxDefault   = 512
	queueMaxDefault       = 16384
	holdTTLDefault        = 15 * time.Minute
	holdTTLMaxDefault     = 24 * time.Hour
	sweepEveryDefault     = time.Second
	expireBatchMax        = 1000
	historyLimitMax       = 100
	historyLimitDefault   = 20
	verifyAccountsPerPage = 500
)

// Observer receives write-path measurements (metrics). Methods must be fast
// and safe for concurrent use.
type Observer interface {
	// ObserveBatch is called after each batch with its size, how long it
	// took from first load to commit, and the commit error if any.
	ObserveBatch(size int, elapsed time.Duration, err error)
	// ObserveOp is called once per operation with its transaction type and
	// error code ("" on success).
	ObserveOp(op TxType, code string)
}

// StepObserver is an Observer that also takes the time of each step of a
// batch: where a batch's time goes (round trips, the work in memory, the
// commit's flush to disk).
type StepObserver interface {
	Observer
	// ObserveStep is called after each step of a batch with how long it
	// took. A step that runs more than once in a batch (a batch run again)
	// is observed each time.
	ObserveStep(step Step, elapsed time.Duration)
}

// Step is one step of a batch.
type Step string

// The steps of a batch, in the order the committer runs them. A store that
// makes a batch's reads in one round trip (Loader) reports them as
// StepLoad; another reports each read.
const (
	StepBegin        Step = "begin"
	StepLoad         Step = "load"
	StepLockAccounts Step = "lock_accounts"
	StepLoadHolds    Step = "load_holds"
	StepLoadCharges  Step = "load_charges"
	StepLoadGrants   Step = "load_grants"
	StepLoadKeyed    Step = "load_keyed"
	StepApply        Step = "apply"
	StepWrite        Step = "write"
	StepCommit       Step = "commit"
	StepRollback     Step = "rollback"
)

// Steps lists every Step in the order a batch runs them.
var Steps = []Step{StepBegin, StepLoad, StepLockAccounts, StepLoadHolds, StepLoadCharges, StepLoadGrants,
	StepLoadKeyed, StepApply, StepWrite, StepCommit, StepRollback}

// Options configure an Engine. Zero values take the defaults.
type Options struct {
	Clock          Clock
	HoldTTLDefault time.Duration
	HoldTTLMax     time.Duration
	// BatchSizeMax bounds the operations one committed transaction carries.
	BatchSizeMax int
	// QueueMax bounds the operations waiting for the committer; beyond it a
	// mutation fails at once with queue_full.
	QueueMax int
	// Committers is the number of batches in flight at once. Zero takes
	// the store's own figure when it is a CommitterCounter, else 1.
	// Each committer owns a share of the accounts (by a hash of the id),
	// with its own queue, so concurrent batches of one engine never wait on
	// each other's account locks and each account's operations still apply
	// in arrival order. More than one pays off on PostgreSQL, where a
	// batch waits on the network, the server and fsync.
	Committers int
	// SweepEvery is how often the engine expires due holds and grants by
	// itself; negative disables the background sweep.
	SweepEvery time.Duration
	Logger     *slog.Logger
	Observer   Observer
}

// CommitterCounter is a Store that commits best with more than one batch in
// flight: an engine on it runs Committers committers unless its options
// name a number.
type CommitterCounter interface {
	Store
	Committers() int
}

// Engine applies ledger operations through a bounded queue and a batching
// committer, and serves reads straight from the store.
type Engine struct {
	store Store
	opt   Options

	mu     sync.RWMutex // guards closed against sends on queues
	closed bool
	queues []chan *op // one per committer

	wg        sync.WaitGroup
	stopSweep chan struct{}
	owners    *owners
	keys      *seenKeys
	steps     StepObserver // nil unless Options.Observer is one
}

// NewEngine starts an engine on store. Close it to drain the queue.
func NewEngine(store Store, opt Options) *Engine {
	if opt.Clock == nil {
		opt.Clock = SystemClock{}
	}
	if opt.HoldTTLDefault <= 0 {
		opt.HoldTTLDefault = holdTTLDefault
	}
	if opt.HoldTTLMax <= 0 {
		opt.HoldTTLMax = holdTTLMaxDefault
	}
	if opt.HoldTTLDefault > opt.HoldTTLMax {
		opt.HoldTTLDefault = opt.HoldTTLMax
	}
	if opt.BatchSizeMax <= 0 {
		opt.BatchSizeMax = batchSizeMaxDefault
	}
	if opt.QueueMax <= 0 {
		opt.QueueMax = queueMaxDefault
	}
	if opt.Committers <= 0 {
		opt.Committers = 1
		if c, ok := store.(CommitterCounter); ok && c.Committers() > 0 {
			opt.Committers = c.Committers()
		}
	}
	if opt.SweepEvery == 0 {
		opt.SweepEvery = sweepEveryDefault
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		store:     store,
		opt:       opt,
		queues:    make([]chan *op, opt.Committers),
		stopSweep: make(chan struct{}),
		owners:    newOwners(ownersMaxDefault),
		keys:      newSeenKeys(),
	}
	e.steps, _ = opt.Observer.(StepObserver)
	perQueue := max(1, opt.QueueMax/opt.Committers)
	for i := range e.queues {
		e.queues[i] = make(chan *op, perQueue)
		e.wg.Add(1)
		go e.commitLoop(e.queues[i])
	}
	if opt.SweepEvery > 0 {
		e.wg.Add(1)
		go e.sweepLoop()
	}
	return e
}

// Store returns the engine's store.
func (e *Engine) Store() Store { return e.store }

// Options returns the engine's options with every default filled in.
func (e *Engine) Options() Options { return e.opt }

// Clock returns the engine's clock.
func (e *Engine) Clock() Clock { return e.opt.Clock }

// QueueDepth returns the operations waiting for the committers.
func (e *Engine) QueueDepth() int {
	n := 0
	for _, q := range e.queues {
		n += len(q)
	}
	return n
}

// queueFor returns the queue of the committer that owns the account.
func (e *Engine) queueFor(accountID string) chan *op {
	if len(e.queues) == 1 {
		return e.queues[0]
	}
	h := fnv.New32a()
	h.Write([]byte(accountID))
	return e.queues[h.Sum32()%uint32(len(e.queues))]
}

// Close stops accepting operations, commits everything already queued and
// waits for the committer; an acknowledged operation is never lost.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	for _, q := range e.queues {
		close(q)
	}
	close(e.stopSweep)
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close ledger engine: %w", ctx.Err())
	}
}

// now is the engine's time, truncated to what every store keeps exactly.
func (e *Engine) now() time.Time { return e.opt.Clock.Now().UTC().Truncate(time.Microsecond) }

// op is one queued operation and the slot for its result.
type op struct {
	typ       TxType
	accountID string
	key       string
	hash      string
	req       any
	done      chan struct{}
	res       Result
	err       error
	// replayOf is set instead of res when the key was already applied.
	replayOf *Transaction
	// account and created are the result of an account's creation.
	account Account
	created bool
}

// reset clears the results of a batch that runs again.
func (o *op) reset() {
	o.res, o.err, o.replayOf = Result{}, nil, nil
	o.account, o.created = Account{}, false
}

// submit queues o and waits for its result.
func (e *Engine) submit(ctx context.Context, o *op) (Result, error) {
	o.done = make(chan struct{})
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		return Result{}, scrip.Errorf(scrip.EUnavailable, "the ledger is shutting down")
	}
	q := e.queueFor(o.accountID)
	select {
	case q <- o:
	default:
		e.mu.RUnlock()
		e.observeOp(o.typ, scrip.EQueueFull)
		return Result{}, scrip.Errorf(scrip.EQueueFull, "the write queue is full (%d operations); retry shortly", cap(q))
	}
	e.mu.RUnlock()
	// Once queued the operation will be applied or rejected; waiting is
	// only cut short by the caller giving up.
	select {
	case <-o.done:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	e.observeOp(o.typ, scrip.ErrorCode(o.err))
	if o.err != nil {
		return Result{}, o.err
	}
	if o.replayOf != nil {
		return e.replayResult(ctx, o.replayOf)
	}
	if h := o.res.Hold; h != nil && o.typ == TxHold {
		e.owners.put(h.ID, h.AccountID)
	}
	return o.res, nil
}

func (e *Engine) observeOp(t TxType, code string) {
	if e.opt.Observer != nil {
		e.opt.Observer.ObserveOp(t, code)
	}
}

// replayResult rebuilds the result of an already applied transaction from
// the store's current state.
func (e *Engine) replayResult(ctx context.Context, t *Transaction) (Result, error) {
	r := Result{Transaction: *t, Replayed: true}
	if t.HoldID != "" {
		h, err := e.store.Hold(ctx, t.HoldID)
		if err != nil {
			return Result{}, fmt.Errorf("replay hold %s: %w", t.HoldID, err)
		}
		r.Hold = &h
	}
	if t.ChargeID != "" {
		c, err := e.store.Charge(ctx, t.ChargeID)
		if err != nil {
			return Result{}, fmt.Errorf("replay charge %s: %w", t.ChargeID, err)
		}
		r.Charge = &c
	}
	if t.GrantID != "" {
		g, err := e.store.Grant(ctx, t.GrantID)
		if err != nil {
			return Result{}, fmt.Errorf("replay grant %s: %w", t.GrantID, err)
		}
		r.Grant = &g
	}
	b, err := e.Balance(ctx, t.AccountID)
	if err != nil {
		return Result{}, err
	}
	r.Available = b.Available
	return r, nil
}

func (e *Engine) commitLoop(queue chan *op) {
	defer e.wg.Done()
	batch := make([]*op, 0, e.opt.BatchSizeMax)
	for {
		o, ok := <-queue
		if !ok {
			return
		}
		batch = append(batch[:0], o)
		// Take whatever else is already waiting, without waiting for more:
		// a lone operation commits at once, a crowd shares one commit.
	drain:
		for len(batch) < e.opt.BatchSizeMax {
			select {
			case o, ok := <-queue:
				if !ok {
					break drain
				}
				batch = append(batch, o)
			default:
				break drain
			}
		}
		e.commit(batch)
	}
}

// commit applies a batch in one store transaction and delivers each
// operation's result.
func (e *Engine) commit(batch []*op) {
	start := time.Now()
	err := e.apply(context.Background(), batch)
	if e.opt.Observer != nil {
		e.opt.Observer.ObserveBatch(len(batch), time.Since(start), err)
	}
	if err != nil {
		e.opt.Logger.Error("ledger batch failed", "ops", len(batch), "err", err)
		for _, o := range batch {
			if o.err == nil {
				o.err = fmt.Errorf("commit %s: %w", o.typ, err)
				o.replayOf = nil
			}
		}
	}
	for _, o := range batch {
		close(o.done)
	}
}

func (e *Engine) sweepLoop() {
	defer e.wg.Done()
	t := time.NewTicker(e.opt.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-e.stopSweep:
			return
		case <-t.C:
			if _, err := e.ExpireDue(context.Background()); err != nil && !errors.Is(err, errClosed) {
				e.opt.Logger.Warn("expire due holds and grants", "err", err)
			}
		}
	}
}

var errClosed = errors.New("engine closed")

// step reports that a step of a batch, begun at start, has ended.
func (e *Engine) step(s Step, start time.Time) {
	if e.steps != nil {
		e.steps.ObserveStep(s, time.Since(start))
	}
}

// newID returns a unique, roughly time-ordered identifier with a prefix.
func newID(prefix string) string {
	b := make([]byte, 0, len(prefix)+27)
	b = append(b, prefix...)
	b = strconv.AppendUint(b, uint64(time.Now().UnixMilli()), 36)
	r := rand.Uint64()
	b = strconv.AppendUint(b, r|1<<63, 36)
	return string(b)
}

func checkKey(key string) error {
	if key == "" {
		return &scrip.Error{Code: scrip.EInvalid, Field: "idempotency_key", Message: "an idempotency key is required"}
	}
	if len(key) > keyBytesMax {
		return &scrip.Error{Code: scrip.EInvalid, Field: "idempotency_key", Message: fmt.Sprintf("idempotency key is %d bytes; at most %d", len(key), keyBytesMax)}
	}
	return checkText("idempotency_key", key)
}

// storable reports whether every store keeps s as it is: PostgreSQL's text
// holds no NUL character, and both stores keep text as UTF-8.
func storable(s string) bool {
	return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s)
}

// checkNote checks free text an operation records: at most textBytesMax
// bytes, and text a store can keep.
func checkNote(field, s string) error {
	if len(s) > textBytesMax {
		return &scrip.Error{Code: scrip.EInvalid, Field: field,
			Message: fmt.Sprintf("%s is %d bytes; at most %d", inWords(field), len(s), textBytesMax)}
	}
	return checkText(field, s)
}

// checkText refuses a string a store cannot keep. Let through, it would
// fail the write of its whole batch, and every other operation in it.
func checkText(field, s string) error {
	if storable(s) {
		return nil
	}
	return &scrip.Error{Code: scrip.EInvalid, Field: field,
		Message: fmt.Sprintf("%s must be UTF-8 text without NUL characters", inWords(field))}
}

// inWords names a field in a message: "paid_currency" as "paid currency".
func inWords(field string) string { return strings.ReplaceAll(field, "_", " ") }

func checkPositive(field string, a credit.Amount) error {
	if a <= 0 {
		return &scrip.Error{Code: scrip.EInvalidAmount, Field: field, Message: fmt.Sprintf("%s must be greater than 0, got %s", field, a)}
	}
	return nil
}

func checkNotNegative(field string, a credit.Amount) error {
	if a < 0 {
		return &scrip.Error{Code: scrip.EInvalidAmount, Field: field, Message: fmt.Sprintf("%s must not be negative, got %s", field, a)}
	}
	return nil
}

func checkMetadata(field string, md map[string]string) error {
	if len(md) > metadataKeysMax {
		return &scrip.Error{Code: scrip.EInvalid, Field: field, Message: fmt.Sprintf("%s has %d keys; at most %d", field, len(md), metadataKeysMax)}
	}
	n := 0
	for k, v := range md {
		n += len(k) + len(v)
		if !storable(k) || !storable(v) {
			return &scrip.Error{Code: scrip.EInvalid, Field: field,
				Message: fmt.Sprintf("%s key %q: keys and values must be UTF-8 text without NUL characters", field, k)}
		}
	}
	if n > metadataBytesMax {
		return &scrip.Error{Code: scrip.EInvalid, Field: field, Message: fmt.Sprintf("%s is %d bytes; at most %d", field, n, metadataBytesMax)}
	}
	return nil
}

// CheckAccountID validates a platform account id.
func CheckAccountID(id string) error {
	if id == "" {
		return &scrip.Error{Code: scrip.EInvalid, Field: "account_id", Message: "account id is required"}
	}
	if len(id) > accountIDBytesMax {
		return &scrip.Error{Code: scrip.EInvalid, Field: "account_id", Message: fmt.Sprintf("account id is %d bytes; at most %d", len(id), accountIDBytesMax)}
	}
	if id[0] == '@' {
		return &scrip.Error{Code: scrip.EInvalid, Field: "account_id", Message: "account ids starting with @ are reserved for system accounts"}
	}
	if id == "." || id == ".." {
		// A URL path cannot hold them as a segment: /v1/accounts/../balance
		// is /v1/balance to every client and server.
		return &scrip.Error{Code: scrip.EInvalid, Field: "account_id", Message: fmt.Sprintf("account id %q cannot be used in a URL path", id)}
	}
	return checkText("account_id", id)
}
