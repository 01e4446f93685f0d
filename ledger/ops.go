package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/credit"
)

// CreateAccount creates the account unless it exists; either way it returns
// the stored account and whether this call created it. Creations go through
// the committer, so many of them, and the operations on the accounts they
// create, share one commit.
func (e *Engine) CreateAccount(ctx context.Context, id string, md map[string]string) (Account, bool, error) {
	if err := CheckAccountID(id); err != nil {
		return Account{}, false, err
	}
	if err := checkMetadata("metadata", md); err != nil {
		return Account{}, false, err
	}
	o := &op{typ: OpCreateAccount, accountID: id, req: &createAccountRequest{metadata: maps.Clone(md)}}
	if _, err := e.submit(ctx, o); err != nil {
		return Account{}, false, err
	}
	return o.account, o.created, nil
}

// Account returns an account.
func (e *Engine) Account(ctx context.Context, id string) (Account, error) {
	a, err := readByID(ctx, id, e.store.Account)
	if errors.Is(err, ErrNotFound) {
		return Account{}, scrip.Errorf(scrip.EAccountNotFound, "account %q not found", id)
	}
	return a, err
}

// accountsLimitMax bounds the accounts of one page of Accounts.
const accountsLimitMax = 1000

// Accounts returns up to limit accounts whose ids sort after after, in id
// order: the pages of a list of every account.
func (e *Engine) Accounts(ctx context.Context, after string, limit int) ([]Account, error) {
	if limit <= 0 || limit > accountsLimitMax {
		return nil, &scrip.Error{Code: scrip.EInvalid, Field: "limit", Message: fmt.Sprintf("limit %d is outside 1 to %d", limit, accountsLimitMax)}
	}
	ids, err := e.store.AccountIDs(ctx, after, limit)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	b, ok := e.store.(BulkReader)
	if !ok {
		accts := make([]Account, 0, len(ids))
		for _, id := range ids {
			a, err := e.store.Account(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("account %s: %w", id, err)
			}
			accts = append(accts, a)
		}
		return accts, nil
	}
	var found []Account
	err = b.ReadAccounts(ctx, func(r AccountsReader) error {
		found, err = r.AccountsOf(ctx, ids)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("accounts after %q: %w", after, err)
	}
	// AccountsOf answers in any order; the page keeps the store's, which
	// its cursor follows.
	byID := make(map[string]Account, len(found))
	for _, a := range found {
		byID[a.ID] = a
	}
	accts := make([]Account, 0, len(ids))
	for _, id := range ids {
		if a, ok := byID[id]; ok {
			accts = append(accts, a)
		}
	}
	return accts, nil
}

// Grant adds credits to an account.
func (e *Engine) Grant(ctx context.Context, r GrantRequest) (Result, error) {
	if err := firstErr(CheckAccountID(r.AccountID), checkKey(r.Key), checkPositive("amount", r.Amount),
		checkMetadata("metadata", r.Metadata), checkNote("source.type", r.Source.Type), checkNote("source.id", r.Source.ID),
		checkNote("source.reason", r.Source.Reason), checkNote("paid_currency", r.PaidCurrency)); err != nil {
		return Result{}, err
	}
	if !r.Kind.Valid() {
		return Result{}, &scrip.Error{Code: scrip.EInvalid, Field: "kind",
			Message: fmt.Sprintf("unknown grant kind %q (want subscription, top_up, promotional or adjustment)", r.Kind)}
	}
	if !r.ExpiresAt.IsZero() {
		eff := r.EffectiveAt
		if eff.IsZero() {
			eff = e.now()
		}
		if !r.ExpiresAt.After(eff) {
			return Result{}, &scrip.Error{Code: scrip.EInvalid, Field: "expires_at",
				Message: fmt.Sprintf("expires_at %s is not after the grant's effective time %s", r.ExpiresAt.Format(time.RFC3339), eff.Format(time.RFC3339))}
		}
	}
	if r.PaidAmount < 0 {
		return Result{}, &scrip.Error{Code: scrip.EInvalid, Field: "paid_amount", Message: "paid_amount must not be negative"}
	}
	prio := ""
	if r.Priority != nil {
		prio = strconv.Itoa(*r.Priority)
	}
	h := requestHash("grant", r.AccountID, string(r.Kind), r.Amount.String(), prio, stamp(r.EffectiveAt), stamp(r.ExpiresAt),
		r.Source.Type, r.Source.ID, r.Source.Reason, strconv.FormatInt(r.PaidAmount, 10), r.PaidCurrency, mapString(r.Metadata))
	return e.submit(ctx, &op{typ: TxGrant, accountID: r.AccountID, key: r.Key, hash: h, req: &r})
}

// Hold reserves credits for a job.
func (e *Engine) Hold(ctx context.Context, r HoldRequest) (Result, error) {
	if err := firstErr(CheckAccountID(r.AccountID), checkKey(r.Key), checkNotNegative("amount", r.Amount),
		checkRef(r.Ref)); err != nil {
		return Result{}, err
	}
	if r.TTL == 0 {
		r.TTL = e.opt.HoldTTLDefault
	}
	if r.TTL < time.Second || r.TTL > e.opt.HoldTTLMax {
		return Result{}, &scrip.Error{Code: scrip.EInvalid, Field: "ttl",
			Message: fmt.Sprintf("hold time-to-live %s is out of range (1s to %s)", r.TTL, e.opt.HoldTTLMax)}
	}
	h := requestHash("hold", r.AccountID, r.TTL.String(), orFingerprint(r.Fingerprint, r.Amount.String(), refString(r.Ref)))
	return e.submit(ctx, &op{typ: TxHold, accountID: r.AccountID, key: r.Key, hash: h, req: &r})
}

// Capture settles a hold at the actual amount; what is not captured goes
// back to the grants it came from.
func (e *Engine) Capture(ctx context.Context, r CaptureRequest) (Result, error) {
	if err := checkKey(r.Key); err != nil {
		return Result{}, err
	}
	if err := checkNotNegative("amount", r.Amount); err != nil {
		return Result{}, err
	}
	if r.Ref != nil {
		if err := checkRef(*r.Ref); err != nil {
			return Result{}, err
		}
	}
	acct, err := e.holdAccount(ctx, r.HoldID)
	if err != nil {
		return Result{}, err
	}
	ref := ""
	if r.Ref != nil {
		ref = refString(*r.Ref)
	}
	h := requestHash("capture", r.HoldID, strconv.FormatBool(r.AllowOver), orFingerprint(r.Fingerprint, r.Amount.String(), ref))
	return e.submit(ctx, &op{typ: TxCapture, accountID: acct, key: r.Key, hash: h, req: &r})
}

// Release ends a hold and returns all its credits (the provider failed).
func (e *Engine) Release(ctx context.Context, r ReleaseRequest) (Result, error) {
	if err := firstErr(checkKey(r.Key), checkNote("reason", r.Reason)); err != nil {
		return Result{}, err
	}
	acct, err := e.holdAccount(ctx, r.HoldID)
	if err != nil {
		return Result{}, err
	}
	h := requestHash("release", r.HoldID, r.Reason)
	return e.submit(ctx, &op{typ: TxRelease, accountID: acct, key: r.Key, hash: h, req: &r})
}

// Charge debits credits in one atomic step.
func (e *Engine) Charge(ctx context.Context, r ChargeRequest) (Result, error) {
	if err := firstErr(CheckAccountID(r.AccountID), checkKey(r.Key), checkNotNegative("amount", r.Amount),
		checkRef(r.Ref)); err != nil {
		return Result{}, err
	}
	h := requestHash("charge", r.AccountID, orFingerprint(r.Fingerprint, r.Amount.String(), refString(r.Ref)))
	return e.submit(ctx, &op{typ: TxCharge, accountID: r.AccountID, key: r.Key, hash: h, req: &r})
}

// Refund returns a charge's credits to the grants they were taken from.
func (e *Engine) Refund(ctx context.Context, r RefundRequest) (Result, error) {
	if err := firstErr(checkKey(r.Key), checkNote("reason", r.Reason)); err != nil {
		return Result{}, err
	}
	if err := checkNotNegative("amount", r.Amount); err != nil {
		return Result{}, err
	}
	c, err := e.GetCharge(ctx, r.ChargeID)
	if err != nil {
		return Result{}, err
	}
	h := requestHash("refund", r.ChargeID, r.Amount.String(), r.Reason)
	return e.submit(ctx, &op{typ: TxRefund, accountID: c.AccountID, key: r.Key, hash: h, req: &r})
}

// Adjust applies an admin correction with a reason.
func (e *Engine) Adjust(ctx context.Context, r AdjustRequest) (Result, error) {
	if err := firstErr(CheckAccountID(r.AccountID), checkKey(r.Key), checkNote("reason", r.Reason)); err != nil {
		return Result{}, err
	}
	if r.Amount == 0 {
		return Result{}, &scrip.Error{Code: scrip.EInvalidAmount, Field: "amount", Message: "an adjustment must not be zero"}
	}
	if r.Reason == "" {
		return Result{}, &scrip.Error{Code: scrip.EInvalid, Field: "reason", Message: "an adjustment needs a reason"}
	}
	if !r.ExpiresAt.IsZero() && !r.ExpiresAt.After(e.now()) {
		return Result{}, &scrip.Error{Code: scrip.EInvalid, Field: "expires_at", Message: "expires_at must be in the future"}
	}
	h := requestHash("adjust", r.AccountID, r.Amount.String(), r.Reason, stamp(r.ExpiresAt))
	return e.submit(ctx, &op{typ: TxAdjustment, accountID: r.AccountID, key: r.Key, hash: h, req: &r})
}

// Revoke removes a grant's unspent remainder.
func (e *Engine) Revoke(ctx context.Context, r RevokeRequest) (Result, error) {
	if err := firstErr(checkKey(r.Key), checkNote("reason", r.Reason)); err != nil {
		return Result{}, err
	}
	acct, err := e.grantAccount(ctx, r.GrantID)
	if err != nil {
		return Result{}, err
	}
	h := requestHash("revoke", r.GrantID, r.Reason)
	return e.submit(ctx, &op{typ: TxRevocation, accountID: acct, key: r.Key, hash: h, req: &r})
}

// ExpireDue expires the holds whose time-to-live ended and the grants whose
// expiry passed, up to a bound per call, and returns how many it ended. The
// engine runs it by itself every SweepEvery; after a restart the first sweep
// catches up on everything that fell due meanwhile.
func (e *Engine) ExpireDue(ctx context.Context) (int, error) {
	now := e.now()
	holds, err := e.store.DueHolds(ctx, now, expireBatchMax)
	if err != nil {
		return 0, fmt.Errorf("due holds: %w", err)
	}
	grants, err := e.store.DueGrants(ctx, now, expireBatchMax)
	if err != nil {
		return 0, fmt.Errorf("due grants: %w", err)
	}
	type item struct {
		typ       TxType
		id, accID string
	}
	items := make([]item, 0, len(holds)+len(grants))
	// Holds first: their credits go back to grants that may expire next.
	for _, h := range holds {
		items = append(items, item{TxHoldExpiry, h.ID, h.AccountID})
	}
	for _, g := range grants {
		items = append(items, item{TxGrantExpiry, g.ID, g.AccountID})
	}
	results := make(chan error, len(items))
	for _, it := range items {
		go func() {
			_, err := e.submit(ctx, &op{typ: it.typ, accountID: it.accID, key: "expire:" + it.id, hash: it.id, req: &expireRequest{id: it.id}})
			results <- err
		}()
	}
	n := 0
	var firstFail error
	for range items {
		err := <-results
		switch {
		case err == nil:
			n++
		case errors.Is(err, errSkip):
		case firstFail == nil:
			firstFail = err
		}
	}
	return n, firstFail
}

// Balance projects an account's balance from its grants and open holds,
// read together from one snapshot (Store.AccountState), so that available
// and held never count a hold's credits twice or not at all. It reads
// without taking any write lock.
func (e *Engine) Balance(ctx context.Context, accountID string) (Balance, error) {
	st, err := readByID(ctx, accountID, e.store.AccountState)
	if errors.Is(err, ErrNotFound) {
		return Balance{}, scrip.Errorf(scrip.EAccountNotFound, "account %q not found", accountID)
	}
	if err != nil {
		return Balance{}, fmt.Errorf("balance of %s: %w", accountID, err)
	}
	return balanceOf(st, e.now()), nil
}

// balanceOf is the balance of an account whose live grants and open holds
// st holds, at now.
func balanceOf(st AccountState, now time.Time) Balance {
	accountID := st.Account.ID
	gs, hs := st.Grants, st.Holds
	ptrs := make([]*Grant, len(gs))
	for i := range gs {
		ptrs[i] = &gs[i]
	}
	SortGrants(ptrs)
	b := Balance{AccountID: accountID, ByKind: map[Kind]credit.Amount{}, Grants: []Grant{}, AsOf: now}
	for _, k := range Kinds {
		b.ByKind[k] = 0
	}
	for _, g := range ptrs {
		if !g.Never() && !g.ExpiresAt.After(now) {
			continue
		}
		b.Grants = append(b.Grants, *g)
		if spendable(g, now) {
			b.Available += g.Remaining
			b.ByKind[g.Kind] += g.Remaining
		}
	}
	for _, h := range hs {
		b.Held += h.Amount
	}
	return b
}

// balancesBulkMax bounds the accounts of one snapshot read of Balances.
const balancesBulkMax = 500

// AccountBalance is an account, its balance and its grants.
type AccountBalance struct {
	Account Account
	Balance Balance
	// Grants is the account's live grants, those the balance counts, and
	// the grants Balances was asked for by id, in creation order.
	Grants []Grant
}

// Grant returns the account's grant id.
func (ab AccountBalance) Grant(id string) (Grant, bool) {
	for _, g := range ab.Grants {
		if g.ID == id {
			return g, true
		}
	}
	return Grant{}, false
}

// live reports whether the balance counts g: not closed, credits remaining.
func live(g *Grant) bool { return !g.Closed && g.Remaining > 0 }

// Balances returns the accounts of ids that exist, each with its balance
// and its live grants, and with those of grantIDs that are its own
// whatever their state: a grant read by id after it was spent or expired.
// The closed and spent grants that an old account gathers are not read. On
// a store that reads many accounts at once (BulkReader) that is three
// queries for up to balancesBulkMax accounts, from one snapshot; otherwise
// two reads of each account.
func (e *Engine) Balances(ctx context.Context, ids, grantIDs []string) (map[string]AccountBalance, error) {
	out := make(map[string]AccountBalance, len(ids))
	now := e.now()
	b, ok := e.store.(BulkReader)
	if !ok {
		named := make(map[string]bool, len(grantIDs))
		for _, id := range grantIDs {
			named[id] = true
		}
		for _, id := range ids {
			st, err := readByID(ctx, id, e.store.AccountState)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("balance of %s: %w", id, err)
			}
			all, err := e.store.Grants(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("grants of %s: %w", id, err)
			}
			gs := all[:0]
			for _, g := range all {
				if live(&g) || named[g.ID] {
					gs = append(gs, g)
				}
			}
			out[id] = AccountBalance{Account: st.Account, Balance: balanceOf(st, now), Grants: gs}
		}
		return out, nil
	}
	for len(ids) > 0 {
		piece := ids[:min(len(ids), balancesBulkMax)]
		ids = ids[len(piece):]
		err := b.ReadAccounts(ctx, func(r AccountsReader) error {
			accts, err := r.AccountsOf(ctx, piece)
			if err != nil {
				return err
			}
			grants, err := r.LiveGrantsOf(ctx, piece, grantIDs)
			if err != nil {
				return err
			}
			holds, err := r.OpenHoldsOf(ctx, piece)
			if err != nil {
				return err
			}
			slices.SortFunc(grants, func(a, b Grant) int {
				return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
			})
			grantsOf := byAccount(grants, func(g *Grant) string { return g.AccountID })
			holdsOf := byAccount(holds, func(h *Hold) string { return h.AccountID })
			for _, a := range accts {
				st := AccountState{Account: a, Holds: holdsOf[a.ID]}
				for _, g := range grantsOf[a.ID] {
					if live(&g) {
						st.Grants = append(st.Grants, g)
					}
				}
				out[a.ID] = AccountBalance{Account: a, Balance: balanceOf(st, now), Grants: grantsOf[a.ID]}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("balances: %w", err)
		}
	}
	return out, nil
}

// History returns an account's journal transactions, newest first. Pass the
// last Seq of a page as BeforeSeq to get the next one.
func (e *Engine) History(ctx context.Context, q HistoryQuery) ([]Transaction, error) {
	if _, err := e.Account(ctx, q.AccountID); err != nil {
		return nil, err
	}
	switch {
	case q.Limit <= 0:
		q.Limit = historyLimitDefault
	case q.Limit > historyLimitMax:
		return nil, &scrip.Error{Code: scrip.EInvalid, Field: "limit", Message: fmt.Sprintf("limit %d is above the maximum of %d", q.Limit, historyLimitMax)}
	}
	return e.store.Transactions(ctx, q)
}

// OpenHolds returns the account's open holds, oldest first: the jobs whose
// credits its balance shows as held. An account has as many as it has jobs
// in flight, each bounded by HoldTTLMax, and the balance reads them all.
func (e *Engine) OpenHolds(ctx context.Context, accountID string) ([]Hold, error) {
	if _, err := e.Account(ctx, accountID); err != nil {
		return nil, err
	}
	hs, err := e.store.OpenHolds(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("open holds of %s: %w", accountID, err)
	}
	return hs, nil
}

// GetHold returns a hold.
func (e *Engine) GetHold(ctx context.Context, id string) (Hold, error) {
	h, err := readByID(ctx, id, e.store.Hold)
	if errors.Is(err, ErrNotFound) {
		return Hold{}, scrip.Errorf(scrip.EHoldNotFound, "hold %q not found", id)
	}
	return h, err
}

// GetCharge returns a charge.
func (e *Engine) GetCharge(ctx context.Context, id string) (Charge, error) {
	c, err := readByID(ctx, id, e.store.Charge)
	if errors.Is(err, ErrNotFound) {
		return Charge{}, scrip.Errorf(scrip.EChargeNotFound, "charge %q not found", id)
	}
	return c, err
}

// holdAccount returns the account of a hold, from the owners cache when
// this engine created the hold.
func (e *Engine) holdAccount(ctx context.Context, id string) (string, error) {
	if a, ok := e.owners.get(id); ok {
		return a, nil
	}
	h, err := e.GetHold(ctx, id)
	if err != nil {
		return "", err
	}
	return h.AccountID, nil
}

func (e *Engine) grantAccount(ctx context.Context, id string) (string, error) {
	g, err := readByID(ctx, id, e.store.Grant)
	if errors.Is(err, ErrNotFound) {
		return "", scrip.Errorf(scrip.EGrantNotFound, "grant %q not found", id)
	}
	if err != nil {
		return "", err
	}
	return g.AccountID, nil
}

// readByID reads a row by id. An id no store can hold (storable) is not
// found without asking the store, which on PostgreSQL would fail the query.
func readByID[T any](ctx context.Context, id string, read func(context.Context, string) (T, error)) (T, error) {
	if !storable(id) {
		var zero T
		return zero, ErrNotFound
	}
	return read(ctx, id)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func checkRef(r Ref) error {
	if len(r.Action) > keyBytesMax || len(r.Job) > keyBytesMax {
		return &scrip.Error{Code: scrip.EInvalid, Field: "ref", Message: fmt.Sprintf("action and job references are at most %d bytes", keyBytesMax)}
	}
	return firstErr(checkText("ref", r.Action), checkText("ref", r.Job), checkMetadata("metadata", r.Metadata))
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}

func refString(r Ref) string { return r.Action + "\x00" + r.Job + "\x00" + mapString(r.Metadata) }

// orFingerprint returns the caller's fingerprint when there is one, else the
// parts it stands for.
func orFingerprint(fp string, parts ...string) string {
	if fp != "" {
		return "fp\x00" + fp
	}
	return strings.Join(parts, "\x00")
}
