package ledger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/credit"
)

// expireRequest is the engine's own operation that ends a due hold or grant.
type expireRequest struct{ id string }

// createAccountRequest creates the operation's account unless it exists.
type createAccountRequest struct{ metadata map[string]string }

// batch is the in-memory state of one batch: what it loaded under lock and
// what it changed. Operations are applied to it in arrival order by pure
// code; each either changes it completely or not at all.
type batch struct {
	now      time.Time
	accounts map[string]*Account
	grants   map[string]*Grant
	sorted   map[string][]*Grant // per account, consumption order
	holds    map[string]*Hold
	charges  map[string]*Charge
	keyed    map[TxKey]*Transaction

	newAccounts   []*Account
	dirtyAccounts map[string]*Account
	dirtyGrants   map[string]*Grant
	dirtyHolds    map[string]*Hold
	dirtyCharges  map[string]*Charge
	newGrants     []*Grant
	newHolds      []*Hold
	newCharges    []*Charge
	isNew         map[string]bool
	txns          []Transaction
}

// apply runs one batch in one store transaction. It reads the idempotency
// keys the engine may have committed (keys.go); if the journal holds one
// it did not read, it runs the batch again reading them all.
//
// The journal shows such a key in one of two ways: the operation succeeded
// again and its write breaks the unique index, or it failed (a settled hold,
// credits since spent, another request under the key) and writes nothing;
// so applyReading reads the unread keys of failed operations before it
// commits.
//
// A batch that creates an account another process created since the batch
// locked its accounts runs again too, and then finds the account. Accounts
// are never deleted, so each run after the first finds one more of them or
// reads every key: a batch runs at most twice more than the accounts it
// creates.
func (e *Engine) apply(ctx context.Context, ops []*op) error {
	keys := make([]TxKey, 0, len(ops))
	runs := 2
	for _, o := range ops {
		if o.key != "" {
			keys = append(keys, TxKey{AccountID: o.accountID, Key: o.key})
		}
		if o.typ == OpCreateAccount {
			runs++
		}
	}
	read := e.keys.filter(keys)
	var err error
	for range runs {
		err = e.applyReading(ctx, ops, read)
		switch {
		case err == nil:
			e.keys.add(keys)
			return nil
		case errors.Is(err, ErrKeyExists):
			e.keys.conflict()
			read = keys
		case !errors.Is(err, ErrAccountExists):
			return err
		}
		for _, o := range ops {
			o.reset()
		}
	}
	return err
}

