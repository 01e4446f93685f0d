package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// Bounds.
const (
	locksMaxDefault   = 4
	retryAfterDefault = time.Minute
	// catchUpCyclesMax bounds the renewals one API call performs before
	// changing a subscription the scheduler has not caught up with.
	catchUpCyclesMax = 1200
	// historyPagesMax bounds the journal pages read to find what expired
	// at one cycle end.
	historyPagesMax = 100
	historyPage     = 100
	cyclesLimitMax  = 100
	quotaCountMax   = 1 << 20
)

// Options configure a Service. Zero values take the defaults.
type Options struct {
	// Clock defaults to the engine's clock.
	Clock ledger.Clock
	// Grace, when positive, replaces every plan's grace_days: how long a
	// past-due subscription keeps its plan before it is canceled.
	Grace time.Duration
	// LocksMax bounds the subscriptions held under lock at once. On
	// PostgreSQL each holds a connection while the engine writes, so keep
	// it well below the store's pool size (default 4).
	LocksMax int
	// RetryAfter is how long scheduled work that failed with an
	// application error (a plan missing from the catalog, ...) waits
	// before it is tried again (default 1 minute).
	RetryAfter time.Duration
	// PlanCacheAge is how long Plan may answer from a subscription it read
	// before instead of reading the store again. Changes made through this
	// Service apply at once; changes made by another process (another
	// server on the same database, the command line) take up to this long
	// to reach Plan here. Zero: every call reads the store.
	PlanCacheAge time.Duration
	Logger       *slog.Logger
}

// Service runs subscriptions on the ledger engine.
type Service struct {
	engine  *ledger.Engine
	store   Store
	catalog func() *catalog.Catalog
	opt     Options
	locks   chan struct{}
	subs    *subCache
}

