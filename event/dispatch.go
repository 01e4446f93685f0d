package event

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/scriphq/scrip/ledger"
)

// Dispatcher defaults and bounds.
const (
	concurrencyDefault = 8
	concurrencyMax     = 64
	attemptsMaxDefault = 12
	attemptsMaxMax     = 50
	backoffBaseDefault = 10 * time.Second
	backoffMaxDefault  = 6 * time.Hour
	timeoutDefault     = 10 * time.Second
	pollEveryDefault   = time.Second
	responseBytesMax   = 4 << 10
	errorBytesMax      = 500
)

// DispatcherOptions configure a Dispatcher. Zero values take the defaults.
type DispatcherOptions struct {
	// Concurrency bounds the requests in flight (default 8, at most 64).
	Concurrency int
	// AttemptsMax is the number of attempts before a delivery is failed
	// for good (default 12).
	AttemptsMax int
	// BackoffBase is the wait after the first failure; it doubles with
	// every further failure up to BackoffMax (defaults 10s and 6h).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// PollEvery is how often Run looks for due deliveries (default 1s).
	PollEvery  time.Duration
	HTTPClient *http.Client
	Clock      ledger.Clock
	Logger     *slog.Logger
}

// Dispatcher delivers the outbox: every pending delivery is POSTed to its
// endpoint, signed, until it succeeds (2xx) or runs out of attempts.
type Dispatcher struct {
	store Store
	opt   DispatcherOptions
}

