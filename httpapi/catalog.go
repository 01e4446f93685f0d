package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/credit"
)

// CatalogHolder holds the catalog in use and swaps it atomically on reload.
type CatalogHolder struct {
	load func() (*catalog.Catalog, error)
	cur  atomic.Pointer[catalog.Catalog]
	mu   sync.Mutex // one reload at a time
}

// NewCatalogHolder loads the first catalog with load, which Reload calls
// again later.
func NewCatalogHolder(load func() (*catalog.Catalog, error)) (*CatalogHolder, error) {
	h := &CatalogHolder{load: load}
	c, err := load()
	if err != nil {
		return nil, err
	}
	h.cur.Store(c)
	return h, nil
}

// Current returns the catalog in use.
func (h *CatalogHolder) Current() *catalog.Catalog { return h.cur.Load() }

// Reload loads the catalog again and swaps it in; on any error the old one
// stays in use. It returns the versions before and after.
func (h *CatalogHolder) Reload() (old, cur string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	prev := h.cur.Load()
	c, err := h.load()
	if err != nil {
		return prev.Version, prev.Version, err
	}
	if c == nil {
		return prev.Version, prev.Version, errors.New("catalog loader returned no catalog")
	}
	h.cur.Store(c)
	return prev.Version, c.Version, nil
}

type reloadJSON struct {
	Object          string `json:"object"`
	PreviousVersion string `json:"previous_version"`
	Version         string `json:"version"`
	Changed         bool   `json:"changed"`
}

func (s *Server) reloadCatalog(w http.ResponseWriter, r *http.Request) error {
	if err := decode(w, r, &struct{}{}); err != nil {
		return err
	}
	old, cur, err := s.cfg.Catalog.Reload()
	if err != nil {
		return &scrip.Error{Code: scrip.EInvalid, Message: fmt.Sprintf("catalog not reloaded, still serving %s: %v", old, err)}
	}
	s.log.InfoContext(r.Context(), "catalog reloaded", "previous_version", old, "version", cur)
	writeJSON(w, http.StatusOK, reloadJSON{Object: "catalog_reload", PreviousVersion: old, Version: cur, Changed: old != cur})
	return nil
}

// paramJSON describes one action parameter for a platform's UI.
type paramJSON struct {
	Name        string         `json:"name"`
	Type        string         `json:"type"`
	Description string         `json:"description,omitempty"`
	Required    bool           `json:"required"`
	Auto        bool           `json:"auto,omitempty"`
	Values      []string       `json:"values,omitempty"`
	Min         *credit.Amount `json:"min,omitempty"`
	Max         *credit.Amount `json:"max,omitempty"`
	MaxLength   int            `json:"max_length,omitempty"`
	Default     string         `json:"default,omitempty"`
}

// actionJSON is an action with the price it has at its default parameters.
type actionJSON struct {
	Object      string      `json:"object"`
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Category    string      `json:"category"`
	Provider    string      `json:"provider,omitempty"`
	Speed       string      `json:"speed,omitempty"`
	Description string      `json:"description,omitempty"`
	Tags        []string    `json:"tags,omitempty"`
	Aliases     []string    `json:"aliases,omitempty"`
	MinPlan     string      `json:"min_plan,omitempty"`
	Params      []paramJSON `json:"params"`
	// Credits is the price at default parameters; Fixed says it never
	// depends on parameters.
	Credits *credit.Amount `json:"credits"`
	Fixed   bool           `json:"fixed"`
	Label   string         `json:"label"`
}

func actionView(c *catalog.Catalog, a *catalog.Action) actionJSON {
	v := actionJSON{Object: "action", ID: a.ID, Name: a.Name, Category: a.Category, Provider: a.Provider, Speed: a.Speed,
		Description: a.Description, Tags: a.Tags, Aliases: a.Aliases, MinPlan: a.MinPlan, Params: []paramJSON{}, Label: a.Name}
	for _, p := range a.Params {
		v.Params = append(v.Params, paramJSON{Name: p.Name, Type: p.Type, Description: p.Description, Required: p.Required,
			Auto: p.Auto, Values: p.Values, Min: p.Min, Max: p.Max, MaxLength: p.MaxLength, Default: p.Default})
	}
	if amt, ok := a.Fixed(); ok {
		v.Credits, v.Fixed = &amt, true
	}
	// The list price at default parameters, without plan gates.
	if est, err := c.Estimate([]catalog.Step{{Action: a.ID}}); err == nil && len(est.Lines) == 1 {
		q := est.Lines[0].Quote
		v.Credits, v.Label = &q.Credits, q.Label
	}
	return v
}

type categoryJSON struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	DefaultAction string `json:"default_action,omitempty"`
}

type workflowJSON struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Steps       []catalog.Step `json:"steps"`
	Credits     *credit.Amount `json:"credits,omitempty"`
}

type catalogJSON struct {
	Object           string            `json:"object"`
	Version          string            `json:"version"`
	Name             string            `json:"name"`
	Categories       []categoryJSON    `json:"categories"`
	CategoryDefaults map[string]string `json:"category_defaults"`
	Actions          []actionJSON      `json:"actions"`
	Plans            []*catalog.Plan   `json:"plans"`
	Packs            []*catalog.Pack   `json:"packs"`
	Workflows        []workflowJSON    `json:"workflows"`
}

