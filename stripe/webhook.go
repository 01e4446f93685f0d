package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	sg "github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/event"
	"github.com/scriphq/scrip/ledger"
)

// webhookBytesMax bounds a webhook body; Stripe's events are far smaller.
const webhookBytesMax = 1 << 20

// WebhookPattern is where the lead mounts Handler.
const WebhookPattern = "POST /v1/webhooks/stripe"

// outcome is what applying one Stripe event did.
type outcome struct {
	accountID string
	objectID  string
	result    string
	events    []event.Event
}

// errRetry marks a failure Stripe should retry: the event is not recorded,
// the answer is a 500, and Stripe delivers it again later.
type errRetry struct{ err error }

func (e errRetry) Error() string { return e.err.Error() }
func (e errRetry) Unwrap() error { return e.err }

func retry(format string, args ...any) error { return errRetry{fmt.Errorf(format, args...)} }

// Handler serves Stripe's webhooks. It answers 400 to a bad or missing
// signature and applies nothing; 200 once an event is applied, was applied
// before, or is of a type scrip ignores; 500 when applying failed in a way
// a later delivery can fix.
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"code": "method_not_allowed"})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, webhookBytesMax))
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"code": "body_too_large"})
			return
		}
		ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), s.opt.Config.WebhookSecret,
			webhook.ConstructEventOptions{Tolerance: s.opt.Config.Tolerance, IgnoreAPIVersionMismatch: true})
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"code": "invalid_signature", "detail": err.Error()})
			return
		}
		p, replayed, err := s.Apply(r.Context(), &ev)
		if err != nil {
			s.opt.Logger.ErrorContext(r.Context(), "stripe webhook", slog.String("event", ev.ID),
				slog.String("type", string(ev.Type)), slog.Any("err", err))
			writeJSON(w, http.StatusInternalServerError, map[string]any{"code": scrip.EInternal, "event": ev.ID, "detail": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"received": true, "event": ev.ID, "replayed": replayed, "result": p.Result})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Apply applies one verified Stripe event unless it was applied before, and
// returns its record and whether it was a replay.
//
// Order matters for crash safety: the credit effects (idempotent by key)
// come first, then the outgoing events (inserted if absent), then the
// record of the event. A crash anywhere leaves the event unrecorded, Stripe
// delivers it again, and the second pass replays what the first did.
func (s *Service) Apply(ctx context.Context, ev *sg.Event) (Processed, bool, error) {
	if p, err := s.opt.Store.ProcessedEvent(ctx, ev.ID); err == nil {
		return p, true, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Processed{}, false, err
	}
	if ev.Data == nil {
		return Processed{}, false, fmt.Errorf("event %s has no data", ev.ID)
	}
	var (
		o   outcome
		err error
	)
	switch ev.Type {
	case "checkout.session.completed", "checkout.session.async_payment_succeeded":
		o, err = s.checkoutCompleted(ctx, ev)
	case "invoice.paid":
		o, err = s.invoicePaid(ctx, ev)
	case "invoice.payment_failed":
		o, err = s.invoiceFailed(ctx, ev)
	case "customer.subscription.updated":
		o, err = s.subscriptionUpdated(ctx, ev)
	case "customer.subscription.deleted":
		o, err = s.subscriptionDeleted(ctx, ev)
	case "charge.refunded":
		o, err = s.chargeRefunded(ctx, ev)
	default:
		o.result = "ignored: event type not used"
	}
	var re errRetry
	switch {
	case errors.As(err, &re):
		return Processed{}, false, err
	case err != nil && scrip.ErrorCode(err) == scrip.EInternal, scrip.ErrorCode(err) == scrip.EQueueFull,
		scrip.ErrorCode(err) == scrip.EUnavailable:
		return Processed{}, false, err
	case err != nil:
		// An application error (a plan the catalog lost, an account id
		// the ledger refuses) will not change on redelivery: record it
		// for operators instead of having Stripe retry for days.
		o.result = "rejected: " + err.Error()
		s.opt.Logger.WarnContext(ctx, "stripe event rejected", slog.String("event", ev.ID), slog.Any("err", err))
	}
	if _, err := s.opt.Outbox.Publish(ctx, o.events); err != nil {
		return Processed{}, false, fmt.Errorf("publish events of %s: %w", ev.ID, err)
	}
	p := Processed{ID: ev.ID, Type: string(ev.Type), AccountID: o.accountID, ObjectID: o.objectID,
		Created: time.Unix(ev.Created, 0).UTC(), Received: s.now(), Result: o.result}
	if err := s.opt.Store.RecordEvent(ctx, p); err != nil {
		return Processed{}, false, err
	}
	return p, false, nil
}

func decode(ev *sg.Event, v any) error {
	if err := json.Unmarshal(ev.Data.Raw, v); err != nil {
		return &scrip.Error{Code: scrip.EInvalid, Message: fmt.Sprintf("event %s: malformed %s object: %v", ev.ID, ev.Type, err)}
	}
	return nil
}

func (s *Service) checkoutCompleted(ctx context.Context, ev *sg.Event) (outcome, error) {
	var cs sg.CheckoutSession
	if err := decode(ev, &cs); err != nil {
		return outcome{}, err
	}
	acct := cs.ClientReferenceID
	if acct == "" {
		acct = cs.Metadata[MetaAccount]
	}
	o := outcome{accountID: acct, objectID: cs.ID}
	if acct == "" {
		o.result = "ignored: checkout session without a scrip account"
		return o, nil
	}
	switch cs.Mode {
	case sg.CheckoutSessionModePayment:
		if cs.PaymentStatus != sg.CheckoutSessionPaymentStatusPaid {
			// An asynchronous payment: checkout.session.async_payment_succeeded follows.
			o.result = "ignored: payment status " + string(cs.PaymentStatus)
			return o, nil
		}
		return s.packPaid(ctx, ev, &cs, o)
	case sg.CheckoutSessionModeSubscription:
		if cs.PaymentStatus != sg.CheckoutSessionPaymentStatusPaid && cs.PaymentStatus != sg.CheckoutSessionPaymentStatusNoPaymentRequired {
			o.result = "ignored: payment status " + string(cs.PaymentStatus)
			return o, nil
		}
		if cs.Subscription == nil || cs.Subscription.ID == "" {
			return o, &scrip.Error{Code: scrip.EInvalid, Message: fmt.Sprintf("subscription checkout %s has no subscription", cs.ID)}
		}
		plan := cs.Metadata[MetaPlan]
		if err := s.subscribe(ctx, acct, plan, cs.Subscription.ID, ev.Created); err != nil {
			return o, err
		}
		if err := s.opt.Store.SavePurchase(ctx, Purchase{ID: cs.ID, AccountID: acct, Kind: KindSubscription, Code: plan,
			PaidAmount: cs.AmountTotal, Currency: string(cs.Currency), CreatedAt: s.now()}); err != nil {
			return o, err
		}
		e, err := event.New(event.PurchaseCompleted, cs.ID, acct, s.now(), map[string]any{
			"account_id": acct, "kind": KindSubscription, "plan_code": plan, "subscription": cs.Subscription.ID,
			"checkout_session": cs.ID, "amount_paid": cs.AmountTotal, "currency": cs.Currency})
		if err != nil {
			return o, err
		}
		o.events, o.result = []event.Event{e}, "subscribed to "+plan
		return o, nil
	}
	o.result = "ignored: checkout mode " + string(cs.Mode)
	return o, nil
}

// packPaid grants a paid pack's credits, keyed by the checkout session.
func (s *Service) packPaid(ctx context.Context, ev *sg.Event, cs *sg.CheckoutSession, o outcome) (outcome, error) {
	code := cs.Metadata[MetaPack]
	// The credits sold are those named at checkout, even if the catalog
	// changed since.
	credits, err := credit.Parse(cs.Metadata[MetaCredits])
	if err != nil || credits <= 0 {
		pack, ok := s.opt.Catalog().Pack(code)
		if !ok {
			return o, &scrip.Error{Code: scrip.EInvalid, Message: fmt.Sprintf("checkout %s: pack %q not in the catalog and no credits in its metadata", cs.ID, code)}
		}
		credits = pack.Credits
	}
	if _, _, err := s.opt.Engine.CreateAccount(ctx, o.accountID, nil); err != nil {
		return o, err
	}
	pi := ""
	if cs.PaymentIntent != nil {
		pi = cs.PaymentIntent.ID
	}
	md := map[string]string{"stripe_checkout_session": cs.ID, "pack_code": code}
	if pi != "" {
		md["stripe_payment_intent"] = pi
	}
	res, err := s.opt.Engine.Grant(ctx, ledger.GrantRequest{
		AccountID: o.accountID, Key: "stripe:checkout:" + cs.ID, Kind: ledger.KindTopUp, Amount: credits,
		Source:     ledger.Source{Type: "purchase", ID: cs.ID, Reason: "pack " + code},
		PaidAmount: cs.AmountTotal, PaidCurrency: string(cs.Currency), Metadata: md,
	})
	if err != nil {
		return o, fmt.Errorf("grant pack %s of checkout %s: %w", code, cs.ID, err)
	}
	grantID := res.Transaction.GrantID
	if err := s.opt.Store.SavePurchase(ctx, Purchase{ID: cs.ID, AccountID: o.accountID, Kind: KindPack, Code: code,
		PaymentIntent: pi, GrantID: grantID, Credits: credits, PaidAmount: cs.AmountTotal,
		Currency: string(cs.Currency), CreatedAt: s.now()}); err != nil {
		return o, err
	}
	e, err := event.New(event.PurchaseCompleted, cs.ID, o.accountID, s.now(), map[string]any{
		"account_id": o.accountID, "kind": KindPack, "pack_code": code, "credits": credits, "grant_id": grantID,
		"checkout_session": cs.ID, "payment_intent": pi, "amount_paid": cs.AmountTotal, "currency": cs.Currency})
	if err != nil {
		return o, err
	}
	o.events = []event.Event{e}
	o.result = fmt.Sprintf("granted %s credits (grant %s)", credits, grantID)
	if res.Replayed {
		o.result += ", replayed"
	}
	return o, nil
}

// subscribe starts the subscription once, whichever of the checkout and its
// first invoice arrives first: both use the subscription's key.
func (s *Service) subscribe(ctx context.Context, acct, plan, subID string, created int64) error {
	if s.opt.Subscriptions == nil {
		return retry("subscriptions are not available on this server")
	}
	if _, ok := s.opt.Catalog().Plan(plan); !ok {
		return &scrip.Error{Code: scrip.EInvalid, Message: fmt.Sprintf("subscription %s: plan %q not in the catalog", subID, plan)}
	}
	if _, _, err := s.opt.Engine.CreateAccount(ctx, acct, nil); err != nil {
		return err
	}
	if err := s.opt.Subscriptions.Subscribe(ctx, SubscribeRequest{AccountID: acct, PlanCode: plan,
		Key: "stripe:subscription:" + subID, Start: time.Unix(created, 0).UTC(), ExternalID: subID}); err != nil {
		return fmt.Errorf("subscribe %s to %s: %w", acct, plan, err)
	}
	link, err := s.opt.Store.Subscription(ctx, subID)
	if errors.Is(err, ErrNotFound) {
		link = Subscription{ID: subID, AccountID: acct, PlanCode: plan, Status: "active"}
	} else if err != nil {
		return err
	}
	link.UpdatedAt = s.now()
	return s.opt.Store.SaveSubscription(ctx, link)
}

// planOfPrice maps a Stripe price to the catalog plan selling it.
func (s *Service) planOfPrice(price string) string {
	if price == "" {
		return ""
	}
	for _, p := range s.opt.Catalog().Plans() {
		if p.StripePrice == price {
			return p.Code
		}
	}
	return ""
}

// subscriptionOf finds the scrip account and plan of a Stripe subscription:
// from the metadata set at checkout, else from what scrip stored.
func (s *Service) subscriptionOf(ctx context.Context, subID string, md map[string]string, price string) (Subscription, bool, error) {
	link, err := s.opt.Store.Subscription(ctx, subID)
	known := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return link, false, err
	}
	if !known {
		link = Subscription{ID: subID}
	}
	if link.AccountID == "" {
		link.AccountID = md[MetaAccount]
	}
	if p := s.planOfPrice(price); p != "" && !known {
		link.PlanCode = p
	}
	if link.PlanCode == "" {
		link.PlanCode = md[MetaPlan]
	}
	return link, known, nil
}

