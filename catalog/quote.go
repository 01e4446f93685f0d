package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/credit"
)

// Bounds on quote and estimate inputs.
const (
	paramsMax     = 64
	stepsMax      = 100
	stepCountMax  = 10_000
	suggestionMax = 3
	nameBytesMax  = 256
)

// QuoteRequest asks the price of one action.
type QuoteRequest struct {
	// Action is an action id or alias, or a category name meaning that
	// category's default action.
	Action string
	// Params values may be string, bool, float64 or json.Number (from JSON),
	// int, int64 or credit.Amount.
	Params map[string]any
	// Plan is the caller's plan code; "" means no plan.
	Plan string
}

// Quote is the price of one action with given parameters under a plan.
type Quote struct {
	Action   string `json:"action"`
	Name     string `json:"name"`
	Category string `json:"category"`
	Plan     string `json:"plan,omitempty"`
	// Credits is what to charge.
	Credits credit.Amount `json:"credits"`
	// Reserve is what to hold at submit time; never less than Credits.
	Reserve credit.Amount `json:"reserve"`
	// ListCredits is the price before plan overrides, so usage that a plan
	// makes free is still recorded at its worth.
	ListCredits credit.Amount `json:"list_credits"`
	// Unlimited is set when the plan makes this action free.
	Unlimited bool           `json:"unlimited,omitempty"`
	Breakdown []Line         `json:"breakdown"`
	Label     string         `json:"label"`
	Version   string         `json:"version"`
	Params    map[string]any `json:"params"`
}

type quoteOpts struct {
	ignoreGates bool
	noBreakdown bool
}

// Quote prices one action. Errors are *scrip.Error with code
// action_not_found (Details "suggestions"), invalid_param (Field set) or
// plan_required (Details "plan": the lowest plan code that allows it).
func (c *Catalog) Quote(req QuoteRequest) (Quote, error) {
	return c.quote(req, quoteOpts{})
}

func (c *Catalog) resolveAction(id string) (*Action, error) {
	if a, ok := c.byID[id]; ok {
		return a, nil
	}
	if def, ok := c.defaults[id]; ok {
		return c.byID[def], nil
	}
	sug := c.suggest(id)
	msg := fmt.Sprintf("action %q not found", clip(id))
	if len(sug) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", sug[0])
	}
	return nil, &scrip.Error{Code: scrip.EActionNotFound, Message: msg, Field: "action", Details: map[string]any{"suggestions": sug}}
}

