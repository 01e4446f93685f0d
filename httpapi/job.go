package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"net/http"
	"strings"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/httpapi/auth"
	"github.com/scriphq/scrip/ledger"
)

// Ref metadata keys the server keeps on holds and charges it priced, so a
// capture can re-price the same action and a replay can show the quote.
// list_credits is the catalog's list price, kept also when the plan makes
// the action cheaper or free, so usage is recorded at its worth.
const (
	mdParams      = "scrip.params"
	mdPlan        = "scrip.plan"
	mdCredits     = "scrip.credits"
	mdListCredits = "scrip.list_credits"
	mdVersion     = "scrip.catalog_version"
	mdPrefix      = "scrip."
)

// fingerprint is a digest of a request as its client sent it (v is the
// decoded body; encoding/json writes map keys in order). The ledger compares
// it instead of the amount the catalog derived, so a replay returns the
// first result even after a reload changed the price, while another
// request under the same key is still an idempotency conflict.
func fingerprint(op string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", errorf(scrip.EInvalidParam, "params", "params: %v", err)
	}
	h := sha256.New()
	h.Write([]byte(op))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// replayQuote is the quote to show with a result: a replay shows it only
// when it still prices what was recorded, since the first result stands.
func replayQuote(res ledger.Result, ref ledger.Ref, q *catalog.Quote) *catalog.Quote {
	if q == nil || !res.Replayed {
		return q
	}
	if ref.Metadata[mdVersion] != q.Version || ref.Metadata[mdCredits] != q.Credits.String() {
		return nil
	}
	return q
}

type holdJSON struct {
	Object string `json:"object"`
	ledger.Hold
	Charge *ledger.Charge `json:"charge,omitempty"`
	Quote  *catalog.Quote `json:"quote,omitempty"`
	*opJSON
}

type chargeJSON struct {
	Object string `json:"object"`
	ledger.Charge
	Quote *catalog.Quote `json:"quote,omitempty"`
	*opJSON
}

// pricedRequest is the pricing part of a hold or a charge: an action and
// its parameters priced by the catalog, or explicit credits (admin).
type pricedRequest struct {
	Action   string            `json:"action"`
	Params   map[string]any    `json:"params"`
	Plan     string            `json:"plan"`
	Credits  *amountParam      `json:"credits"`
	Job      string            `json:"job"`
	Metadata map[string]string `json:"metadata"`
}

type holdRequest struct {
	Action     string            `json:"action"`
	Params     map[string]any    `json:"params"`
	Plan       string            `json:"plan"`
	Credits    *amountParam      `json:"credits"`
	Job        string            `json:"job"`
	Metadata   map[string]string `json:"metadata"`
	TTLSeconds *int64            `json:"ttl_seconds"`
}

// price turns a priced request into an amount (reserve when hold is set)
// and a reference, quoting it when it names an action.
func (s *Server) price(r *http.Request, accountID string, req pricedRequest, hold bool) (credit.Amount, ledger.Ref, *catalog.Quote, error) {
	for k := range req.Metadata {
		if strings.HasPrefix(k, mdPrefix) {
			return 0, ledger.Ref{}, nil, errorf(scrip.EInvalidParam, "metadata", "metadata keys starting with %q are reserved", mdPrefix)
		}
	}
	ref := ledger.Ref{Job: req.Job, Metadata: maps.Clone(req.Metadata)}
	credits, explicit := req.Credits.get()
	switch {
	case explicit && req.Action != "":
		return 0, ref, nil, errorf(scrip.EInvalidParam, "credits", "give either action or credits, not both")
	case explicit:
		if err := requireScope(r, auth.ScopeAdmin, "an amount of explicit credits"); err != nil {
			return 0, ref, nil, err
		}
		if len(req.Params) > 0 || req.Plan != "" {
			return 0, ref, nil, errorf(scrip.EInvalidParam, "params", "params and plan apply only with an action")
		}
		return credits, ref, nil, nil
	case req.Action == "":
		return 0, ref, nil, errorf(scrip.EInvalidParam, "action", "action (or, for admin keys, credits) is required")
	}
	plan, err := s.planFor(r.Context(), accountID, req.Plan, false)
	if err != nil {
		return 0, ref, nil, err
	}
	c := s.cfg.Catalog.Current()
	q, err := c.Quote(catalog.QuoteRequest{Action: req.Action, Params: req.Params, Plan: plan})
	if err != nil {
		return 0, ref, nil, paramError(err)
	}
	params, err := json.Marshal(nonNilMap(req.Params))
	if err != nil {
		return 0, ref, nil, errorf(scrip.EInvalidParam, "params", "params: %v", err)
	}
	if ref.Metadata == nil {
		ref.Metadata = map[string]string{}
	}
	ref.Action = q.Action
	ref.Metadata[mdParams] = string(params)
	ref.Metadata[mdVersion] = q.Version
	ref.Metadata[mdCredits] = q.Credits.String()
	ref.Metadata[mdListCredits] = q.ListCredits.String()
	if plan != "" {
		ref.Metadata[mdPlan] = plan
	}
	amt := q.Credits
	if hold {
		amt = q.Reserve
	}
	return amt, ref, &q, nil
}