// applyReading runs one batch in one store transaction, reading the
// transactions recorded under keys, one key per operation at most. It
// returns an error wrapping ErrKeyExists when the journal holds an unread
// key of one of ops.
func (e *Engine) applyReading(ctx context.Context, ops []*op, keys []TxKey) (err error) {
	now := e.now()
	var (
		accountIDs = make([]string, 0, len(ops))
		holdIDs    []string
		chargeIDs  []string
		grantIDs   []string
		// The holds and charges the batch may create, to size its maps.
		newHolds, newCharges int
	)
	for _, o := range ops {
		accountIDs = append(accountIDs, o.accountID)
		switch r := o.req.(type) {
		case *HoldRequest:
			newHolds++
		case *ChargeRequest:
			newCharges++
		case *CaptureRequest:
			holdIDs = append(holdIDs, r.HoldID)
		case *ReleaseRequest:
			holdIDs = append(holdIDs, r.HoldID)
		case *RefundRequest:
			chargeIDs = append(chargeIDs, r.ChargeID)
		case *RevokeRequest:
			grantIDs = append(grantIDs, r.GrantID)
		case *expireRequest:
			if o.typ == TxHoldExpiry {
				holdIDs = append(holdIDs, r.id)
			} else {
				grantIDs = append(grantIDs, r.id)
			}
		}
	}
	req := LoadRequest{
		Accounts: sortedUnique(accountIDs),
		Holds:    sortedUnique(holdIDs),
		Charges:  sortedUnique(chargeIDs),
		Grants:   sortedUnique(grantIDs),
		Keys:     keys,
	}

	start := time.Now()
	tx, err := e.store.Begin(ctx)
	e.step(StepBegin, start)
	if err != nil {
		return fmt.Errorf("begin batch: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			start := time.Now()
			rerr := tx.Rollback(ctx)
			e.step(StepRollback, start)
			if rerr != nil && err == nil {
				err = rerr
			}
		}
	}()

	loaded, err := e.load(ctx, tx, req)
	if err != nil {
		return err
	}
	start = time.Now()
	b := &batch{
		now:           now,
		accounts:      make(map[string]*Account, len(loaded.Accounts)),
		grants:        make(map[string]*Grant, len(loaded.Grants)),
		sorted:        make(map[string][]*Grant, len(loaded.Accounts)),
		holds:         make(map[string]*Hold, len(loaded.Holds)+newHolds),
		charges:       make(map[string]*Charge, len(loaded.Charges)+newCharges),
		keyed:         make(map[TxKey]*Transaction, len(ops)),
		dirtyAccounts: make(map[string]*Account, len(loaded.Accounts)),
		dirtyGrants:   make(map[string]*Grant, len(loaded.Grants)),
		dirtyHolds:    map[string]*Hold{},
		dirtyCharges:  map[string]*Charge{},
		isNew:         make(map[string]bool, len(ops)),
		newHolds:      make([]*Hold, 0, newHolds),
		newCharges:    make([]*Charge, 0, newCharges),
		// Most operations append one transaction: sized for them, the
		// journal of a large batch is not copied as it grows.
		txns: make([]Transaction, 0, len(ops)),
	}
	for i := range loaded.Accounts {
		a := &loaded.Accounts[i]
		b.accounts[a.ID] = a
	}
	for i := range loaded.Holds {
		h := &loaded.Holds[i]
		b.holds[h.ID] = h
	}
	for i := range loaded.Charges {
		c := &loaded.Charges[i]
		b.charges[c.ID] = c
	}
	for i := range loaded.Grants {
		g := &loaded.Grants[i]
		if _, ok := b.accounts[g.AccountID]; !ok {
			continue
		}
		b.grants[g.ID] = g
		b.sorted[g.AccountID] = append(b.sorted[g.AccountID], g)
	}
	for _, gs := range b.sorted {
		SortGrants(gs)
	}
	for i := range loaded.Keyed {
		t := &loaded.Keyed[i]
		b.keyed[TxKey{AccountID: t.AccountID, Key: t.IdempotencyKey}] = t
	}

	for _, o := range ops {
		b.run(o)
	}
	w := b.writes()
	e.step(StepApply, start)
	if unread := unreadFailed(ops, keys); len(unread) > 0 {
		start := time.Now()
		found, err := tx.LoadKeyed(ctx, unread)
		e.step(StepLoadKeyed, start)
		if err != nil {
			return fmt.Errorf("load idempotency keys: %w", err)
		}
		if len(found) > 0 {
			return fmt.Errorf("a failed operation's key %q: %w", found[0].IdempotencyKey, ErrKeyExists)
		}
	}

	if w.Empty() {
		return nil
	}
	start = time.Now()
	err = tx.Write(ctx, w)
	e.step(StepWrite, start)
	if err != nil {
		return fmt.Errorf("write batch: %w", err)
	}
	start = time.Now()
	err = tx.Commit(ctx)
	e.step(StepCommit, start)
	if err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	committed = true
	return nil
}

// unreadFailed returns the keys of the failed operations among ops that
// were not among the keys read.
func unreadFailed(ops []*op, read []TxKey) []TxKey {
	if len(read) == len(ops) {
		return nil
	}
	var (
		out     []TxKey
		wasRead map[TxKey]bool
	)
	for _, o := range ops {
		if o.err == nil || o.key == "" {
			continue
		}
		if wasRead == nil {
			wasRead = make(map[TxKey]bool, len(read))
			for _, k := range read {
				wasRead[k] = true
			}
		}
		if k := (TxKey{AccountID: o.accountID, Key: o.key}); !wasRead[k] {
			out = append(out, k)
		}
	}
	return out
}

