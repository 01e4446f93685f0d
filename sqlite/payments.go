package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/event"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/stripe"
)

// Outbox returns the store of outgoing events, on the same database.
func (s *Store) Outbox() event.Store { return outbox{s} }

// StripeStore returns the store of applied Stripe events and purchases.
func (s *Store) StripeStore() stripe.Store { return stripeStore{s} }

type outbox struct{ s *Store }

var _ event.Store = outbox{}

func (o outbox) Publish(ctx context.Context, evs []event.Event) (int, error) {
	return o.PublishWith(ctx, evs, nil)
}

// PublishWith is Publish and SetStates in one transaction; SetStates is
// PublishWith with no events.
func (o outbox) PublishWith(ctx context.Context, evs []event.Event, states map[string]string) (int, error) {
	if len(evs) == 0 && len(states) == 0 {
		return 0, nil
	}
	tx, err := o.s.writer.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: outbox write: %w", err)
	}
	defer tx.Rollback()
	n, err := insertEvents(ctx, tx, evs)
	if err != nil {
		return 0, fmt.Errorf("sqlite: publish: %w", err)
	}
	if err := setStates(ctx, tx, states); err != nil {
		return 0, fmt.Errorf("sqlite: set states: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: outbox write: %w", err)
	}
	return n, nil
}

// insertEvents inserts the events whose ids are new, each with a pending
// delivery to every enabled endpoint that wants it, and returns how many
// were new.
func insertEvents(ctx context.Context, tx *sql.Tx, evs []event.Event) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	eps, err := queryEndpoints(ctx, tx)
	if err != nil {
		return 0, err
	}
	// A few statements of many rows each: the events hold the one writer
	// while they are written, and the committer's batches wait meanwhile.
	n := 0
	var dl []any // event_id, endpoint_id, next_at, status of each delivery
	for rest := evs; len(rest) > 0; {
		chunk := rest[:min(len(rest), publishRows)]
		rest = rest[len(chunk):]
		args := make([]any, 0, 5*len(chunk))
		byID := make(map[string]*event.Event, len(chunk))
		for i := range chunk {
			e := &chunk[i]
			args = append(args, e.ID, e.Type, e.AccountID, micros(e.CreatedAt), string(e.Data))
			if _, ok := byID[e.ID]; !ok {
				byID[e.ID] = e
			}
		}
		rows, err := tx.QueryContext(ctx, `INSERT OR ROLLBACK INTO events (`+eventCols+`) VALUES `+valueRows(len(chunk), 5)+`
			ON CONFLICT (id) DO NOTHING RETURNING id`, args...)
		if err != nil {
			return 0, err
		}
		ids, err := collect(rows, func(sc scanner) (string, error) {
			var id string
			return id, sc.Scan(&id)
		})
		if err != nil {
			return 0, err
		}
		n += len(ids)
		for _, id := range ids {
			e := byID[id]
			for _, ep := range eps {
				if ep.Wants(e.Type) {
					dl = append(dl, e.ID, ep.ID, micros(e.CreatedAt), event.Pending)
				}
			}
		}
	}
	for len(dl) > 0 {
		k := min(len(dl)/4, publishRows)
		if _, err := tx.ExecContext(ctx, `INSERT OR ROLLBACK INTO event_deliveries (event_id, endpoint_id, next_at, status)
			VALUES `+valueRows(k, 4), dl[:4*k]...); err != nil {
			return 0, fmt.Errorf("deliveries: %w", err)
		}
		dl = dl[4*k:]
	}
	return n, nil
}

// publishRows is the most rows an outbox statement writes at once.
const publishRows = 100

const eventCols = "id, type, account_id, created_at, data"

func scanEvent(sc scanner) (event.Event, error) {
	var (
		e    event.Event
		at   int64
		data string
	)
	if err := sc.Scan(&e.ID, &e.Type, &e.AccountID, &at, &data); err != nil {
		return e, err
	}
	e.CreatedAt, e.Data = fromMicros(at), []byte(data)
	return e, nil
}

