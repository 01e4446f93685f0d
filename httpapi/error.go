package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/credit"
)

// Codes that only the HTTP layer produces.
const (
	eMalformedJSON          = "malformed_json"
	eUnknownField           = "unknown_field"
	eBodyTooLarge           = "body_too_large"
	eIdempotencyKeyRequired = "idempotency_key_required"
	eMethodNotAllowed       = "method_not_allowed"
	eRouteNotFound          = "route_not_found"
	ePaymentsNotConfigured  = "payments_not_configured"
	eWorkflowNotFound       = "workflow_not_found"
	eBillingNotConfigured   = "billing_not_configured"
	eTokenExpired           = "token_expired"
)

// statusByCode is the one table from error codes to HTTP statuses. A code
// not listed is a 400 when it is an application error and a 500 otherwise.
// quota_exceeded is a 403 like plan_required, not a 429: the plan's quota is
// spent until the period resets or the plan changes, so retrying soon does
// not help.
var statusByCode = map[string]int{
	scrip.EInvalid:             http.StatusBadRequest,
	scrip.EInvalidAmount:       http.StatusBadRequest,
	scrip.EInvalidParam:        http.StatusBadRequest,
	eMalformedJSON:             http.StatusBadRequest,
	eUnknownField:              http.StatusBadRequest,
	eIdempotencyKeyRequired:    http.StatusBadRequest,
	scrip.EUnauthorized:        http.StatusUnauthorized,
	eTokenExpired:              http.StatusUnauthorized,
	scrip.EInsufficientCredits: http.StatusPaymentRequired,
	scrip.EForbidden:           http.StatusForbidden,
	scrip.EPlanRequired:        http.StatusForbidden,
	scrip.EQuotaExceeded:       http.StatusForbidden,
	scrip.ENotFound:            http.StatusNotFound,
	scrip.EAccountNotFound:     http.StatusNotFound,
	scrip.EActionNotFound:      http.StatusNotFound,
	scrip.EHoldNotFound:        http.StatusNotFound,
	scrip.EChargeNotFound:      http.StatusNotFound,
	scrip.EGrantNotFound:       http.StatusNotFound,
	eWorkflowNotFound:          http.StatusNotFound,
	scrip.EPlanNotFound:        http.StatusNotFound,
	eRouteNotFound:             http.StatusNotFound,
	eMethodNotAllowed:          http.StatusMethodNotAllowed,
	scrip.EConflict:            http.StatusConflict,
	scrip.EIdempotencyConflict: http.StatusConflict,
	scrip.EHoldAlreadySettled:  http.StatusConflict,
	scrip.EHoldExpired:         http.StatusConflict,
	eBodyTooLarge:              http.StatusRequestEntityTooLarge,
	scrip.ERateLimited:         http.StatusTooManyRequests,
	scrip.EInternal:            http.StatusInternalServerError,
	scrip.EQueueFull:           http.StatusServiceUnavailable,
	scrip.EUnavailable:         http.StatusServiceUnavailable,
	ePaymentsNotConfigured:     http.StatusServiceUnavailable,
	eBillingNotConfigured:      http.StatusServiceUnavailable,
}

// statusOf returns the HTTP status for an error.
func statusOf(err error) int {
	code := scrip.ErrorCode(err)
	if s, ok := statusByCode[code]; ok {
		return s
	}
	if code == scrip.EInternal {
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// problem is an RFC 9457 problem document with scrip's stable code.
type problem struct {
	Type    string         `json:"type"`
	Title   string         `json:"title"`
	Status  int            `json:"status"`
	Detail  string         `json:"detail,omitempty"`
	Code    string         `json:"code"`
	Field   string         `json:"field,omitempty"`
	Details map[string]any `json:"details,omitempty"`
}

// insufficientCredits is the 402 body, exactly as platforms' clients expect.
type insufficientCredits struct {
	Code      string        `json:"code"`
	Required  credit.Amount `json:"required"`
	Available credit.Amount `json:"available"`
	TopUpURL  string        `json:"top_up_url"`
}

// writeError writes err as a 402 body or a problem document.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := scrip.ErrorCode(err)
	status := statusOf(err)
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.String("code", code), slog.Any("err", err))
	}
	var e *scrip.Error
	errors.As(err, &e)
	if code == scrip.EInsufficientCredits {
		body := insufficientCredits{Code: code, TopUpURL: s.topUpURL(accountOf(r, e))}
		if e != nil {
			body.Required, _ = e.Details["required"].(credit.Amount)
			body.Available, _ = e.Details["available"].(credit.Amount)
		}
		writeJSON(w, http.StatusPaymentRequired, body)
		return
	}
	p := problem{Type: "about:blank", Title: http.StatusText(status), Status: status,
		Detail: scrip.ErrorMessage(err), Code: code}
	if e != nil {
		p.Field = e.Field
		if len(e.Details) > 0 {
			p.Details = e.Details
		}
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(p)
}

// accountOf finds the account an insufficient_credits error is about.
func accountOf(r *http.Request, e *scrip.Error) string {
	if e != nil {
		if id, ok := e.Details["account_id"].(string); ok {
			return id
		}
	}
	if st := stateOf(r); st != nil && st.account != "" {
		return st.account
	}
	return ""
}

func (s *Server) topUpURL(accountID string) string {
	u := s.cfg.TopUpURL
	if u == "" {
		u = s.cfg.Catalog.Current().TopUpURL
	}
	return strings.ReplaceAll(u, "{account_id}", urlPathEscape(accountID))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func errorf(code, field, format string, args ...any) *scrip.Error {
	e := scrip.Errorf(code, format, args...)
	e.Field = field
	return e
}
