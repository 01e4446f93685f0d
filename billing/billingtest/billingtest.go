// Package billingtest is the conformance suite every billing.Store runs:
// subscriptions driven through a ledger engine on the same database, with an
// injected clock, across a year of cycles, upgrades, downgrades,
// cancellation, rollover, payment failure, quotas, crashes and two
// schedulers at once.
package billingtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/billing"
	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

// Store is what a database gives billing: the ledger's store and billing's.
type Store interface {
	ledger.Store
	billing.Store
}

// Open opens a fresh database for one test and returns its store and a
// function opening another handle on the same database, as a second scrip
// process would. Both are closed by the test's cleanup.
type Open func(t *testing.T) (s Store, another func() Store)

// Run runs the suite.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, Open)
	}{
		{"MonthlyYearLeapJan31", testMonthlyYear},
		{"AnnualPlanResetsMonthly", testAnnual},
		{"CatchUpAfterDowntime", testCatchUp},
		{"UpgradeCarriesUnspent", testUpgrade},
		{"UpgradeKeepsCycle", testUpgradeKeep},
		{"DowngradeAtPeriodEnd", testDowngrade},
		{"CancelAndResume", testCancel},
		{"RolloverCaps", testRollover},
		{"PastDue", testPastDue},
		{"PaidByProvider", testPaidByProvider},
		{"Quotas", testQuotas},
		{"SignupGrant", testSignup},
		{"RestartMidRenewal", testRestart},
		{"TwoSchedulers", testTwoSchedulers},
		{"PlanCacheAcrossProcesses", testPlanCache},
		{"PlanCacheSharesReads", testPlanCacheSharesReads},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

const catalogYAML = `
name: Billing test
actions:
  - {id: image, name: Image, category: image, price: {flat: 10}}
  - {id: pro-image, name: Pro image, category: image, min_plan: pro, price: {flat: 10}}
plans:
  - code: free
    name: Free
    tier: 0
    monthly_credits: 200
    price: {amount: 0, currency: usd}
    signup_grant: {credits: 50, expires_in_days: 30}
  - code: basic
    name: Basic
    tier: 1
    monthly_credits: 1500
    price: {amount: 2900, currency: usd}
    quotas: {sites: 2}
    rollover: {policy: none}
    upgrade: {carry_unspent: true, cycle: restart}
    grace_days: 7
  - code: capped
    name: Capped rollover
    tier: 1
    monthly_credits: 1000
    price: {amount: 1000, currency: usd}
    rollover: {policy: capped, max_carry: 2000, max_balance: 3000}
  - code: unlimited
    name: Unlimited rollover
    tier: 1
    monthly_credits: 1000
    price: {amount: 1000, currency: usd}
    rollover: {policy: unlimited}
  - code: pro
    name: Pro
    tier: 2
    monthly_credits: 4000
    price: {amount: 7900, currency: usd}
    quotas: {sites: 6}
    upgrade: {carry_unspent: true, cycle: restart}
  - code: pro-annual
    name: Pro (annual)
    tier: 2
    monthly_credits: 4000
    interval: year
    price: {amount: 79000, currency: usd}
  - code: keeper
    name: Keeper
    tier: 3
    monthly_credits: 10000
    price: {amount: 19900, currency: usd}
    upgrade: {carry_unspent: false, cycle: keep}
`

var (
	catOnce sync.Once
	cat     *catalog.Catalog
	catErr  error
)

func testCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	catOnce.Do(func() { cat, catErr = catalog.Parse([]byte(catalogYAML), "billing-test.yaml") })
	if catErr != nil {
		t.Fatal(catErr)
	}
	return cat
}

// env is one scrip process: an engine, a billing service and a scheduler.
type env struct {
	t      *testing.T
	ctx    context.Context
	clock  *ledger.ManualClock
	store  Store
	engine *ledger.Engine
	svc    *billing.Service
	sched  *billing.Scheduler
}

func newEnv(t *testing.T, s Store, bs billing.Store, clock *ledger.ManualClock, opt billing.Options) *env {
	t.Helper()
	c := testCatalog(t)
	eng := ledger.NewEngine(s, ledger.Options{Clock: clock, SweepEvery: -1})
	t.Cleanup(func() { eng.Close(context.Background()) })
	if bs == nil {
		bs = s
	}
	if opt.PlanCacheAge == 0 {
		// Plan answers from its cache in every test, which then checks
		// that each change made through the service, and each turn of
		// the clock, reaches Plan at once.
		opt.PlanCacheAge = 1000 * 24 * time.Hour
	}
	svc := billing.New(eng, bs, func() *catalog.Catalog { return c }, opt)
	return &env{t: t, ctx: context.Background(), clock: clock, store: s, engine: eng, svc: svc,
		sched: svc.NewScheduler(billing.SchedulerOptions{})}
}

func start(t *testing.T, open Open, at time.Time, opt billing.Options) *env {
	t.Helper()
	s, _ := open(t)
	return newEnv(t, s, nil, ledger.NewManualClock(at), opt)
}

func (e *env) account(id string) {
	e.t.Helper()
	if _, _, err := e.engine.CreateAccount(e.ctx, id, nil); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) subscribe(acct, plan string) billing.Subscription {
	e.t.Helper()
	e.account(acct)
	sub, err := e.svc.Subscribe(e.ctx, billing.SubscribeRequest{AccountID: acct, PlanCode: plan, Key: "sub-" + acct + "-" + plan})
	if err != nil {
		e.t.Fatalf("subscribe %s to %s: %v", acct, plan, err)
	}
	return sub
}

// tick runs the scheduler until it finds nothing more to do.
func (e *env) tick() int {
	e.t.Helper()
	total := 0
	for range 1000 {
		n, err := e.sched.Tick(e.ctx)
		if err != nil {
			e.t.Fatalf("tick: %v", err)
		}
		total += n
		if n == 0 {
			return total
		}
	}
	e.t.Fatal("scheduler never ran dry")
	return total
}

