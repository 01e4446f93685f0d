package ledger

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scriphq/scrip/credit"
)

// verifyProblemsMax bounds the report; past it verification stops early.
const verifyProblemsMax = 1000

// verifyWorkers is how many pieces of a page of accounts Verify checks at
// once. Each piece is a few reads, mostly waiting on the store (on
// PostgreSQL a round trip each), so checking several at once uses the
// store's connections instead of waiting on one.
const verifyWorkers = 8

// verifyBulkAccounts is how many accounts one piece holds on a BulkReader
// store; other stores check one account per piece.
const verifyBulkAccounts = 50

// Verify re-derives every balance from the journal and reports any
// difference: transactions that do not sum to zero, broken or edited hash
// chains, gaps in an account's sequence, grants or holds whose stored amount
// differs from the journal's, and negative balances. Accounts are checked
// several at a time; the report lists problems in account order all the
// same.
func (e *Engine) Verify(ctx context.Context) (VerifyReport, error) {
	return e.VerifyProgress(ctx, nil)
}

// VerifyProgress is Verify calling progress, when not nil, after each page
// of accounts with the accounts and transactions checked so far.
func (e *Engine) VerifyProgress(ctx context.Context, progress func(accounts int, transactions int64)) (VerifyReport, error) {
	r := VerifyReport{Totals: map[string]credit.Sum{}}
	var userTotal credit.Sum
	after := ""
	for {
		ids, err := e.store.AccountIDs(ctx, after, verifyAccountsPerPage)
		if err != nil {
			return r, fmt.Errorf("verify: list accounts: %w", err)
		}
		checks := e.verifyPage(ctx, ids)
		for i := range checks {
			c := &checks[i]
			if c.err != nil {
				return r, fmt.Errorf("verify account %s: %w", ids[i], c.err)
			}
			r.Accounts += c.report.Accounts
			r.Transactions += c.report.Transactions
			r.Problems = append(r.Problems, c.report.Problems...)
			for k, v := range c.report.Totals {
				r.Totals[k] = r.Totals[k].Plus(v)
			}
			userTotal = userTotal.Plus(c.sum)
			if len(r.Problems) >= verifyProblemsMax {
				r.Problems = append(r.Problems, "too many problems; verification stopped early")
				return r, nil
			}
		}
		if progress != nil {
			progress(r.Accounts, r.Transactions)
		}
		if len(ids) < verifyAccountsPerPage {
			break
		}
		after = ids[len(ids)-1]
	}
	var system credit.Sum
	for _, v := range r.Totals {
		system = system.Plus(v)
	}
	if !system.Plus(userTotal).IsZero() {
		r.Problems = append(r.Problems, fmt.Sprintf("the journal does not balance: system accounts %s, user accounts %s", system, userTotal))
	}
	return r, nil
}

// accountCheck is the verification of one account: its own report, its
// total, or the error that stopped it.
type accountCheck struct {
	report VerifyReport
	sum    credit.Sum
	err    error
}

// verifyPage checks the accounts ids, verifyWorkers pieces at a time, and
// returns their checks in the order of ids. An error does not stop the
// other pieces (a page is bounded), so the first error in order is the
// account's own, not a cancellation.
func (e *Engine) verifyPage(ctx context.Context, ids []string) []accountCheck {
	checks := make([]accountCheck, len(ids))
	bulk, isBulk := e.store.(BulkReader)
	size := 1
	if isBulk {
		size = verifyBulkAccounts
	}
	pieces := (len(ids) + size - 1) / size
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range min(verifyWorkers, pieces) {
		wg.Go(func() {
			for {
				p := int(next.Add(1)) - 1
				if p >= pieces {
					return
				}
				lo, hi := p*size, min((p+1)*size, len(ids))
				if !isBulk || !verifyBulk(ctx, bulk, ids[lo:hi], checks[lo:hi]) {
					// Without bulk reads, or when they failed: one
					// account at a time, so that an error names its
					// account and the others' problems stay. Each from
					// a snapshot of its own where the store has them:
					// separate reads while batches commit could see an
					// account's journal and its grants at different
					// moments, and report a difference that is not
					// there.
					for i := lo; i < hi; i++ {
						if !isBulk || hi-lo == 1 || !verifyBulk(ctx, bulk, ids[i:i+1], checks[i:i+1]) {
							e.verifyOne(ctx, ids[i], &checks[i])
						}
					}
				}
			}
		})
	}
	wg.Wait()
	return checks
}