// NewDispatcher returns a dispatcher on store.
func NewDispatcher(store Store, opt DispatcherOptions) *Dispatcher {
	if opt.Concurrency <= 0 {
		opt.Concurrency = concurrencyDefault
	}
	opt.Concurrency = min(opt.Concurrency, concurrencyMax)
	if opt.AttemptsMax <= 0 {
		opt.AttemptsMax = attemptsMaxDefault
	}
	opt.AttemptsMax = min(opt.AttemptsMax, attemptsMaxMax)
	if opt.BackoffBase <= 0 {
		opt.BackoffBase = backoffBaseDefault
	}
	if opt.BackoffMax <= 0 {
		opt.BackoffMax = backoffMaxDefault
	}
	if opt.Timeout <= 0 {
		opt.Timeout = timeoutDefault
	}
	if opt.PollEvery <= 0 {
		opt.PollEvery = pollEveryDefault
	}
	if opt.HTTPClient == nil {
		// Keep a connection to an endpoint for each request in flight (Go's
		// default keeps two, and would open and close the rest each time).
		tr := &http.Transport{Proxy: http.ProxyFromEnvironment}
		if def, ok := http.DefaultTransport.(*http.Transport); ok {
			tr = def.Clone()
		}
		tr.MaxIdleConnsPerHost = opt.Concurrency
		opt.HTTPClient = &http.Client{Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if opt.Clock == nil {
		opt.Clock = ledger.SystemClock{}
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{store: store, opt: opt}
}

// Backoff returns the wait before attempt n+1 after n failed attempts:
// BackoffBase·2^(n-1), capped at BackoffMax, less up to a fifth at random so
// retries of many deliveries spread out.
func (d *Dispatcher) Backoff(n int) time.Duration {
	w := d.opt.BackoffBase
	for i := 1; i < n && w < d.opt.BackoffMax; i++ {
		w *= 2
	}
	w = min(w, d.opt.BackoffMax)
	return w - time.Duration(rand.Int64N(int64(w)/5+1))
}

// Run delivers due deliveries every PollEvery until ctx ends. A claim that
// comes back full is followed by the next at once, so a backlog (the
// grants of a cycle's renewals, say) drains at the endpoints' pace, not a
// claim per poll.
func (d *Dispatcher) Run(ctx context.Context) error {
	t := time.NewTicker(d.opt.PollEvery)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			n, err := d.DeliverDue(ctx)
			if err != nil && ctx.Err() == nil {
				d.opt.Logger.ErrorContext(ctx, "event delivery", slog.Any("err", err))
			}
			if err != nil || n < d.claimMax() {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// DeliverDue claims the deliveries due now (a bounded number), sends them
// with bounded concurrency and records the attempts, a round of
// Concurrency at a time as they end. It returns how many it claimed.
//
// Once ctx ends it starts no more of the claim: those are made due again at
// once, and the requests in flight finish and are recorded.
func (d *Dispatcher) DeliverDue(ctx context.Context) (int, error) {
	now := d.opt.Clock.Now()
	// The lease outlasts every request of the claim, so no other dispatcher
	// sends the same delivery meanwhile.
	// In whole microseconds, as the stores keep it, so a record can match it.
	lease := now.Add(time.Duration(d.claimMax()/d.opt.Concurrency+1)*d.opt.Timeout + time.Minute).Truncate(time.Microsecond)
	jobs, err := d.store.Claim(ctx, now, lease, d.claimMax())
	if err != nil {
		return 0, fmt.Errorf("claim deliveries: %w", err)
	}
	if len(jobs) == 0 {
		return 0, nil
	}
	// Claimed deliveries are sent to the end, bounded by Timeout, even when
	// ctx ends: stopping never cuts a request short to record it failed.
	sendCtx := context.WithoutCancel(ctx)
	results := make(chan Outcome, len(jobs))
	var unstarted []Job
	go func() {
		sem := make(chan struct{}, d.opt.Concurrency)
		var wg sync.WaitGroup
		for i, j := range jobs {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				unstarted = jobs[i:]
				break
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				oc := d.deliver(sendCtx, j)
				oc.Lease = lease
				results <- oc
			}()
		}
		wg.Wait()
		close(results)
	}()
	// A round's attempts in one transaction: on SQLite each would hold the
	// one writer, and its commit wait for the disk, by itself. Should the
	// process stop before a round is recorded, its leases run out and its
	// deliveries are sent again: delivery is at least once.
	var errs []error
	round := make([]Outcome, 0, d.opt.Concurrency)
	record := func() {
		if len(round) == 0 {
			return
		}
		if err := d.store.RecordAll(sendCtx, round); err != nil {
			errs = append(errs, fmt.Errorf("record %d attempts: %w", len(round), err))
		}
		round = round[:0]
	}
	for oc := range results {
		if round = append(round, oc); len(round) == cap(round) {
			record()
		}
	}
	record()
	for _, j := range unstarted {
		if err := d.store.Retry(sendCtx, j.Delivery.EventID, j.Delivery.EndpointID, now); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, fmt.Errorf("give back %s to %s: %w", j.Delivery.EventID, j.Delivery.EndpointID, err))
		}
	}
	return len(jobs), errors.Join(errs...)
}

// claimMax is the most deliveries one claim takes: a few rounds of
// Concurrency requests, all within the claim's lease.
func (d *Dispatcher) claimMax() int { return d.opt.Concurrency * 4 }

// deliver sends one delivery and returns the attempt and the delivery's
// state after it.
func (d *Dispatcher) deliver(ctx context.Context, j Job) Outcome {
	body := j.Event.Body()
	start := d.opt.Clock.Now()
	code, sendErr := d.send(ctx, j, body, start)
	a := Attempt{EventID: j.Event.ID, EndpointID: j.Endpoint.ID, Number: j.Delivery.Attempts + 1,
		At: start, StatusCode: code, Duration: time.Since(start)}
	del := j.Delivery
	del.Attempts++
	del.LastStatus = code
	switch {
	case sendErr == nil:
		del.Status, del.LastError, del.DeliveredAt, del.NextAt = Delivered, "", d.opt.Clock.Now(), time.Time{}
	default:
		a.Error = truncate(sendErr.Error(), errorBytesMax)
		del.LastError = a.Error
		if del.Attempts >= d.opt.AttemptsMax {
			del.Status, del.NextAt = Failed, time.Time{}
		} else {
			del.Status, del.NextAt = Pending, d.opt.Clock.Now().Add(d.Backoff(del.Attempts))
		}
	}
	return Outcome{Attempt: a, Delivery: del}
}

func (d *Dispatcher) send(ctx context.Context, j Job, body []byte, at time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.Endpoint.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "scrip-events/1")
	req.Header.Set("Scrip-Event-Id", j.Event.ID)
	req.Header.Set("Scrip-Event-Type", j.Event.Type)
	req.Header.Set(SignatureHeader, Sign(j.Endpoint.Secret, at, body))
	resp, err := d.opt.HTTPClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, responseBytesMax))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("endpoint answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
