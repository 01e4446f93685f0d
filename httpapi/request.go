package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/httpapi/auth"
)

// Bounds on what one request may carry.
const (
	requestBytesMax        = 64 << 10
	idempotencyKeyBytesMax = 255
	pageLimitMax           = 100
	pageLimitDefault       = 20
	estimateStepsMax       = 100
	estimateCountMax       = 10_000
	paramsKeysMax          = 64
	headerIdempotencyKey   = "Idempotency-Key"
)

// state is what the server learns about a request while handling it.
type state struct {
	principal principal
	// account is the account the request acts on, once known.
	account string
	route   string
}

type stateKey struct{}

func stateOf(r *http.Request) *state {
	st, _ := r.Context().Value(stateKey{}).(*state)
	return st
}

func withState(ctx context.Context, st *state) context.Context {
	return context.WithValue(ctx, stateKey{}, st)
}

// principal is who is calling: a secret key or an account token.
type principal struct {
	keyID   string
	name    string // the key's name, as created
	scopes  []auth.Scope
	account string // set for an account token: the one account it may read
}

func (p principal) token() bool { return p.account != "" }

// decode reads a JSON object body into v: unknown fields, trailing data and
// oversize bodies are errors naming what was wrong. An empty body is {}.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, requestBytesMax))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return scrip.Errorf(eBodyTooLarge, "request body exceeds %d bytes", requestBytesMax)
		}
		return scrip.Errorf(eMalformedJSON, "read request body: %v", err)
	}
	return decodeBytes(body, v)
}

// decodeBytes is the body parser proper, separate so it can be fuzzed.
func decodeBytes(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := d.Token(); err != io.EOF {
		return scrip.Errorf(eMalformedJSON, "request body has data after the JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return scrip.Errorf(eMalformedJSON, "malformed JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return scrip.Errorf(eMalformedJSON, "malformed JSON: unexpected end of body")
	case errors.As(err, &te):
		if te.Type == amountType {
			return errorf(scrip.EInvalidAmount, te.Field, "%s: %s", te.Field, te.Value)
		}
		if te.Field == "" {
			return scrip.Errorf(eMalformedJSON, "request body must be a JSON object, got %s", te.Value)
		}
		return errorf(scrip.EInvalidParam, te.Field, "%s must be %s, got %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return errorf(eUnknownField, f, "unknown field %q", f)
	}
	var e *scrip.Error
	if errors.As(err, &e) {
		return e
	}
	return scrip.Errorf(eMalformedJSON, "malformed JSON: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "bool":
		return "a boolean"
	}
	return "a number"
}

// amountParam is a credit amount in a request body. A bad value becomes a
// json.UnmarshalTypeError, which the decoder completes with the field path.
type amountParam credit.Amount

var amountType = reflect.TypeFor[amountParam]()

func (a *amountParam) UnmarshalJSON(b []byte) error {
	var v credit.Amount
	if err := v.UnmarshalJSON(b); err != nil {
		return &json.UnmarshalTypeError{Value: err.Error(), Type: amountType}
	}
	*a = amountParam(v)
	return nil
}

// get returns the amount and whether it was given.
func (a *amountParam) get() (credit.Amount, bool) {
	if a == nil {
		return 0, false
	}
	return credit.Amount(*a), true
}

// idempotencyKey returns the request's Idempotency-Key, or when it has none
// either an error (required) or a fresh key (the operation is then not
// safe to retry).
func idempotencyKey(r *http.Request, required bool) (string, error) {
	k := r.Header.Get(headerIdempotencyKey)
	if len(k) > idempotencyKeyBytesMax {
		return "", errorf(scrip.EInvalid, headerIdempotencyKey, "Idempotency-Key is %d bytes; at most %d", len(k), idempotencyKeyBytesMax)
	}
	if k != "" {
		return k, nil
	}
	if required {
		return "", errorf(eIdempotencyKeyRequired, headerIdempotencyKey, "this call requires an Idempotency-Key header")
	}
	return "auto_" + strconv.FormatInt(time.Now().UnixNano(), 36) + "_" + randomString(8), nil
}

// queryInt reads an optional bounded integer query parameter.
func queryInt(q url.Values, name string, def, lo, hi int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, errorf(scrip.EInvalidParam, name, "%s must be an integer from %d to %d, got %q", name, lo, hi, s)
	}
	return n, nil
}

// queryTime reads an optional RFC 3339 time or unix seconds.
func queryTime(q url.Values, name string) (time.Time, error) {
	s := q.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errorf(scrip.EInvalidParam, name, "%s must be an RFC 3339 time or unix seconds, got %q", name, s)
	}
	return t.UTC(), nil
}

// checkQuery rejects query parameters the route does not know.
func checkQuery(q url.Values, known ...string) error {
	for k := range q {
		ok := false
		for _, n := range known {
			if k == n {
				ok = true
				break
			}
		}
		if !ok {
			return errorf(eUnknownField, k, "unknown query parameter %q", k)
		}
	}
	return nil
}

func urlPathEscape(s string) string { return url.PathEscape(s) }

// ttlSeconds converts an optional ttl in seconds.
func ttlSeconds(field string, n *int64) (time.Duration, error) {
	if n == nil {
		return 0, nil
	}
	if *n <= 0 || *n > int64((365*24*time.Hour)/time.Second) {
		return 0, errorf(scrip.EInvalidParam, field, "%s must be a positive number of seconds, got %d", field, *n)
	}
	return time.Duration(*n) * time.Second, nil
}