// verifyOne checks one account with the Store's own reads.
func (e *Engine) verifyOne(ctx context.Context, id string, c *accountCheck) {
	acct, err := e.store.Account(ctx, id)
	if err != nil {
		c.err = err
		return
	}
	v := newAccountVerifier(id, c)
	if err := e.store.Journal(ctx, id, v.add); err != nil {
		c.err = err
		return
	}
	grants, err := e.store.Grants(ctx, id)
	if err != nil {
		c.err = err
		return
	}
	holds, err := e.store.OpenHolds(ctx, id)
	if err != nil {
		c.err = err
		return
	}
	v.finish(acct, grants, holds)
}

// verifyBulk checks the accounts ids, into checks, with one read of each
// kind for all of them, from one snapshot. It reports false, with checks
// to be made again, when a read failed or an account was missing.
func verifyBulk(ctx context.Context, b BulkReader, ids []string, checks []accountCheck) bool {
	err := b.ReadAccounts(ctx, func(r AccountsReader) error {
		accts, err := r.AccountsOf(ctx, ids)
		if err != nil {
			return err
		}
		heads := make(map[string]Account, len(accts))
		for _, a := range accts {
			heads[a.ID] = a
		}
		vs := make(map[string]*accountVerifier, len(ids))
		for i, id := range ids {
			if _, ok := heads[id]; !ok {
				return fmt.Errorf("account %q: %w", id, ErrNotFound)
			}
			vs[id] = newAccountVerifier(id, &checks[i])
		}
		err = r.JournalOf(ctx, ids, func(t *Transaction) error {
			v := vs[t.AccountID]
			if v == nil {
				return fmt.Errorf("the journal of accounts %s to %s returned transaction %s of account %s", ids[0], ids[len(ids)-1], t.ID, t.AccountID)
			}
			return v.add(t)
		})
		if err != nil {
			return err
		}
		grantsOf, holdsOf, err := grantsAndHolds(ctx, r, ids)
		if err != nil {
			return err
		}
		for _, id := range ids {
			vs[id].finish(heads[id], grantsOf[id], holdsOf[id])
		}
		return nil
	})
	if err != nil {
		clear(checks)
		return false
	}
	return true
}