func (s *Service) invoicePaid(ctx context.Context, ev *sg.Event) (outcome, error) {
	var inv sg.Invoice
	if err := decode(ev, &inv); err != nil {
		return outcome{}, err
	}
	o := outcome{objectID: inv.ID}
	subID, md := invoiceSubscription(&inv)
	if subID == "" {
		o.result = "ignored: invoice without a subscription"
		return o, nil
	}
	price, start, end := invoiceLine(&inv)
	link, known, err := s.subscriptionOf(ctx, subID, md, price)
	if err != nil {
		return o, err
	}
	o.accountID = link.AccountID
	if link.AccountID == "" {
		o.result = "ignored: subscription without a scrip account"
		return o, nil
	}
	plan := link.PlanCode
	if p := s.planOfPrice(price); p != "" {
		plan = p
	}
	if s.opt.Subscriptions == nil {
		return o, retry("subscriptions are not available on this server")
	}
	switch inv.BillingReason {
	case sg.InvoiceBillingReasonSubscriptionCreate:
		// The first invoice may come before its checkout.session.completed:
		// both subscribe under the subscription's key.
		if err := s.subscribe(ctx, link.AccountID, plan, subID, ev.Created); err != nil {
			return o, err
		}
		o.result = "subscribed to " + plan
		return o, nil
	case sg.InvoiceBillingReasonSubscriptionCycle:
		if !known {
			return o, retry("invoice %s renews subscription %s, which is not subscribed yet", inv.ID, subID)
		}
		if err := s.opt.Subscriptions.Renew(ctx, RenewRequest{AccountID: link.AccountID, PlanCode: plan,
			Key: "stripe:invoice:" + inv.ID, PeriodStart: start, PeriodEnd: end, ExternalID: subID}); err != nil {
			return o, fmt.Errorf("renew %s: %w", link.AccountID, err)
		}
		e, err := event.New(event.SubscriptionRenewed, inv.ID, link.AccountID, s.now(), map[string]any{
			"account_id": link.AccountID, "plan_code": plan, "subscription": subID, "invoice": inv.ID,
			"period_start": start, "period_end": end, "amount_paid": inv.AmountPaid, "currency": inv.Currency})
		if err != nil {
			return o, err
		}
		o.events = append(o.events, e)
		o.result = "renewed " + plan
	default:
		o.result = "paid"
	}
	if fresh(link, ev) && link.Status != "active" {
		if err := s.opt.Subscriptions.MarkPaid(ctx, link.AccountID); err != nil {
			return o, fmt.Errorf("mark %s paid: %w", link.AccountID, err)
		}
		link.Status = "active"
	}
	return o, s.touch(ctx, link, ev)
}

