package event

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// Watcher defaults and bounds.
const (
	settleDefault         = 5 * time.Second
	expiringWithinDefault = 3 * 24 * time.Hour
	watchPageRows         = 500
	watchPagesMax         = 20
	// The journal is read a window of time at a time (Watcher.window):
	// at least watchWindowMin, and grown by watchWindowGrowth past a
	// window that held less than a page; one that would outgrow
	// watchWindowMax gives way to a read up to the settle point.
	watchWindowMin    = time.Millisecond
	watchWindowGrowth = 4
	watchWindowMax    = 365 * 24 * time.Hour
	// watchAccountsMax bounds the accounts whose metadata threshold the
	// watcher remembers (Watcher.overrides).
	watchAccountsMax   = 100_000
	watchStateJournal  = "journal"
	watchStateExpiring = "expiring"
	alertStatePrefix   = "alert:"
	// ThresholdMetadataKey in an account's metadata overrides its
	// balance.low threshold, in credits ("25", "0.5").
	ThresholdMetadataKey = "low_balance_threshold"
)

// Ledger is what the watcher reads from the ledger; *ledger.Engine has it.
type Ledger interface {
	// Balances reads the accounts of a page of the journal with their
	// balances and live grants, and the grants the page created, all at
	// once.
	Balances(ctx context.Context, ids, grantIDs []string) (map[string]ledger.AccountBalance, error)
}

// Thresholds decide the balance.low threshold of an account: its metadata
// (ThresholdMetadataKey) first, then its plan's entry in ByPlan, then
// Default. Zero means no balance.low for the account.
type Thresholds struct {
	Default credit.Amount
	ByPlan  map[string]credit.Amount
	// Plan returns the account's plan code ("" for none); nil skips ByPlan.
	Plan func(ctx context.Context, accountID string) (string, error)
}

// metadataThreshold returns the threshold the account's metadata sets, if
// it sets a valid one.
func metadataThreshold(a ledger.Account) (credit.Amount, bool) {
	if v, ok := a.Metadata[ThresholdMetadataKey]; ok {
		if amt, err := credit.Parse(v); err == nil && amt >= 0 {
			return amt, true
		}
	}
	return 0, false
}

// ofPlan returns the threshold of an account whose metadata sets none: its
// plan's, else the default.
func (t *Thresholds) ofPlan(ctx context.Context, accountID string) (credit.Amount, error) {
	if t.Plan != nil && len(t.ByPlan) > 0 {
		p, err := t.Plan(ctx, accountID)
		if err != nil {
			return 0, fmt.Errorf("plan of %s: %w", accountID, err)
		}
		if amt, ok := t.ByPlan[p]; ok {
			return amt, nil
		}
	}
	return t.Default, nil
}

// WatcherOptions configure a Watcher.
type WatcherOptions struct {
	Thresholds Thresholds
	// ExpiringWithin is how long before a grant's expiry grant.expiring is
	// sent (default 3 days).
	ExpiringWithin time.Duration
	// Settle is how far behind the clock the watcher reads the journal, so
	// a batch that committed a little after its transactions' time is not
	// skipped (default 5s).
	Settle time.Duration
	// Since is where to start when no cursor is stored yet; zero: now.
	Since     time.Time
	PollEvery time.Duration
	Clock     ledger.Clock
	Logger    *slog.Logger
}

// Watcher follows the journal and the grants and writes the events they
// imply to the outbox: grant.created, grant.expiring, hold.expired,
// balance.low and credits.exhausted.
//
// It stores its cursor after the events of a page are in the outbox, and
// event ids derive from journal transactions and grants, so after a crash
// it reads part of a page again and publishes nothing twice.
type Watcher struct {
	store  Store
	ledger Ledger
	opt    WatcherOptions

	// window bounds the span of time a read of the journal covers past
	// the cursor; zero reads to the settle point. A store finds the rows
	// of a time window by scanning them all (PostgreSQL's journal has a
	// BRIN index on the time, not a B-tree), so a read up to the settle
	// point from far behind it would scan the whole backlog for each page
	// of 500: a watcher behind by a burst slowed down the further behind
	// it was. A full page sets it to twice the span of time the page
	// took; one that ends short of the settle point with less than a page
	// grows it. It is kept from poll to poll.
	mu     sync.Mutex
	window time.Duration
	// pending is the journal cursor past the last page read, while it is
	// not stored (zero: none). A page that publishes nothing and changes
	// no alert leaves its cursor here for the end of the poll to store
	// (flushCursor), not a write of its own: under load the pages follow
	// each other every few milliseconds, and on SQLite each write holds
	// the one writer the ledger's batches wait for.
	pending JournalCursor
	// overrides holds, per account read so far, the balance.low threshold
	// its metadata sets or that it sets none. An account's metadata is
	// set when it is created and never changes, so an entry never goes
	// stale; with it and the available credits each journal row records,
	// most pages read no account. Emptied past watchAccountsMax entries.
	overrides map[string]override
}