func (c *Catalog) quote(req QuoteRequest, o quoteOpts) (Quote, error) {
	a, err := c.resolveAction(req.Action)
	if err != nil {
		return Quote{}, err
	}
	var plan *Plan
	if req.Plan != "" {
		p, ok := c.planByCode[req.Plan]
		if !ok {
			return Quote{}, &scrip.Error{Code: scrip.EInvalidParam, Field: "plan",
				Message: fmt.Sprintf("plan %q not found (want %s)", clip(req.Plan), c.planCodes())}
		}
		plan = p
	}
	if len(req.Params) > paramsMax {
		return Quote{}, &scrip.Error{Code: scrip.EInvalidParam, Field: "params", Message: fmt.Sprintf("more than %d parameters", paramsMax)}
	}
	for k := range req.Params {
		if _, ok := a.slots[k]; !ok {
			return Quote{}, &scrip.Error{Code: scrip.EInvalidParam, Field: clip(k),
				Message: fmt.Sprintf("%s has no parameter %q (want %s)", a.ID, clip(k), a.paramNames())}
		}
	}
	var buf [8]value
	env := buf[:0]
	if len(a.Params) > len(buf) {
		env = make([]value, 0, len(a.Params))
	}
	auto := false
	for _, p := range a.Params {
		raw, given := req.Params[p.Name]
		v, err := p.resolve(raw, given && raw != nil)
		if err != nil {
			return Quote{}, err
		}
		if v.k == kindNone && p.Auto {
			auto = true
		}
		env = append(env, v)
	}
	q := Quote{Action: a.ID, Name: a.Name, Category: a.Category, Version: c.Version, Params: a.output(env)}
	if plan != nil {
		q.Plan = plan.Code
	}
	if auto {
		// The final size is unknown: price (and gate) it at the size the
		// reserve rule names, the largest it can come out.
		for _, rp := range a.reserve.params {
			if env[rp.slot].k == kindNone {
				env[rp.slot] = rp.v
			}
		}
	}
	if !o.ignoreGates {
		if err := c.checkGates(a, plan, env); err != nil {
			return Quote{}, err
		}
	}
	var lines *[]Line
	if !o.noBreakdown {
		q.Breakdown = make([]Line, 0, 2)
		lines = &q.Breakdown
		if auto {
			addLine(lines, "reserve", "auto size priced at "+a.reserve.describe(a), 0)
		}
	}
	amt, err := a.price.eval(env, lines)
	if err != nil {
		return Quote{}, evalToError(a, err)
	}
	if amt < 0 {
		return Quote{}, scrip.Errorf(scrip.EInvalid, "price of %s came out negative (%s)", a.ID, amt)
	}
	reserve := amt
	if a.reserve != nil && a.reserve.credits != nil && *a.reserve.credits > reserve {
		reserve = *a.reserve.credits
		addLine(lines, "reserve", "hold at least "+reserve.String(), reserve)
	}
	q.ListCredits = amt.amount()
	if plan != nil {
		if plan.unlimited[a.ID] || plan.unlimited[a.Category] {
			amt, reserve, q.Unlimited = 0, 0, true
			addLine(lines, "plan", "unlimited on "+plan.Name, 0)
		} else if pct, ok := plan.discount(a); ok {
			amt, reserve = discount(amt, pct), discount(reserve, pct)
			addLine(lines, "plan", fmt.Sprintf("%s%% off on %s", pct, plan.Name), amt)
		}
	}
	q.Credits, q.Reserve = amt.amount(), reserve.amount()
	if !auto && q.Credits == a.fixedCredits() && a.label != "" {
		q.Label = a.label
	} else {
		q.Label = a.cachedLabel(q.Credits)
	}
	return q, nil
}

// labelCacheMax bounds the labels remembered per action: a UI re-quotes the
// same few prices on every slider move.
const labelCacheMax = 256

func (a *Action) cachedLabel(amt credit.Amount) string {
	if l, ok := a.labels.Load(amt); ok {
		return l.(string)
	}
	l := label(a.Name, amt)
	if a.labelCount.Add(1) <= labelCacheMax {
		a.labels.Store(amt, l)
	}
	return l
}

func (a *Action) fixedCredits() credit.Amount {
	if a.fixed == nil {
		return -1
	}
	return a.fixed.amount()
}

func label(name string, amt credit.Amount) string {
	if amt == credit.Credits(1) {
		return name + " (1 credit)"
	}
	return name + " (" + amt.String() + " credits)"
}

func discount(amt num, pct num) num {
	f, ok := (numInt(100) - pct).div(numInt(100))
	if !ok {
		return amt
	}
	r, ok := amt.mul(f)
	if !ok {
		return amt
	}
	return r
}

func (p *Plan) discount(a *Action) (num, bool) {
	if d, ok := p.Discounts[a.ID]; ok {
		return num(d), true
	}
	if d, ok := p.Discounts[a.Category]; ok {
		return num(d), true
	}
	return 0, false
}

func (r *reserveRule) describe(a *Action) string {
	parts := make([]string, 0, len(r.params))
	for _, rp := range r.params {
		parts = append(parts, a.Params[rp.slot].Name+"="+display(rp.v))
	}
	return strings.Join(parts, ", ")
}

func evalToError(a *Action, err error) error {
	var ee *evalError
	if errors.As(err, &ee) {
		e := &scrip.Error{Code: scrip.EInvalidParam, Message: fmt.Sprintf("%s: %s", a.ID, ee.msg), Field: ee.param}
		return e
	}
	return err
}

