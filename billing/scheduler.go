package billing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/scriphq/scrip"
)

// Scheduler defaults.
const (
	schedulerEveryDefault = time.Second
	tickItemsMaxDefault   = 100
)

// TickStats is what one Tick did, for metrics.
type TickStats struct {
	// Expired counts the holds and grants the ledger expired.
	Expired int
	// Processed counts the subscriptions worked on (one renewal each).
	Processed int
	// Failed counts those whose work failed and was put off.
	Failed int
	// Due counts the subscriptions still due after the tick: the backlog.
	Due     int
	Elapsed time.Duration
	Err     error
}

// SchedulerOptions configure a Scheduler. Zero values take the defaults.
type SchedulerOptions struct {
	// Every is the wall-clock time between ticks (default 1s). A tick that
	// hit ItemsMax is followed at once by another.
	Every time.Duration
	// ItemsMax bounds the subscriptions one tick works on (default 100).
	ItemsMax int
	// Observe, if set, receives every tick's stats.
	Observe func(TickStats)
	Logger  *slog.Logger
}

// Scheduler runs the durable schedule: due grant and hold expiries (through
// the ledger engine) and subscription renewals, in time order. Any number
// of schedulers may run on one store; each due subscription is claimed by
// one at a time, and every grant's idempotency key makes a second run of
// the same renewal a no-op. After downtime the first ticks catch up on
// everything that fell due.
type Scheduler struct {
	svc *Service
	opt SchedulerOptions
}

// NewScheduler returns a scheduler for the service's subscriptions.
func (s *Service) NewScheduler(opt SchedulerOptions) *Scheduler {
	if opt.Every <= 0 {
		opt.Every = schedulerEveryDefault
	}
	if opt.ItemsMax <= 0 {
		opt.ItemsMax = tickItemsMaxDefault
	}
	if opt.Logger == nil {
		opt.Logger = s.opt.Logger
	}
	return &Scheduler{svc: s, opt: opt}
}

// Run ticks until ctx is done, then returns nil. Tick errors are logged
// and retried on the next tick.
func (sc *Scheduler) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := sc.Tick(ctx)
		if err != nil && ctx.Err() == nil {
			sc.opt.Logger.Warn("billing tick", "err", err)
		}
		wait := sc.opt.Every
		if n >= sc.opt.ItemsMax && err == nil {
			wait = 0
		}
		t.Reset(wait)
	}
}

// Tick expires what is due in the ledger, then works on up to ItemsMax due
// subscriptions, earliest first, one renewal each, and returns how many it
// worked on. Expiring first puts the old cycle's expiry entries before the
// new cycle's grant in the account's history.
func (sc *Scheduler) Tick(ctx context.Context) (int, error) {
	start := time.Now()
	st := TickStats{}
	defer func() {
		st.Elapsed = time.Since(start)
		if sc.opt.Observe != nil {
			sc.opt.Observe(st)
		}
	}()
	s := sc.svc
	n, err := s.engine.ExpireDue(ctx)
	st.Expired = n
	if err != nil {
		st.Err = fmt.Errorf("expire due: %w", err)
		return 0, st.Err
	}
	for st.Processed < sc.opt.ItemsMax {
		claimed, failed, err := sc.claimOne(ctx)
		if err != nil {
			st.Err = err
			return st.Processed, err
		}
		if !claimed {
			break
		}
		st.Processed++
		if failed {
			st.Failed++
		}
	}
	if st.Due, err = s.store.CountDue(ctx, s.now()); err != nil {
		st.Err = fmt.Errorf("count due: %w", err)
		return st.Processed, st.Err
	}
	return st.Processed, nil
}

// claimOne works on the earliest due subscription. Work failing with an
// application error is put off by RetryAfter with the error recorded, so one
// broken subscription does not hold up the others; any other error leaves
// the subscription as it was for the next tick.
func (sc *Scheduler) claimOne(ctx context.Context) (claimed, failed bool, err error) {
	s := sc.svc
	select {
	case s.locks <- struct{}{}:
	case <-ctx.Done():
		return false, false, ctx.Err()
	}
	defer func() { <-s.locks }()
	now := s.now()
	// The plan cache forgets the account once the store has the change.
	var account string
	defer func() {
		if account != "" {
			s.subs.forget(account)
		}
	}()
	claimed, err = s.store.ClaimDue(ctx, now, func(ctx context.Context, sub Subscription) (*Subscription, error) {
		account = sub.AccountID
		_, err := s.settle(ctx, &sub, now, s.catalog(), 1)
		sub.UpdatedAt = now
		if err != nil {
			if !permanent(err) {
				return nil, err
			}
			failed = true
			sub.LastError = err.Error()
			sub.DueAt = now.Add(s.opt.RetryAfter)
			sc.opt.Logger.Warn("billing: scheduled work failed", "subscription", sub.ID, "account", sub.AccountID, "err", err)
			return &sub, nil
		}
		sub.LastError = ""
		sub.DueAt = sub.due()
		return &sub, nil
	})
	if err != nil {
		return false, false, fmt.Errorf("claim due subscription: %w", err)
	}
	return claimed, failed, nil
}

// permanent reports whether err will not go away by retrying at once.
func permanent(err error) bool {
	var e *scrip.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case scrip.EQueueFull, scrip.EUnavailable, scrip.EInternal:
		return false
	}
	return true
}
