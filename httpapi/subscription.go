package httpapi

import (
	"context"
	"net/http"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/billing"
)

// Subscriptions is the side of billing the subscription endpoints drive;
// *billing.Service implements it. When Config.Billing does not, those
// endpoints answer 503 billing_not_configured.
type Subscriptions interface {
	Billing
	Get(ctx context.Context, accountID string) (billing.Subscription, error)
	Subscribe(ctx context.Context, r billing.SubscribeRequest) (billing.Subscription, error)
	ChangePlan(ctx context.Context, r billing.ChangePlanRequest) (billing.Subscription, error)
	Cancel(ctx context.Context, accountID string, atPeriodEnd bool) (billing.Subscription, error)
	Resume(ctx context.Context, accountID string) (billing.Subscription, error)
}

// subscriptionJSON is a subscription as the API shows it: billing's view
// (plan name, price, renews_at, quotas of the current period).
type subscriptionJSON struct {
	Object string `json:"object"`
	*billing.View
}

// subscriptionView returns the account's subscription as the API shows
// it, nil when it has none.
func (s *Server) subscriptionView(ctx context.Context, accountID string) (any, error) {
	v, err := s.cfg.Billing.Subscription(ctx, accountID)
	if err != nil || v == nil {
		return nil, err
	}
	if bv, ok := v.(*billing.View); ok {
		if bv == nil {
			return nil, nil
		}
		return subscriptionJSON{Object: "subscription", View: bv}, nil
	}
	return v, nil
}

func (s *Server) subscriptions() (Subscriptions, error) {
	subs, ok := s.cfg.Billing.(Subscriptions)
	if !ok {
		return nil, scrip.Errorf(eBillingNotConfigured, "subscriptions are not managed by this server")
	}
	return subs, nil
}

func (s *Server) getSubscription(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Billing == nil {
		return scrip.Errorf(eBillingNotConfigured, "subscriptions are not managed by this server")
	}
	id := r.PathValue("id")
	if _, err := s.engine.Account(r.Context(), id); err != nil {
		return err
	}
	v, err := s.subscriptionView(r.Context(), id)
	if err != nil {
		return err
	}
	if v == nil {
		return scrip.Errorf(scrip.ENotFound, "account %q has no subscription", id)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// writeSubscription answers a subscription change with the subscription as
// it stands now.
func (s *Server) writeSubscription(w http.ResponseWriter, r *http.Request, accountID string) error {
	v, err := s.subscriptionView(r.Context(), accountID)
	if err != nil {
		return err
	}
	if v == nil {
		return scrip.Errorf(scrip.ENotFound, "account %q has no subscription", accountID)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

type subscribeRequest struct {
	Plan string `json:"plan"`
}

// createSubscription subscribes the account to a plan, or changes the plan
// of its live subscription (an upgrade at once, a downgrade at the period
// end). Asking for the plan it already has drops a pending change, so a
// retry without a key does no harm either.
func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request) error {
	var req subscribeRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	key, err := idempotencyKey(r, false)
	if err != nil {
		return err
	}
	if req.Plan == "" {
		return errorf(scrip.EInvalidParam, "plan", "plan is required: the code of a plan in the catalog")
	}
	subs, err := s.subscriptions()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	ctx := r.Context()
	cur, err := subs.Get(ctx, id)
	switch {
	case err == nil && cur.Status != billing.StatusCanceled && cur.Key != key:
		_, err = subs.ChangePlan(ctx, billing.ChangePlanRequest{AccountID: id, PlanCode: req.Plan, Key: key})
	case err == nil || scrip.ErrorCode(err) == scrip.ENotFound:
		// A first subscription, one after a cancellation, or the replay of
		// the request that created the current one.
		_, err = subs.Subscribe(ctx, billing.SubscribeRequest{AccountID: id, PlanCode: req.Plan, Key: key})
	}
	if err != nil {
		return renameField(renameField(err, "plan_code", "plan"), "idempotency_key", headerIdempotencyKey)
	}
	return s.writeSubscription(w, r, id)
}

type cancelSubscriptionRequest struct {
	// AtPeriodEnd defaults to true: the account keeps its plan until the
	// period ends.
	AtPeriodEnd *bool `json:"at_period_end"`
}

func (s *Server) cancelSubscription(w http.ResponseWriter, r *http.Request) error {
	var req cancelSubscriptionRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if _, err := idempotencyKey(r, false); err != nil {
		return err
	}
	subs, err := s.subscriptions()
	if err != nil {
		return err
	}
	atPeriodEnd := req.AtPeriodEnd == nil || *req.AtPeriodEnd
	id := r.PathValue("id")
	if _, err := s.engine.Account(r.Context(), id); err != nil {
		return err
	}
	if _, err := subs.Cancel(r.Context(), id, atPeriodEnd); err != nil {
		return err
	}
	return s.writeSubscription(w, r, id)
}

func (s *Server) resumeSubscription(w http.ResponseWriter, r *http.Request) error {
	if err := decode(w, r, &struct{}{}); err != nil {
		return err
	}
	if _, err := idempotencyKey(r, false); err != nil {
		return err
	}
	subs, err := s.subscriptions()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if _, err := s.engine.Account(r.Context(), id); err != nil {
		return err
	}
	if _, err := subs.Resume(r.Context(), id); err != nil {
		return err
	}
	return s.writeSubscription(w, r, id)
}
