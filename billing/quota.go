package billing

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/catalog"
)

// QuotaRequest reserves a count against one of the plan's quotas.
type QuotaRequest struct {
	AccountID string
	// Quota names the plan quota, as in the catalog ("sites").
	Quota string
	// Count defaults to 1.
	Count int64
	// Key is the request's idempotency key.
	Key string
}

// ReserveQuota holds Count against the account's plan quota for the current
// period, like a hold on credits: ConsumeQuota keeps it used, ReleaseQuota
// gives it back. Past the plan's limit it fails with quota_exceeded
// (Details: quota, limit, used, requested). A quota the plan does not name
// is unlimited but still counted. An account without a plan gets
// plan_required.
func (s *Service) ReserveQuota(ctx context.Context, r QuotaRequest) (QuotaReservation, error) {
	if r.Count == 0 {
		r.Count = 1
	}
	if r.Count < 0 || r.Count > quotaCountMax {
		return QuotaReservation{}, &scrip.Error{Code: scrip.EInvalid, Field: "count", Message: fmt.Sprintf("count %d is out of range (1 to %d)", r.Count, quotaCountMax)}
	}
	if r.Quota == "" {
		return QuotaReservation{}, &scrip.Error{Code: scrip.EInvalid, Field: "quota", Message: "a quota name is required"}
	}
	if r.Key == "" || len(r.Key) > 255 {
		return QuotaReservation{}, &scrip.Error{Code: scrip.EInvalid, Field: "idempotency_key", Message: "an idempotency key of at most 255 bytes is required"}
	}
	sub, p, period, err := s.quotaPeriod(ctx, r.AccountID)
	if err != nil {
		return QuotaReservation{}, err
	}
	limit, ok := p.Quotas[r.Quota]
	if !ok {
		limit = -1
	}
	res, err := s.store.ReserveQuota(ctx, QuotaReservation{
		ID: newID("qr_"), AccountID: sub.AccountID, Key: r.Key, Quota: r.Quota, Period: period,
		Count: r.Count, Status: QuotaHeld, CreatedAt: s.now(),
	}, limit)
	switch {
	case errors.Is(err, ErrQuotaExceeded):
		used, _ := s.store.QuotaUsed(ctx, r.AccountID, period)
		return QuotaReservation{}, &scrip.Error{
			Code:    scrip.EQuotaExceeded,
			Message: fmt.Sprintf("the %s plan allows %d %s per period; %d used, %d requested", p.Code, limit, r.Quota, used[r.Quota], r.Count),
			Details: map[string]any{"quota": r.Quota, "limit": limit, "used": used[r.Quota], "requested": r.Count},
		}
	case errors.Is(err, ErrKeyReused):
		return QuotaReservation{}, scrip.Errorf(scrip.EIdempotencyConflict, "idempotency key %q was already used for a different quota reservation", r.Key)
	case err != nil:
		return QuotaReservation{}, fmt.Errorf("reserve quota %s of %s: %w", r.Quota, r.AccountID, err)
	}
	return res, nil
}

// ConsumeQuota settles a reservation as used. Consuming it again returns it.
func (s *Service) ConsumeQuota(ctx context.Context, id string) (QuotaReservation, error) {
	return s.settleQuota(ctx, id, QuotaConsumed)
}

// ReleaseQuota settles a reservation as not used and gives its count back.
// Releasing it again returns it.
func (s *Service) ReleaseQuota(ctx context.Context, id string) (QuotaReservation, error) {
	return s.settleQuota(ctx, id, QuotaReleased)
}

func (s *Service) settleQuota(ctx context.Context, id string, st QuotaStatus) (QuotaReservation, error) {
	r, err := s.store.SettleQuota(ctx, id, st, s.now())
	switch {
	case errors.Is(err, ErrNotFound):
		return QuotaReservation{}, scrip.Errorf(scrip.ENotFound, "quota reservation %q not found", id)
	case errors.Is(err, ErrSettled):
		return QuotaReservation{}, scrip.Errorf(scrip.EConflict, "quota reservation %q was already %s", id, r.Status)
	case err != nil:
		return QuotaReservation{}, fmt.Errorf("settle quota reservation %s: %w", id, err)
	}
	return r, nil
}

// Quotas returns the account's plan quotas and their use in the current
// period, in name order.
func (s *Service) Quotas(ctx context.Context, accountID string) ([]QuotaUsage, error) {
	_, p, period, err := s.quotaPeriod(ctx, accountID)
	if err != nil {
		return nil, err
	}
	used, err := s.store.QuotaUsed(ctx, accountID, period)
	if err != nil {
		return nil, fmt.Errorf("quotas of %s: %w", accountID, err)
	}
	out := make([]QuotaUsage, 0, len(p.Quotas)+len(used))
	for q, l := range p.Quotas {
		out = append(out, QuotaUsage{Quota: q, Limit: l, Used: used[q]})
	}
	for q, u := range used {
		if _, ok := p.Quotas[q]; !ok {
			out = append(out, QuotaUsage{Quota: q, Limit: -1, Used: u})
		}
	}
	slices.SortFunc(out, func(a, b QuotaUsage) int {
		switch {
		case a.Quota < b.Quota:
			return -1
		case a.Quota > b.Quota:
			return 1
		}
		return 0
	})
	return out, nil
}

// quotaPeriod returns the account's subscription, its plan in force and the
// id of the period quotas count in now. The period is computed from the
// anchor, so quotas reset on time even if the scheduler is behind.
func (s *Service) quotaPeriod(ctx context.Context, accountID string) (Subscription, *catalog.Plan, string, error) {
	sub, err := s.store.Subscription(ctx, accountID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Subscription{}, nil, "", fmt.Errorf("subscription of %s: %w", accountID, err)
	}
	now := s.now()
	code := ""
	if err == nil {
		code = sub.planAt(now)
	}
	if code == "" {
		return Subscription{}, nil, "", scrip.Errorf(scrip.EPlanRequired, "account %q has no plan; plan quotas need one", accountID)
	}
	p, err := plan(s.catalog(), code)
	if err != nil {
		return Subscription{}, nil, "", err
	}
	// The anchor and index name the period: an upgrade that restarts the
	// cycle starts counting anew, one that keeps it does not.
	i := sub.PeriodIndex
	if now.After(sub.CurrentPeriodStart) {
		i = periodAt(sub.Anchor, sub.PeriodIndex, now)
	}
	return sub, p, fmt.Sprintf("%s@%s#%d", sub.ID, sub.Anchor.Format(time.RFC3339Nano), i), nil
}

// newID returns a unique, roughly time-ordered id with a prefix.
func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + strconv.FormatInt(time.Now().UnixMilli(), 36) + strconv.FormatUint(binary.LittleEndian.Uint64(b[:])|1<<63, 36)
}