// grantsAndHolds reads every grant and the open holds of the accounts ids,
// by account.
func grantsAndHolds(ctx context.Context, r AccountsReader, ids []string) (map[string][]Grant, map[string][]Hold, error) {
	grants, err := r.GrantsOf(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	holds, err := r.OpenHoldsOf(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	return byAccount(grants, func(g *Grant) string { return g.AccountID }),
		byAccount(holds, func(h *Hold) string { return h.AccountID }), nil
}

// byAccount groups xs by account, keeping their order.
func byAccount[T any](xs []T, account func(*T) string) map[string][]T {
	out := map[string][]T{}
	for i := range xs {
		id := account(&xs[i])
		out[id] = append(out[id], xs[i])
	}
	return out
}

// accountVerifier re-derives one account from its journal, fed one
// transaction at a time in sequence order, and compares the result with
// the account's stored head, grants and holds.
type accountVerifier struct {
	id        string
	c         *accountCheck
	grantSums map[string]credit.Amount
	holdSums  map[string]credit.Amount
	seq       int64
	prev      string
	// The latest transaction's available credits (nil: none recorded)
	// and time.
	lastAvailable *credit.Amount
	lastAt        time.Time
}

func newAccountVerifier(id string, c *accountCheck) *accountVerifier {
	c.report = VerifyReport{Accounts: 1, Totals: map[string]credit.Sum{}}
	return &accountVerifier{id: id, c: c, grantSums: map[string]credit.Amount{}, holdSums: map[string]credit.Amount{}}
}

func (v *accountVerifier) problem(format string, args ...any) {
	v.c.report.Problems = append(v.c.report.Problems, fmt.Sprintf("account %s: ", v.id)+fmt.Sprintf(format, args...))
}

// add checks the account's next transaction: its place in the sequence
// and the hash chain, its hash and its sum, and adds its entries.
func (v *accountVerifier) add(t *Transaction) error {
	v.c.report.Transactions++
	v.seq++
	if t.Seq != v.seq {
		v.problem("transaction %s has sequence %d, want %d (a transaction is missing or duplicated)", t.ID, t.Seq, v.seq)
		v.seq = t.Seq
	}
	if t.PrevHash != v.prev {
		v.problem("transaction %s (seq %d) does not chain to the previous transaction", t.ID, t.Seq)
	}
	if h := txHash(t); h != t.Hash {
		v.problem("transaction %s (seq %d) was altered: its hash does not match its content", t.ID, t.Seq)
	}
	v.prev = t.Hash
	v.lastAvailable, v.lastAt = t.AvailableAfter, t.CreatedAt
	var sum credit.Sum
	for _, en := range t.Entries {
		sum = sum.Add(en.Amount)
		switch {
		case en.Account == v.id && en.Grant != "":
			v.grantSums[en.Grant] += en.Amount
			v.c.sum = v.c.sum.Add(en.Amount)
		case en.Account == v.id && en.Hold != "":
			v.holdSums[en.Hold] += en.Amount
			v.c.sum = v.c.sum.Add(en.Amount)
		case len(en.Account) > 0 && en.Account[0] == '@':
			v.c.report.Totals[en.Account] = v.c.report.Totals[en.Account].Add(en.Amount)
		default:
			v.problem("transaction %s has an entry on unexpected account %q", t.ID, en.Account)
		}
	}
	if !sum.IsZero() {
		v.problem("transaction %s (seq %d) does not sum to zero (%s)", t.ID, t.Seq, sum)
	}
	return nil
}

// finish compares what the journal gave with the account's head, all its
// grants and its open holds.
func (v *accountVerifier) finish(acct Account, grants []Grant, holds []Hold) {
	if acct.Seq != v.seq || acct.Hash != v.prev {
		v.problem("account head (seq %d) does not match its journal (seq %d)", acct.Seq, v.seq)
	}
	for _, g := range grants {
		if g.Remaining < 0 {
			v.problem("grant %s is negative: %s", g.ID, g.Remaining)
		}
		if want := v.grantSums[g.ID]; want != g.Remaining {
			v.problem("grant %s holds %s but its journal entries sum to %s", g.ID, g.Remaining, want)
		}
		delete(v.grantSums, g.ID)
	}
	for _, gid := range slices.Sorted(maps.Keys(v.grantSums)) {
		v.problem("journal entries of %s on grant %s have no grant row", v.grantSums[gid], gid)
	}
	if v.lastAvailable != nil {
		// Nothing has changed the grants since the latest transaction, so
		// they give what it recorded, spendable as of its time.
		var avail credit.Amount
		for i := range grants {
			if spendable(&grants[i], v.lastAt) {
				avail += grants[i].Remaining
			}
		}
		if avail != *v.lastAvailable {
			v.problem("latest transaction (seq %d) records %s available, but the grants give %s", v.seq, *v.lastAvailable, avail)
		}
	}
	for _, h := range holds {
		if want := v.holdSums[h.ID]; want != h.Amount {
			v.problem("open hold %s reserves %s but its journal entries sum to %s", h.ID, h.Amount, want)
		}
		delete(v.holdSums, h.ID)
	}
	for _, hid := range slices.Sorted(maps.Keys(v.holdSums)) {
		if s := v.holdSums[hid]; s != 0 {
			v.problem("hold %s is not open but its journal entries still reserve %s", hid, s)
		}
	}
}
