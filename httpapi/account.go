package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/httpapi/auth"
	"github.com/scriphq/scrip/ledger"
)

type accountJSON struct {
	Object string `json:"object"`
	ledger.Account
}

type balanceJSON struct {
	Object string `json:"object"`
	ledger.Balance
}

// opJSON is what every response that moves credits carries.
type opJSON struct {
	// CreditsUsed is the authoritative amount the operation consumed: net
	// of refunds, zero for operations that only reserve or add credits.
	CreditsUsed   credit.Amount `json:"creditsUsed"`
	Available     credit.Amount `json:"available"`
	Replayed      bool          `json:"replayed"`
	TransactionID string        `json:"transaction_id"`
}

func newOp(res ledger.Result, used credit.Amount) *opJSON {
	return &opJSON{CreditsUsed: used, Available: res.Available, Replayed: res.Replayed, TransactionID: res.Transaction.ID}
}

// writeOp writes the response of a mutation, marking replays as Stripe does.
func writeOp(w http.ResponseWriter, res ledger.Result, v any) {
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusOK, v)
}

type createAccountRequest struct {
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata"`
}

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request) error {
	var req createAccountRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if _, err := idempotencyKey(r, false); err != nil {
		return err
	}
	if err := ledger.CheckAccountID(req.ID); err != nil {
		return renameField(err, "account_id", "id")
	}
	a, created, err := s.engine.CreateAccount(r.Context(), req.ID, req.Metadata)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, accountJSON{Object: "account", Account: a})
	return nil
}

// listAccounts pages through every account in id order.
func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, "limit", "starting_after"); err != nil {
		return err
	}
	limit, err := queryInt(q, "limit", pageLimitDefault, 1, pageLimitMax)
	if err != nil {
		return err
	}
	// One more tells whether there is a next page.
	accts, err := s.engine.Accounts(r.Context(), q.Get("starting_after"), limit+1)
	if err != nil {
		return err
	}
	out := listJSON[accountJSON]{Object: "list", Data: []accountJSON{}}
	if len(accts) > limit {
		out.HasMore = true
		accts = accts[:limit]
		out.NextCursor = accts[limit-1].ID
	}
	for _, a := range accts {
		out.Data = append(out.Data, accountJSON{Object: "account", Account: a})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request) error {
	a, err := s.engine.Account(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, accountJSON{Object: "account", Account: a})
	return nil
}

func (s *Server) getBalance(w http.ResponseWriter, r *http.Request) error {
	b, err := s.engine.Balance(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, balanceJSON{Object: "balance", Balance: b})
	return nil
}

type listJSON[T any] struct {
	Object  string `json:"object"`
	Data    []T    `json:"data"`
	HasMore bool   `json:"has_more"`
	// NextCursor is passed as starting_after to get the next page.
	NextCursor string `json:"next_cursor,omitempty"`
}

type transactionJSON struct {
	Object string `json:"object"`
	ledger.Transaction
}

