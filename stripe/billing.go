package stripe

import (
	"context"

	"github.com/scriphq/scrip/billing"
)

// Billing returns billing's subscriptions as the webhook handler needs
// them. Every call passes the key derived from the Stripe object on to
// billing, which applies each key once.
func Billing(s *billing.Service) Subscriptions { return billingSubscriptions{s} }

type billingSubscriptions struct{ svc *billing.Service }

func (b billingSubscriptions) Plan(ctx context.Context, accountID string) (string, error) {
	return b.svc.Plan(ctx, accountID)
}

func (b billingSubscriptions) Subscribe(ctx context.Context, r SubscribeRequest) error {
	_, err := b.svc.Subscribe(ctx, billing.SubscribeRequest{AccountID: r.AccountID, PlanCode: r.PlanCode,
		Key: r.Key, Start: r.Start, ExternalID: r.ExternalID})
	return err
}

// Renew ignores the invoice's plan and period: billing keeps the plan
// (changes arrive as customer.subscription.updated) and renews each cycle
// on its own schedule; the payment brings the subscription up to date and
// ends a past-due state.
func (b billingSubscriptions) Renew(ctx context.Context, r RenewRequest) error {
	_, err := b.svc.Renew(ctx, billing.RenewRequest{AccountID: r.AccountID, Key: r.Key})
	return err
}

func (b billingSubscriptions) ChangePlan(ctx context.Context, r ChangePlanRequest) error {
	_, err := b.svc.ChangePlan(ctx, billing.ChangePlanRequest{AccountID: r.AccountID, PlanCode: r.PlanCode, Key: r.Key})
	return err
}

func (b billingSubscriptions) Cancel(ctx context.Context, accountID string, atPeriodEnd bool) error {
	_, err := b.svc.Cancel(ctx, accountID, atPeriodEnd)
	return err
}

func (b billingSubscriptions) Resume(ctx context.Context, accountID string) error {
	_, err := b.svc.Resume(ctx, accountID)
	return err
}

func (b billingSubscriptions) MarkPastDue(ctx context.Context, accountID string) error {
	_, err := b.svc.MarkPastDue(ctx, accountID)
	return err
}

func (b billingSubscriptions) MarkPaid(ctx context.Context, accountID string) error {
	_, err := b.svc.MarkPaid(ctx, accountID)
	return err
}