func (s *Service) invoiceFailed(ctx context.Context, ev *sg.Event) (outcome, error) {
	var inv sg.Invoice
	if err := decode(ev, &inv); err != nil {
		return outcome{}, err
	}
	o := outcome{objectID: inv.ID}
	subID, md := invoiceSubscription(&inv)
	if subID == "" {
		o.result = "ignored: invoice without a subscription"
		return o, nil
	}
	price, _, _ := invoiceLine(&inv)
	link, known, err := s.subscriptionOf(ctx, subID, md, price)
	if err != nil {
		return o, err
	}
	o.accountID = link.AccountID
	switch {
	case link.AccountID == "":
		o.result = "ignored: subscription without a scrip account"
		return o, nil
	case !known:
		return o, retry("invoice %s of subscription %s failed before the subscription started", inv.ID, subID)
	case !fresh(link, ev):
		o.result = "ignored: a later event was applied already"
		return o, nil
	}
	if s.opt.Subscriptions == nil {
		return o, retry("subscriptions are not available on this server")
	}
	if err := s.opt.Subscriptions.MarkPastDue(ctx, link.AccountID); err != nil {
		return o, fmt.Errorf("mark %s past due: %w", link.AccountID, err)
	}
	e, err := event.New(event.SubscriptionChanged, "past_due:"+inv.ID, link.AccountID, s.now(), map[string]any{
		"account_id": link.AccountID, "change": "past_due", "plan_code": link.PlanCode, "subscription": subID, "invoice": inv.ID})
	if err != nil {
		return o, err
	}
	o.events, o.result = []event.Event{e}, "past due"
	link.Status = "past_due"
	return o, s.touch(ctx, link, ev)
}