// at moves the clock to t and runs the scheduler.
func (e *env) at(t time.Time) {
	e.t.Helper()
	e.clock.Set(t)
	e.tick()
}

func (e *env) get(acct string) billing.Subscription {
	e.t.Helper()
	sub, err := e.svc.Get(e.ctx, acct)
	if err != nil {
		e.t.Fatal(err)
	}
	return sub
}

func (e *env) balance(acct string) ledger.Balance {
	e.t.Helper()
	b, err := e.engine.Balance(e.ctx, acct)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) wantAvailable(acct string, want int64) {
	e.t.Helper()
	if got := e.balance(acct).Available; got != credit.Credits(want) {
		e.t.Fatalf("%s at %s: available %s, want %d", acct, e.clock.Now().Format(time.DateTime), got, want)
	}
}

func (e *env) wantPlan(acct, want string) {
	e.t.Helper()
	got, err := e.svc.Plan(e.ctx, acct)
	if err != nil {
		e.t.Fatal(err)
	}
	if got != want {
		e.t.Fatalf("%s at %s: plan %q, want %q", acct, e.clock.Now().Format(time.DateTime), got, want)
	}
}

func (e *env) spend(acct string, n int64, key string) {
	e.t.Helper()
	if _, err := e.engine.Charge(e.ctx, ledger.ChargeRequest{AccountID: acct, Key: key, Amount: credit.Credits(n)}); err != nil {
		e.t.Fatalf("spend %d on %s: %v", n, acct, err)
	}
}

// history returns all the account's transactions, oldest first.
func (e *env) history(acct string) []ledger.Transaction {
	e.t.Helper()
	var all []ledger.Transaction
	q := ledger.HistoryQuery{AccountID: acct, Limit: 100}
	for {
		txs, err := e.engine.History(e.ctx, q)
		if err != nil {
			e.t.Fatal(err)
		}
		all = append(all, txs...)
		if len(txs) < 100 {
			break
		}
		q.BeforeSeq = txs[len(txs)-1].Seq
	}
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	return all
}

// allowanceGrants returns the cycle allowance grants of the account's
// subscription, by idempotency key.
func (e *env) allowanceGrants(acct, subID string) map[string]int {
	e.t.Helper()
	out := map[string]int{}
	prefix := "sub:" + subID + ":cycle:"
	for _, tx := range e.history(acct) {
		k := tx.IdempotencyKey
		if tx.Type == ledger.TxGrant && strings.HasPrefix(k, prefix) && !strings.Contains(k[len(prefix):], ":") {
			out[k]++
		}
	}
	return out
}

func (e *env) verify() {
	e.t.Helper()
	r, err := e.engine.Verify(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if !r.OK() {
		e.t.Fatalf("ledger verify: %v", r.Problems)
	}
}

func date(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, time.UTC) }

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := scrip.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