// load locks the batch's accounts and reads what its operations need: in one
// round trip when tx is a Loader, otherwise one call at a time.
func (e *Engine) load(ctx context.Context, tx Tx, r LoadRequest) (Loaded, error) {
	if l, ok := tx.(Loader); ok {
		start := time.Now()
		out, err := l.Load(ctx, r)
		e.step(StepLoad, start)
		if err != nil {
			return out, fmt.Errorf("load batch: %w", err)
		}
		have := make(map[string]bool, len(out.Grants))
		for _, g := range out.Grants {
			have[g.ID] = true
		}
		var missing []string
		for _, id := range allocatedGrants(&out) {
			if !have[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			start := time.Now()
			gs, err := tx.LoadGrants(ctx, nil, sortedUnique(missing))
			e.step(StepLoadGrants, start)
			if err != nil {
				return out, fmt.Errorf("load grants: %w", err)
			}
			out.Grants = append(out.Grants, gs...)
		}
		return out, nil
	}

	var out Loaded
	start := time.Now()
	accounts, err := tx.LockAccounts(ctx, r.Accounts)
	e.step(StepLockAccounts, start)
	if err != nil {
		return out, fmt.Errorf("lock accounts: %w", err)
	}
	out.Accounts = accounts
	if len(r.Holds) > 0 {
		start = time.Now()
		out.Holds, err = tx.LoadHolds(ctx, r.Holds)
		e.step(StepLoadHolds, start)
		if err != nil {
			return out, fmt.Errorf("load holds: %w", err)
		}
	}
	if len(r.Charges) > 0 {
		start = time.Now()
		out.Charges, err = tx.LoadCharges(ctx, r.Charges)
		e.step(StepLoadCharges, start)
		if err != nil {
			return out, fmt.Errorf("load charges: %w", err)
		}
	}
	if len(out.Accounts) == 0 {
		return out, nil
	}
	existing := make([]string, len(out.Accounts))
	for i, a := range out.Accounts {
		existing[i] = a.ID
	}
	grantIDs := sortedUnique(append(slices.Clone(r.Grants), allocatedGrants(&out)...))
	start = time.Now()
	out.Grants, err = tx.LoadGrants(ctx, existing, grantIDs)
	e.step(StepLoadGrants, start)
	if err != nil {
		return out, fmt.Errorf("load grants: %w", err)
	}
	if len(r.Keys) > 0 {
		start = time.Now()
		out.Keyed, err = tx.LoadKeyed(ctx, r.Keys)
		e.step(StepLoadKeyed, start)
		if err != nil {
			return out, fmt.Errorf("load idempotency keys: %w", err)
		}
	}
	return out, nil
}

// allocatedGrants returns the grants that the loaded holds and charges
// hold credits of.
func allocatedGrants(l *Loaded) []string {
	var ids []string
	for _, h := range l.Holds {
		for _, a := range h.Allocations {
			ids = append(ids, a.GrantID)
		}
	}
	for _, c := range l.Charges {
		for _, a := range c.Allocations {
			ids = append(ids, a.GrantID)
		}
	}
	return ids
}

func sortedUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// run applies one operation to the batch and sets its result.
func (b *batch) run(o *op) {
	if r, ok := o.req.(*createAccountRequest); ok {
		b.createAccount(o, r)
		return
	}
	acct := b.accounts[o.accountID]
	if acct == nil {
		o.err = scrip.Errorf(scrip.EAccountNotFound, "account %q not found", o.accountID)
		return
	}
	k := TxKey{AccountID: o.accountID, Key: o.key}
	if t := b.keyed[k]; t != nil {
		if t.Type != o.typ || t.RequestHash != o.hash {
			o.err = scrip.Errorf(scrip.EIdempotencyConflict,
				"idempotency key %q was already used for a different %s request on account %q", o.key, t.Type, o.accountID)
			return
		}
		o.replayOf = t
		return
	}
	t := Transaction{Type: o.typ, AccountID: o.accountID, IdempotencyKey: o.key, RequestHash: o.hash}
	var res Result
	var err error
	switch r := o.req.(type) {
	case *GrantRequest:
		err = b.grant(&t, &res, r)
	case *HoldRequest:
		err = b.hold(&t, &res, r)
	case *CaptureRequest:
		err = b.capture(&t, &res, r)
	case *ReleaseRequest:
		err = b.release(&t, &res, r.HoldID, HoldReleased, r.Reason)
	case *ChargeRequest:
		err = b.charge(&t, &res, r)
	case *RefundRequest:
		err = b.refund(&t, &res, r)
	case *AdjustRequest:
		err = b.adjust(&t, &res, r)
	case *RevokeRequest:
		err = b.revoke(&t, &res, r.GrantID, r.Reason)
	case *expireRequest:
		if o.typ == TxHoldExpiry {
			err = b.expireHold(&t, &res, r.id)
		} else {
			err = b.expireGrant(&t, &res, r.id)
		}
	default:
		err = fmt.Errorf("unknown operation %T", o.req)
	}
	if err != nil {
		if errors.Is(err, errSkip) {
			o.res = Result{Available: Available(b.sorted[o.accountID], b.now)}
		}
		o.err = err
		return
	}
	avail := Available(b.sorted[o.accountID], b.now)
	t.AvailableAfter = &avail
	b.append(acct, &t)
	b.keyed[k] = &b.txns[len(b.txns)-1]
	res.Transaction = t
	res.Available = avail
	o.res = res
}

// createAccount creates the operation's account unless the batch holds it,
// loaded or created by an earlier operation; either way the result is the
// account as it stands.
func (b *batch) createAccount(o *op, r *createAccountRequest) {
	a := b.accounts[o.accountID]
	if a == nil {
		a = &Account{ID: o.accountID, CreatedAt: b.now, Metadata: r.metadata}
		b.accounts[a.ID] = a
		b.newAccounts = append(b.newAccounts, a)
		o.created = true
	}
	// Each caller gets a map of its own: several may get this account.
	o.account = *a
	o.account.Metadata = maps.Clone(a.Metadata)
}

// errSkip marks an engine operation that found nothing left to do.
var errSkip = errors.New("nothing to do")

// append seals a transaction onto its account's chain.
func (b *batch) append(acct *Account, t *Transaction) {
	var sum credit.Amount
	for _, e := range t.Entries {
		sum += e.Amount
	}
	if sum != 0 {
		// A journal transaction that does not balance is a bug in this
		// package; committing it would corrupt every balance after it.
		panic(fmt.Sprintf("ledger: %s transaction on %s does not balance: %s", t.Type, acct.ID, sum))
	}
	t.ID = newID("tx_")
	t.Seq = acct.Seq + 1
	t.PrevHash = acct.Hash
	t.CreatedAt = b.now
	t.Hash = txHash(t)
	acct.Seq, acct.Hash = t.Seq, t.Hash
	b.dirtyAccounts[acct.ID] = acct
	b.txns = append(b.txns, *t)
}

func (b *batch) touchGrant(g *Grant) {
	if !b.isNew[g.ID] {
		b.dirtyGrants[g.ID] = g
	}
}

func (b *batch) touchHold(h *Hold) {
	if !b.isNew[h.ID] {
		b.dirtyHolds[h.ID] = h
	}
}

func (b *batch) touchCharge(c *Charge) {
	if !b.isNew[c.ID] {
		b.dirtyCharges[c.ID] = c
	}
}

func (b *batch) addGrant(g *Grant) {
	b.grants[g.ID] = g
	b.isNew[g.ID] = true
	b.newGrants = append(b.newGrants, g)
	gs := append(b.sorted[g.AccountID], g)
	SortGrants(gs)
	b.sorted[g.AccountID] = gs
}

func (b *batch) insufficient(accountID string, required credit.Amount) error {
	avail := Available(b.sorted[accountID], b.now)
	return &scrip.Error{
		Code:    scrip.EInsufficientCredits,
		Message: fmt.Sprintf("account %q has %s credits available; %s required", accountID, avail, required),
		Details: map[string]any{"required": required, "available": avail},
	}
}

// debit takes allocs out of their grants and records the entries, with
// room for the one entry that balances them, which every caller appends.
func (b *batch) debit(t *Transaction, accountID string, allocs []Allocation) {
	t.Entries = slices.Grow(t.Entries, len(allocs)+1)
	for _, a := range allocs {
		g := b.grants[a.GrantID]
		g.Remaining -= a.Amount
		b.touchGrant(g)
		t.Entries = append(t.Entries, Entry{Account: accountID, Grant: g.ID, Amount: -a.Amount})
	}
}

// credit returns amount to grant g. Credits returned to a closed grant
// expire at once, with explicit entries.
func (b *batch) credit(t *Transaction, g *Grant, amount credit.Amount) {
	if amount == 0 {
		return
	}
	t.Entries = append(t.Entries, Entry{Account: g.AccountID, Grant: g.ID, Amount: amount})
	if g.Closed {
		t.Entries = append(t.Entries,
			Entry{Account: g.AccountID, Grant: g.ID, Amount: -amount},
			Entry{Account: SystemExpired, Amount: amount})
		return
	}
	g.Remaining += amount
	b.touchGrant(g)
}

func (b *batch) grant(t *Transaction, res *Result, r *GrantRequest) error {
	g := newGrant(b.now, r.AccountID, r.Kind, r.Amount, r.Priority, r.EffectiveAt, r.ExpiresAt, r.Source, r.Metadata)
	g.PaidAmount, g.PaidCurrency = r.PaidAmount, r.PaidCurrency
	b.addGrant(g)
	t.Amount, t.GrantID = r.Amount, g.ID
	t.Reason = r.Source.Reason
	t.Entries = append(t.Entries,
		Entry{Account: SystemIssued, Amount: -r.Amount},
		Entry{Account: r.AccountID, Grant: g.ID, Amount: r.Amount})
	res.Grant = cloneGrant(g)
	return nil
}

func newGrant(now time.Time, accountID string, kind Kind, amount credit.Amount, priority *int, effective, expires time.Time, src Source, md map[string]string) *Grant {
	p := DefaultPriority(kind)
	if priority != nil {
		p = *priority
	}
	if effective.IsZero() {
		effective = now
	}
	return &Grant{
		ID: newID("gr_"), AccountID: accountID, Kind: kind, Amount: amount, Remaining: amount,
		Priority: p, EffectiveAt: effective.UTC().Truncate(time.Microsecond),
		ExpiresAt: expires.UTC().Truncate(time.Microsecond), Source: src, CreatedAt: now, Metadata: md,
	}
}

func (b *batch) hold(t *Transaction, res *Result, r *HoldRequest) error {
	allocs, ok := Allocate(b.sorted[r.AccountID], r.Amount, b.now)
	if !ok {
		return b.insufficient(r.AccountID, r.Amount)
	}
	h := &Hold{
		ID: newID("hd_"), AccountID: r.AccountID, Amount: r.Amount, Allocations: allocs,
		Status: HoldOpen, ExpiresAt: b.now.Add(r.TTL).Truncate(time.Microsecond), CreatedAt: b.now, Ref: r.Ref,
	}
	b.debit(t, r.AccountID, allocs)
	t.Entries = append(t.Entries, Entry{Account: r.AccountID, Hold: h.ID, Amount: r.Amount})
	b.holds[h.ID] = h
	b.isNew[h.ID] = true
	b.newHolds = append(b.newHolds, h)
	t.Amount, t.HoldID, t.Ref = r.Amount, h.ID, r.Ref
	res.Hold = cloneHold(h)
	return nil
}

// openHold finds a hold that can still be settled.
func (b *batch) openHold(id, accountID string) (*Hold, error) {
	h := b.holds[id]
	if h == nil || h.AccountID != accountID {
		return nil, scrip.Errorf(scrip.EHoldNotFound, "hold %q not found", id)
	}
	switch h.Status {
	case HoldOpen:
		return h, nil
	case HoldExpired:
		return nil, scrip.Errorf(scrip.EHoldExpired, "hold %q expired at %s and its credits were released", id, h.ExpiresAt.Format(time.RFC3339))
	}
	return nil, scrip.Errorf(scrip.EHoldAlreadySettled, "hold %q was already %s", id, h.Status)
}

func (b *batch) capture(t *Transaction, res *Result, r *CaptureRequest) error {
	h, err := b.openHold(r.HoldID, t.AccountID)
	if err != nil {
		return err
	}
	if !h.ExpiresAt.After(b.now) {
		return scrip.Errorf(scrip.EHoldExpired, "hold %q expired at %s", h.ID, h.ExpiresAt.Format(time.RFC3339))
	}
	var extra []Allocation
	if r.Amount > h.Amount {
		if !r.AllowOver {
			return &scrip.Error{Code: scrip.EInvalidAmount, Field: "amount",
				Message: fmt.Sprintf("capture of %s exceeds hold %q of %s; set allow_over to charge the difference", r.Amount, h.ID, h.Amount)}
		}
		var ok bool
		extra, ok = Allocate(b.sorted[h.AccountID], r.Amount-h.Amount, b.now)
		if !ok {
			return b.insufficient(h.AccountID, r.Amount-h.Amount)
		}
	}
	t.Entries = append(t.Entries, Entry{Account: h.AccountID, Hold: h.ID, Amount: -h.Amount})
	// The captured part is taken from the hold's allocations in their
	// (consumption) order; the rest goes back to the grants it came from.
	var taken []Allocation
	left := credit.Min(r.Amount, h.Amount)
	for _, a := range h.Allocations {
		take := credit.Min(left, a.Amount)
		left -= take
		if take > 0 {
			taken = append(taken, Allocation{GrantID: a.GrantID, Amount: take})
		}
		b.credit(t, b.grants[a.GrantID], a.Amount-take)
	}
	b.debit(t, h.AccountID, extra)
	taken = mergeAllocations(taken, extra)
	t.Entries = append(t.Entries, Entry{Account: SystemSpent, Amount: r.Amount})

	ref := h.Ref
	if r.Ref != nil {
		ref = *r.Ref
	}
	h.Status, h.SettledAt, h.Captured = HoldCaptured, b.now, r.Amount
	if r.Amount > 0 {
		c := &Charge{ID: newID("ch_"), AccountID: h.AccountID, Amount: r.Amount, Allocations: taken,
			HoldID: h.ID, CreatedAt: b.now, Ref: ref}
		b.charges[c.ID] = c
		b.isNew[c.ID] = true
		b.newCharges = append(b.newCharges, c)
		h.ChargeID = c.ID
		t.ChargeID = c.ID
		res.Charge = cloneCharge(c)
	}
	b.touchHold(h)
	t.Amount, t.HoldID, t.Ref = r.Amount, h.ID, ref
	res.Hold = cloneHold(h)
	return nil
}

func mergeAllocations(a, b []Allocation) []Allocation {
	for _, x := range b {
		found := false
		for i := range a {
			if a[i].GrantID == x.GrantID {
				a[i].Amount += x.Amount
				found = true
				break
			}
		}
		if !found {
			a = append(a, x)
		}
	}
	return a
}

// release returns a hold's credits to the grants they came from.
func (b *batch) release(t *Transaction, res *Result, id string, status HoldStatus, reason string) error {
	h, err := b.openHold(id, t.AccountID)
	if err != nil {
		return err
	}
	t.Entries = append(t.Entries, Entry{Account: h.AccountID, Hold: h.ID, Amount: -h.Amount})
	for _, a := range h.Allocations {
		b.credit(t, b.grants[a.GrantID], a.Amount)
	}
	h.Status, h.SettledAt = status, b.now
	b.touchHold(h)
	t.Amount, t.HoldID, t.Ref, t.Reason = h.Amount, h.ID, h.Ref, reason
	res.Hold = cloneHold(h)
	return nil
}

func (b *batch) expireHold(t *Transaction, res *Result, id string) error {
	h := b.holds[id]
	if h == nil || h.Status != HoldOpen || h.ExpiresAt.After(b.now) {
		return errSkip
	}
	return b.release(t, res, id, HoldExpired, "time-to-live ended")
}

func (b *batch) charge(t *Transaction, res *Result, r *ChargeRequest) error {
	allocs, ok := Allocate(b.sorted[r.AccountID], r.Amount, b.now)
	if !ok {
		return b.insufficient(r.AccountID, r.Amount)
	}
	b.debit(t, r.AccountID, allocs)
	t.Entries = append(t.Entries, Entry{Account: SystemSpent, Amount: r.Amount})
	c := &Charge{ID: newID("ch_"), AccountID: r.AccountID, Amount: r.Amount, Allocations: allocs,
		CreatedAt: b.now, Ref: r.Ref}
	b.charges[c.ID] = c
	b.isNew[c.ID] = true
	b.newCharges = append(b.newCharges, c)
	t.Amount, t.ChargeID, t.Ref = r.Amount, c.ID, r.Ref
	res.Charge = cloneCharge(c)
	return nil
}

func (b *batch) refund(t *Transaction, res *Result, r *RefundRequest) error {
	c := b.charges[r.ChargeID]
	if c == nil || c.AccountID != t.AccountID {
		return scrip.Errorf(scrip.EChargeNotFound, "charge %q not found", r.ChargeID)
	}
	refundable := c.Amount - c.Refunded
	amount := r.Amount
	if amount == 0 {
		amount = refundable
	}
	if refundable == 0 {
		return &scrip.Error{Code: scrip.EInvalidAmount, Field: "amount", Message: fmt.Sprintf("charge %q is already fully refunded", c.ID)}
	}
	if amount > refundable {
		return &scrip.Error{Code: scrip.EInvalidAmount, Field: "amount",
			Message: fmt.Sprintf("refund of %s exceeds the %s still refundable on charge %q", amount, refundable, c.ID)}
	}
	t.Entries = append(t.Entries, Entry{Account: SystemRefunded, Amount: -amount})
	// Last taken, first returned: a partial refund goes back to the grants
	// consumed last (top-up credits before plan credits).
	left := amount
	for i := len(c.Allocations) - 1; i >= 0 && left > 0; i-- {
		a := &c.Allocations[i]
		give := credit.Min(left, a.Amount)
		left -= give
		a.Amount -= give
		b.credit(t, b.grants[a.GrantID], give)
	}
	c.Allocations = slices.DeleteFunc(c.Allocations, func(a Allocation) bool { return a.Amount == 0 })
	c.Refunded += amount
	b.touchCharge(c)
	t.Amount, t.ChargeID, t.HoldID, t.Ref, t.Reason = amount, c.ID, c.HoldID, c.Ref, r.Reason
	res.Charge = cloneCharge(c)
	return nil
}

func (b *batch) adjust(t *Transaction, res *Result, r *AdjustRequest) error {
	t.Reason = r.Reason
	if r.Amount > 0 {
		g := newGrant(b.now, r.AccountID, KindAdjustment, r.Amount, nil, time.Time{}, r.ExpiresAt,
			Source{Type: "admin", Reason: r.Reason}, nil)
		b.addGrant(g)
		t.Amount, t.GrantID = r.Amount, g.ID
		t.Entries = append(t.Entries,
			Entry{Account: SystemAdjusted, Amount: -r.Amount},
			Entry{Account: r.AccountID, Grant: g.ID, Amount: r.Amount})
		res.Grant = cloneGrant(g)
		return nil
	}
	amount := -r.Amount
	allocs, ok := Allocate(b.sorted[r.AccountID], amount, b.now)
	if !ok {
		return b.insufficient(r.AccountID, amount)
	}
	b.debit(t, r.AccountID, allocs)
	t.Entries = append(t.Entries, Entry{Account: SystemAdjusted, Amount: amount})
	t.Amount = r.Amount
	return nil
}

func (b *batch) revoke(t *Transaction, res *Result, id, reason string) error {
	g := b.grants[id]
	if g == nil || g.AccountID != t.AccountID {
		return scrip.Errorf(scrip.EGrantNotFound, "grant %q not found", id)
	}
	r := g.Remaining
	if r > 0 {
		t.Entries = append(t.Entries,
			Entry{Account: g.AccountID, Grant: g.ID, Amount: -r},
			Entry{Account: SystemRevoked, Amount: r})
	}
	g.Remaining, g.Closed = 0, true
	b.touchGrant(g)
	t.Amount, t.GrantID, t.Reason = r, g.ID, reason
	res.Grant = cloneGrant(g)
	return nil
}

func (b *batch) expireGrant(t *Transaction, res *Result, id string) error {
	g := b.grants[id]
	if g == nil || g.Closed || g.Never() || g.ExpiresAt.After(b.now) {
		return errSkip
	}
	r := g.Remaining
	if r > 0 {
		t.Entries = append(t.Entries,
			Entry{Account: g.AccountID, Grant: g.ID, Amount: -r},
			Entry{Account: SystemExpired, Amount: r})
	}
	g.Remaining, g.Closed = 0, true
	b.touchGrant(g)
	t.Amount, t.GrantID = r, g.ID
	res.Grant = cloneGrant(g)
	return nil
}

// writes collects everything the batch changed.
func (b *batch) writes() *Writes {
	w := &Writes{
		Transactions: b.txns,
		Accounts:     make([]Account, 0, len(b.dirtyAccounts)),
		Grants:       make([]Grant, 0, len(b.dirtyGrants)),
		NewCharges:   make([]Charge, 0, len(b.newCharges)),
	}
	for _, a := range b.newAccounts {
		// Inserted with its head as the batch left it, not also updated.
		delete(b.dirtyAccounts, a.ID)
		w.NewAccounts = append(w.NewAccounts, *a)
	}
	for _, a := range b.dirtyAccounts {
		w.Accounts = append(w.Accounts, *a)
	}
	for _, g := range b.newGrants {
		w.NewGrants = append(w.NewGrants, *g)
	}
	for _, g := range b.dirtyGrants {
		w.Grants = append(w.Grants, *g)
	}
	for _, h := range b.newHolds {
		w.NewHolds = append(w.NewHolds, *h)
	}
	for _, h := range b.dirtyHolds {
		w.Holds = append(w.Holds, *h)
	}
	for _, c := range b.newCharges {
		w.NewCharges = append(w.NewCharges, *c)
	}
	for _, c := range b.dirtyCharges {
		w.Charges = append(w.Charges, *c)
	}
	// Sorted inserts and updates take row locks, and wait on each other's
	// new keys, in one order across processes.
	slices.SortFunc(w.NewAccounts, func(x, y Account) int { return cmpStr(x.ID, y.ID) })
	slices.SortFunc(w.Accounts, func(x, y Account) int { return cmpStr(x.ID, y.ID) })
	slices.SortFunc(w.Grants, func(x, y Grant) int { return cmpStr(x.ID, y.ID) })
	slices.SortFunc(w.Holds, func(x, y Hold) int { return cmpStr(x.ID, y.ID) })
	slices.SortFunc(w.Charges, func(x, y Charge) int { return cmpStr(x.ID, y.ID) })
	return w
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cloneGrant(g *Grant) *Grant { c := *g; return &c }

func cloneHold(h *Hold) *Hold {
	c := *h
	c.Allocations = slices.Clone(h.Allocations)
	return &c
}

func cloneCharge(ch *Charge) *Charge {
	c := *ch
	c.Allocations = slices.Clone(ch.Allocations)
	return &c
}