// fresh reports whether ev is not older than the last event applied to the
// subscription's state.
func fresh(link Subscription, ev *sg.Event) bool { return ev.Created >= link.EventCreated }

func (s *Service) touch(ctx context.Context, link Subscription, ev *sg.Event) error {
	link.EventCreated = max(link.EventCreated, ev.Created)
	link.UpdatedAt = s.now()
	return s.opt.Store.SaveSubscription(ctx, link)
}

func invoiceSubscription(inv *sg.Invoice) (string, map[string]string) {
	if inv.Parent == nil || inv.Parent.SubscriptionDetails == nil || inv.Parent.SubscriptionDetails.Subscription == nil {
		return "", nil
	}
	d := inv.Parent.SubscriptionDetails
	return d.Subscription.ID, d.Metadata
}

// invoiceLine returns the price and period of the invoice's first line.
func invoiceLine(inv *sg.Invoice) (price string, start, end time.Time) {
	start, end = time.Unix(inv.PeriodStart, 0).UTC(), time.Unix(inv.PeriodEnd, 0).UTC()
	if inv.Lines == nil || len(inv.Lines.Data) == 0 {
		return "", start, end
	}
	l := inv.Lines.Data[0]
	if l.Pricing != nil && l.Pricing.PriceDetails != nil && l.Pricing.PriceDetails.Price != nil {
		price = l.Pricing.PriceDetails.Price.ID
	}
	if l.Period != nil {
		start, end = time.Unix(l.Period.Start, 0).UTC(), time.Unix(l.Period.End, 0).UTC()
	}
	return price, start, end
}