func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// amountField names the request field an engine amount error is about.
func amountField(err error) error { return renameField(err, "amount", "credits") }

func (s *Server) createHold(w http.ResponseWriter, r *http.Request) error {
	var req holdRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	key, err := idempotencyKey(r, true)
	if err != nil {
		return err
	}
	ttl, err := ttlSeconds("ttl_seconds", req.TTLSeconds)
	if err != nil {
		return err
	}
	fp, err := fingerprint("hold", req)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	amt, ref, q, err := s.price(r, id, pricedRequest{Action: req.Action, Params: req.Params, Plan: req.Plan,
		Credits: req.Credits, Job: req.Job, Metadata: req.Metadata}, true)
	if err != nil {
		return err
	}
	res, err := s.engine.Hold(r.Context(), ledger.HoldRequest{AccountID: id, Key: key, Amount: amt, TTL: ttl, Ref: ref, Fingerprint: fp})
	if err != nil {
		return renameField(amountField(err), "ttl", "ttl_seconds")
	}
	out := holdJSON{Object: "hold", opJSON: newOp(res, 0)}
	if res.Hold != nil {
		out.Hold = *res.Hold
	}
	out.Quote = replayQuote(res, out.Hold.Ref, q)
	writeOp(w, res, out)
	return nil
}

func (s *Server) getHold(w http.ResponseWriter, r *http.Request) error {
	h, err := s.engine.GetHold(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, holdJSON{Object: "hold", Hold: h})
	return nil
}

