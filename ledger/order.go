package ledger

import (
	"slices"
	"time"

	"github.com/scriphq/scrip/credit"
)

// before reports whether grant a is consumed before grant b: priority
// ascending, then expiry ascending (never-expiring last), then creation time,
// then id. The same order drives debits, expiry and reversal.
func before(a, b *Grant) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	if !a.ExpiresAt.Equal(b.ExpiresAt) {
		switch {
		case a.Never():
			return false
		case b.Never():
			return true
		}
		return a.ExpiresAt.Before(b.ExpiresAt)
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.ID < b.ID
}

// SortGrants sorts grants into consumption order.
func SortGrants(gs []*Grant) {
	slices.SortFunc(gs, func(a, b *Grant) int {
		switch {
		case before(a, b):
			return -1
		case before(b, a):
			return 1
		}
		return 0
	})
}

// spendable reports whether the grant's credits can be spent at now.
func spendable(g *Grant, now time.Time) bool {
	return !g.Closed && g.Remaining > 0 && !g.EffectiveAt.After(now) &&
		(g.Never() || g.ExpiresAt.After(now))
}

// Available sums the credits spendable at now in grants already in
// consumption order or not.
func Available(gs []*Grant, now time.Time) credit.Amount {
	var sum credit.Amount
	for _, g := range gs {
		if spendable(g, now) {
			sum += g.Remaining
		}
	}
	return sum
}

// Allocate splits amount across grants in consumption order (gs must be
// sorted) without changing them. It reports false when the spendable credits
// do not cover amount.
func Allocate(gs []*Grant, amount credit.Amount, now time.Time) ([]Allocation, bool) {
	var out []Allocation
	left := amount
	for _, g := range gs {
		if left == 0 {
			break
		}
		if !spendable(g, now) {
			continue
		}
		take := credit.Min(left, g.Remaining)
		out = append(out, Allocation{GrantID: g.ID, Amount: take})
		left -= take
	}
	return out, left == 0
}