func subscriptionPrice(sub *sg.Subscription) string {
	if sub.Items == nil || len(sub.Items.Data) == 0 || sub.Items.Data[0].Price == nil {
		return ""
	}
	return sub.Items.Data[0].Price.ID
}

func (s *Service) subscriptionUpdated(ctx context.Context, ev *sg.Event) (outcome, error) {
	var sub sg.Subscription
	if err := decode(ev, &sub); err != nil {
		return outcome{}, err
	}
	o := outcome{objectID: sub.ID}
	link, known, err := s.subscriptionOf(ctx, sub.ID, sub.Metadata, subscriptionPrice(&sub))
	if err != nil {
		return o, err
	}
	o.accountID = link.AccountID
	switch {
	case link.AccountID == "":
		o.result = "ignored: subscription without a scrip account"
		return o, nil
	case !known:
		// Updated before it started: the checkout or first invoice
		// subscribes it, with the plan it was bought with.
		return o, retry("subscription %s updated before it started", sub.ID)
	case !fresh(link, ev):
		o.result = "ignored: a later event was applied already"
		return o, nil
	}
	if s.opt.Subscriptions == nil {
		return o, retry("subscriptions are not available on this server")
	}
	var changes []string
	change := func(kind string, data map[string]any) error {
		data["account_id"], data["change"], data["subscription"] = link.AccountID, kind, sub.ID
		e, err := event.New(event.SubscriptionChanged, kind+":"+ev.ID, link.AccountID, s.now(), data)
		if err != nil {
			return err
		}
		o.events = append(o.events, e)
		changes = append(changes, kind)
		return nil
	}
	if plan := s.planOfPrice(subscriptionPrice(&sub)); plan != "" && plan != link.PlanCode {
		if err := s.opt.Subscriptions.ChangePlan(ctx, ChangePlanRequest{AccountID: link.AccountID, PlanCode: plan,
			Key: "stripe:plan:" + ev.ID, At: time.Unix(ev.Created, 0).UTC()}); err != nil {
			return o, fmt.Errorf("change plan of %s to %s: %w", link.AccountID, plan, err)
		}
		if err := change("plan", map[string]any{"from": link.PlanCode, "to": plan}); err != nil {
			return o, err
		}
		link.PlanCode = plan
	}
	switch {
	case sub.CancelAtPeriodEnd && !link.CancelAtPeriodEnd:
		if err := s.opt.Subscriptions.Cancel(ctx, link.AccountID, true); err != nil {
			return o, fmt.Errorf("cancel %s at period end: %w", link.AccountID, err)
		}
		if err := change("cancel_at_period_end", map[string]any{"plan_code": link.PlanCode}); err != nil {
			return o, err
		}
	case !sub.CancelAtPeriodEnd && link.CancelAtPeriodEnd:
		if err := s.opt.Subscriptions.Resume(ctx, link.AccountID); err != nil {
			return o, fmt.Errorf("resume %s: %w", link.AccountID, err)
		}
		if err := change("resumed", map[string]any{"plan_code": link.PlanCode}); err != nil {
			return o, err
		}
	}
	link.CancelAtPeriodEnd = sub.CancelAtPeriodEnd
	switch st := string(sub.Status); {
	case st == "past_due" && link.Status != "past_due":
		if err := s.opt.Subscriptions.MarkPastDue(ctx, link.AccountID); err != nil {
			return o, err
		}
		if err := change("past_due", map[string]any{"plan_code": link.PlanCode}); err != nil {
			return o, err
		}
		link.Status = st
	case st == "active" && link.Status == "past_due":
		if err := s.opt.Subscriptions.MarkPaid(ctx, link.AccountID); err != nil {
			return o, err
		}
		link.Status = st
	case st != "":
		link.Status = st
	}
	o.result = "updated"
	if len(changes) == 0 {
		o.result = "no change"
	} else {
		o.result = fmt.Sprintf("changed: %v", changes)
	}
	return o, s.touch(ctx, link, ev)
}