func catalogView(c *catalog.Catalog) catalogJSON {
	out := catalogJSON{Object: "catalog", Version: c.Version, Name: c.Name, CategoryDefaults: c.CategoryDefaults(),
		Categories: []categoryJSON{}, Actions: []actionJSON{}, Plans: nonNil(c.Plans()), Packs: nonNil(c.Packs()), Workflows: []workflowJSON{}}
	for _, cat := range c.Categories() {
		out.Categories = append(out.Categories, categoryJSON{ID: cat.ID, Name: cat.Name, DefaultAction: out.CategoryDefaults[cat.ID]})
	}
	for _, a := range c.Actions() {
		out.Actions = append(out.Actions, actionView(c, a))
	}
	for _, wf := range c.Workflows() {
		v := workflowJSON{ID: wf.ID, Name: wf.Name, Description: wf.Description, Steps: nonNil(wf.Steps)}
		if est, err := c.Estimate(wf.Steps); err == nil {
			v.Credits = &est.Total
		}
		out.Workflows = append(out.Workflows, v)
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (s *Server) getCatalog(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, catalogView(s.cfg.Catalog.Current()))
	return nil
}

func (s *Server) listActions(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, "category"); err != nil {
		return err
	}
	c := s.cfg.Catalog.Current()
	cat := q.Get("category")
	out := listJSON[actionJSON]{Object: "list", Data: []actionJSON{}}
	for _, a := range c.Actions() {
		if cat == "" || a.Category == cat {
			out.Data = append(out.Data, actionView(c, a))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type quoteRequest struct {
	Action string         `json:"action"`
	Params map[string]any `json:"params"`
	Plan   string         `json:"plan"`
	// AccountID prices under the account's plan when billing knows it.
	AccountID string `json:"account_id"`
}

type quoteJSON struct {
	Object string `json:"object"`
	catalog.Quote
}

// quoteAccount returns the account a quote is for: an account token's own,
// or the one the request names.
func quoteAccount(r *http.Request, named string) (string, error) {
	st := stateOf(r)
	if st.principal.token() {
		if named != "" && named != st.principal.account {
			return "", errorf(scrip.EForbidden, "account_id", "this account token is for another account")
		}
		return st.principal.account, nil
	}
	return named, nil
}

func (s *Server) createQuote(w http.ResponseWriter, r *http.Request) error {
	var req quoteRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	acct, err := quoteAccount(r, req.AccountID)
	if err != nil {
		return err
	}
	if req.Action == "" {
		return errorf(scrip.EInvalidParam, "action", "action is required")
	}
	plan, err := s.planFor(r.Context(), acct, req.Plan, true)
	if err != nil {
		return err
	}
	q, err := s.cfg.Catalog.Current().Quote(catalog.QuoteRequest{Action: req.Action, Params: req.Params, Plan: plan})
	if err != nil {
		return paramError(err)
	}
	writeJSON(w, http.StatusOK, quoteJSON{Object: "quote", Quote: q})
	return nil
}

type estimateRequest struct {
	Workflow  string         `json:"workflow"`
	Steps     []catalog.Step `json:"steps"`
	Plan      string         `json:"plan"`
	AccountID string         `json:"account_id"`
}

type estimateJSON struct {
	Object   string `json:"object"`
	Workflow string `json:"workflow,omitempty"`
	catalog.Estimate
}

func (s *Server) createEstimate(w http.ResponseWriter, r *http.Request) error {
	var req estimateRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	acct, err := quoteAccount(r, req.AccountID)
	if err != nil {
		return err
	}
	c := s.cfg.Catalog.Current()
	steps := req.Steps
	switch {
	case req.Workflow != "" && len(steps) > 0:
		return errorf(scrip.EInvalidParam, "steps", "give either workflow or steps, not both")
	case req.Workflow != "":
		wf, ok := c.Workflow(req.Workflow)
		if !ok {
			return errorf(eWorkflowNotFound, "workflow", "workflow %q not found", req.Workflow)
		}
		steps = wf.Steps
	case len(steps) == 0:
		return errorf(scrip.EInvalidParam, "steps", "give a workflow or at least one step")
	case len(steps) > estimateStepsMax:
		return errorf(scrip.EInvalidParam, "steps", "at most %d steps", estimateStepsMax)
	}
	plan, err := s.planFor(r.Context(), acct, req.Plan, true)
	if err != nil {
		return err
	}
	var est catalog.Estimate
	if plan == "" {
		est, err = c.Estimate(steps)
	} else {
		est, err = c.EstimatePlan(plan, steps)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, estimateJSON{Object: "estimate", Workflow: req.Workflow, Estimate: est})
	return nil
}

// paramError makes a catalog error about a parameter name its place in the
// request body (params.duration).
func paramError(err error) error {
	var e *scrip.Error
	if !errors.As(err, &e) || e.Field == "" {
		return err
	}
	switch e.Field {
	case "action", "plan", "params":
		return err
	}
	c := *e
	c.Field = "params." + e.Field
	return &c
}

// planFor returns the plan to price under. Billing's plan for the account
// wins for anything that moves credits; a preview (a quote) may ask for
// another plan.
func (s *Server) planFor(ctx context.Context, accountID, requested string, preview bool) (string, error) {
	if s.cfg.Billing == nil || accountID == "" || (preview && requested != "") {
		return requested, nil
	}
	p, err := s.cfg.Billing.Plan(ctx, accountID)
	if err != nil {
		return "", fmt.Errorf("plan of %s: %w", accountID, err)
	}
	return p, nil
}
