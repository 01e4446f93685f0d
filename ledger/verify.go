package ledger

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/scriphq/scrip/credit"
)

// verifyProblemsMax bounds the report; past it verification stops early.
const verifyProblemsMax = 1000

// verifyWorkers is how many accounts Verify checks at once. Each check is
// a few reads, mostly waiting on the store (on PostgreSQL a round trip
// each), so checking several at once uses the store's connections instead
// of waiting on one.
const verifyWorkers = 8

// Verify re-derives every balance from the journal and reports any
// difference: transactions that do not sum to zero, broken or edited hash
// chains, gaps in an account's sequence, grants or holds whose stored amount
// differs from the journal's, and negative balances. Accounts are checked
// several at a time; the report lists problems in account order all the
// same.
func (e *Engine) Verify(ctx context.Context) (VerifyReport, error) {
	r := VerifyReport{Totals: map[string]credit.Amount{}}
	var userTotal credit.Amount
	after := ""
	for {
		ids, err := e.store.AccountIDs(ctx, after, verifyAccountsPerPage)
		if err != nil {
			return r, fmt.Errorf("verify: list accounts: %w", err)
		}
		checks := e.verifyAccounts(ctx, ids)
		for i := range checks {
			c := &checks[i]
			if c.err != nil {
				return r, fmt.Errorf("verify account %s: %w", ids[i], c.err)
			}
			r.Accounts += c.report.Accounts
			r.Transactions += c.report.Transactions
			r.Problems = append(r.Problems, c.report.Problems...)
			for k, v := range c.report.Totals {
				r.Totals[k] += v
			}
			userTotal += c.sum
			if len(r.Problems) >= verifyProblemsMax {
				r.Problems = append(r.Problems, "too many problems; verification stopped early")
				return r, nil
			}
		}
		if len(ids) < verifyAccountsPerPage {
			break
		}
		after = ids[len(ids)-1]
	}
	var system credit.Amount
	for _, v := range r.Totals {
		system += v
	}
	if system+userTotal != 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("the journal does not balance: system accounts %s, user accounts %s", system, userTotal))
	}
	return r, nil
}

// accountCheck is the verification of one account: its own report, its
// total, or the error that stopped it.
type accountCheck struct {
	report VerifyReport
	sum    credit.Amount
	err    error
}

// verifyAccounts checks the accounts, verifyWorkers at a time, and returns
// their checks in the order of ids. An error does not stop the others (a
// page is bounded), so the first error in order is the account's own, not
// a cancellation.
func (e *Engine) verifyAccounts(ctx context.Context, ids []string) []accountCheck {
	checks := make([]accountCheck, len(ids))
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range min(verifyWorkers, len(ids)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				c := &checks[i]
				c.report.Totals = map[string]credit.Amount{}
				c.sum, c.err = e.verifyAccount(ctx, ids[i], &c.report)
			}
		})
	}
	wg.Wait()
	return checks
}

// verifyAccount checks one account's chain and projections and returns the
// account's total (grants plus holds) as derived from the journal.
func (e *Engine) verifyAccount(ctx context.Context, id string, r *VerifyReport) (credit.Amount, error) {
	acct, err := e.store.Account(ctx, id)
	if err != nil {
		return 0, err
	}
	problem := func(format string, args ...any) {
		r.Problems = append(r.Problems, fmt.Sprintf("account %s: ", id)+fmt.Sprintf(format, args...))
	}
	r.Accounts++
	grantSums := map[string]credit.Amount{}
	holdSums := map[string]credit.Amount{}
	var total credit.Amount
	var seq int64
	prev := ""
	err = e.store.Journal(ctx, id, func(t *Transaction) error {
		r.Transactions++
		seq++
		if t.Seq != seq {
			problem("transaction %s has sequence %d, want %d (a transaction is missing or duplicated)", t.ID, t.Seq, seq)
			seq = t.Seq
		}
		if t.PrevHash != prev {
			problem("transaction %s (seq %d) does not chain to the previous transaction", t.ID, t.Seq)
		}
		if h := txHash(t); h != t.Hash {
			problem("transaction %s (seq %d) was altered: its hash does not match its content", t.ID, t.Seq)
		}
		prev = t.Hash
		var sum credit.Amount
		for _, en := range t.Entries {
			sum += en.Amount
			switch {
			case en.Account == id && en.Grant != "":
				grantSums[en.Grant] += en.Amount
				total += en.Amount
			case en.Account == id && en.Hold != "":
				holdSums[en.Hold] += en.Amount
				total += en.Amount
			case len(en.Account) > 0 && en.Account[0] == '@':
				r.Totals[en.Account] += en.Amount
			default:
				problem("transaction %s has an entry on unexpected account %q", t.ID, en.Account)
			}
		}
		if sum != 0 {
			problem("transaction %s (seq %d) does not sum to zero (%s)", t.ID, t.Seq, sum)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if acct.Seq != seq || acct.Hash != prev {
		problem("account head (seq %d) does not match its journal (seq %d)", acct.Seq, seq)
	}
	grants, err := e.store.Grants(ctx, id, true)
	if err != nil {
		return 0, err
	}
	for _, g := range grants {
		if g.Remaining < 0 {
			problem("grant %s is negative: %s", g.ID, g.Remaining)
		}
		if want := grantSums[g.ID]; want != g.Remaining {
			problem("grant %s holds %s but its journal entries sum to %s", g.ID, g.Remaining, want)
		}
		delete(grantSums, g.ID)
	}
	for gid, s := range grantSums {
		problem("journal entries of %s on grant %s have no grant row", s, gid)
	}
	holds, err := e.store.OpenHolds(ctx, id)
	if err != nil {
		return 0, err
	}
	for _, h := range holds {
		if want := holdSums[h.ID]; want != h.Amount {
			problem("open hold %s reserves %s but its journal entries sum to %s", h.ID, h.Amount, want)
		}
		delete(holdSums, h.ID)
	}
	for hid, s := range holdSums {
		if s != 0 {
			problem("hold %s is not open but its journal entries still reserve %s", hid, s)
		}
	}
	return total, nil
}
