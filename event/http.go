package event

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/ledger"
)

const requestBytesMax = 16 << 10

// API serves the outbox over HTTP for operators. It does no authentication:
// mount it behind the admin scope.
//
//	GET    /v1/events                  ?account_id=&type=&before=&limit=
//	GET    /v1/events/{id}             the event, its deliveries and attempts
//	POST   /v1/events/{id}/retry       make its failed deliveries pending again
//	GET    /v1/event-endpoints
//	POST   /v1/event-endpoints         {"url", "secret", "types"}
//	DELETE /v1/event-endpoints/{id}    disable
type API struct {
	Store Store
	Clock ledger.Clock
}

// Handlers returns the API's handlers by ServeMux pattern. Each returns its
// error (a *scrip.Error for a bad request or a missing event) for the
// server mounting it to answer in its own error format.
func (a *API) Handlers() map[string]func(http.ResponseWriter, *http.Request) error {
	return map[string]func(http.ResponseWriter, *http.Request) error{
		"GET /v1/events":                  a.list,
		"GET /v1/events/{id}":             a.show,
		"POST /v1/events/{id}/retry":      a.retry,
		"GET /v1/event-endpoints":         a.endpoints,
		"POST /v1/event-endpoints":        a.addEndpoint,
		"DELETE /v1/event-endpoints/{id}": a.disableEndpoint,
	}
}

// Routes returns the API's handlers by ServeMux pattern, answering errors
// as {"code", "detail"}.
func (a *API) Routes() map[string]http.HandlerFunc {
	out := map[string]http.HandlerFunc{}
	for p, h := range a.Handlers() {
		out[p] = a.wrap(h)
	}
	return out
}

// ServeHTTP serves the routes on a ServeMux of their own.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mux := http.NewServeMux()
	for p, h := range a.Routes() {
		mux.Handle(p, h)
	}
	mux.ServeHTTP(w, r)
}

func (a *API) now() time.Time {
	if a.Clock == nil {
		return time.Now().UTC()
	}
	return a.Clock.Now().UTC()
}

