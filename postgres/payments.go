package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

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
// PublishWith with no events, one statement with no transaction around it.
func (o outbox) PublishWith(ctx context.Context, evs []event.Event, states map[string]string) (int, error) {
	if len(evs) == 0 {
		if err := setStates(ctx, o.s.pool, states); err != nil {
			return 0, fmt.Errorf("postgres: set states: %w", err)
		}
		return 0, nil
	}
	n := 0
	err := pgx.BeginFunc(ctx, o.s.pool, func(tx pgx.Tx) error {
		var err error
		if n, err = insertEvents(ctx, tx, evs); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		if err := setStates(ctx, tx, states); err != nil {
			return fmt.Errorf("set states: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: %w", err)
	}
	return n, nil
}

// insertEvents inserts the events whose ids are new, each with a pending
// delivery to every enabled endpoint that wants it, and returns how many
// were new.
func insertEvents(ctx context.Context, tx pgx.Tx, evs []event.Event) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	ids, types, accts, data := make([]string, len(evs)), make([]string, len(evs)), make([]string, len(evs)), make([]string, len(evs))
	ats := make([]time.Time, len(evs))
	byID := make(map[string]*event.Event, len(evs))
	for i := range evs {
		e := &evs[i]
		ids[i], types[i], accts[i], ats[i], data[i] = e.ID, e.Type, e.AccountID, e.CreatedAt, string(e.Data)
		if _, ok := byID[e.ID]; !ok {
			byID[e.ID] = e
		}
	}
	// Three statements whatever the number of events: each is a round trip.
	eps, err := collect(ctx, tx, scanEndpoint, `SELECT `+endpointCols+` FROM event_endpoints ORDER BY created_at, id`)
	if err != nil {
		return 0, err
	}
	added, err := collect(ctx, tx, func(r scanner) (string, error) {
		var id string
		return id, r.Scan(&id)
	}, `INSERT INTO events (`+eventCols+`)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])
		ON CONFLICT (id) DO NOTHING RETURNING id`, ids, types, accts, ats, data)
	if err != nil {
		return 0, fmt.Errorf("events: %w", err)
	}
	var dlEvents, dlEndpoints []string
	var dlAt []time.Time
	for _, id := range added {
		e := byID[id]
		for _, ep := range eps {
			if ep.Wants(e.Type) {
				dlEvents, dlEndpoints, dlAt = append(dlEvents, e.ID), append(dlEndpoints, ep.ID), append(dlAt, e.CreatedAt)
			}
		}
	}
	if len(dlEvents) == 0 {
		return len(added), nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO event_deliveries (event_id, endpoint_id, next_at, status)
		SELECT e, p, t, 'pending' FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u (e, p, t)`,
		dlEvents, dlEndpoints, dlAt); err != nil {
		return 0, fmt.Errorf("deliveries: %w", err)
	}
	return len(added), nil
}

const eventCols = "id, type, account_id, created_at, data"

func scanEvent(sc scanner) (event.Event, error) {
	var (
		e    event.Event
		data string
	)
	if err := sc.Scan(&e.ID, &e.Type, &e.AccountID, &e.CreatedAt, &data); err != nil {
		return e, err
	}
	e.CreatedAt, e.Data = e.CreatedAt.UTC(), []byte(data)
	return e, nil
}

func (o outbox) Event(ctx context.Context, id string) (event.Event, error) {
	e, err := scanEvent(o.s.pool.QueryRow(ctx, `SELECT `+eventCols+` FROM events WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, event.ErrNotFound
	}
	return e, err
}

func (o outbox) Events(ctx context.Context, q event.Query) ([]event.Event, error) {
	var before pgtype.Timestamptz
	if !q.Before.IsZero() {
		before = pgtype.Timestamptz{Time: q.Before, Valid: true}
	}
	evs, err := collect(ctx, o.s.pool, scanEvent, `SELECT `+eventCols+` FROM events
		WHERE ($1::timestamptz IS NULL OR created_at < $1 OR (created_at = $1 AND id < $5))
			AND ($2 = '' OR account_id = $2) AND ($3 = '' OR type = $3)
		ORDER BY created_at DESC, id DESC LIMIT $4`, before, q.AccountID, q.Type, q.Limit, q.BeforeID)
	if err != nil {
		return nil, fmt.Errorf("postgres: events: %w", err)
	}
	return evs, nil
}

const endpointCols = "id, url, secret, types, created_at, disabled"

func scanEndpoint(sc scanner) (event.Endpoint, error) {
	var (
		ep    event.Endpoint
		types string
	)
	if err := sc.Scan(&ep.ID, &ep.URL, &ep.Secret, &types, &ep.CreatedAt, &ep.Disabled); err != nil {
		return ep, err
	}
	ep.Types, ep.CreatedAt = strings.Split(types, ","), ep.CreatedAt.UTC()
	return ep, nil
}

func (o outbox) CreateEndpoint(ctx context.Context, ep event.Endpoint) error {
	_, err := o.s.pool.Exec(ctx, `INSERT INTO event_endpoints (`+endpointCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		ep.ID, ep.URL, ep.Secret, strings.Join(ep.Types, ","), ep.CreatedAt, ep.Disabled)
	if err != nil {
		return fmt.Errorf("postgres: create endpoint: %w", err)
	}
	return nil
}

func (o outbox) Endpoints(ctx context.Context) ([]event.Endpoint, error) {
	eps, err := collect(ctx, o.s.pool, scanEndpoint, `SELECT `+endpointCols+` FROM event_endpoints ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: endpoints: %w", err)
	}
	return eps, nil
}

func (o outbox) DisableEndpoint(ctx context.Context, id string) error {
	tag, err := o.s.pool.Exec(ctx, `UPDATE event_endpoints SET disabled = TRUE WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("postgres: disable endpoint: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return event.ErrNotFound
	}
	return nil
}

const deliveryCols = "event_id, endpoint_id, status, attempts, next_at, last_status, last_error, delivered_at"

func scanDelivery(sc scanner) (event.Delivery, error) {
	var (
		d         event.Delivery
		next      time.Time
		delivered pgtype.Timestamptz
	)
	if err := sc.Scan(&d.EventID, &d.EndpointID, &d.Status, &d.Attempts, &next, &d.LastStatus, &d.LastError, &delivered); err != nil {
		return d, err
	}
	if d.Status == event.Pending {
		d.NextAt = next.UTC()
	}
	d.DeliveredAt = fromNullTime(delivered)
	return d, nil
}

// Claim leases due deliveries with SKIP LOCKED, so dispatchers in several
// processes never take the same delivery.
func (o outbox) Claim(ctx context.Context, now, leaseUntil time.Time, limit int) ([]event.Job, error) {
	jobs, err := collect(ctx, o.s.pool, func(sc scanner) (event.Job, error) {
		var j event.Job
		var (
			delivered pgtype.Timestamptz
			data      string
			types     string
		)
		d, e, p := &j.Delivery, &j.Event, &j.Endpoint
		err := sc.Scan(&d.EventID, &d.EndpointID, &d.Status, &d.Attempts, &d.NextAt, &d.LastStatus, &d.LastError, &delivered,
			&e.ID, &e.Type, &e.AccountID, &e.CreatedAt, &data, &p.ID, &p.URL, &p.Secret, &types, &p.CreatedAt, &p.Disabled)
		e.Data, e.CreatedAt, p.CreatedAt = []byte(data), e.CreatedAt.UTC(), p.CreatedAt.UTC()
		p.Types = strings.Split(types, ",")
		return j, err
	}, `WITH due AS (
			SELECT d.event_id, d.endpoint_id FROM event_deliveries AS d
			JOIN event_endpoints AS p ON p.id = d.endpoint_id
			WHERE d.status = 'pending' AND d.next_at <= $1 AND NOT p.disabled
			ORDER BY d.next_at LIMIT $3
			FOR UPDATE OF d SKIP LOCKED
		), claimed AS (
			UPDATE event_deliveries AS d SET next_at = $2 FROM due
			WHERE d.event_id = due.event_id AND d.endpoint_id = due.endpoint_id
			RETURNING `+prefixCols("d.", deliveryCols)+`
		)
		SELECT `+prefixCols("c.", deliveryCols)+`, `+prefixCols("e.", eventCols)+`, `+prefixCols("p.", endpointCols)+`
		FROM claimed AS c
		JOIN events AS e ON e.id = c.event_id
		JOIN event_endpoints AS p ON p.id = c.endpoint_id
		ORDER BY c.next_at`, now, leaseUntil, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: claim: %w", err)
	}
	return jobs, nil
}

func prefixCols(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

func (o outbox) RecordAll(ctx context.Context, os []event.Outcome) error {
	if len(os) == 0 {
		return nil
	}
	// Every statement in one round trip.
	b := &pgx.Batch{}
	for _, oc := range os {
		a, d := oc.Attempt, oc.Delivery
		b.Queue(`INSERT INTO event_attempts (event_id, endpoint_id, number, at, status_code, error, duration_us)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, a.EventID, a.EndpointID, a.Number, a.At, a.StatusCode, a.Error, a.Duration.Microseconds())
		next := d.NextAt
		if next.IsZero() {
			next = a.At
		}
		b.Queue(`UPDATE event_deliveries SET status = $1, attempts = $2, next_at = $3, last_status = $4,
			last_error = $5, delivered_at = $6
			WHERE event_id = $7 AND endpoint_id = $8 AND status = 'pending' AND next_at = $9`,
			d.Status, d.Attempts, next, d.LastStatus, d.LastError, nullTime(d.DeliveredAt), d.EventID, d.EndpointID, oc.Lease)
	}
	err := pgx.BeginFunc(ctx, o.s.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres: record attempts: %w", err)
	}
	return nil
}

func (o outbox) Deliveries(ctx context.Context, eventID string) ([]event.Delivery, error) {
	ds, err := collect(ctx, o.s.pool, scanDelivery, `SELECT `+deliveryCols+` FROM event_deliveries
		WHERE event_id = $1 ORDER BY endpoint_id`, eventID)
	if err != nil {
		return nil, fmt.Errorf("postgres: deliveries: %w", err)
	}
	return ds, nil
}

func (o outbox) Attempts(ctx context.Context, eventID string) ([]event.Attempt, error) {
	as, err := collect(ctx, o.s.pool, func(sc scanner) (event.Attempt, error) {
		var a event.Attempt
		var dur int64
		err := sc.Scan(&a.EventID, &a.EndpointID, &a.Number, &a.At, &a.StatusCode, &a.Error, &dur)
		a.At, a.Duration = a.At.UTC(), time.Duration(dur)*time.Microsecond
		return a, err
	}, `SELECT event_id, endpoint_id, number, at, status_code, error, duration_us
		FROM event_attempts WHERE event_id = $1 ORDER BY id LIMIT 1000`, eventID)
	if err != nil {
		return nil, fmt.Errorf("postgres: attempts: %w", err)
	}
	return as, nil
}

func (o outbox) Retry(ctx context.Context, eventID, endpointID string, at time.Time) error {
	tag, err := o.s.pool.Exec(ctx, `UPDATE event_deliveries SET status = 'pending', next_at = $1
		WHERE event_id = $2 AND endpoint_id = $3 AND status <> 'delivered'`, at, eventID, endpointID)
	if err != nil {
		return fmt.Errorf("postgres: retry delivery: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return event.ErrNotFound
	}
	return nil
}

func (o outbox) State(ctx context.Context, name string) (string, error) {
	var v string
	err := o.s.pool.QueryRow(ctx, `SELECT value FROM event_state WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", event.ErrNotFound
	}
	return v, err
}

func (o outbox) States(ctx context.Context, names []string) (map[string]string, error) {
	rows, err := o.s.pool.Query(ctx, `SELECT name, value FROM event_state WHERE name = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("postgres: states: %w", err)
	}
	defer rows.Close()
	out := make(map[string]string, len(names))
	for rows.Next() {
		var n, v string
		if err := rows.Scan(&n, &v); err != nil {
			return nil, fmt.Errorf("postgres: states: %w", err)
		}
		out[n] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: states: %w", err)
	}
	return out, nil
}

func (o outbox) InitState(ctx context.Context, name, value string) (string, error) {
	if _, err := o.s.pool.Exec(ctx, `INSERT INTO event_state (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO NOTHING`, name, value); err != nil {
		return "", fmt.Errorf("postgres: init state %s: %w", name, err)
	}
	// A statement of its own, so that it sees a row another process
	// committed while the insert waited on it.
	var v string
	if err := o.s.pool.QueryRow(ctx, `SELECT value FROM event_state WHERE name = $1`, name).Scan(&v); err != nil {
		return "", fmt.Errorf("postgres: init state %s: %w", name, err)
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

// setStates stores each name's value in one statement.
func setStates(ctx context.Context, db interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, states map[string]string) error {
	if len(states) == 0 {
		return nil
	}
	// In name order: processes storing the same names lock their rows in
	// the same order, and cannot deadlock.
	names := slices.Sorted(maps.Keys(states))
	values := make([]string, len(names))
	for i, name := range names {
		values[i] = states[name]
	}
	_, err := db.Exec(ctx, `INSERT INTO event_state (name, value)
		SELECT * FROM unnest($1::text[], $2::text[])
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, names, values)
	return err
}

// JournalAfter reads the journal through its BRIN index on the time
// (migrations/00004_payments.sql). A BRIN index knows nothing of the page
// ranges filled since it was last summarized, which VACUUM does, and a
// read scans every one of them whatever its window: a busy journal's
// last minutes, read again for each page of 500. So a read first
// summarizes the ranges added since the last one, a pass over pages the
// watcher is about to read anyway, and is planned without a sequential
// scan, which a journal not yet analyzed would get, and without parallel
// workers, whose start took 7.6 ms of such a read's 8.1.
func (o outbox) JournalAfter(ctx context.Context, c event.JournalCursor, until time.Time, limit int) ([]event.JournalRow, error) {
	var txs []event.JournalRow
	err := pgx.BeginFunc(ctx, o.s.pool, func(tx pgx.Tx) error {
		if err := o.summarizeJournal(ctx, tx); err != nil {
			return err
		}
		var err error
		txs, err = collect(ctx, tx, func(sc scanner) (event.JournalRow, error) {
			var (
				r      event.JournalRow
				amount int64
				after  *int64
			)
			err := sc.Scan(&r.ID, &r.AccountID, &r.Type, &amount, &r.GrantID, &r.HoldID, &r.CreatedAt, &after)
			r.Amount, r.CreatedAt = credit.Amount(amount), r.CreatedAt.UTC()
			r.AvailableAfter = amountOrNil(after)
			return r, err
		}, `SELECT id, account_id, type, amount, grant_id, hold_id, created_at, available_after FROM transactions
			WHERE created_at >= $1 AND (created_at, id) > ($1, $2) AND created_at <= $3
			ORDER BY created_at, id LIMIT $4`, c.At, c.ID, until, limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: journal after: %w", err)
	}
	return txs, nil
}

// summarizeJournalSQL summarizes the page ranges of the journal's BRIN
// index from the block $1 to the table's end, and returns where the next
// call starts: the table's last range, which later rows may extend. A
// summarized range stays so, each insert widening its summary; the ranges
// before are not looked at again, where brin_summarize_new_values looks at
// every range of the table each time (about 0.3 µs a range: 3 ms a read
// for a journal of 10 GB). The count of ranges summarized is returned only
// so that the summaries are made.
const summarizeJournalSQL = `WITH t AS (
	SELECT pg_relation_size('transactions') / current_setting('block_size')::bigint AS blocks,
		coalesce((SELECT o.option_value::bigint FROM pg_class c, pg_options_to_table(c.reloptions) o
			WHERE c.oid = 'transactions_created'::regclass AND o.option_name = 'pages_per_range'), 128) AS per)
	SELECT greatest(t.blocks - 1, 0) / t.per * t.per, s.ranges
	FROM t, LATERAL (SELECT count(brin_summarize_range('transactions_created', b)) AS ranges
		FROM generate_series($1::bigint, t.blocks - 1, t.per) b) s`

// summarizeJournal summarizes the page ranges of the journal's BRIN index
// that are not yet, and sets tx's planner settings for the read. It waits
// at most 10 ms for its lock, which another process's watcher summarizing
// may hold for a few, or VACUUM (summarizing too) for minutes, and then
// leaves the summary to them; a role that does not own the index leaves it
// to VACUUM from then on.
func (o outbox) summarizeJournal(ctx context.Context, tx pgx.Tx) error {
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('enable_seqscan', 'off', true), set_config('max_parallel_workers_per_gather', '0', true),
		set_config('lock_timeout', '10ms', true)`)
	summarize := !o.s.noSummarize.Load()
	if summarize {
		b.Queue(`SAVEPOINT summarize`)
		b.Queue(summarizeJournalSQL, o.s.journalSummarized.Load()).QueryRow(func(row pgx.Row) error {
			var from, ranges int64
			if err := row.Scan(&from, &ranges); err != nil {
				return err
			}
			o.s.journalSummarized.Store(from)
			return nil
		})
	}
	err := tx.SendBatch(ctx, b).Close()
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if !summarize || !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case "42501": // insufficient_privilege: not the index's owner
		o.s.noSummarize.Store(true)
	case "55P03": // lock_not_available
	default:
		return err
	}
	_, err = tx.Exec(ctx, `ROLLBACK TO SAVEPOINT summarize`)
	return err
}

func (o outbox) ExpiringAfter(ctx context.Context, c event.JournalCursor, until time.Time, limit int) ([]ledger.Grant, error) {
	gs, err := collect(ctx, o.s.pool, scanGrant, `SELECT `+grantColumns+` FROM grants
		WHERE NOT closed AND remaining > 0 AND expires_at IS NOT NULL
		  AND (expires_at, id) > ($1, $2) AND expires_at <= $3
		ORDER BY expires_at, id LIMIT $4`, c.At, c.ID, until, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: expiring grants: %w", err)
	}
	return gs, nil
}

type stripeStore struct{ s *Store }

var _ stripe.Store = stripeStore{}

const processedCols = "id, type, account_id, object_id, created, received_at, result"

func scanProcessed(sc scanner) (stripe.Processed, error) {
	var (
		p       stripe.Processed
		created int64
	)
	err := sc.Scan(&p.ID, &p.Type, &p.AccountID, &p.ObjectID, &created, &p.Received, &p.Result)
	p.Created, p.Received = time.Unix(created, 0).UTC(), p.Received.UTC()
	return p, err
}

func (st stripeStore) ProcessedEvent(ctx context.Context, id string) (stripe.Processed, error) {
	p, err := scanProcessed(st.s.pool.QueryRow(ctx, `SELECT `+processedCols+` FROM stripe_events WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return p, stripe.ErrNotFound
	}
	return p, err
}

func (st stripeStore) RecordEvent(ctx context.Context, p stripe.Processed) error {
	_, err := st.s.pool.Exec(ctx, `INSERT INTO stripe_events (`+processedCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id) DO NOTHING`, p.ID, p.Type, p.AccountID, p.ObjectID, p.Created.Unix(), p.Received, p.Result)
	if err != nil {
		return fmt.Errorf("postgres: record stripe event %s: %w", p.ID, err)
	}
	return nil
}

func (st stripeStore) ProcessedEvents(ctx context.Context, limit int) ([]stripe.Processed, error) {
	ps, err := collect(ctx, st.s.pool, scanProcessed, `SELECT `+processedCols+` FROM stripe_events
		ORDER BY received_at DESC, id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: stripe events: %w", err)
	}
	return ps, nil
}

const purchaseCols = "id, account_id, kind, code, payment_intent, grant_id, credits, paid_amount, currency, created_at"

func (st stripeStore) SavePurchase(ctx context.Context, p stripe.Purchase) error {
	_, err := st.s.pool.Exec(ctx, `INSERT INTO stripe_purchases (`+purchaseCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (id) DO NOTHING`, p.ID, p.AccountID, p.Kind, p.Code, p.PaymentIntent, p.GrantID, int64(p.Credits),
		p.PaidAmount, p.Currency, p.CreatedAt)
	if err != nil {
		return fmt.Errorf("postgres: save purchase %s: %w", p.ID, err)
	}
	return nil
}

func (st stripeStore) PurchaseByPaymentIntent(ctx context.Context, pi string) (stripe.Purchase, error) {
	var (
		p       stripe.Purchase
		credits int64
	)
	err := st.s.pool.QueryRow(ctx, `SELECT `+purchaseCols+` FROM stripe_purchases
		WHERE payment_intent = $1 AND payment_intent <> '' ORDER BY created_at LIMIT 1`, pi).
		Scan(&p.ID, &p.AccountID, &p.Kind, &p.Code, &p.PaymentIntent, &p.GrantID, &credits, &p.PaidAmount, &p.Currency, &p.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, stripe.ErrNotFound
	}
	p.Credits, p.CreatedAt = credit.Amount(credits), p.CreatedAt.UTC()
	return p, err
}

const subscriptionCols = "id, account_id, plan_code, status, cancel_at_period_end, event_created, updated_at"

func (st stripeStore) SaveSubscription(ctx context.Context, s stripe.Subscription) error {
	_, err := st.s.pool.Exec(ctx, `INSERT INTO stripe_subscriptions (`+subscriptionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id) DO UPDATE SET account_id = excluded.account_id, plan_code = excluded.plan_code,
		  status = excluded.status, cancel_at_period_end = excluded.cancel_at_period_end,
		  event_created = excluded.event_created, updated_at = excluded.updated_at`,
		s.ID, s.AccountID, s.PlanCode, s.Status, s.CancelAtPeriodEnd, s.EventCreated, s.UpdatedAt)
	if err != nil {
		return fmt.Errorf("postgres: save subscription %s: %w", s.ID, err)
	}
	return nil
}

func (st stripeStore) Subscription(ctx context.Context, id string) (stripe.Subscription, error) {
	var s stripe.Subscription
	err := st.s.pool.QueryRow(ctx, `SELECT `+subscriptionCols+` FROM stripe_subscriptions WHERE id = $1`, id).
		Scan(&s.ID, &s.AccountID, &s.PlanCode, &s.Status, &s.CancelAtPeriodEnd, &s.EventCreated, &s.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, stripe.ErrNotFound
	}
	s.UpdatedAt = s.UpdatedAt.UTC()
	return s, err
}