// New returns a Service. catalog returns the catalog in force (it may be
// reloaded between calls).
func New(engine *ledger.Engine, store Store, catalog func() *catalog.Catalog, opt Options) *Service {
	if opt.Clock == nil {
		opt.Clock = engine.Clock()
	}
	if opt.LocksMax <= 0 {
		opt.LocksMax = locksMaxDefault
	}
	if opt.RetryAfter <= 0 {
		opt.RetryAfter = retryAfterDefault
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{engine: engine, store: store, catalog: catalog, opt: opt, locks: make(chan struct{}, opt.LocksMax),
		subs: newSubCache(opt.PlanCacheAge)}
}

func (s *Service) now() time.Time { return s.opt.Clock.Now().UTC().Truncate(time.Microsecond) }

// SubscribeRequest subscribes an account to a plan.
type SubscribeRequest struct {
	AccountID string
	PlanCode  string
	// Key is the request's idempotency key: a replay returns the
	// subscription it created.
	Key string
	// Start anchors the billing cycle; zero means now. A past start
	// catches up the cycles since, as the scheduler would have.
	Start time.Time
	// ExternalID is the payment provider's subscription id, if any.
	ExternalID string
}

// ChangePlanRequest moves a subscription to another plan.
type ChangePlanRequest struct {
	AccountID string
	PlanCode  string
	// Key is the request's idempotency key.
	Key string
}

// Get returns the account's subscription (also a canceled one); not_found
// when it never had one.
func (s *Service) Get(ctx context.Context, accountID string) (Subscription, error) {
	if err := ledger.CheckAccountID(accountID); err != nil {
		return Subscription{}, err
	}
	sub, err := s.store.Subscription(ctx, accountID)
	if errors.Is(err, ErrNotFound) {
		return Subscription{}, scrip.Errorf(scrip.ENotFound, "account %q has no subscription", accountID)
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("subscription of %s: %w", accountID, err)
	}
	return sub, nil
}

// Plan returns the code of the plan the account has now, "" for none: the
// subscription's plan while it is active, or past due within its grace
// period, and not past a scheduled cancellation. It satisfies
// httpapi.Billing; quotes and holds gate actions on it. With
// Options.PlanCacheAge it may answer from a subscription read before; the
// plan is still the one in force now (a period that ended since is taken
// into account).
func (s *Service) Plan(ctx context.Context, accountID string) (string, error) {
	now := s.now()
	e, err := s.subs.load(ctx, accountID, now, func(ctx context.Context) (cachedSub, error) {
		sub, err := s.store.Subscription(ctx, accountID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return cachedSub{}, fmt.Errorf("plan of %s: %w", accountID, err)
		}
		return cachedSub{terms: sub.terms(), found: err == nil, at: now}, nil
	})
	if err != nil {
		return "", err
	}
	if !e.found {
		return "", nil
	}
	return e.terms.planAt(now), nil
}

// planAt is the plan in force at now, whether or not the scheduler has run.
func (sub *Subscription) planAt(now time.Time) string { return sub.terms().planAt(now) }

// planTerms are what decides a subscription's plan at a given moment: a
// fifth of the subscription's size, which is what Plan's cache keeps.
type planTerms struct {
	plan, pending        string
	status               Status
	periodEnd, graceEnds time.Time
	cancelAtPeriodEnd    bool
}

func (sub *Subscription) terms() planTerms {
	return planTerms{plan: sub.PlanCode, pending: sub.PendingPlanCode, status: sub.Status,
		periodEnd: sub.CurrentPeriodEnd, graceEnds: sub.GraceEndsAt, cancelAtPeriodEnd: sub.CancelAtPeriodEnd}
}

func (p planTerms) planAt(now time.Time) string {
	switch {
	case p.status == StatusCanceled:
		return ""
	case p.status == StatusPastDue && !p.graceEnds.After(now):
		return ""
	case !p.periodEnd.After(now) && p.cancelAtPeriodEnd:
		return ""
	case !p.periodEnd.After(now) && p.pending != "":
		return p.pending
	}
	return p.plan
}

// View is a subscription as the API shows it: with its plan's name and
// price, the next payment date and the quotas of the current period.
type View struct {
	Subscription
	PlanName string        `json:"plan_name,omitempty"`
	Price    catalog.Price `json:"price"`
	// RenewsAt is the next payment date: the period end for a monthly
	// plan, the anniversary for an annual one. Zero once canceled.
	RenewsAt time.Time    `json:"renews_at,omitzero"`
	Quotas   []QuotaUsage `json:"quotas,omitempty"`
}

// Subscription returns the account's subscription View, nil when it has
// none. It satisfies httpapi.Billing (billing-catalog's "subscription").
func (s *Service) Subscription(ctx context.Context, accountID string) (any, error) {
	sub, err := s.store.Subscription(ctx, accountID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("subscription of %s: %w", accountID, err)
	}
	v := View{Subscription: sub}
	if p, ok := s.catalog().Plan(sub.PlanCode); ok {
		v.PlanName, v.Price = p.Name, p.Price
	}
	if sub.Status != StatusCanceled && !sub.CancelAtPeriodEnd {
		months := int64(1)
		if sub.Interval == "year" {
			months = 12
		}
		v.RenewsAt = addMonths(sub.Anchor, (sub.PeriodIndex/months+1)*months)
	}
	if v.Quotas, err = s.Quotas(ctx, accountID); err != nil && scrip.ErrorCode(err) != scrip.EPlanRequired {
		return nil, err
	}
	return &v, nil
}

// Cycles returns up to limit (at most 100) of the account's billing cycles,
// newest first: each one's plan, period, allowance and carried credits.
func (s *Service) Cycles(ctx context.Context, accountID string, limit int) ([]Cycle, error) {
	if limit <= 0 || limit > cyclesLimitMax {
		limit = cyclesLimitMax
	}
	return s.store.Cycles(ctx, accountID, limit)
}

// Subscribe subscribes an account to a plan. The first cycle's allowance
// is granted at once as subscription credits expiring at the cycle end,
// with the plan's sign-up grant if it has one. An account with a live
// subscription gets conflict (use ChangePlan); after a cancellation it may
// subscribe again.
func (s *Service) Subscribe(ctx context.Context, r SubscribeRequest) (Subscription, error) {
	if err := ledger.CheckAccountID(r.AccountID); err != nil {
		return Subscription{}, err
	}
	if r.Key == "" {
		return Subscription{}, &scrip.Error{Code: scrip.EInvalid, Field: "idempotency_key", Message: "an idempotency key is required"}
	}
	if _, err := s.engine.Account(ctx, r.AccountID); err != nil {
		return Subscription{}, err
	}
	id := subscriptionID(r.AccountID, r.Key)
	return s.mutate(ctx, r.AccountID, func(cur *Subscription, now time.Time, cat *catalog.Catalog) (*Subscription, error) {
		if cur != nil && cur.ID == id {
			return nil, nil // replay
		}
		if cur != nil && cur.Status != StatusCanceled {
			return nil, scrip.Errorf(scrip.EConflict, "account %q is already subscribed to plan %q; change the plan instead", r.AccountID, cur.PlanCode)
		}
		p, err := plan(cat, r.PlanCode)
		if err != nil {
			return nil, err
		}
		start := r.Start.UTC().Truncate(time.Microsecond)
		if start.IsZero() {
			start = now
		}
		return &Subscription{
			ID: id, AccountID: r.AccountID, PlanCode: p.Code, Status: StatusActive, Interval: p.Interval,
			Anchor: start, Cycle: 1, CurrentPeriodStart: start, CurrentPeriodEnd: addMonths(start, 1),
			ExternalID: r.ExternalID, CreatedAt: now, Key: r.Key,
		}, nil
	})
}

// ChangePlan moves the subscription to another plan. An upgrade (a higher
// tier) takes effect at once: the new plan's allowance is granted, the
// cycle restarts or is kept as the new plan's upgrade setting says, and
// with carry_unspent the old plan's unspent subscription credits move into
// the new cycle. A downgrade or a change within the tier takes effect at
// the period end. Changing back to the current plan drops a pending change.
func (s *Service) ChangePlan(ctx context.Context, r ChangePlanRequest) (Subscription, error) {
	return s.mutate(ctx, r.AccountID, func(cur *Subscription, now time.Time, cat *catalog.Catalog) (*Subscription, error) {
		if cur == nil || cur.Status == StatusCanceled {
			return nil, scrip.Errorf(scrip.ENotFound, "account %q has no live subscription", r.AccountID)
		}
		if r.Key != "" && cur.ChangeKey == r.Key {
			return nil, nil // replay
		}
		p, err := plan(cat, r.PlanCode)
		if err != nil {
			return nil, err
		}
		next := *cur
		next.ChangeKey = r.Key
		if p.Code == cur.PlanCode {
			next.PendingPlanCode = ""
			return &next, nil
		}
		oldTier := -1
		if old, ok := cat.Plan(cur.PlanCode); ok {
			oldTier = old.Tier
		}
		if p.Tier <= oldTier {
			next.PendingPlanCode = p.Code
			return &next, nil
		}
		oldEnd := cur.CurrentPeriodEnd
		next.PlanCode, next.Interval, next.PendingPlanCode, next.CancelAtPeriodEnd = p.Code, p.Interval, "", false
		next.Cycle++
		next.CarryIn, next.CarryEnd = carryNone, time.Time{}
		if p.Upgrade.Cycle != "keep" {
			next.Anchor, next.PeriodIndex = now, 0
			next.CurrentPeriodStart, next.CurrentPeriodEnd = now, addMonths(now, 1)
			if p.Upgrade.CarryUnspent {
				next.CarryIn, next.CarryEnd = carryUpgrade, oldEnd
			}
		}
		return &next, nil
	})
}

// Cancel cancels the subscription at the period end (the account keeps its
// plan until then) or, with atPeriodEnd false, at once. Credits already
// granted stay until they expire. Canceling a canceled subscription
// returns it unchanged.
func (s *Service) Cancel(ctx context.Context, accountID string, atPeriodEnd bool) (Subscription, error) {
	return s.mutate(ctx, accountID, func(cur *Subscription, now time.Time, _ *catalog.Catalog) (*Subscription, error) {
		if cur == nil {
			return nil, scrip.Errorf(scrip.ENotFound, "account %q has no subscription", accountID)
		}
		if cur.Status == StatusCanceled {
			return nil, nil
		}
		next := *cur
		if atPeriodEnd {
			next.CancelAtPeriodEnd = true
		} else {
			next.Status, next.CanceledAt = StatusCanceled, now
		}
		return &next, nil
	})
}

// Resume undoes a cancellation scheduled for the period end. A subscription
// that has ended cannot be resumed (conflict): subscribe again.
func (s *Service) Resume(ctx context.Context, accountID string) (Subscription, error) {
	return s.mutate(ctx, accountID, func(cur *Subscription, _ time.Time, _ *catalog.Catalog) (*Subscription, error) {
		if cur == nil {
			return nil, scrip.Errorf(scrip.ENotFound, "account %q has no subscription", accountID)
		}
		if cur.Status == StatusCanceled {
			return nil, scrip.Errorf(scrip.EConflict, "the subscription of account %q has ended; subscribe again", accountID)
		}
		next := *cur
		next.CancelAtPeriodEnd = false
		return &next, nil
	})
}

// MarkPastDue records a failed payment: no new allowance is granted until
// MarkPaid, and unless paid within the grace period (the plan's grace_days
// or Options.Grace) the subscription is canceled.
func (s *Service) MarkPastDue(ctx context.Context, accountID string) (Subscription, error) {
	return s.mutate(ctx, accountID, func(cur *Subscription, now time.Time, cat *catalog.Catalog) (*Subscription, error) {
		if cur == nil {
			return nil, scrip.Errorf(scrip.ENotFound, "account %q has no subscription", accountID)
		}
		switch cur.Status {
		case StatusCanceled:
			return nil, scrip.Errorf(scrip.EConflict, "the subscription of account %q has ended", accountID)
		case StatusPastDue:
			return nil, nil
		}
		grace := s.opt.Grace
		if grace <= 0 {
			if p, ok := cat.Plan(cur.PlanCode); ok {
				grace = time.Duration(p.GraceDays) * 24 * time.Hour
			}
		}
		next := *cur
		next.Status, next.PastDueSince, next.GraceEndsAt = StatusPastDue, now, now.Add(grace)
		return &next, nil
	})
}

// MarkPaid records that the overdue payment arrived: the subscription is
// active again and the current cycle's allowance, if it was withheld, is
// granted now (once, whatever the number of calls).
func (s *Service) MarkPaid(ctx context.Context, accountID string) (Subscription, error) {
	return s.mutate(ctx, accountID, func(cur *Subscription, _ time.Time, _ *catalog.Catalog) (*Subscription, error) {
		if cur == nil {
			return nil, scrip.Errorf(scrip.ENotFound, "account %q has no subscription", accountID)
		}
		switch cur.Status {
		case StatusCanceled:
			return nil, scrip.Errorf(scrip.EConflict, "the subscription of account %q has ended; subscribe again", accountID)
		case StatusActive:
			return nil, nil
		}
		next := *cur
		next.Status, next.PastDueSince, next.GraceEndsAt = StatusActive, time.Time{}, time.Time{}
		return &next, nil
	})
}

// RenewRequest records a payment for a subscription's renewal.
type RenewRequest struct {
	AccountID string
	// Key is the payment's idempotency key (a provider's invoice): a
	// replay, or another call with the latest key, changes nothing.
	Key string
}

// Renew records that a renewal was paid. Cycles renew on their own schedule
// (the scheduler, or any call that finds the subscription behind), so
// Renew grants nothing a renewal would not: it brings the subscription up
// to date now, granting the cycles due, and ends a past-due state as
// MarkPaid does, which grants a withheld allowance once. A replay of the
// latest key changes nothing, so a late copy of an earlier payment never
// clears a later failure.
func (s *Service) Renew(ctx context.Context, r RenewRequest) (Subscription, error) {
	if r.Key == "" {
		return Subscription{}, &scrip.Error{Code: scrip.EInvalid, Field: "idempotency_key", Message: "an idempotency key is required"}
	}
	return s.mutate(ctx, r.AccountID, func(cur *Subscription, _ time.Time, _ *catalog.Catalog) (*Subscription, error) {
		if cur == nil {
			return nil, scrip.Errorf(scrip.ENotFound, "account %q has no subscription", r.AccountID)
		}
		if cur.RenewKey == r.Key {
			return nil, nil // replay
		}
		if cur.Status == StatusCanceled {
			return nil, scrip.Errorf(scrip.EConflict, "the subscription of account %q has ended; subscribe again", r.AccountID)
		}
		next := *cur
		next.RenewKey = r.Key
		next.Status, next.PastDueSince, next.GraceEndsAt = StatusActive, time.Time{}, time.Time{}
		return &next, nil
	})
}

// SignupGrant grants the one-time sign-up credits of the account's plan, or
// when it has no subscription of the catalog's first free plan with a
// sign-up grant. It reports whether credits were granted now; an account
// gets sign-up credits once in its life.
func (s *Service) SignupGrant(ctx context.Context, accountID string) (bool, error) {
	if _, err := s.engine.Account(ctx, accountID); err != nil {
		return false, err
	}
	cat := s.catalog()
	var p *catalog.Plan
	if code, err := s.Plan(ctx, accountID); err != nil {
		return false, err
	} else if code != "" {
		p, _ = cat.Plan(code)
	}
	if p == nil || p.SignupGrant == nil {
		p = nil
		for _, c := range cat.Plans() {
			if c.Price.Amount == 0 && c.SignupGrant != nil {
				p = c
				break
			}
		}
	}
	if p == nil || p.SignupGrant == nil {
		return false, scrip.Errorf(scrip.ENotFound, "no plan of catalog %q has a sign-up grant", cat.Name)
	}
	return s.signup(ctx, accountID, p, s.now())
}

func (s *Service) signup(ctx context.Context, accountID string, p *catalog.Plan, at time.Time) (bool, error) {
	g := p.SignupGrant
	if g == nil || g.Credits <= 0 {
		return false, nil
	}
	req := ledger.GrantRequest{
		AccountID: accountID, Key: "signup", Kind: ledger.KindPromotional, Amount: g.Credits,
		Source: ledger.Source{Type: "signup", ID: p.Code, Reason: "sign-up grant"},
	}
	if g.ExpiresInDays > 0 {
		req.EffectiveAt = at
		req.ExpiresAt = at.Add(time.Duration(g.ExpiresInDays) * 24 * time.Hour)
	}
	res, err := s.engine.Grant(ctx, req)
	if scrip.ErrorCode(err) == scrip.EIdempotencyConflict {
		return false, nil // granted before, under another plan or date
	}
	if err != nil {
		return false, fmt.Errorf("sign-up grant for %s: %w", accountID, err)
	}
	return !res.Replayed, nil
}

// transition computes the next state of a subscription from a request. It
// must not touch the ledger: its result is stored before any credit moves,
// so work interrupted by a crash is finished from the stored state.
type transition func(cur *Subscription, now time.Time, cat *catalog.Catalog) (*Subscription, error)

// mutate applies a transition in two steps under the account's lock: first
// it brings the subscription up to date and stores the transition's result;
// then it performs the credit work the new state calls for and stores that
// progress. If the process stops between the two, the scheduler finishes.
func (s *Service) mutate(ctx context.Context, accountID string, t transition) (Subscription, error) {
	var out *Subscription
	err := s.update(ctx, accountID, func(ctx context.Context, cur *Subscription) (*Subscription, error) {
		now, cat := s.now(), s.catalog()
		changed := false
		if cur != nil {
			c := *cur
			n, err := s.settle(ctx, &c, now, cat, catchUpCyclesMax)
			if err != nil {
				return nil, err
			}
			if n > 0 {
				cur, changed = &c, true
			}
		}
		next, err := t(cur, now, cat)
		if err != nil {
			return nil, err
		}
		if next == nil {
			if out = cur; !changed {
				return nil, nil
			}
			next = cur
		}
		next.UpdatedAt = now
		next.LastError = ""
		next.DueAt = next.due()
		out = next
		return next, nil
	})
	if err != nil {
		return Subscription{}, err
	}
	if out == nil {
		return Subscription{}, scrip.Errorf(scrip.ENotFound, "account %q has no subscription", accountID)
	}
	err = s.update(ctx, accountID, func(ctx context.Context, cur *Subscription) (*Subscription, error) {
		if cur == nil {
			return nil, nil
		}
		c := *cur
		now := s.now()
		n, err := s.settle(ctx, &c, now, s.catalog(), 0)
		if err != nil {
			return nil, err
		}
		out = &c
		if n == 0 {
			return nil, nil
		}
		c.UpdatedAt, c.DueAt = now, c.due()
		return &c, nil
	})
	if err != nil {
		return Subscription{}, err
	}
	return *out, nil
}

// update runs fn under the store's lock, bounded by Options.LocksMax.
func (s *Service) update(ctx context.Context, accountID string, fn UpdateFunc) error {
	select {
	case s.locks <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.locks }()
	defer s.subs.forget(accountID)
	return s.store.UpdateSubscription(ctx, accountID, fn)
}

// due is when the scheduler next has work on the subscription.
func (sub *Subscription) due() time.Time {
	switch {
	case sub.Status == StatusCanceled:
		return time.Time{}
	case sub.GrantedCycle < sub.Cycle || (sub.AllowanceCycle < sub.Cycle && sub.Status == StatusActive):
		if sub.UpdatedAt.IsZero() || sub.CurrentPeriodStart.Before(sub.UpdatedAt) {
			return sub.CurrentPeriodStart
		}
		return sub.UpdatedAt
	case sub.Status == StatusPastDue && sub.GraceEndsAt.Before(sub.CurrentPeriodEnd):
		return sub.GraceEndsAt
	}
	return sub.CurrentPeriodEnd
}

// settle performs the work due on sub at now: the current cycle's carried
// credits and allowance, cancellation at the end of grace, and renewals, of
// which it performs at most renewalsMax. It changes sub in place and
// returns how many steps it took.
func (s *Service) settle(ctx context.Context, sub *Subscription, now time.Time, cat *catalog.Catalog, renewalsMax int) (int, error) {
	steps, renewals := 0, 0
	for range catchUpCyclesMax * 4 {
		if sub.Status == StatusCanceled {
			return steps, nil
		}
		switch {
		case sub.GrantedCycle < sub.Cycle:
			if err := s.carryIn(ctx, sub, cat); err != nil {
				return steps, err
			}
		case sub.AllowanceCycle < sub.Cycle && sub.Status == StatusActive:
			if err := s.grantAllowance(ctx, sub, cat); err != nil {
				return steps, err
			}
		default:
			graceDue := sub.Status == StatusPastDue && !sub.GraceEndsAt.After(now)
			periodDue := !sub.CurrentPeriodEnd.After(now)
			if !graceDue && !periodDue {
				return steps, nil
			}
			if renewals >= renewalsMax {
				return steps, nil
			}
			renewals++
			if graceDue && (!periodDue || !sub.GraceEndsAt.After(sub.CurrentPeriodEnd)) {
				sub.Status, sub.CanceledAt = StatusCanceled, sub.GraceEndsAt
			} else if err := s.renew(sub, cat); err != nil {
				return steps, err
			}
		}
		steps++
	}
	return steps, nil
}

// renew ends the current period: the subscription is canceled if so
// scheduled, else it moves to the next cycle (on the pending plan, if any),
// whose credits the next steps grant.
func (s *Service) renew(sub *Subscription, cat *catalog.Catalog) error {
	end := sub.CurrentPeriodEnd
	if sub.CancelAtPeriodEnd {
		sub.Status, sub.CanceledAt = StatusCanceled, end
		return nil
	}
	if sub.PendingPlanCode != "" {
		p, err := plan(cat, sub.PendingPlanCode)
		if err != nil {
			return err
		}
		sub.PlanCode, sub.Interval, sub.PendingPlanCode = p.Code, p.Interval, ""
	}
	sub.Cycle++
	sub.PeriodIndex++
	sub.CurrentPeriodStart, sub.CurrentPeriodEnd = end, addMonths(sub.Anchor, sub.PeriodIndex+1)
	sub.CarryIn, sub.CarryEnd = carryRollover, end
	return nil
}

// cycleKey is the idempotency key of a cycle's allowance grant; other
// grants of the cycle extend it.
func (sub *Subscription) cycleKey() string {
	return "sub:" + sub.ID + ":cycle:" + strconv.FormatInt(sub.Cycle, 10)
}

func (sub *Subscription) grantMetadata(planCode string) map[string]string {
	return map[string]string{"subscription": sub.ID, "plan": planCode, "cycle": strconv.FormatInt(sub.Cycle, 10)}
}

// carryIn grants what the current cycle inherits (rolled-over or upgrade
// credits), records the cycle and, on a subscription's first cycle, its
// plan's sign-up grant.
func (s *Service) carryIn(ctx context.Context, sub *Subscription, cat *catalog.Catalog) error {
	p, err := plan(cat, sub.PlanCode)
	if err != nil {
		return err
	}
	rec := Cycle{
		SubscriptionID: sub.ID, AccountID: sub.AccountID, Cycle: sub.Cycle, PlanCode: p.Code,
		PeriodStart: sub.CurrentPeriodStart, PeriodEnd: sub.CurrentPeriodEnd, Allowance: p.MonthlyCredits,
		CarryIn: sub.CarryIn, CreatedAt: s.now(),
	}
	switch sub.CarryIn {
	case carryRollover:
		if p.Rollover.Policy == catalog.RolloverCapped || p.Rollover.Policy == catalog.RolloverUnlimited {
			unspent, err := s.unspent(ctx, sub, sub.CarryEnd)
			if err != nil {
				return err
			}
			rec.Carry = rolloverCarry(p, unspent)
		}
		if rec, err = s.store.RecordCycle(ctx, rec); err != nil {
			return fmt.Errorf("record cycle %d of %s: %w", sub.Cycle, sub.ID, err)
		}
		if rec.Carry > 0 {
			_, err := s.engine.Grant(ctx, ledger.GrantRequest{
				AccountID: sub.AccountID, Key: sub.cycleKey() + ":rollover", Kind: ledger.KindSubscription, Amount: rec.Carry,
				EffectiveAt: sub.CurrentPeriodStart, ExpiresAt: sub.CurrentPeriodEnd,
				Source:   ledger.Source{Type: "rollover", ID: sub.ID, Reason: fmt.Sprintf("unspent %s credits rolled over into cycle %d", rec.PlanCode, sub.Cycle)},
				Metadata: sub.grantMetadata(rec.PlanCode),
			})
			if err != nil {
				return fmt.Errorf("rollover into cycle %d of %s: %w", sub.Cycle, sub.ID, err)
			}
		}
	case carryUpgrade:
		carried, err := s.moveUnspent(ctx, sub, p)
		if err != nil {
			return err
		}
		rec.Carry = carried
		if _, err := s.store.RecordCycle(ctx, rec); err != nil {
			return fmt.Errorf("record cycle %d of %s: %w", sub.Cycle, sub.ID, err)
		}
	default:
		if _, err := s.store.RecordCycle(ctx, rec); err != nil {
			return fmt.Errorf("record cycle %d of %s: %w", sub.Cycle, sub.ID, err)
		}
	}
	if sub.Cycle == 1 && p.SignupGrant != nil {
		if _, err := s.signup(ctx, sub.AccountID, p, sub.CurrentPeriodStart); err != nil {
			return err
		}
	}
	sub.GrantedCycle, sub.CarryIn, sub.CarryEnd = sub.Cycle, carryNone, time.Time{}
	return nil
}

// rolloverCarry caps the unspent credits a plan carries into a new cycle:
// at most max_carry, and no more than keeps carry plus the new allowance
// within max_balance.
func rolloverCarry(p *catalog.Plan, unspent credit.Amount) credit.Amount {
	carry := unspent
	if p.Rollover.Policy != catalog.RolloverCapped {
		return carry
	}
	if p.Rollover.MaxCarry > 0 && carry > p.Rollover.MaxCarry {
		carry = p.Rollover.MaxCarry
	}
	if p.Rollover.MaxBalance > 0 {
		room := p.Rollover.MaxBalance - p.MonthlyCredits
		if room < 0 {
			room = 0
		}
		if carry > room {
			carry = room
		}
	}
	return carry
}

// grantAllowance grants the current cycle's allowance, as recorded when the
// cycle began.
func (s *Service) grantAllowance(ctx context.Context, sub *Subscription, cat *catalog.Catalog) error {
	p, err := plan(cat, sub.PlanCode)
	if err != nil {
		return err
	}
	rec, err := s.store.RecordCycle(ctx, Cycle{
		SubscriptionID: sub.ID, AccountID: sub.AccountID, Cycle: sub.Cycle, PlanCode: p.Code,
		PeriodStart: sub.CurrentPeriodStart, PeriodEnd: sub.CurrentPeriodEnd, Allowance: p.MonthlyCredits, CreatedAt: s.now(),
	})
	if err != nil {
		return fmt.Errorf("record cycle %d of %s: %w", sub.Cycle, sub.ID, err)
	}
	if rec.Allowance > 0 {
		_, err := s.engine.Grant(ctx, ledger.GrantRequest{
			AccountID: sub.AccountID, Key: sub.cycleKey(), Kind: ledger.KindSubscription, Amount: rec.Allowance,
			EffectiveAt: rec.PeriodStart, ExpiresAt: rec.PeriodEnd,
			Source:   ledger.Source{Type: "plan_cycle", ID: sub.ID, Reason: fmt.Sprintf("%s plan, cycle %d", rec.PlanCode, sub.Cycle)},
			Metadata: sub.grantMetadata(rec.PlanCode),
		})
		if err != nil {
			return fmt.Errorf("allowance of cycle %d of %s: %w", sub.Cycle, sub.ID, err)
		}
	}
	sub.AllowanceCycle = sub.Cycle
	return nil
}

// cycleGrants returns the subscription's credit grants that expire at end:
// those of the cycle ending then, whatever carried them in.
func (s *Service) cycleGrants(ctx context.Context, sub *Subscription, end time.Time) ([]ledger.Grant, error) {
	all, err := s.engine.Store().Grants(ctx, sub.AccountID)
	if err != nil {
		return nil, fmt.Errorf("grants of %s: %w", sub.AccountID, err)
	}
	var out []ledger.Grant
	for _, g := range all {
		if g.Kind == ledger.KindSubscription && g.Source.ID == sub.ID && g.ExpiresAt.Equal(end) {
			out = append(out, g)
		}
	}
	return out, nil
}

// unspent returns the subscription credits left unspent when the cycle
// ending at end ended: what remains in its grants, or for grants the engine
// has already expired, what their expiry removed.
func (s *Service) unspent(ctx context.Context, sub *Subscription, end time.Time) (credit.Amount, error) {
	gs, err := s.cycleGrants(ctx, sub, end)
	if err != nil {
		return 0, err
	}
	var total credit.Amount
	closed := map[string]bool{}
	for _, g := range gs {
		if g.Closed {
			closed[g.ID] = true
		} else {
			total += g.Remaining
		}
	}
	if len(closed) == 0 {
		return total, nil
	}
	q := ledger.HistoryQuery{AccountID: sub.AccountID, Types: []ledger.TxType{ledger.TxGrantExpiry}, Since: end, Limit: historyPage}
	for range historyPagesMax {
		txs, err := s.engine.History(ctx, q)
		if err != nil {
			return 0, fmt.Errorf("expiries of %s: %w", sub.AccountID, err)
		}
		for _, t := range txs {
			if closed[t.GrantID] {
				total += t.Amount
				delete(closed, t.GrantID)
			}
		}
		if len(txs) < historyPage || len(closed) == 0 {
			return total, nil
		}
		q.BeforeSeq = txs[len(txs)-1].Seq
	}
	return total, nil
}

// moveUnspent carries the unspent credits of the cycle ending at
// sub.CarryEnd into the current cycle: each old grant is revoked and what
// the revocation removed is granted anew, expiring with the new cycle. Keys
// derive from the old grant, so a retry neither loses nor doubles credits.
func (s *Service) moveUnspent(ctx context.Context, sub *Subscription, p *catalog.Plan) (credit.Amount, error) {
	gs, err := s.cycleGrants(ctx, sub, sub.CarryEnd)
	if err != nil {
		return 0, err
	}
	var total credit.Amount
	for _, g := range gs {
		if !g.Closed && g.Remaining == 0 {
			continue // spent: nothing to carry, and refunds still return to it
		}
		key := sub.cycleKey() + ":carry:" + g.ID
		res, err := s.engine.Revoke(ctx, ledger.RevokeRequest{GrantID: g.ID, Key: sub.cycleKey() + ":revoke:" + g.ID, Reason: fmt.Sprintf("carried into %s plan, cycle %d", p.Code, sub.Cycle)})
		if err != nil {
			return 0, fmt.Errorf("revoke %s for upgrade of %s: %w", g.ID, sub.ID, err)
		}
		amount := res.Transaction.Amount
		if amount <= 0 {
			continue
		}
		md := sub.grantMetadata(p.Code)
		md["carried_from"] = g.ID
		_, err = s.engine.Grant(ctx, ledger.GrantRequest{
			AccountID: sub.AccountID, Key: key, Kind: ledger.KindSubscription, Amount: amount,
			EffectiveAt: sub.CurrentPeriodStart, ExpiresAt: sub.CurrentPeriodEnd,
			Source:   ledger.Source{Type: "upgrade_carry", ID: sub.ID, Reason: fmt.Sprintf("unspent credits carried into %s plan, cycle %d", p.Code, sub.Cycle)},
			Metadata: md,
		})
		if err != nil {
			return 0, fmt.Errorf("carry %s into cycle %d of %s: %w", g.ID, sub.Cycle, sub.ID, err)
		}
		total += amount
	}
	return total, nil
}

func plan(cat *catalog.Catalog, code string) (*catalog.Plan, error) {
	p, ok := cat.Plan(code)
	if !ok {
		return nil, &scrip.Error{Code: scrip.EPlanNotFound, Field: "plan_code", Message: fmt.Sprintf("plan %q not found in catalog %q", code, cat.Name)}
	}
	return p, nil
}

// subscriptionID derives a subscription's id from its account and creation
// key, so a retried Subscribe reuses the cycle keys of the first attempt.
func subscriptionID(accountID, key string) string {
	h := sha256.Sum256([]byte(accountID + "\x00" + key))
	return "sub_" + hex.EncodeToString(h[:12])
}