func (s *Server) listTransactions(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, "limit", "starting_after", "type", "since", "until"); err != nil {
		return err
	}
	limit, err := queryInt(q, "limit", pageLimitDefault, 1, pageLimitMax)
	if err != nil {
		return err
	}
	hq := ledger.HistoryQuery{AccountID: r.PathValue("id"), Limit: limit + 1}
	if c := q.Get("starting_after"); c != "" {
		n, err := strconv.ParseInt(c, 10, 64)
		if err != nil || n <= 0 {
			return errorf(scrip.EInvalidParam, "starting_after", "starting_after must be a next_cursor from a previous page, got %q", c)
		}
		hq.BeforeSeq = n
	}
	if len(q["type"]) > len(txTypes) {
		return errorf(scrip.EInvalidParam, "type", "too many type filters")
	}
	for _, t := range q["type"] {
		if !validTxType(ledger.TxType(t)) {
			return errorf(scrip.EInvalidParam, "type", "unknown transaction type %q", t)
		}
		hq.Types = append(hq.Types, ledger.TxType(t))
	}
	if hq.Since, err = queryTime(q, "since"); err != nil {
		return err
	}
	if hq.Until, err = queryTime(q, "until"); err != nil {
		return err
	}
	txs, err := historyPage(r.Context(), s.engine, hq)
	if err != nil {
		return err
	}
	out := listJSON[transactionJSON]{Object: "list", Data: []transactionJSON{}}
	if len(txs) > limit {
		out.HasMore = true
		txs = txs[:limit]
	}
	for _, t := range txs {
		out.Data = append(out.Data, transactionJSON{Object: "transaction", Transaction: t})
	}
	if out.HasMore {
		out.NextCursor = strconv.FormatInt(txs[len(txs)-1].Seq, 10)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// historyPage asks the engine for up to pageLimitMax+1 rows, which it may
// cap at pageLimitMax.
func historyPage(ctx context.Context, e *ledger.Engine, q ledger.HistoryQuery) ([]ledger.Transaction, error) {
	q.Limit = min(q.Limit, pageLimitMax)
	want := q.Limit
	txs, err := e.History(ctx, q)
	if err != nil || len(txs) < want {
		return txs, err
	}
	// One more row tells whether there is a next page.
	q.BeforeSeq = txs[len(txs)-1].Seq
	q.Limit = 1
	more, err := e.History(ctx, q)
	if err != nil {
		return nil, err
	}
	return append(txs, more...), nil
}

var txTypes = []ledger.TxType{ledger.TxGrant, ledger.TxHold, ledger.TxCapture, ledger.TxRelease, ledger.TxHoldExpiry,
	ledger.TxCharge, ledger.TxRefund, ledger.TxAdjustment, ledger.TxRevocation, ledger.TxGrantExpiry}

func validTxType(t ledger.TxType) bool {
	for _, x := range txTypes {
		if x == t {
			return true
		}
	}
	return false
}

type grantRequest struct {
	Kind         ledger.Kind       `json:"kind"`
	Amount       *amountParam      `json:"amount"`
	Priority     *int              `json:"priority"`
	EffectiveAt  *time.Time        `json:"effective_at"`
	ExpiresAt    *time.Time        `json:"expires_at"`
	Source       ledger.Source     `json:"source"`
	PaidAmount   int64             `json:"paid_amount"`
	PaidCurrency string            `json:"paid_currency"`
	Metadata     map[string]string `json:"metadata"`
}

type grantJSON struct {
	Object string `json:"object"`
	ledger.Grant
	*opJSON
}

func (s *Server) createGrant(w http.ResponseWriter, r *http.Request) error {
	var req grantRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	key, err := idempotencyKey(r, false)
	if err != nil {
		return err
	}
	amt, ok := req.Amount.get()
	if !ok {
		return errorf(scrip.EInvalidAmount, "amount", "amount is required")
	}
	if req.Kind == "" {
		req.Kind = ledger.KindPromotional
	}
	if req.Source.Type == "" {
		req.Source.Type = "admin"
	}
	res, err := s.engine.Grant(r.Context(), ledger.GrantRequest{
		AccountID: r.PathValue("id"), Key: key, Kind: req.Kind, Amount: amt, Priority: req.Priority,
		EffectiveAt: timeOrZero(req.EffectiveAt), ExpiresAt: timeOrZero(req.ExpiresAt), Source: req.Source,
		PaidAmount: req.PaidAmount, PaidCurrency: req.PaidCurrency, Metadata: req.Metadata,
	})
	if err != nil {
		return err
	}
	out := grantJSON{Object: "grant", opJSON: newOp(res, 0)}
	if res.Grant != nil {
		out.Grant = *res.Grant
	}
	writeOp(w, res, out)
	return nil
}

type adjustmentRequest struct {
	Amount    *amountParam `json:"amount"`
	Reason    string       `json:"reason"`
	ExpiresAt *time.Time   `json:"expires_at"`
}

type adjustmentJSON struct {
	Object    string        `json:"object"`
	ID        string        `json:"id"`
	AccountID string        `json:"account_id"`
	Amount    credit.Amount `json:"amount"`
	Reason    string        `json:"reason"`
	Grant     *ledger.Grant `json:"grant,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
	*opJSON
}

func (s *Server) createAdjustment(w http.ResponseWriter, r *http.Request) error {
	var req adjustmentRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	key, err := idempotencyKey(r, false)
	if err != nil {
		return err
	}
	amt, ok := req.Amount.get()
	if !ok {
		return errorf(scrip.EInvalidAmount, "amount", "amount is required")
	}
	res, err := s.engine.Adjust(r.Context(), ledger.AdjustRequest{
		AccountID: r.PathValue("id"), Key: key, Amount: amt, Reason: req.Reason, ExpiresAt: timeOrZero(req.ExpiresAt),
	})
	if err != nil {
		return err
	}
	used := credit.Amount(0)
	if amt < 0 {
		used = -amt
	}
	writeOp(w, res, adjustmentJSON{Object: "adjustment", ID: res.Transaction.ID, AccountID: res.Transaction.AccountID,
		Amount: amt, Reason: req.Reason, Grant: res.Grant, CreatedAt: res.Transaction.CreatedAt, opJSON: newOp(res, used)})
	return nil
}

type revokeRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) revokeGrant(w http.ResponseWriter, r *http.Request) error {
	var req revokeRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	key, err := idempotencyKey(r, false)
	if err != nil {
		return err
	}
	res, err := s.engine.Revoke(r.Context(), ledger.RevokeRequest{GrantID: r.PathValue("id"), Key: key, Reason: req.Reason})
	if err != nil {
		return err
	}
	out := grantJSON{Object: "grant", opJSON: newOp(res, 0)}
	if res.Grant != nil {
		out.Grant = *res.Grant
	}
	writeOp(w, res, out)
	return nil
}

type tokenRequest struct {
	TTLSeconds *int64 `json:"ttl_seconds"`
}

type tokenJSON struct {
	Object    string    `json:"object"`
	Token     string    `json:"token"`
	AccountID string    `json:"account_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var req tokenRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if _, err := idempotencyKey(r, false); err != nil {
		return err
	}
	ttl := auth.TokenTTLDefault
	if req.TTLSeconds != nil {
		if *req.TTLSeconds <= 0 || *req.TTLSeconds > int64(auth.TokenTTLMax/time.Second) {
			return errorf(scrip.EInvalidParam, "ttl_seconds", "ttl_seconds must be from 1 to %d, got %d", int64(auth.TokenTTLMax/time.Second), *req.TTLSeconds)
		}
		ttl = time.Duration(*req.TTLSeconds) * time.Second
	}
	id := r.PathValue("id")
	if _, err := s.engine.Account(r.Context(), id); err != nil {
		return err
	}
	tok, c, err := auth.MintToken(s.tokenSecret, id, s.clock.Now(), ttl)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tokenJSON{Object: "account_token", Token: tok, AccountID: id, ExpiresAt: c.Expiry()})
	return nil
}

func timeOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// renameField makes an error name the request's field rather than the
// engine's.
func renameField(err error, from, to string) error {
	var e *scrip.Error
	if errors.As(err, &e) && e.Field == from {
		c := *e
		c.Field = to
		return &c
	}
	return err
}