func (o outbox) Event(ctx context.Context, id string) (event.Event, error) {
	e, err := scanEvent(o.s.reader.QueryRowContext(ctx, `SELECT `+eventCols+` FROM events WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, event.ErrNotFound
	}
	return e, err
}

func (o outbox) Events(ctx context.Context, q event.Query) ([]event.Event, error) {
	before := int64(1<<63 - 1)
	if !q.Before.IsZero() {
		before = micros(q.Before)
	}
	rows, err := o.s.reader.QueryContext(ctx, `SELECT `+eventCols+` FROM events
		WHERE (created_at < ?1 OR (created_at = ?1 AND id < ?5)) AND (?2 = '' OR account_id = ?2) AND (?3 = '' OR type = ?3)
		ORDER BY created_at DESC, id DESC LIMIT ?4`, before, q.AccountID, q.Type, q.Limit, q.BeforeID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: events: %w", err)
	}
	return collect(rows, scanEvent)
}

const endpointCols = "id, url, secret, types, created_at, disabled"

func scanEndpoint(sc scanner) (event.Endpoint, error) {
	var (
		ep    event.Endpoint
		types string
		at    int64
		dis   int64
	)
	if err := sc.Scan(&ep.ID, &ep.URL, &ep.Secret, &types, &at, &dis); err != nil {
		return ep, err
	}
	ep.Types = strings.Split(types, ",")
	ep.CreatedAt, ep.Disabled = fromMicros(at), dis != 0
	return ep, nil
}

func queryEndpoints(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) ([]event.Endpoint, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+endpointCols+` FROM event_endpoints ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanEndpoint)
}

func (o outbox) CreateEndpoint(ctx context.Context, ep event.Endpoint) error {
	_, err := o.s.writer.ExecContext(ctx, `INSERT INTO event_endpoints (`+endpointCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
		ep.ID, ep.URL, ep.Secret, strings.Join(ep.Types, ","), micros(ep.CreatedAt), boolInt(ep.Disabled))
	if err != nil {
		return fmt.Errorf("sqlite: create endpoint: %w", err)
	}
	return nil
}

func (o outbox) Endpoints(ctx context.Context) ([]event.Endpoint, error) {
	eps, err := queryEndpoints(ctx, o.s.reader)
	if err != nil {
		return nil, fmt.Errorf("sqlite: endpoints: %w", err)
	}
	return eps, nil
}

func (o outbox) DisableEndpoint(ctx context.Context, id string) error {
	res, err := o.s.writer.ExecContext(ctx, `UPDATE event_endpoints SET disabled = 1 WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("sqlite: disable endpoint: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return event.ErrNotFound
	}
	return nil
}

const deliveryCols = "event_id, endpoint_id, status, attempts, next_at, last_status, last_error, delivered_at"

func scanDelivery(sc scanner) (event.Delivery, error) {
	var (
		d         event.Delivery
		next      int64
		delivered sql.NullInt64
	)
	if err := sc.Scan(&d.EventID, &d.EndpointID, &d.Status, &d.Attempts, &next, &d.LastStatus, &d.LastError, &delivered); err != nil {
		return d, err
	}
	if d.Status == event.Pending {
		d.NextAt = fromMicros(next)
	}
	d.DeliveredAt = fromNullMicros(delivered)
	return d, nil
}

func (o outbox) Claim(ctx context.Context, now, leaseUntil time.Time, limit int) ([]event.Job, error) {
	tx, err := o.s.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT `+prefixed("d.", deliveryCols)+`, `+prefixed("e.", eventCols)+`, `+prefixed("p.", endpointCols)+`
		FROM event_deliveries AS d
		JOIN events AS e ON e.id = d.event_id
		JOIN event_endpoints AS p ON p.id = d.endpoint_id
		WHERE d.status = 'pending' AND d.next_at <= ? AND p.disabled = 0
		ORDER BY d.next_at LIMIT ?`, micros(now), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim: %w", err)
	}
	jobs, err := collect(rows, func(sc scanner) (event.Job, error) {
		var j event.Job
		var (
			next, eat, pat int64
			delivered      sql.NullInt64
			data, types    string
			dis            int64
		)
		d, e, p := &j.Delivery, &j.Event, &j.Endpoint
		err := sc.Scan(&d.EventID, &d.EndpointID, &d.Status, &d.Attempts, &next, &d.LastStatus, &d.LastError, &delivered,
			&e.ID, &e.Type, &e.AccountID, &eat, &data, &p.ID, &p.URL, &p.Secret, &types, &pat, &dis)
		d.NextAt, e.CreatedAt, e.Data = fromMicros(next), fromMicros(eat), []byte(data)
		p.Types, p.CreatedAt = strings.Split(types, ","), fromMicros(pat)
		return j, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim: %w", err)
	}
	for _, j := range jobs {
		if _, err := tx.ExecContext(ctx, `UPDATE event_deliveries SET next_at = ? WHERE event_id = ? AND endpoint_id = ?`,
			micros(leaseUntil), j.Delivery.EventID, j.Delivery.EndpointID); err != nil {
			return nil, fmt.Errorf("sqlite: claim: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: claim: %w", err)
	}
	return jobs, nil
}

func (o outbox) RecordAll(ctx context.Context, os []event.Outcome) error {
	if len(os) == 0 {
		return nil
	}
	tx, err := o.s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: record attempts: %w", err)
	}
	defer tx.Rollback()
	insert, err := tx.PrepareContext(ctx, `INSERT INTO event_attempts (event_id, endpoint_id, number, at, status_code, error, duration_us)
		VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("sqlite: record attempts: %w", err)
	}
	defer insert.Close()
	update, err := tx.PrepareContext(ctx, `UPDATE event_deliveries SET status = ?, attempts = ?, next_at = ?, last_status = ?,
		last_error = ?, delivered_at = ? WHERE event_id = ? AND endpoint_id = ? AND status = 'pending' AND next_at = ?`)
	if err != nil {
		return fmt.Errorf("sqlite: record attempts: %w", err)
	}
	defer update.Close()
	for _, oc := range os {
		a, d := &oc.Attempt, &oc.Delivery
		if _, err := insert.ExecContext(ctx, a.EventID, a.EndpointID, a.Number, micros(a.At), a.StatusCode, a.Error, a.Duration.Microseconds()); err != nil {
			return fmt.Errorf("sqlite: record attempt %d of %s: %w", a.Number, a.EventID, err)
		}
		if _, err := update.ExecContext(ctx, d.Status, d.Attempts, micros(d.NextAt), d.LastStatus, d.LastError,
			nullMicros(d.DeliveredAt), d.EventID, d.EndpointID, micros(oc.Lease)); err != nil {
			return fmt.Errorf("sqlite: record attempt %d of %s: %w", a.Number, a.EventID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: record attempts: %w", err)
	}
	return nil
}

func (o outbox) Deliveries(ctx context.Context, eventID string) ([]event.Delivery, error) {
	rows, err := o.s.reader.QueryContext(ctx, `SELECT `+deliveryCols+` FROM event_deliveries
		WHERE event_id = ? ORDER BY endpoint_id`, eventID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: deliveries: %w", err)
	}
	return collect(rows, scanDelivery)
}

func (o outbox) Attempts(ctx context.Context, eventID string) ([]event.Attempt, error) {
	rows, err := o.s.reader.QueryContext(ctx, `SELECT event_id, endpoint_id, number, at, status_code, error, duration_us
		FROM event_attempts WHERE event_id = ? ORDER BY id LIMIT 1000`, eventID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: attempts: %w", err)
	}
	return collect(rows, func(sc scanner) (event.Attempt, error) {
		var a event.Attempt
		var at, dur int64
		err := sc.Scan(&a.EventID, &a.EndpointID, &a.Number, &at, &a.StatusCode, &a.Error, &dur)
		a.At, a.Duration = fromMicros(at), time.Duration(dur)*time.Microsecond
		return a, err
	})
}

func (o outbox) Retry(ctx context.Context, eventID, endpointID string, at time.Time) error {
	res, err := o.s.writer.ExecContext(ctx, `UPDATE event_deliveries SET status = 'pending', next_at = ?
		WHERE event_id = ? AND endpoint_id = ? AND status <> 'delivered'`, micros(at), eventID, endpointID)
	if err != nil {
		return fmt.Errorf("sqlite: retry delivery: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return event.ErrNotFound
	}
	return nil
}

func (o outbox) State(ctx context.Context, name string) (string, error) {
	var v string
	err := o.s.reader.QueryRowContext(ctx, `SELECT value FROM event_state WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", event.ErrNotFound
	}
	return v, err
}

func (o outbox) States(ctx context.Context, names []string) (map[string]string, error) {
	rows, err := o.s.reader.QueryContext(ctx, `SELECT name, value FROM event_state
		WHERE name IN (SELECT value FROM json_each(?))`, encodeIDs(names))
	if err != nil {
		return nil, fmt.Errorf("sqlite: states: %w", err)
	}
	defer rows.Close()
	out := make(map[string]string, len(names))
	for rows.Next() {
		var n, v string
		if err := rows.Scan(&n, &v); err != nil {
			return nil, fmt.Errorf("sqlite: states: %w", err)
		}
		out[n] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: states: %w", err)
	}
	return out, nil
}

func (o outbox) InitState(ctx context.Context, name, value string) (string, error) {
	if _, err := o.s.writer.ExecContext(ctx, `INSERT INTO event_state (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO NOTHING`, name, value); err != nil {
		return "", fmt.Errorf("sqlite: init state %s: %w", name, err)
	}
	var v string
	if err := o.s.writer.QueryRowContext(ctx, `SELECT value FROM event_state WHERE name = ?`, name).Scan(&v); err != nil {
		return "", fmt.Errorf("sqlite: init state %s: %w", name, err)
	}
	return v, nil
}

func (o outbox) SetState(ctx context.Context, name, value string) error {
	return o.SetStates(ctx, map[string]string{name: value})
}

func (o outbox) SetStates(ctx context.Context, states map[string]string) error {
	_, err := o.PublishWith(ctx, nil, states)
	return err
}

// setStates stores each name's value.
func setStates(ctx context.Context, tx *sql.Tx, states map[string]string) error {
	args := make([]any, 0, 2*len(states))
	for _, name := range slices.Sorted(maps.Keys(states)) {
		args = append(args, name, states[name])
	}
	for len(args) > 0 {
		k := min(len(args)/2, publishRows)
		if _, err := tx.ExecContext(ctx, `INSERT OR ROLLBACK INTO event_state (name, value) VALUES `+valueRows(k, 2)+`
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, args[:2*k]...); err != nil {
			return err
		}
		args = args[2*k:]
	}
	return nil
}

func (o outbox) JournalAfter(ctx context.Context, c event.JournalCursor, until time.Time, limit int) ([]event.JournalRow, error) {
	rows, err := o.s.reader.QueryContext(ctx, `SELECT id, account_id, type, amount, grant_id, hold_id, created_at, available_after FROM transactions
		WHERE (created_at > ?1 OR (created_at = ?1 AND id > ?2)) AND created_at <= ?3
		ORDER BY created_at, id LIMIT ?4`, micros(c.At), c.ID, micros(until), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: journal after: %w", err)
	}
	return collect(rows, func(sc scanner) (event.JournalRow, error) {
		var (
			r       event.JournalRow
			typ     string
			amount  int64
			created int64
			after   sql.NullInt64
		)
		err := sc.Scan(&r.ID, &r.AccountID, &typ, &amount, &r.GrantID, &r.HoldID, &created, &after)
		r.Type, r.Amount, r.CreatedAt = ledger.TxType(typ), credit.Micros(amount), fromMicros(created)
		r.AvailableAfter = amountOrNil(after)
		return r, err
	})
}

func (o outbox) ExpiringAfter(ctx context.Context, c event.JournalCursor, until time.Time, limit int) ([]ledger.Grant, error) {
	rows, err := o.s.reader.QueryContext(ctx, `SELECT `+grantCols+` FROM grants
		WHERE closed = 0 AND remaining > 0 AND expires_at IS NOT NULL
		  AND (expires_at > ?1 OR (expires_at = ?1 AND id > ?2)) AND expires_at <= ?3
		ORDER BY expires_at, id LIMIT ?4`, micros(c.At), c.ID, micros(until), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: expiring grants: %w", err)
	}
	return collect(rows, scanGrant)
}

type stripeStore struct{ s *Store }

var _ stripe.Store = stripeStore{}

func (st stripeStore) ProcessedEvent(ctx context.Context, id string) (stripe.Processed, error) {
	p, err := scanProcessed(st.s.reader.QueryRowContext(ctx, `SELECT `+processedCols+` FROM stripe_events WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, stripe.ErrNotFound
	}
	return p, err
}

const processedCols = "id, type, account_id, object_id, created, received_at, result"

func scanProcessed(sc scanner) (stripe.Processed, error) {
	var (
		p             stripe.Processed
		created, recv int64
	)
	err := sc.Scan(&p.ID, &p.Type, &p.AccountID, &p.ObjectID, &created, &recv, &p.Result)
	p.Created, p.Received = time.Unix(created, 0).UTC(), fromMicros(recv)
	return p, err
}

func (st stripeStore) RecordEvent(ctx context.Context, p stripe.Processed) error {
	_, err := st.s.writer.ExecContext(ctx, `INSERT INTO stripe_events (`+processedCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`, p.ID, p.Type, p.AccountID, p.ObjectID, p.Created.Unix(), micros(p.Received), p.Result)
	if err != nil {
		return fmt.Errorf("sqlite: record stripe event %s: %w", p.ID, err)
	}
	return nil
}

func (st stripeStore) ProcessedEvents(ctx context.Context, limit int) ([]stripe.Processed, error) {
	rows, err := st.s.reader.QueryContext(ctx, `SELECT `+processedCols+` FROM stripe_events
		ORDER BY received_at DESC, id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: stripe events: %w", err)
	}
	return collect(rows, scanProcessed)
}

const purchaseCols = "id, account_id, kind, code, payment_intent, grant_id, credits, paid_amount, currency, created_at"

func (st stripeStore) SavePurchase(ctx context.Context, p stripe.Purchase) error {
	_, err := st.s.writer.ExecContext(ctx, `INSERT INTO stripe_purchases (`+purchaseCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`, p.ID, p.AccountID, p.Kind, p.Code, p.PaymentIntent, p.GrantID, int64(p.Credits),
		p.PaidAmount, p.Currency, micros(p.CreatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: save purchase %s: %w", p.ID, err)
	}
	return nil
}

func (st stripeStore) PurchaseByPaymentIntent(ctx context.Context, pi string) (stripe.Purchase, error) {
	var (
		p       stripe.Purchase
		credits int64
		at      int64
	)
	err := st.s.reader.QueryRowContext(ctx, `SELECT `+purchaseCols+` FROM stripe_purchases
		WHERE payment_intent = ? AND payment_intent <> '' ORDER BY created_at LIMIT 1`, pi).
		Scan(&p.ID, &p.AccountID, &p.Kind, &p.Code, &p.PaymentIntent, &p.GrantID, &credits, &p.PaidAmount, &p.Currency, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return p, stripe.ErrNotFound
	}
	p.Credits, p.CreatedAt = credit.Amount(credits), fromMicros(at)
	return p, err
}

const subscriptionCols = "id, account_id, plan_code, status, cancel_at_period_end, event_created, updated_at"

func (st stripeStore) SaveSubscription(ctx context.Context, s stripe.Subscription) error {
	_, err := st.s.writer.ExecContext(ctx, `INSERT INTO stripe_subscriptions (`+subscriptionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET account_id = excluded.account_id, plan_code = excluded.plan_code,
		  status = excluded.status, cancel_at_period_end = excluded.cancel_at_period_end,
		  event_created = excluded.event_created, updated_at = excluded.updated_at`,
		s.ID, s.AccountID, s.PlanCode, s.Status, boolInt(s.CancelAtPeriodEnd), s.EventCreated, micros(s.UpdatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: save subscription %s: %w", s.ID, err)
	}
	return nil
}

func (st stripeStore) Subscription(ctx context.Context, id string) (stripe.Subscription, error) {
	var (
		s      stripe.Subscription
		cancel int64
		at     int64
	)
	err := st.s.reader.QueryRowContext(ctx, `SELECT `+subscriptionCols+` FROM stripe_subscriptions WHERE id = ?`, id).
		Scan(&s.ID, &s.AccountID, &s.PlanCode, &s.Status, &cancel, &s.EventCreated, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return s, stripe.ErrNotFound
	}
	s.CancelAtPeriodEnd, s.UpdatedAt = cancel != 0, fromMicros(at)
	return s, err
}