// listOpenHolds lists an account's open holds, oldest first, in one page:
// they are as many as the account's jobs in flight.
func (s *Server) listOpenHolds(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	hs, err := s.engine.OpenHolds(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	out := listJSON[holdJSON]{Object: "list", Data: make([]holdJSON, len(hs))}
	for i, h := range hs {
		out.Data[i] = holdJSON{Object: "hold", Hold: h}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type captureRequest struct {
	Params    map[string]any    `json:"params"`
	Credits   *amountParam      `json:"credits"`
	AllowOver bool              `json:"allow_over"`
	Metadata  map[string]string `json:"metadata"`
}

func (s *Server) captureHold(w http.ResponseWriter, r *http.Request) error {
	var req captureRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	key, err := idempotencyKey(r, true)
	if err != nil {
		return err
	}
	h, err := s.engine.GetHold(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	stateOf(r).account = h.AccountID
	for k := range req.Metadata {
		if strings.HasPrefix(k, mdPrefix) {
			return errorf(scrip.EInvalidParam, "metadata", "metadata keys starting with %q are reserved", mdPrefix)
		}
	}
	fp, err := fingerprint("capture", req)
	if err != nil {
		return err
	}
	amt, ref, q, err := s.capturePrice(r, h, req)
	if err != nil {
		return err
	}
	res, err := s.engine.Capture(r.Context(), ledger.CaptureRequest{HoldID: h.ID, Key: key, Amount: amt, AllowOver: req.AllowOver, Ref: ref, Fingerprint: fp})
	if err != nil {
		return amountField(err)
	}
	// A capture at zero credits (an unlimited plan) makes no charge; its
	// transaction carries the reference.
	recorded := res.Transaction.Ref
	if res.Charge != nil {
		recorded = res.Charge.Ref
	}
	out := holdJSON{Object: "hold", Charge: res.Charge, Quote: replayQuote(res, recorded, q)}
	used := credit.Amount(0)
	if res.Charge != nil {
		used = res.Charge.Amount - res.Charge.Refunded
	}
	out.opJSON = newOp(res, used)
	if res.Hold != nil {
		out.Hold = *res.Hold
	}
	writeOp(w, res, out)
	return nil
}

// capturePrice decides what a capture charges: explicit credits, the hold's
// action re-priced at the actual parameters (merged over the ones it was
// held with), or, with neither, the price quoted when it was held.
func (s *Server) capturePrice(r *http.Request, h ledger.Hold, req captureRequest) (credit.Amount, *ledger.Ref, *catalog.Quote, error) {
	credits, explicit := req.Credits.get()
	switch {
	case explicit && req.Params != nil:
		return 0, nil, nil, errorf(scrip.EInvalidParam, "credits", "give either params or credits, not both")
	case explicit:
		if req.AllowOver {
			if err := requireScope(r, auth.ScopeAdmin, "capturing explicit credits above the hold"); err != nil {
				return 0, nil, nil, err
			}
		}
		return credits, withMetadata(h.Ref, req.Metadata, nil), nil, nil
	case req.Params == nil:
		if c, ok := h.Ref.Metadata[mdCredits]; ok {
			amt, err := credit.Parse(c)
			if err == nil {
				return amt, withMetadata(h.Ref, req.Metadata, nil), nil, nil
			}
		}
		return h.Amount, withMetadata(h.Ref, req.Metadata, nil), nil, nil
	}
	if h.Ref.Action == "" || h.Ref.Metadata[mdParams] == "" {
		return 0, nil, nil, errorf(scrip.EInvalidParam, "params", "hold %s was not priced by the catalog; capture it with credits", h.ID)
	}
	params := map[string]any{}
	if err := decodeBytes([]byte(h.Ref.Metadata[mdParams]), &params); err != nil {
		return 0, nil, nil, err
	}
	maps.Copy(params, req.Params)
	q, err := s.cfg.Catalog.Current().Quote(catalog.QuoteRequest{Action: h.Ref.Action, Params: params, Plan: h.Ref.Metadata[mdPlan]})
	if err != nil {
		return 0, nil, nil, paramError(err)
	}
	b, err := json.Marshal(params)
	if err != nil {
		return 0, nil, nil, errorf(scrip.EInvalidParam, "params", "params: %v", err)
	}
	ref := withMetadata(h.Ref, req.Metadata, map[string]string{mdParams: string(b), mdVersion: q.Version,
		mdCredits: q.Credits.String(), mdListCredits: q.ListCredits.String()})
	return q.Credits, ref, &q, nil
}

// withMetadata returns a copy of ref with extra metadata merged in.
func withMetadata(ref ledger.Ref, user, server map[string]string) *ledger.Ref {
	if len(user) == 0 && len(server) == 0 {
		return nil
	}
	out := ref
	out.Metadata = maps.Clone(ref.Metadata)
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	maps.Copy(out.Metadata, user)
	maps.Copy(out.Metadata, server)
	return &out
}

type releaseRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) releaseHold(w http.ResponseWriter, r *http.Request) error {
	var req releaseRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	key, err := idempotencyKey(r, true)
	if err != nil {
		return err
	}
	res, err := s.engine.Release(r.Context(), ledger.ReleaseRequest{HoldID: r.PathValue("id"), Key: key, Reason: req.Reason})
	if err != nil {
		return err
	}
	out := holdJSON{Object: "hold", opJSON: newOp(res, 0)}
	if res.Hold != nil {
		out.Hold = *res.Hold
	}
	writeOp(w, res, out)
	return nil
}

func (s *Server) createCharge(w http.ResponseWriter, r *http.Request) error {
	var req pricedRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	key, err := idempotencyKey(r, true)
	if err != nil {
		return err
	}
	fp, err := fingerprint("charge", req)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	amt, ref, q, err := s.price(r, id, req, false)
	if err != nil {
		return err
	}
	res, err := s.engine.Charge(r.Context(), ledger.ChargeRequest{AccountID: id, Key: key, Amount: amt, Ref: ref, Fingerprint: fp})
	if err != nil {
		return amountField(err)
	}
	if res.Charge != nil {
		q = replayQuote(res, res.Charge.Ref, q)
	}
	writeOp(w, res, chargeView(res, q))
	return nil
}

func chargeView(res ledger.Result, q *catalog.Quote) chargeJSON {
	out := chargeJSON{Object: "charge", Quote: q}
	used := credit.Amount(0)
	if res.Charge != nil {
		out.Charge = *res.Charge
		used = res.Charge.Amount - res.Charge.Refunded
	}
	out.opJSON = newOp(res, used)
	return out
}

func (s *Server) getCharge(w http.ResponseWriter, r *http.Request) error {
	c, err := s.engine.GetCharge(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, chargeJSON{Object: "charge", Charge: c})
	return nil
}

type refundRequest struct {
	Credits *amountParam `json:"credits"`
	Reason  string       `json:"reason"`
}

type refundJSON struct {
	Object   string         `json:"object"`
	ID       string         `json:"id"`
	ChargeID string         `json:"charge_id"`
	Amount   credit.Amount  `json:"amount"`
	Reason   string         `json:"reason,omitempty"`
	Charge   *ledger.Charge `json:"charge,omitempty"`
	*opJSON
}

func (s *Server) createRefund(w http.ResponseWriter, r *http.Request) error {
	var req refundRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	key, err := idempotencyKey(r, true)
	if err != nil {
		return err
	}
	amt, given := req.Credits.get()
	if given && amt <= 0 {
		return errorf(scrip.EInvalidAmount, "credits", "credits to refund must be greater than 0; omit it to refund everything")
	}
	res, err := s.engine.Refund(r.Context(), ledger.RefundRequest{ChargeID: r.PathValue("id"), Key: key, Amount: amt, Reason: req.Reason})
	if err != nil {
		return amountField(err)
	}
	used := credit.Amount(0)
	if res.Charge != nil {
		used = res.Charge.Amount - res.Charge.Refunded
	}
	writeOp(w, res, refundJSON{Object: "refund", ID: res.Transaction.ID, ChargeID: res.Transaction.ChargeID,
		Amount: res.Transaction.Amount, Reason: res.Transaction.Reason, Charge: res.Charge, opJSON: newOp(res, used)})
	return nil
}