func (c *Catalog) checkGates(a *Action, plan *Plan, env []value) error {
	need, why := a.MinPlan, ""
	for _, g := range a.gates {
		v, err := g.when.root.eval(env)
		if err != nil {
			var ee *evalError
			if errors.As(err, &ee) && ee.param != "" {
				continue // a gate on an absent optional parameter does not apply
			}
			return evalToError(a, err)
		}
		if v.b && (need == "" || c.planByCode[g.minPlan].Tier > c.planByCode[need].Tier) {
			need, why = g.minPlan, g.when.src
		}
	}
	if need == "" {
		return nil
	}
	min := c.planByCode[need]
	if plan != nil && plan.Tier >= min.Tier {
		return nil
	}
	msg := fmt.Sprintf("%s needs the %s plan or higher", a.ID, min.Name)
	if why != "" {
		msg = fmt.Sprintf("%s with %s needs the %s plan or higher", a.ID, why, min.Name)
	}
	return &scrip.Error{Code: scrip.EPlanRequired, Message: msg, Details: map[string]any{"plan": min.Code}}
}

func (c *Catalog) planCodes() string {
	codes := make([]string, len(c.plans))
	for i, p := range c.plans {
		codes[i] = p.Code
	}
	if len(codes) == 0 {
		return "no plan: this catalog defines none"
	}
	return strings.Join(codes, ", ")
}