// NewWatcher returns a watcher writing to store.
func NewWatcher(store Store, l Ledger, opt WatcherOptions) *Watcher {
	if opt.ExpiringWithin <= 0 {
		opt.ExpiringWithin = expiringWithinDefault
	}
	if opt.Settle <= 0 {
		opt.Settle = settleDefault
	}
	if opt.PollEvery <= 0 {
		opt.PollEvery = pollEveryDefault
	}
	if opt.Clock == nil {
		opt.Clock = ledger.SystemClock{}
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Watcher{store: store, ledger: l, opt: opt}
}

// Run polls every PollEvery until ctx ends. A poll that stopped at its
// bound of pages with more of the journal or of the expiring grants to
// read is followed by the next at once, so a watcher behind by a burst of
// writes catches up rather than read a bounded number of pages a period.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.opt.PollEvery)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			_, more, err := w.poll(ctx)
			if err != nil && ctx.Err() == nil {
				w.opt.Logger.ErrorContext(ctx, "event watcher", slog.Any("err", err))
			}
			if err != nil || !more {
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

// Poll publishes the events of the journal transactions and expiring grants
// not seen yet, a bounded number of pages per call, and returns how many
// events were new.
func (w *Watcher) Poll(ctx context.Context) (int, error) {
	n, _, err := w.poll(ctx)
	return n, err
}

// poll is Poll, and reports whether it stopped at its bound of pages with
// more to read.
func (w *Watcher) poll(ctx context.Context) (int, bool, error) {
	now := w.opt.Clock.Now().UTC()
	total := 0
	journalMore, expiringMore := false, false
	for range watchPagesMax {
		n, more, err := w.journalPage(ctx, now)
		total += n
		if err != nil {
			return total, false, err
		}
		if journalMore = more; !more {
			break
		}
	}
	if err := w.flushCursor(ctx); err != nil {
		return total, false, err
	}
	for range watchPagesMax {
		n, more, err := w.expiringPage(ctx, now)
		total += n
		if err != nil {
			return total, false, err
		}
		if expiringMore = more; !more {
			break
		}
	}
	return total, journalMore || expiringMore, nil
}

// cursor returns the named cursor and true, or def and false when none is
// stored.
func (w *Watcher) cursor(ctx context.Context, name string, def time.Time) (JournalCursor, bool, error) {
	v, err := w.store.State(ctx, name)
	if errors.Is(err, ErrNotFound) || (err == nil && v == "") {
		return JournalCursor{At: def}, false, nil
	}
	if err != nil {
		return JournalCursor{}, false, err
	}
	var c JournalCursor
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		return JournalCursor{}, false, fmt.Errorf("cursor %s: %w", name, err)
	}
	return c, true, nil
}

func (w *Watcher) setCursor(ctx context.Context, name string, c JournalCursor) error {
	return w.store.SetState(ctx, name, c.state())
}

// state is the cursor as the outbox stores it.
func (c JournalCursor) state() string {
	b, _ := json.Marshal(c) // a time and a string always marshal
	return string(b)
}

func (w *Watcher) since(now time.Time) time.Time {
	if !w.opt.Since.IsZero() {
		return w.opt.Since
	}
	return now.Add(-w.opt.Settle)
}

func (w *Watcher) journalPage(ctx context.Context, now time.Time) (int, bool, error) {
	c, stored, err := w.cursor(ctx, watchStateJournal, w.since(now))
	if err != nil {
		return 0, false, err
	}
	if !stored {
		// The starting point is kept from the first poll on. Left to the
		// clock it would move with each poll and stay at the settle point,
		// where every read ends, so no read could ever find a transaction.
		// Of processes starting at once on one database, the first to
		// store it sets it for all.
		b, _ := json.Marshal(c)
		v, err := w.store.InitState(ctx, watchStateJournal, string(b))
		if err != nil {
			return 0, false, fmt.Errorf("store the journal's starting point: %w", err)
		}
		if err := json.Unmarshal([]byte(v), &c); err != nil {
			return 0, false, fmt.Errorf("cursor %s: %w", watchStateJournal, err)
		}
	}
	settled := now.Add(-w.opt.Settle)
	until := settled
	w.mu.Lock()
	if len(w.overrides) >= watchAccountsMax {
		// Emptied between pages, never during one: a page relies on
		// the entries it found.
		w.overrides = nil
	}
	window := w.window
	if w.pending.after(c) {
		c = w.pending // pages read past the stored cursor
	}
	w.mu.Unlock()
	if window > 0 && c.At.Add(window).Before(settled) {
		until = c.At.Add(window)
	}
	txs, err := w.store.JournalAfter(ctx, c, until, watchPageRows)
	if err != nil {
		return 0, false, fmt.Errorf("read journal: %w", err)
	}
	// More may follow a full page, or a window that ended before the
	// settle point.
	more := len(txs) == watchPageRows || until.Before(settled)
	switch {
	case len(txs) == watchPageRows:
		// The next window is twice the span this page took.
		window = max(2*txs[len(txs)-1].CreatedAt.Sub(c.At), watchWindowMin)
	case more && window <= watchWindowMax/watchWindowGrowth:
		// Less than a page before the window's end: the journal is
		// sparser there.
		window *= watchWindowGrowth
	case more:
		window = 0 // a gap of years: read to the settle point
	}
	w.mu.Lock()
	w.window = window
	w.mu.Unlock()
	if len(txs) == 0 {
		return 0, more, nil
	}
	last := map[string]*JournalRow{} // per account: the page's last transaction
	granted := map[string]bool{}     // accounts with a grant in the page
	var order, created []string
	for i := range txs {
		t := &txs[i]
		if _, ok := last[t.AccountID]; !ok {
			order = append(order, t.AccountID)
		}
		last[t.AccountID] = t
		if t.Type == ledger.TxGrant {
			created = append(created, t.GrantID)
			granted[t.AccountID] = true
		}
	}
	// The accounts read from the ledger: those with a grant in the page
	// (grant.created describes it), those whose last transaction predates
	// the available credits the journal records, and those whose
	// threshold is not known yet. Every other account's alert needs only
	// its last transaction.
	var read []string
	for _, id := range order {
		if granted[id] || last[id].AvailableAfter == nil || !w.knowsThreshold(id) {
			read = append(read, id)
		}
	}
	bals, err := w.balances(ctx, read, created)
	if err != nil {
		return 0, false, err
	}
	var evs []Event
	for i := range txs {
		es, err := w.txEvents(&txs[i], bals[txs[i].AccountID], now)
		if err != nil {
			return 0, false, err
		}
		evs = append(evs, es...)
	}
	names := make([]string, len(order))
	for i, id := range order {
		names[i] = alertStatePrefix + id
	}
	states, err := w.store.States(ctx, names)
	if err != nil {
		return 0, false, err
	}
	// Each account's alert level after the page; an account whose level
	// changed needs its held credits for the events, read unless the page
	// read them already.
	changes := map[string]alertChange{}
	var unread []string
	for _, id := range order {
		ch, err := w.alertChange(ctx, id, last[id], bals, states[alertStatePrefix+id])
		if err != nil {
			return 0, false, err
		}
		if ch == nil {
			continue
		}
		changes[id] = *ch
		if _, ok := bals[id]; !ok {
			unread = append(unread, id)
		}
	}
	held, err := w.balances(ctx, unread, nil)
	if err != nil {
		return 0, false, err
	}
	alerts := map[string]string{}
	for _, id := range order {
		ch, ok := changes[id]
		if !ok {
			continue
		}
		ab, ok := bals[id]
		if !ok {
			ab = held[id]
		}
		es, err := ch.events(id, ab.Balance.Held, now)
		if err != nil {
			return 0, false, err
		}
		evs = append(evs, es...)
		alerts[id] = ch.state
	}
	end := txs[len(txs)-1]
	next := JournalCursor{At: end.CreatedAt, ID: end.ID}
	if len(evs) == 0 && len(alerts) == 0 {
		// Nothing to store with the cursor: it waits for the end of the
		// poll (flushCursor). A crash before then reads these pages again,
		// and they publish nothing.
		w.mu.Lock()
		w.pending = next
		w.mu.Unlock()
		return 0, more, nil
	}
	// The events, the alerts' states and the cursor past the page, in one
	// transaction: one hold of SQLite's writer, which the committer's
	// batches wait for, instead of two.
	save := make(map[string]string, len(alerts)+1)
	for id, s := range alerts {
		save[alertStatePrefix+id] = s
	}
	save[watchStateJournal] = next.state()
	n, err := w.store.PublishWith(ctx, evs, save)
	if err != nil {
		return 0, false, fmt.Errorf("publish: %w", err)
	}
	w.mu.Lock()
	w.pending = JournalCursor{}
	w.mu.Unlock()
	return n, more, nil
}

// after reports whether c is past d in the journal's order.
func (c JournalCursor) after(d JournalCursor) bool {
	return c.At.After(d.At) || (c.At.Equal(d.At) && c.ID > d.ID)
}

// flushCursor stores the journal cursor past the pages read since it was
// last stored, if any, unless the stored one is as far: another process's
// watcher may have stored a later one meanwhile.
func (w *Watcher) flushCursor(ctx context.Context) error {
	w.mu.Lock()
	c := w.pending
	w.mu.Unlock()
	if c.At.IsZero() {
		return nil
	}
	stored, ok, err := w.cursor(ctx, watchStateJournal, time.Time{})
	if err != nil {
		return err
	}
	if !ok || c.after(stored) {
		if err := w.setCursor(ctx, watchStateJournal, c); err != nil {
			return err
		}
	}
	w.mu.Lock()
	if w.pending == c {
		w.pending = JournalCursor{}
	}
	w.mu.Unlock()
	return nil
}

// balances reads the accounts ids with the grants created from the ledger
// and remembers the threshold each account's metadata sets.
func (w *Watcher) balances(ctx context.Context, ids, created []string) (map[string]ledger.AccountBalance, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	bals, err := w.ledger.Balances(ctx, ids, created)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.overrides == nil {
		w.overrides = make(map[string]override, len(bals))
	}
	for id, ab := range bals {
		amt, ok := metadataThreshold(ab.Account)
		w.overrides[id] = override{amt, ok}
	}
	return bals, nil
}

// knowsThreshold reports whether the account's metadata threshold, or its
// absence, is remembered.
func (w *Watcher) knowsThreshold(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.overrides[id]
	return ok
}

// threshold returns the account's balance.low threshold, from its
// remembered metadata or its plan.
func (w *Watcher) threshold(ctx context.Context, id string) (credit.Amount, error) {
	w.mu.Lock()
	o := w.overrides[id]
	w.mu.Unlock()
	if o.set {
		return o.amount, nil
	}
	return w.opt.Thresholds.ofPlan(ctx, id)
}

// override is the threshold an account's metadata sets, if set.
type override struct {
	amount credit.Amount
	set    bool
}

// txEvents returns the events of one journal transaction; ab is its
// account as the page's read found it.
func (w *Watcher) txEvents(t *JournalRow, ab ledger.AccountBalance, now time.Time) ([]Event, error) {
	switch t.Type {
	case ledger.TxGrant:
		g, ok := ab.Grant(t.GrantID)
		if !ok {
			return nil, fmt.Errorf("grant %s of transaction %s: %w", t.GrantID, t.ID, ledger.ErrNotFound)
		}
		e, err := New(GrantCreated, t.ID, t.AccountID, t.CreatedAt, map[string]any{"account_id": t.AccountID, "grant": asCreated(g)})
		if err != nil {
			return nil, err
		}
		out := []Event{e}
		// A grant that expires sooner than the expiring scan's cursor is
		// announced here; the same id makes the two paths agree.
		if !g.Never() && !g.Closed && g.Remaining > 0 && g.ExpiresAt.After(now) && !g.ExpiresAt.After(now.Add(w.opt.ExpiringWithin)) {
			e, err := expiringEvent(&g, now)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	case ledger.TxHoldExpiry:
		e, err := New(HoldExpired, t.ID, t.AccountID, t.CreatedAt,
			map[string]any{"account_id": t.AccountID, "hold_id": t.HoldID, "amount": t.Amount})
		if err != nil {
			return nil, err
		}
		return []Event{e}, nil
	}
	return nil, nil
}

// asCreated returns g as its grant transaction made it: whole and open.
// The watcher reads grants seconds after they are made, by when a grant
// may have been spent, held from or revoked; grant.created describes the
// creation, and the later changes have events and balances of their own.
func asCreated(g ledger.Grant) ledger.Grant {
	g.Remaining = g.Amount
	g.Closed = false
	return g
}

func expiringEvent(g *ledger.Grant, now time.Time) (Event, error) {
	return New(GrantExpiring, g.ID, g.AccountID, now, map[string]any{
		"account_id": g.AccountID, "grant_id": g.ID, "kind": g.Kind,
		"remaining": g.Remaining, "expires_at": g.ExpiresAt,
	})
}

// Alert levels of an account, stored as its alert state.
const (
	levelOK        = 0
	levelLow       = 1
	levelExhausted = 2
)

// An account's alert state is its level, the number of times its alerts
// have re-armed, and the journal position of the transaction that decided
// them: "level:rearms:at:id", at in unix microseconds ("level:rearms" and
// "level" alone, as older releases stored them, have no position; "level"
// counts no re-arming). The alerts' event ids derive from the account and
// the count, not from the transaction that crossed the level: the watchers
// of several processes that find the same state fire the same events,
// whatever transaction their pages end at, and the outbox keeps one of
// each. A level is decided from the available credits a transaction
// recorded, so a transaction at or before the state's position, read
// again (by a watcher that started its poll before another stored the
// state, or after the cursor was moved back), is older than what the state
// knows and changes nothing.
type alertState struct {
	level, rearms int
	at            JournalCursor
}

func parseAlert(s string) alertState {
	var a alertState
	f := strings.SplitN(s, ":", 4)
	a.level, _ = strconv.Atoi(f[0])
	if len(f) > 1 {
		a.rearms, _ = strconv.Atoi(f[1])
	}
	if len(f) == 4 {
		if us, err := strconv.ParseInt(f[2], 10, 64); err == nil {
			a.at = JournalCursor{At: time.UnixMicro(us).UTC(), ID: f[3]}
		}
	}
	return a
}

func (a alertState) String() string {
	return strconv.Itoa(a.level) + ":" + strconv.Itoa(a.rearms) + ":" +
		strconv.FormatInt(a.at.At.UnixMicro(), 10) + ":" + a.at.ID
}

// alertChange is an account's move from one alert level to another.
type alertChange struct {
	prev, level, rearms  int
	available, threshold credit.Amount
	state                string // the alert state to store
}

// alertChange returns the change of alert level of the account id whose
// last transaction in a page is t, or nil when its level stays. The
// available credits are those t recorded, else those bals read for the
// account; prevS is its stored alert state.
func (w *Watcher) alertChange(ctx context.Context, id string, t *JournalRow, bals map[string]ledger.AccountBalance, prevS string) (*alertChange, error) {
	var available credit.Amount
	if t.AvailableAfter != nil {
		available = *t.AvailableAfter
	} else {
		ab, ok := bals[id]
		if !ok {
			return nil, fmt.Errorf("account %s of transaction %s: %w", id, t.ID, ledger.ErrNotFound)
		}
		available = ab.Balance.Available
	}
	prev := parseAlert(prevS)
	pos := JournalCursor{At: t.CreatedAt, ID: t.ID}
	if !pos.after(prev.at) {
		return nil, nil // the state was decided at a later transaction
	}
	th, err := w.threshold(ctx, id)
	if err != nil {
		return nil, err
	}
	level := levelOK
	switch {
	case available <= 0:
		level = levelExhausted
	case available < th:
		level = levelLow
	}
	if level == prev.level {
		return nil, nil
	}
	next := alertState{level: level, rearms: prev.rearms, at: pos}
	if level < prev.level {
		next.rearms++ // credits came back: the next crossing fires again
	}
	return &alertChange{prev: prev.level, level: level, rearms: next.rearms, available: available, threshold: th,
		state: next.String()}, nil
}

// events are the alerts the change fires for the account, which holds held
// credits in open holds.
func (c *alertChange) events(accountID string, held credit.Amount, now time.Time) ([]Event, error) {
	cause := accountID + "/" + strconv.Itoa(c.rearms)
	var out []Event
	data := map[string]any{"account_id": accountID, "available": c.available, "held": held, "threshold": c.threshold}
	if c.prev < levelLow && c.level >= levelLow && c.threshold > 0 {
		e, err := New(BalanceLow, cause, accountID, now, data)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if c.prev < levelExhausted && c.level == levelExhausted {
		e, err := New(CreditsExhausted, cause, accountID, now, data)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (w *Watcher) expiringPage(ctx context.Context, now time.Time) (int, bool, error) {
	c, _, err := w.cursor(ctx, watchStateExpiring, now)
	if err != nil {
		return 0, false, err
	}
	gs, err := w.store.ExpiringAfter(ctx, c, now.Add(w.opt.ExpiringWithin), watchPageRows)
	if err != nil {
		return 0, false, fmt.Errorf("expiring grants: %w", err)
	}
	if len(gs) == 0 {
		return 0, false, nil
	}
	evs := make([]Event, 0, len(gs))
	for i := range gs {
		e, err := expiringEvent(&gs[i], now)
		if err != nil {
			return 0, false, err
		}
		evs = append(evs, e)
	}
	end := gs[len(gs)-1]
	next := JournalCursor{At: end.ExpiresAt, ID: end.ID}
	n, err := w.store.PublishWith(ctx, evs, map[string]string{watchStateExpiring: next.state()})
	if err != nil {
		return 0, false, fmt.Errorf("publish: %w", err)
	}
	return n, len(gs) == watchPageRows, nil
}