func (a *API) wrap(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			status := http.StatusInternalServerError
			switch scrip.ErrorCode(err) {
			case scrip.ENotFound:
				status = http.StatusNotFound
			case scrip.EInvalid, scrip.EInvalidParam:
				status = http.StatusBadRequest
			}
			writeJSON(w, status, map[string]string{"code": scrip.ErrorCode(err), "detail": scrip.ErrorMessage(err)})
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (a *API) list(w http.ResponseWriter, r *http.Request) error {
	q := Query{AccountID: r.URL.Query().Get("account_id"), Type: r.URL.Query().Get("type")}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return &scrip.Error{Code: scrip.EInvalidParam, Field: "limit", Message: "limit must be an integer"}
		}
		q.Limit = n
	}
	if v := r.URL.Query().Get("before"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return &scrip.Error{Code: scrip.EInvalidParam, Field: "before", Message: "before must be an RFC 3339 time"}
		}
		q.Before = t
	}
	if id := r.URL.Query().Get("starting_after"); id != "" {
		if !q.Before.IsZero() {
			return &scrip.Error{Code: scrip.EInvalidParam, Field: "starting_after", Message: "give starting_after or before, not both"}
		}
		e, err := a.Store.Event(r.Context(), id)
		if errors.Is(err, ErrNotFound) {
			return &scrip.Error{Code: scrip.EInvalidParam, Field: "starting_after", Message: fmt.Sprintf("no event %q", id)}
		}
		if err != nil {
			return err
		}
		q.Before, q.BeforeID = e.CreatedAt, e.ID
	}
	if err := q.Check(); err != nil {
		return err
	}
	// One more than the page tells whether another follows.
	limit := q.Limit
	q.Limit++
	evs, err := a.Store.Events(r.Context(), q)
	if err != nil {
		return err
	}
	more := len(evs) > limit
	if more {
		evs = evs[:limit]
	}
	page := map[string]any{"object": "list", "data": evs, "has_more": more}
	if evs == nil {
		page["data"] = []Event{}
	}
	if more {
		page["next_cursor"] = evs[len(evs)-1].ID
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// Detail is an event with its deliveries and attempts.
type Detail struct {
	Event
	Deliveries []Delivery `json:"deliveries"`
	Attempts   []Attempt  `json:"attempts"`
}

// Show returns an event with its deliveries and attempts.
func Show(ctx context.Context, s Store, id string) (Detail, error) {
	e, err := s.Event(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Detail{}, scrip.Errorf(scrip.ENotFound, "event %q not found", id)
	}
	if err != nil {
		return Detail{}, err
	}
	d := Detail{Event: e, Deliveries: []Delivery{}, Attempts: []Attempt{}}
	if ds, err := s.Deliveries(ctx, id); err != nil {
		return Detail{}, err
	} else if ds != nil {
		d.Deliveries = ds
	}
	if as, err := s.Attempts(ctx, id); err != nil {
		return Detail{}, err
	} else if as != nil {
		d.Attempts = as
	}
	return d, nil
}

func (a *API) show(w http.ResponseWriter, r *http.Request) error {
	d, err := Show(r.Context(), a.Store, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (a *API) retry(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	ds, err := a.Store.Deliveries(r.Context(), id)
	if err != nil {
		return err
	}
	n := 0
	for _, d := range ds {
		if d.Status != Delivered {
			if err := a.Store.Retry(r.Context(), id, d.EndpointID, a.now()); err != nil {
				return err
			}
			n++
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"event_id": id, "retried": n})
	return nil
}

func (a *API) endpoints(w http.ResponseWriter, r *http.Request) error {
	eps, err := a.Store.Endpoints(r.Context())
	if err != nil {
		return err
	}
	if eps == nil {
		eps = []Endpoint{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": eps})
	return nil
}

type endpointRequest struct {
	URL    string   `json:"url"`
	Secret string   `json:"secret"`
	Types  []string `json:"types"`
}

func (a *API) addEndpoint(w http.ResponseWriter, r *http.Request) error {
	var req endpointRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, requestBytesMax))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return &scrip.Error{Code: scrip.EInvalid, Message: fmt.Sprintf("malformed endpoint JSON: %v", err)}
	}
	ep, err := AddEndpoint(r.Context(), a.Store, req.URL, req.Secret, req.Types, a.now())
	if err != nil {
		return err
	}
	// The secret is shown once, when the endpoint is created.
	writeJSON(w, http.StatusCreated, struct {
		Endpoint
		Secret string `json:"secret"`
	}{ep, ep.Secret})
	return nil
}

func (a *API) disableEndpoint(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := a.Store.DisableEndpoint(r.Context(), id); errors.Is(err, ErrNotFound) {
		return scrip.Errorf(scrip.ENotFound, "endpoint %q not found", id)
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "disabled": true})
	return nil
}

// Check validates and bounds a query.
func (q *Query) Check() error {
	switch {
	case q.Limit == 0:
		q.Limit = listLimitDefault
	case q.Limit < 0 || q.Limit > listLimitMax:
		return &scrip.Error{Code: scrip.EInvalidParam, Field: "limit", Message: fmt.Sprintf("limit must be 1 to %d", listLimitMax)}
	}
	return nil
}

// AddEndpoint registers an endpoint; an empty secret gets a random one.
func AddEndpoint(ctx context.Context, s Store, url, secret string, types []string, now time.Time) (Endpoint, error) {
	if secret == "" {
		b := make([]byte, 24)
		rand.Read(b)
		secret = "whsec_" + hex.EncodeToString(b)
	}
	b := make([]byte, 8)
	rand.Read(b)
	ep := Endpoint{ID: "ep_" + hex.EncodeToString(b), URL: url, Secret: secret, Types: types, CreatedAt: now.UTC().Truncate(time.Microsecond)}
	if err := ep.Check(); err != nil {
		return Endpoint{}, err
	}
	eps, err := s.Endpoints(ctx)
	if err != nil {
		return Endpoint{}, err
	}
	if len(eps) >= endpointsMax {
		return Endpoint{}, &scrip.Error{Code: scrip.EInvalid, Message: fmt.Sprintf("at most %d endpoints may be registered", endpointsMax)}
	}
	if err := s.CreateEndpoint(ctx, ep); err != nil {
		return Endpoint{}, err
	}
	return ep, nil
}