func (a *Action) paramNames() string {
	if len(a.Params) == 0 {
		return "none"
	}
	names := make([]string, len(a.Params))
	for i, p := range a.Params {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

// output lists the resolved parameters for the quote.
func (a *Action) output(env []value) map[string]any {
	if len(env) == 0 {
		return map[string]any{}
	}
	m := make(map[string]any, len(env))
	for i, v := range env {
		p := a.Params[i]
		switch {
		case v.absent:
			continue
		case v.k == kindNone:
			m[p.Name] = "auto"
		case v.idx >= 0 && v.idx < len(p.boxed):
			m[p.Name] = p.boxed[v.idx]
		case v.k == kindBool:
			m[p.Name] = v.b
		case v.k == kindNum:
			m[p.Name] = json.Number(v.n.String())
		default:
			m[p.Name] = v.s
		}
	}
	return m
}

func clip(s string) string {
	if len(s) > nameBytesMax {
		return s[:nameBytesMax] + "…"
	}
	return s
}

func (p *Param) invalid(format string, args ...any) error {
	return &scrip.Error{Code: scrip.EInvalidParam, Field: p.Name, Message: "parameter " + p.Name + ": " + fmt.Sprintf(format, args...)}
}

// Allowed describes the values the parameter accepts.
func (p *Param) Allowed() string {
	var s string
	switch {
	case len(p.Values) > 0:
		s = "one of " + strings.Join(p.Values, ", ")
	case p.min != nil && p.max != nil:
		s = fmt.Sprintf("a %s from %s to %s", p.Type, p.min, p.max)
	case p.min != nil:
		s = fmt.Sprintf("a %s of at least %s", p.Type, p.min)
	case p.max != nil:
		s = fmt.Sprintf("a %s of at most %s", p.Type, p.max)
	case p.Type == TypeString && p.MaxLength > 0:
		s = fmt.Sprintf("a string of at most %d characters", p.MaxLength)
	default:
		s = "a " + p.Type
	}
	if p.Auto {
		s += ", or auto"
	}
	return s
}

// resolve turns a caller's value (or its absence) into a checked value.
func (p *Param) resolve(raw any, given bool) (value, error) {
	if !given {
		switch {
		case p.def != nil:
			return *p.def, nil
		case p.Auto:
			return value{idx: -1}, nil
		case p.Required:
			return value{}, p.invalid("required (want %s)", p.Allowed())
		}
		return value{absent: true, idx: -1, k: p.kind}, nil
	}
	if s, ok := raw.(string); ok && p.Auto && s == "auto" {
		return value{idx: -1}, nil
	}
	v, err := p.convert(raw)
	if err != nil {
		return value{}, err
	}
	return p.check(v)
}

// convert reads raw as the parameter's kind.
func (p *Param) convert(raw any) (value, error) {
	switch p.kind {
	case kindBool:
		switch x := raw.(type) {
		case bool:
			return value{k: kindBool, b: x, idx: boolIdx(x)}, nil
		case string:
			if b, err := strconv.ParseBool(x); err == nil && (x == "true" || x == "false") {
				return value{k: kindBool, b: b, idx: boolIdx(b)}, nil
			}
		}
		return value{}, p.invalid("%s is not a boolean (want true or false)", describeRaw(raw))
	case kindNum:
		n, ok := toNum(raw)
		if !ok {
			return value{}, p.invalid("%s is not a number (want %s)", describeRaw(raw), p.Allowed())
		}
		if p.Type == TypeInteger && n%numOne != 0 {
			return value{}, p.invalid("%s is not a whole number (want %s)", n, p.Allowed())
		}
		return value{k: kindNum, n: n, idx: -1}, nil
	default:
		switch x := raw.(type) {
		case string:
			return value{k: kindStr, s: x, idx: -1}, nil
		case json.Number:
			return value{k: kindStr, s: string(x), idx: -1}, nil
		case int:
			return value{k: kindStr, s: strconv.Itoa(x), idx: -1}, nil
		case float64:
			return value{k: kindStr, s: strconv.FormatFloat(x, 'f', -1, 64), idx: -1}, nil
		}
		return value{}, p.invalid("%s is not a string (want %s)", describeRaw(raw), p.Allowed())
	}
}

func boolIdx(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (p *Param) check(v value) (value, error) {
	if len(p.values) > 0 {
		for i, a := range p.values {
			if a.k == v.k && a.n == v.n && a.s == v.s && a.b == v.b {
				return p.values[i], nil
			}
		}
		if p.kind == kindStr {
			return value{}, p.invalid("%q is not allowed (want %s)", clip(v.s), p.Allowed())
		}
		return value{}, p.invalid("%s is not allowed (want %s)", display(v), p.Allowed())
	}
	if v.k == kindNum {
		if (p.min != nil && v.n < *p.min) || (p.max != nil && v.n > *p.max) {
			return value{}, p.invalid("%s is out of range (want %s)", v.n, p.Allowed())
		}
	}
	if v.k == kindStr && p.MaxLength > 0 && len([]rune(v.s)) > p.MaxLength {
		return value{}, p.invalid("longer than %d characters", p.MaxLength)
	}
	return v, nil
}

func describeRaw(raw any) string {
	switch x := raw.(type) {
	case string:
		return strconv.Quote(clip(x))
	case nil:
		return "null"
	}
	return clip(fmt.Sprint(raw))
}

// toNum converts a caller's number exactly; float64 goes through its
// shortest decimal form, so 0.1 stays 0.1.
func toNum(raw any) (num, bool) {
	var s string
	switch x := raw.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, false
		}
		if x == math.Trunc(x) && math.Abs(x) < 1e12 {
			return numInt(int64(x)), true
		}
		s = strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		s = strconv.FormatFloat(float64(x), 'g', -1, 32)
	case json.Number:
		s = string(x)
	case string:
		s = x
	case int:
		return mulScale(int64(x))
	case int64:
		return mulScale(x)
	case int32:
		return mulScale(int64(x))
	case uint32:
		return mulScale(int64(x))
	case credit.Amount:
		return num(x), true
	default:
		return 0, false
	}
	if len(s) > 64 {
		return 0, false
	}
	n, err := parseNum(s)
	return n, err == nil
}

func mulScale(n int64) (num, bool) {
	if n > math.MaxInt64/credit.Scale || n < math.MinInt64/credit.Scale {
		return 0, false
	}
	return numInt(n), true
}

// suggest returns the ids nearest to a mistyped one.
func (c *Catalog) suggest(id string) []string {
	id = strings.ToLower(clip(id))
	type cand struct {
		s string
		d int
	}
	var cs []cand
	limit := max(2, len(id)/3)
	seen := map[string]bool{}
	consider := func(s string) {
		if seen[s] {
			return
		}
		seen[s] = true
		d := levenshtein(id, strings.ToLower(s))
		if d <= limit || (len(id) >= 4 && strings.Contains(strings.ToLower(s), id)) {
			cs = append(cs, cand{s, d})
		}
	}
	for _, a := range c.actions {
		consider(a.ID)
	}
	for cat := range c.defaults {
		consider(cat)
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if a.d != b.d {
			return a.d - b.d
		}
		return strings.Compare(a.s, b.s)
	})
	out := []string{}
	for i := 0; i < len(cs) && i < suggestionMax; i++ {
		out = append(out, cs[i].s)
	}
	return out
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// Estimate prices a list of steps at list prices, without plan gates: it
// answers "what would this cost", not "may I run it".
func (c *Catalog) Estimate(steps []Step) (Estimate, error) {
	return c.estimate(steps, "", quoteOpts{ignoreGates: true})
}

// EstimatePlan prices the steps under a plan, with its gates and overrides.
func (c *Catalog) EstimatePlan(plan string, steps []Step) (Estimate, error) {
	return c.estimate(steps, plan, quoteOpts{})
}

// Estimate is the price of a multi-step job.
type Estimate struct {
	Lines   []EstimateLine `json:"lines"`
	Total   credit.Amount  `json:"total"`
	Reserve credit.Amount  `json:"reserve"`
	Version string         `json:"version"`
}

// EstimateLine is one step of an estimate.
type EstimateLine struct {
	Label   string        `json:"label"`
	Action  string        `json:"action"`
	Name    string        `json:"name"`
	Count   int           `json:"count"`
	Unit    credit.Amount `json:"unit"`
	Credits credit.Amount `json:"credits"`
	Reserve credit.Amount `json:"reserve"`
	Quote   Quote         `json:"-"`
}

func (c *Catalog) estimate(steps []Step, plan string, o quoteOpts) (Estimate, error) {
	if len(steps) > stepsMax {
		return Estimate{}, scrip.Errorf(scrip.EInvalid, "more than %d steps", stepsMax)
	}
	est := Estimate{Version: c.Version, Lines: make([]EstimateLine, 0, len(steps))}
	for i, s := range steps {
		n := s.Count
		if n == 0 {
			n = 1
		}
		if n < 0 || n > stepCountMax {
			return Estimate{}, &scrip.Error{Code: scrip.EInvalid, Field: fmt.Sprintf("steps[%d].count", i), Message: fmt.Sprintf("step %d: count %d out of range (want 1 to %d)", i+1, s.Count, stepCountMax)}
		}
		q, err := c.quote(QuoteRequest{Action: s.Action, Params: s.Params, Plan: plan}, o)
		if err != nil {
			var e *scrip.Error
			if errors.As(err, &e) {
				cp := *e
				cp.Message = fmt.Sprintf("step %d: %s", i+1, e.Message)
				return Estimate{}, &cp
			}
			return Estimate{}, err
		}
		total, err1 := q.Credits.MulInt(int64(n))
		res, err2 := q.Reserve.MulInt(int64(n))
		if err1 != nil || err2 != nil {
			return Estimate{}, scrip.Errorf(scrip.EInvalid, "step %d: total out of range", i+1)
		}
		lbl := s.Label
		if lbl == "" {
			lbl = q.Name
		}
		est.Lines = append(est.Lines, EstimateLine{Label: lbl, Action: q.Action, Name: q.Name, Count: n, Unit: q.Credits, Credits: total, Reserve: res, Quote: q})
		var e1, e2 error
		if est.Total, e1 = est.Total.Add(total); e1 == nil {
			est.Reserve, e2 = est.Reserve.Add(res)
		}
		if e1 != nil || e2 != nil {
			return Estimate{}, scrip.Errorf(scrip.EInvalid, "estimate total out of range")
		}
	}
	return est, nil
}