// A year of monthly cycles anchored on Jan 31 of a leap year: each cycle
// starts on the month's last day when shorter, unspent subscription credits
// expire, top-up credits stay, and history shows each grant and expiry.
func testMonthlyYear(t *testing.T, open Open) {
	e := start(t, open, date(2024, 1, 31, 10), billing.Options{})
	sub := e.subscribe("a", "basic")
	if _, err := e.engine.Grant(e.ctx, ledger.GrantRequest{AccountID: "a", Key: "topup", Kind: ledger.KindTopUp, Amount: credit.Credits(100)}); err != nil {
		t.Fatal(err)
	}
	e.wantAvailable("a", 1600)
	e.spend("a", 400, "spend-1")
	e.wantAvailable("a", 1200)
	ends := []time.Time{
		date(2024, 2, 29, 10), date(2024, 3, 31, 10), date(2024, 4, 30, 10), date(2024, 5, 31, 10),
		date(2024, 6, 30, 10), date(2024, 7, 31, 10), date(2024, 8, 31, 10), date(2024, 9, 30, 10),
		date(2024, 10, 31, 10), date(2024, 11, 30, 10), date(2024, 12, 31, 10), date(2025, 1, 31, 10),
		date(2025, 2, 28, 10),
	}
	if got := e.get("a").CurrentPeriodEnd; !got.Equal(ends[0]) {
		t.Fatalf("first period ends %s, want %s", got, ends[0])
	}
	for i, end := range ends[:12] {
		e.at(end.Add(-time.Second))
		if got := e.get("a").Cycle; got != int64(i+1) {
			t.Fatalf("a second before %s: cycle %d, want %d", end, got, i+1)
		}
		e.at(end)
		s := e.get("a")
		if s.Cycle != int64(i+2) || !s.CurrentPeriodStart.Equal(end) || !s.CurrentPeriodEnd.Equal(ends[i+1]) {
			t.Fatalf("after %s: cycle %d period %s..%s, want %d %s..%s", end, s.Cycle, s.CurrentPeriodStart, s.CurrentPeriodEnd, i+2, end, ends[i+1])
		}
		e.wantAvailable("a", 1600)
		if b := e.balance("a"); b.ByKind[ledger.KindTopUp] != credit.Credits(100) {
			t.Fatalf("top-up credits %s, want 100", b.ByKind[ledger.KindTopUp])
		}
	}
	grants := e.allowanceGrants("a", sub.ID)
	if len(grants) != 13 {
		t.Fatalf("%d allowance grants, want 13: %v", len(grants), grants)
	}
	var expired credit.Amount
	expiries := 0
	for _, tx := range e.history("a") {
		if tx.Type == ledger.TxGrantExpiry {
			expiries++
			expired += tx.Amount
		}
	}
	if expiries != 12 || expired != credit.Credits(1100+1500*11) {
		t.Fatalf("%d expiries of %s in all, want 12 of %d", expiries, expired, 1100+1500*11)
	}
	cycles, err := e.svc.Cycles(e.ctx, "a", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(cycles) != 13 || cycles[0].Cycle != 13 || !cycles[0].PeriodStart.Equal(ends[11]) {
		t.Fatalf("cycles: %d, newest %+v", len(cycles), cycles[0])
	}
	e.verify()
}

// An annual plan resets credits monthly, from a Jan 31 anchor in a common
// year, and renews (is paid) yearly.
func testAnnual(t *testing.T, open Open) {
	e := start(t, open, date(2025, 1, 31, 0), billing.Options{})
	sub := e.subscribe("a", "pro-annual")
	if sub.Interval != "year" {
		t.Fatalf("interval %q", sub.Interval)
	}
	v, err := e.svc.Subscription(e.ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	view := v.(*billing.View)
	if !view.RenewsAt.Equal(date(2026, 1, 31, 0)) || view.Price.Amount != 79000 {
		t.Fatalf("renews at %s for %d, want 2026-01-31 for 79000", view.RenewsAt, view.Price.Amount)
	}
	e.spend("a", 1000, "s1")
	ends := []time.Time{date(2025, 2, 28, 0), date(2025, 3, 31, 0), date(2025, 4, 30, 0)}
	for i, end := range ends {
		e.at(end)
		s := e.get("a")
		if s.Cycle != int64(i+2) || !s.CurrentPeriodStart.Equal(end) {
			t.Fatalf("after %s: cycle %d start %s", end, s.Cycle, s.CurrentPeriodStart)
		}
		e.wantAvailable("a", 4000)
	}
	for m := 4; m < 12; m++ {
		e.at(addMonthsEnd(date(2025, 1, 31, 0), m+1))
	}
	s := e.get("a")
	if s.Cycle != 13 || !s.CurrentPeriodStart.Equal(date(2026, 1, 31, 0)) || !s.CurrentPeriodEnd.Equal(date(2026, 2, 28, 0)) {
		t.Fatalf("after a year: cycle %d, period %s..%s", s.Cycle, s.CurrentPeriodStart, s.CurrentPeriodEnd)
	}
	e.wantAvailable("a", 4000)
	if n := len(e.allowanceGrants("a", sub.ID)); n != 13 {
		t.Fatalf("%d allowance grants, want 13", n)
	}
	e.verify()
}

// addMonthsEnd is the test's own month arithmetic: the anchor's day, or the
// month's last day.
func addMonthsEnd(anchor time.Time, n int) time.Time {
	y, m := anchor.Year(), int(anchor.Month())-1+n
	y, m = y+m/12, m%12
	last := time.Date(y, time.Month(m+2), 0, 0, 0, 0, 0, time.UTC).Day()
	d := min(anchor.Day(), last)
	return time.Date(y, time.Month(m+1), d, anchor.Hour(), anchor.Minute(), anchor.Second(), 0, time.UTC)
}

// After downtime the scheduler catches up every missed cycle, in order.
func testCatchUp(t *testing.T, open Open) {
	e := start(t, open, date(2025, 3, 15, 12), billing.Options{})
	sub := e.subscribe("a", "basic")
	e.subscribe("b", "capped")
	e.clock.Set(date(2025, 8, 20, 0))
	if n := e.tick(); n != 10 {
		t.Fatalf("caught up %d renewals, want 10", n)
	}
	s := e.get("a")
	if s.Cycle != 6 || !s.CurrentPeriodStart.Equal(date(2025, 8, 15, 12)) {
		t.Fatalf("cycle %d from %s", s.Cycle, s.CurrentPeriodStart)
	}
	e.tick()
	e.wantAvailable("a", 1500)
	// Capped rollover over the missed months: the credits nobody could
	// spend roll over up to the cap.
	e.wantAvailable("b", 3000)
	if n := len(e.allowanceGrants("a", sub.ID)); n != 6 {
		t.Fatalf("%d allowance grants, want 6", n)
	}
	cycles, _ := e.svc.Cycles(e.ctx, "a", 10)
	for i := 1; i < len(cycles); i++ {
		if !cycles[i].PeriodEnd.Equal(cycles[i-1].PeriodStart) {
			t.Fatalf("cycles not contiguous: %+v then %+v", cycles[i], cycles[i-1])
		}
	}
	e.verify()
}

// An upgrade mid-cycle restarts the cycle, grants the new allowance and
// carries exactly the unspent credits of the old plan.
func testUpgrade(t *testing.T, open Open) {
	t0 := date(2025, 5, 10, 9)
	e := start(t, open, t0, billing.Options{})
	sub := e.subscribe("a", "basic")
	e.spend("a", 500, "s1")
	e.wantPlan("a", "basic")
	if _, err := testCatalog(t).Quote(catalog.QuoteRequest{Action: "pro-image", Plan: "basic"}); scrip.ErrorCode(err) != scrip.EPlanRequired {
		t.Fatalf("pro-image on basic: %v", err)
	}
	up := t0.Add(10 * 24 * time.Hour)
	e.at(up)
	s, err := e.svc.ChangePlan(e.ctx, billing.ChangePlanRequest{AccountID: "a", PlanCode: "pro", Key: "up-1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.PlanCode != "pro" || s.Cycle != 2 || !s.CurrentPeriodStart.Equal(up) || !s.CurrentPeriodEnd.Equal(date(2025, 6, 20, 9)) {
		t.Fatalf("after upgrade: %+v", s)
	}
	e.wantPlan("a", "pro")
	e.wantAvailable("a", 1000+4000)
	// Replaying the request changes nothing.
	if _, err := e.svc.ChangePlan(e.ctx, billing.ChangePlanRequest{AccountID: "a", PlanCode: "pro", Key: "up-1"}); err != nil {
		t.Fatal(err)
	}
	e.tick()
	e.wantAvailable("a", 5000)
	b := e.balance("a")
	var carried, fresh credit.Amount
	for _, g := range b.Grants {
		switch {
		case g.Source.Type == "upgrade_carry" && g.ExpiresAt.Equal(s.CurrentPeriodEnd):
			carried += g.Remaining
		case g.Source.Type == "plan_cycle" && g.ExpiresAt.Equal(s.CurrentPeriodEnd):
			fresh += g.Remaining
		default:
			t.Fatalf("unexpected live grant %+v", g)
		}
	}
	if carried != credit.Credits(1000) || fresh != credit.Credits(4000) {
		t.Fatalf("carried %s and granted %s, want 1000 and 4000", carried, fresh)
	}
	var revoked credit.Amount
	for _, tx := range e.history("a") {
		if tx.Type == ledger.TxRevocation {
			revoked += tx.Amount
		}
	}
	if revoked != credit.Credits(1000) {
		t.Fatalf("revoked %s, want 1000", revoked)
	}
	cycles, _ := e.svc.Cycles(e.ctx, "a", 10)
	if cycles[0].Cycle != 2 || cycles[0].CarryIn != "upgrade" || cycles[0].Carry != credit.Credits(1000) || cycles[0].PlanCode != "pro" {
		t.Fatalf("cycle record %+v", cycles[0])
	}
	if _, err := testCatalog(t).Quote(catalog.QuoteRequest{Action: "pro-image", Plan: "pro"}); err != nil {
		t.Fatalf("pro-image on pro: %v", err)
	}
	// The carried credits are of the new cycle: they expire with it, and
	// the pro plan does not roll over.
	e.spend("a", 200, "s2")
	e.at(s.CurrentPeriodEnd)
	e.wantAvailable("a", 4000)
	if n := len(e.allowanceGrants("a", sub.ID)); n != 3 {
		t.Fatalf("%d allowance grants, want 3", n)
	}
	e.verify()
}

// An upgrade to a plan that keeps the cycle grants the new allowance for
// the same period and leaves the old credits to expire with it.
func testUpgradeKeep(t *testing.T, open Open) {
	t0 := date(2025, 5, 10, 9)
	e := start(t, open, t0, billing.Options{})
	e.subscribe("a", "basic")
	e.clock.Set(t0.Add(5 * 24 * time.Hour))
	s, err := e.svc.ChangePlan(e.ctx, billing.ChangePlanRequest{AccountID: "a", PlanCode: "keeper", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.CurrentPeriodStart.Equal(t0) || !s.CurrentPeriodEnd.Equal(date(2025, 6, 10, 9)) {
		t.Fatalf("period moved: %s..%s", s.CurrentPeriodStart, s.CurrentPeriodEnd)
	}
	e.wantAvailable("a", 1500+10000)
	e.at(s.CurrentPeriodEnd)
	e.wantAvailable("a", 10000)
	e.verify()
}

// A downgrade takes effect at the period end; until then the account keeps
// its plan. Changing back drops it.
func testDowngrade(t *testing.T, open Open) {
	t0 := date(2025, 1, 1, 0)
	e := start(t, open, t0, billing.Options{})
	e.subscribe("a", "pro")
	e.clock.Set(t0.Add(24 * time.Hour))
	s, err := e.svc.ChangePlan(e.ctx, billing.ChangePlanRequest{AccountID: "a", PlanCode: "basic", Key: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.PlanCode != "pro" || s.PendingPlanCode != "basic" {
		t.Fatalf("after downgrade request: plan %q pending %q", s.PlanCode, s.PendingPlanCode)
	}
	e.wantPlan("a", "pro")
	e.wantAvailable("a", 4000)
	if s, err = e.svc.ChangePlan(e.ctx, billing.ChangePlanRequest{AccountID: "a", PlanCode: "pro", Key: "d2"}); err != nil || s.PendingPlanCode != "" {
		t.Fatalf("change back: %v, pending %q", err, s.PendingPlanCode)
	}
	if _, err = e.svc.ChangePlan(e.ctx, billing.ChangePlanRequest{AccountID: "a", PlanCode: "basic", Key: "d3"}); err != nil {
		t.Fatal(err)
	}
	e.at(date(2025, 1, 31, 23))
	e.wantPlan("a", "pro")
	e.at(date(2025, 2, 1, 0))
	e.wantPlan("a", "basic")
	e.wantAvailable("a", 1500)
	s = e.get("a")
	if s.PlanCode != "basic" || s.PendingPlanCode != "" || s.Cycle != 2 {
		t.Fatalf("after period end: %+v", s)
	}
	_, err = e.svc.ChangePlan(e.ctx, billing.ChangePlanRequest{AccountID: "a", PlanCode: "nope", Key: "d4"})
	wantCode(t, err, scrip.EPlanNotFound)
	e.verify()
}

// Cancel at period end keeps the plan until then; Resume undoes it; an
// immediate cancel ends the plan at once but leaves the credits granted.
func testCancel(t *testing.T, open Open) {
	t0 := date(2025, 4, 30, 8)
	e := start(t, open, t0, billing.Options{})
	e.subscribe("a", "basic")
	e.subscribe("b", "basic")
	e.clock.Set(t0.Add(24 * time.Hour))
	s, err := e.svc.Cancel(e.ctx, "a", true)
	if err != nil || !s.CancelAtPeriodEnd || s.Status != billing.StatusActive {
		t.Fatalf("cancel: %v %+v", err, s)
	}
	if s, err = e.svc.Resume(e.ctx, "a"); err != nil || s.CancelAtPeriodEnd {
		t.Fatalf("resume: %v %+v", err, s)
	}
	if _, err = e.svc.Cancel(e.ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	e.wantPlan("a", "basic")
	e.at(date(2025, 5, 30, 7))
	e.wantPlan("a", "basic")
	e.wantAvailable("a", 1500)
	e.at(date(2025, 5, 30, 8))
	e.wantPlan("a", "")
	e.wantAvailable("a", 0)
	s = e.get("a")
	if s.Status != billing.StatusCanceled || !s.CanceledAt.Equal(date(2025, 5, 30, 8)) || !s.DueAt.IsZero() {
		t.Fatalf("after period end: %+v", s)
	}
	_, err = e.svc.Resume(e.ctx, "a")
	wantCode(t, err, scrip.EConflict)
	e.at(date(2025, 7, 1, 0))
	if n := len(e.allowanceGrants("a", s.ID)); n != 1 {
		t.Fatalf("%d allowance grants after cancel, want 1", n)
	}
	// Subscribing again starts a new subscription.
	s2, err := e.svc.Subscribe(e.ctx, billing.SubscribeRequest{AccountID: "a", PlanCode: "pro", Key: "again"})
	if err != nil || s2.ID == s.ID || s2.Cycle != 1 {
		t.Fatalf("subscribe again: %v %+v", err, s2)
	}
	e.wantAvailable("a", 4000)
	_, err = e.svc.Subscribe(e.ctx, billing.SubscribeRequest{AccountID: "a", PlanCode: "basic", Key: "third"})
	wantCode(t, err, scrip.EConflict)

	// b was canceled at once on May 1: no plan, credits stay until expiry.
	e.clock.Set(date(2025, 7, 1, 0))
	if _, err := e.svc.Cancel(e.ctx, "b", false); err != nil {
		t.Fatal(err)
	}
	e.wantPlan("b", "")
	e.verify()
}

// Rollover: none expires everything; capped carries at most max_carry and
// keeps plan credits within max_balance; unlimited carries all.
func testRollover(t *testing.T, open Open) {
	t0 := date(2025, 1, 15, 0)
	e := start(t, open, t0, billing.Options{})
	e.subscribe("c", "capped")
	e.subscribe("u", "unlimited")
	e.subscribe("n", "basic")
	e.spend("c", 300, "c1")
	wantC := []int64{700 + 1000, 1700 + 1000, 2000 + 1000, 2000 + 1000}
	wantU := []int64{2000, 3000, 4000, 5000}
	for i := range 4 {
		end := addMonthsEnd(t0, i+1)
		if i == 2 {
			// Renew inline, before the engine has expired the old grants.
			e.clock.Set(end)
			if _, err := e.svc.Resume(e.ctx, "c"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.Resume(e.ctx, "u"); err != nil {
				t.Fatal(err)
			}
		}
		e.at(end)
		e.wantAvailable("c", wantC[i])
		e.wantAvailable("u", wantU[i])
		e.wantAvailable("n", 1500)
	}
	cycles, _ := e.svc.Cycles(e.ctx, "c", 10)
	if cycles[0].CarryIn != "rollover" || cycles[0].Carry != credit.Credits(2000) {
		t.Fatalf("cycle record %+v", cycles[0])
	}
	e.verify()
}

// Past due: the plan stays through grace but no allowance is granted until
// paid; paying grants the withheld allowance once; unpaid past grace the
// subscription ends.
func testPastDue(t *testing.T, open Open) {
	t0 := date(2025, 3, 1, 0)
	e := start(t, open, t0, billing.Options{Grace: 20 * 24 * time.Hour})
	sub := e.subscribe("a", "basic")
	e.clock.Set(date(2025, 3, 25, 0))
	s, err := e.svc.MarkPastDue(e.ctx, "a")
	if err != nil || s.Status != billing.StatusPastDue || !s.GraceEndsAt.Equal(date(2025, 4, 14, 0)) {
		t.Fatalf("past due: %v %+v", err, s)
	}
	e.at(date(2025, 4, 1, 0))
	e.wantPlan("a", "basic")
	e.wantAvailable("a", 0)
	if s = e.get("a"); s.Cycle != 2 {
		t.Fatalf("cycle %d, want 2", s.Cycle)
	}
	e.clock.Set(date(2025, 4, 5, 0))
	for range 2 {
		if s, err = e.svc.MarkPaid(e.ctx, "a"); err != nil || s.Status != billing.StatusActive {
			t.Fatalf("paid: %v %+v", err, s)
		}
	}
	e.tick()
	e.wantAvailable("a", 1500)
	e.at(date(2025, 5, 1, 0))
	e.wantAvailable("a", 1500)
	if n := len(e.allowanceGrants("a", sub.ID)); n != 3 {
		t.Fatalf("%d allowance grants, want 3", n)
	}
	// Unpaid past grace: canceled when grace ends.
	e.clock.Set(date(2025, 5, 2, 0))
	if _, err := e.svc.MarkPastDue(e.ctx, "a"); err != nil {
		t.Fatal(err)
	}
	e.at(date(2025, 5, 21, 23))
	e.wantPlan("a", "basic")
	e.at(date(2025, 5, 22, 0))
	e.wantPlan("a", "")
	if s = e.get("a"); s.Status != billing.StatusCanceled || !s.CanceledAt.Equal(date(2025, 5, 22, 0)) {
		t.Fatalf("after grace: %+v", s)
	}
	_, err = e.svc.MarkPaid(e.ctx, "a")
	wantCode(t, err, scrip.EConflict)
	e.verify()
}

// A payment provider subscribes with its own key and renews with one per
// invoice: the checkout and the first invoice subscribe under the same key
// and grant one allowance; each paid renewal applies once, and a late
// replay of an earlier payment does not clear a later failure.
func testPaidByProvider(t *testing.T, open Open) {
	t0 := date(2025, 7, 1, 0)
	e := start(t, open, t0, billing.Options{Grace: 20 * 24 * time.Hour})
	e.account("a")
	var first billing.Subscription
	for i, at := range []time.Time{t0, t0.Add(3 * time.Second)} {
		sub, err := e.svc.Subscribe(e.ctx, billing.SubscribeRequest{AccountID: "a", PlanCode: "basic",
			Key: "stripe:subscription:sub_1", Start: at, ExternalID: "sub_1"})
		if err != nil {
			t.Fatalf("subscribe #%d: %v", i+1, err)
		}
		if i == 0 {
			first = sub
		} else if sub.ID != first.ID || !sub.Anchor.Equal(first.Anchor) {
			t.Fatalf("second subscribe with the same key: %+v, want %+v", sub, first)
		}
	}
	e.wantAvailable("a", 1500)
	// Without a scheduler: the paid renewal brings the subscription up to
	// date, once however often it is delivered.
	e.clock.Set(date(2025, 8, 1, 1))
	for range 2 {
		s, err := e.svc.Renew(e.ctx, billing.RenewRequest{AccountID: "a", Key: "stripe:invoice:in_2"})
		if err != nil || s.Cycle != 2 || s.Status != billing.StatusActive {
			t.Fatalf("renew: %v %+v", err, s)
		}
	}
	e.wantAvailable("a", 1500)
	if n := len(e.allowanceGrants("a", first.ID)); n != 2 {
		t.Fatalf("%d allowance grants after one renewal, want 2", n)
	}
	// The next payment fails; a late copy of the earlier payment changes
	// nothing; the retried invoice is paid and the withheld allowance is
	// granted once.
	e.clock.Set(date(2025, 8, 30, 0))
	if _, err := e.svc.MarkPastDue(e.ctx, "a"); err != nil {
		t.Fatal(err)
	}
	e.at(date(2025, 9, 1, 1))
	if s, err := e.svc.Renew(e.ctx, billing.RenewRequest{AccountID: "a", Key: "stripe:invoice:in_2"}); err != nil || s.Status != billing.StatusPastDue {
		t.Fatalf("late replay of an earlier payment: %v %+v, want still past due", err, s)
	}
	e.wantAvailable("a", 0)
	for range 2 {
		if s, err := e.svc.Renew(e.ctx, billing.RenewRequest{AccountID: "a", Key: "stripe:invoice:in_3"}); err != nil || s.Status != billing.StatusActive {
			t.Fatalf("renew after failure: %v %+v", err, s)
		}
	}
	e.tick()
	e.wantAvailable("a", 1500)
	if n := len(e.allowanceGrants("a", first.ID)); n != 3 {
		t.Fatalf("%d allowance grants after two renewals, want 3", n)
	}
	_, err := e.svc.Renew(e.ctx, billing.RenewRequest{AccountID: "nobody", Key: "k"})
	wantCode(t, err, scrip.ENotFound)
	e.verify()
}

// Count quotas: reserved and consumed like credits, limited per period,
// reset each period, exact under concurrency.
func testQuotas(t *testing.T, open Open) {
	t0 := date(2025, 6, 1, 0)
	e := start(t, open, t0, billing.Options{})
	e.account("nobody")
	_, err := e.svc.ReserveQuota(e.ctx, billing.QuotaRequest{AccountID: "nobody", Quota: "sites", Key: "x"})
	wantCode(t, err, scrip.EPlanRequired)

	e.subscribe("a", "basic")
	reserve := func(key string) (billing.QuotaReservation, error) {
		return e.svc.ReserveQuota(e.ctx, billing.QuotaRequest{AccountID: "a", Quota: "sites", Key: key})
	}
	r1, err := reserve("k1")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := reserve("k2")
	if err != nil {
		t.Fatal(err)
	}
	_, err = reserve("k3")
	wantCode(t, err, scrip.EQuotaExceeded)
	var se *scrip.Error
	if errors.As(err, &se); se.Details["limit"] != int64(2) || se.Details["used"] != int64(2) {
		t.Fatalf("details %v", se.Details)
	}
	if again, err := reserve("k1"); err != nil || again.ID != r1.ID {
		t.Fatalf("replay: %v %+v", err, again)
	}
	_, err = e.svc.ReserveQuota(e.ctx, billing.QuotaRequest{AccountID: "a", Quota: "sites", Count: 2, Key: "k1"})
	wantCode(t, err, scrip.EIdempotencyConflict)
	if _, err := e.svc.ReleaseQuota(e.ctx, r2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ReleaseQuota(e.ctx, r2.ID); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if _, err := reserve("k4"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if r, err := e.svc.ConsumeQuota(e.ctx, r1.ID); err != nil || r.Status != billing.QuotaConsumed {
			t.Fatalf("consume: %v %+v", err, r)
		}
	}
	_, err = e.svc.ReleaseQuota(e.ctx, r1.ID)
	wantCode(t, err, scrip.EConflict)
	_, err = e.svc.ConsumeQuota(e.ctx, "qr_missing")
	wantCode(t, err, scrip.ENotFound)
	qs, err := e.svc.Quotas(e.ctx, "a")
	if err != nil || len(qs) != 1 || qs[0] != (billing.QuotaUsage{Quota: "sites", Limit: 2, Used: 2}) {
		t.Fatalf("quotas: %v %+v", err, qs)
	}
	// Unlimited (not in the plan) quotas are counted.
	if _, err := e.svc.ReserveQuota(e.ctx, billing.QuotaRequest{AccountID: "a", Quota: "exports", Count: 5, Key: "e1"}); err != nil {
		t.Fatal(err)
	}

	// The next period starts from zero, even before the scheduler runs;
	// concurrent reservations never pass the limit.
	e.clock.Set(date(2025, 7, 1, 0))
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, exceeded := 0, 0
	for i := range 10 {
		wg.Go(func() {
			_, err := reserve(fmt.Sprintf("p2-%d", i))
			mu.Lock()
			defer mu.Unlock()
			switch scrip.ErrorCode(err) {
			case "":
				ok++
			case scrip.EQuotaExceeded:
				exceeded++
			default:
				t.Errorf("reserve: %v", err)
			}
		})
	}
	wg.Wait()
	if ok != 2 || exceeded != 8 {
		t.Fatalf("%d reserved and %d exceeded, want 2 and 8", ok, exceeded)
	}
	// Upgrading raises the limit; the restarted cycle starts from zero.
	if _, err := e.svc.ChangePlan(e.ctx, billing.ChangePlanRequest{AccountID: "a", PlanCode: "pro", Key: "up"}); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, err := reserve(fmt.Sprintf("pro-%d", i)); err != nil {
			t.Fatalf("pro reservation %d: %v", i, err)
		}
	}
	_, err = reserve("pro-7")
	wantCode(t, err, scrip.EQuotaExceeded)
}

// A free plan grants its allowance without a price, and its sign-up grant
// once per account.
func testSignup(t *testing.T, open Open) {
	t0 := date(2025, 2, 1, 0)
	e := start(t, open, t0, billing.Options{})
	e.subscribe("a", "free")
	e.wantAvailable("a", 250)
	b := e.balance("a")
	if b.ByKind[ledger.KindPromotional] != credit.Credits(50) || b.ByKind[ledger.KindSubscription] != credit.Credits(200) {
		t.Fatalf("by kind %v", b.ByKind)
	}
	if got, err := e.svc.SignupGrant(e.ctx, "a"); err != nil || got {
		t.Fatalf("second sign-up grant: %v %v", got, err)
	}
	e.account("b")
	if got, err := e.svc.SignupGrant(e.ctx, "b"); err != nil || !got {
		t.Fatalf("sign-up grant without subscription: %v %v", got, err)
	}
	e.wantAvailable("b", 50)
	e.at(date(2025, 3, 1, 0))
	e.wantAvailable("a", 250)
	e.wantAvailable("b", 50)
	e.at(date(2025, 3, 3, 0))
	e.wantAvailable("a", 200)
	e.wantAvailable("b", 0)
	e.verify()
}

// crashStore stops like a process killed mid-way: the work of the chosen
// calls is done, but their result is never stored.
type crashStore struct {
	billing.Store
	crashClaims  bool
	crashUpdates map[int]bool
	updates      int
}

var errCrash = errors.New("process stopped")

func (c *crashStore) UpdateSubscription(ctx context.Context, accountID string, fn billing.UpdateFunc) error {
	c.updates++
	if !c.crashUpdates[c.updates] {
		return c.Store.UpdateSubscription(ctx, accountID, fn)
	}
	return c.Store.UpdateSubscription(ctx, accountID, func(ctx context.Context, cur *billing.Subscription) (*billing.Subscription, error) {
		if _, err := fn(ctx, cur); err != nil {
			return nil, err
		}
		return nil, errCrash
	})
}

func (c *crashStore) ClaimDue(ctx context.Context, now time.Time, fn func(context.Context, billing.Subscription) (*billing.Subscription, error)) (bool, error) {
	if !c.crashClaims {
		return c.Store.ClaimDue(ctx, now, fn)
	}
	return c.Store.ClaimDue(ctx, now, func(ctx context.Context, s billing.Subscription) (*billing.Subscription, error) {
		if _, err := fn(ctx, s); err != nil {
			return nil, err
		}
		return nil, errCrash
	})
}

// A process that stops in the middle of a due renewal (or of a subscribe)
// leaves work the next process finishes, granting nothing twice.
func testRestart(t *testing.T, open Open) {
	t0 := date(2025, 1, 31, 0)
	s, _ := open(t)
	clock := ledger.NewManualClock(t0)
	crash := &crashStore{Store: s, crashClaims: true, crashUpdates: map[int]bool{2: true}}
	first := newEnv(t, s, crash, clock, billing.Options{})
	first.account("a")
	_, err := first.svc.Subscribe(first.ctx, billing.SubscribeRequest{AccountID: "a", PlanCode: "capped", Key: "k"})
	if !errors.Is(err, errCrash) {
		t.Fatalf("subscribe: %v, want the crash", err)
	}
	first.wantAvailable("a", 1000)
	first.spend("a", 100, "s1")
	clock.Set(date(2025, 2, 28, 0))
	if _, err := first.sched.Tick(first.ctx); !errors.Is(err, errCrash) {
		t.Fatalf("tick: %v, want the crash", err)
	}
	if err := first.engine.Close(first.ctx); err != nil {
		t.Fatal(err)
	}

	// The next process starts on the same store and catches up.
	second := newEnv(t, s, nil, clock, billing.Options{})
	second.tick()
	sub := second.get("a")
	if sub.Cycle != 2 || sub.GrantedCycle != 2 || sub.AllowanceCycle != 2 {
		t.Fatalf("after restart: %+v", sub)
	}
	grants := second.allowanceGrants("a", sub.ID)
	if len(grants) != 2 {
		t.Fatalf("allowance grants %v, want cycles 1 and 2 once each", grants)
	}
	for k, n := range grants {
		if n != 1 {
			t.Fatalf("%s granted %d times", k, n)
		}
	}
	second.wantAvailable("a", 900+1000)
	second.verify()
}

// Two schedulers, as in two processes on one database, work the same
// backlog at once and grant every cycle exactly once.
func testTwoSchedulers(t *testing.T, open Open) {
	t0 := date(2025, 1, 10, 0)
	s, another := open(t)
	clock := ledger.NewManualClock(t0)
	a := newEnv(t, s, nil, clock, billing.Options{})
	b := newEnv(t, another(), nil, clock, billing.Options{})
	const accounts = 12
	for i := range accounts {
		a.subscribe(fmt.Sprintf("acct-%02d", i), []string{"basic", "capped"}[i%2])
	}
	clock.Set(date(2025, 4, 11, 0))
	for _, x := range []*env{a, b} {
		x.sched = x.svc.NewScheduler(billing.SchedulerOptions{ItemsMax: 3})
	}
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, x := range []*env{a, b} {
		wg.Go(func() {
			for range 200 {
				n, err := x.sched.Tick(x.ctx)
				if err != nil {
					t.Errorf("scheduler %d: %v", i, err)
					return
				}
				counts[i] += n
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("renewals per scheduler: %v", counts)
	if counts[0]+counts[1] != accounts*3 {
		t.Fatalf("schedulers did %v renewals, want %d in all", counts, accounts*3)
	}
	a.tick()
	for i := range accounts {
		id := fmt.Sprintf("acct-%02d", i)
		sub := a.get(id)
		if sub.Cycle != 4 {
			t.Fatalf("%s at cycle %d, want 4", id, sub.Cycle)
		}
		grants := a.allowanceGrants(id, sub.ID)
		if len(grants) != 4 {
			t.Fatalf("%s: allowance grants %v", id, grants)
		}
		for k, n := range grants {
			if n != 1 {
				t.Fatalf("%s: %s granted %d times", id, k, n)
			}
		}
		want := int64(1500)
		if i%2 == 1 {
			want = 3000
		}
		a.wantAvailable(id, want)
	}
	a.verify()
}

// Plan answers from its cache for Options.PlanCacheAge: a change made by
// this process shows at once, one made by another process once the entry
// is that old, and an account's first subscription at once in this
// process even though Plan had cached that it had none.
func testPlanCache(t *testing.T, open Open) {
	t0 := date(2025, 3, 1, 12)
	const age = 5 * time.Second
	s, another := open(t)
	clock := ledger.NewManualClock(t0)
	a := newEnv(t, s, nil, clock, billing.Options{PlanCacheAge: age})
	b := newEnv(t, another(), nil, clock, billing.Options{PlanCacheAge: age})
	a.account("u")
	a.wantPlan("u", "")
	if _, err := a.svc.Subscribe(a.ctx, billing.SubscribeRequest{AccountID: "u", PlanCode: "basic", Key: "s1"}); err != nil {
		t.Fatal(err)
	}
	a.wantPlan("u", "basic")
	b.wantPlan("u", "basic")

	// The other process upgrades: this one keeps the plan it read until
	// the entry is age old; the other sees its own change at once.
	if _, err := b.svc.ChangePlan(b.ctx, billing.ChangePlanRequest{AccountID: "u", PlanCode: "pro", Key: "c1"}); err != nil {
		t.Fatal(err)
	}
	b.wantPlan("u", "pro")
	clock.Set(t0.Add(age - time.Second))
	a.wantPlan("u", "basic")
	clock.Set(t0.Add(age))
	a.wantPlan("u", "pro")

	// A cancellation at the period's end, made here, shows at the end
	// without reading the store again.
	if _, err := a.svc.Cancel(a.ctx, "u", true); err != nil {
		t.Fatal(err)
	}
	a.wantPlan("u", "pro")
	end := a.get("u").CurrentPeriodEnd
	clock.Set(end.Add(-time.Second))
	a.wantPlan("u", "pro")
	clock.Set(end)
	a.wantPlan("u", "")
}

// heldSubs counts the reads of subscriptions and, once armed, holds the
// first read, with what it read, until released.
type heldSubs struct {
	billing.Store
	reads   atomic.Int32
	armed   atomic.Bool
	started chan struct{}
	release chan struct{}
}

func (h *heldSubs) arm() {
	h.started, h.release = make(chan struct{}), make(chan struct{})
	h.armed.Store(true)
}

func (h *heldSubs) Subscription(ctx context.Context, accountID string) (billing.Subscription, error) {
	h.reads.Add(1)
	sub, err := h.Store.Subscription(ctx, accountID)
	if h.armed.CompareAndSwap(true, false) {
		close(h.started)
		<-h.release
	}
	return sub, err
}

// Plan calls that find an account's entry expired at the same moment make
// one read of the store between them; a change made by this process while
// that read is under way still shows at once.
func testPlanCacheSharesReads(t *testing.T, open Open) {
	t0 := date(2025, 3, 1, 12)
	const age = 5 * time.Second
	s, _ := open(t)
	subs := &heldSubs{Store: s}
	clock := ledger.NewManualClock(t0)
	a := newEnv(t, s, subs, clock, billing.Options{PlanCacheAge: age})
	a.subscribe("u", "basic")
	a.wantPlan("u", "basic")

	plans := func(n int) (func() []string, func() []error) {
		got, errs := make([]string, n), make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { got[i], errs[i] = a.svc.Plan(a.ctx, "u") })
		}
		return func() []string { wg.Wait(); return got }, func() []error { wg.Wait(); return errs }
	}

	clock.Set(t0.Add(age))
	subs.reads.Store(0)
	subs.arm()
	const calls = 16
	got, errs := plans(calls)
	<-subs.started
	time.Sleep(100 * time.Millisecond) // the other calls reach the expired entry
	close(subs.release)
	for i, p := range got() {
		if err := errs()[i]; err != nil || p != "basic" {
			t.Fatalf("call %d: plan %q, %v; want basic", i, p, err)
		}
	}
	if n := subs.reads.Load(); n != 1 {
		t.Fatalf("%d calls on an expired entry read the store %d times, want 1", calls, n)
	}

	// A read starts, and is held with the basic plan it read; this process
	// then upgrades. Plan must not wait for the read that began before.
	clock.Set(t0.Add(2 * age))
	subs.arm()
	stale, _ := plans(1)
	<-subs.started
	if _, err := a.svc.ChangePlan(a.ctx, billing.ChangePlanRequest{AccountID: "u", PlanCode: "pro", Key: "c1"}); err != nil {
		t.Fatal(err)
	}
	after, _ := plans(1)
	time.Sleep(100 * time.Millisecond)
	close(subs.release)
	if p := stale()[0]; p != "basic" {
		t.Fatalf("the read held from before the upgrade gave %q, want basic", p)
	}
	if p := after()[0]; p != "pro" {
		t.Fatalf("Plan after this process's upgrade gave %q while an older read was under way, want pro", p)
	}
	a.wantPlan("u", "pro")
}