func (s *Service) subscriptionDeleted(ctx context.Context, ev *sg.Event) (outcome, error) {
	var sub sg.Subscription
	if err := decode(ev, &sub); err != nil {
		return outcome{}, err
	}
	o := outcome{objectID: sub.ID}
	link, known, err := s.subscriptionOf(ctx, sub.ID, sub.Metadata, subscriptionPrice(&sub))
	if err != nil {
		return o, err
	}
	o.accountID = link.AccountID
	switch {
	case link.AccountID == "":
		o.result = "ignored: subscription without a scrip account"
		return o, nil
	case !known:
		return o, retry("subscription %s deleted before it started", sub.ID)
	case link.Status == "canceled":
		o.result = "ignored: already canceled"
		return o, nil
	}
	if s.opt.Subscriptions == nil {
		return o, retry("subscriptions are not available on this server")
	}
	// Stripe deletes a subscription when it ends, so it ends now.
	if err := s.opt.Subscriptions.Cancel(ctx, link.AccountID, false); err != nil {
		return o, fmt.Errorf("cancel %s: %w", link.AccountID, err)
	}
	e, err := event.New(event.SubscriptionChanged, "canceled:"+sub.ID, link.AccountID, s.now(), map[string]any{
		"account_id": link.AccountID, "change": "canceled", "plan_code": link.PlanCode, "subscription": sub.ID})
	if err != nil {
		return o, err
	}
	o.events, o.result = []event.Event{e}, "canceled"
	link.Status = "canceled"
	return o, s.touch(ctx, link, ev)
}

func (s *Service) chargeRefunded(ctx context.Context, ev *sg.Event) (outcome, error) {
	var ch sg.Charge
	if err := decode(ev, &ch); err != nil {
		return outcome{}, err
	}
	o := outcome{objectID: ch.ID}
	if ch.PaymentIntent == nil || ch.PaymentIntent.ID == "" {
		o.result = "ignored: charge without a payment intent"
		return o, nil
	}
	pur, err := s.opt.Store.PurchaseByPaymentIntent(ctx, ch.PaymentIntent.ID)
	if errors.Is(err, ErrNotFound) {
		if ch.Metadata[MetaAccount] != "" {
			return o, retry("refund of charge %s arrived before its purchase (payment intent %s)", ch.ID, ch.PaymentIntent.ID)
		}
		o.result = "ignored: not a scrip pack purchase"
		return o, nil
	}
	if err != nil {
		return o, err
	}
	o.accountID = pur.AccountID
	data := map[string]any{"account_id": pur.AccountID, "kind": pur.Kind, "pack_code": pur.Code, "grant_id": pur.GrantID,
		"charge": ch.ID, "payment_intent": ch.PaymentIntent.ID, "checkout_session": pur.ID, "credits": pur.Credits,
		"amount_refunded": ch.AmountRefunded, "amount": ch.Amount, "currency": ch.Currency, "policy": s.opt.Config.RefundPolicy}
	if !ch.Refunded {
		// A partial refund takes no credits: how many a part of the money
		// is worth is the platform's call. It is reported.
		data["partial"], data["revoked"] = true, credit.Amount(0)
		e, err := event.New(event.PurchaseRefunded, fmt.Sprintf("%s:%d", ch.ID, ch.AmountRefunded), pur.AccountID, s.now(), data)
		if err != nil {
			return o, err
		}
		o.events, o.result = []event.Event{e}, "partial refund: reported, no credits revoked"
		return o, nil
	}
	g, err := s.opt.Engine.Store().Grant(ctx, pur.GrantID)
	if err != nil {
		return o, fmt.Errorf("grant %s of purchase %s: %w", pur.GrantID, pur.ID, err)
	}
	res, err := s.opt.Engine.Revoke(ctx, ledger.RevokeRequest{GrantID: pur.GrantID, Key: "stripe:refund:" + ch.ID,
		Reason: "refund of charge " + ch.ID})
	if err != nil {
		return o, fmt.Errorf("revoke grant %s: %w", pur.GrantID, err)
	}
	revoked := res.Transaction.Amount
	// Spent includes credits still held by open holds: they are no longer
	// in the grant, and come back to it only to expire at once.
	spent := g.Amount - revoked
	var clawed, outstanding credit.Amount
	if s.opt.Config.RefundPolicy == RefundClawBack && spent > 0 {
		clawed, outstanding, err = s.clawBack(ctx, pur.AccountID, ch.ID, spent)
		if err != nil {
			return o, err
		}
	} else {
		outstanding = spent
	}
	data["partial"], data["revoked"], data["spent"], data["clawed_back"], data["outstanding"] = false, revoked, spent, clawed, outstanding
	e, err := event.New(event.PurchaseRefunded, ch.ID, pur.AccountID, s.now(), data)
	if err != nil {
		return o, err
	}
	o.events = []event.Event{e}
	o.result = fmt.Sprintf("revoked %s credits; %s spent, %s clawed back", revoked, spent, clawed)
	return o, nil
}

// clawBack debits up to spent credits from the account's other credits.
func (s *Service) clawBack(ctx context.Context, acct, chargeID string, spent credit.Amount) (credit.Amount, credit.Amount, error) {
	key := "stripe:refund:" + chargeID + ":claw_back"
	b, err := s.opt.Engine.Balance(ctx, acct)
	if err != nil {
		return 0, 0, err
	}
	take := min(spent, b.Available)
	if take <= 0 {
		return 0, spent, nil
	}
	res, err := s.opt.Engine.Adjust(ctx, ledger.AdjustRequest{AccountID: acct, Key: key, Amount: -take,
		Reason: "claw back of credits spent from refunded charge " + chargeID})
	switch {
	case scrip.ErrorCode(err) == scrip.EIdempotencyConflict:
		// Applied by an earlier delivery with the balance of then; its
		// amount is what was taken.
		txs, herr := s.opt.Engine.History(ctx, ledger.HistoryQuery{AccountID: acct, Types: []ledger.TxType{ledger.TxAdjustment}, Limit: 100})
		if herr != nil {
			return 0, 0, herr
		}
		for _, t := range txs {
			if t.IdempotencyKey == key {
				return -t.Amount, spent + t.Amount, nil
			}
		}
		return 0, 0, err
	case scrip.ErrorCode(err) == scrip.EInsufficientCredits:
		// Spent meanwhile; a redelivery tries again with the new balance.
		return 0, 0, retry("claw back %s from %s: %v", take, acct, err)
	case err != nil:
		return 0, 0, err
	}
	return -res.Transaction.Amount, spent + res.Transaction.Amount, nil
}
