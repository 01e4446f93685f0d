// Package catalog prices AI actions in credits. A catalog is one YAML file per
// platform: actions with parameters and price rules, category defaults,
// plans, credit packs and workflows. It is validated whole when loaded,
// immutable afterwards and identified by a hash of its bytes.
package catalog

import (
	"sync"
	"sync/atomic"

	"github.com/scriphq/scrip/credit"
)

// Catalog is a loaded, validated catalog. It is safe for concurrent use.
type Catalog struct {
	// Version identifies the file's content: "sha256:" and 16 hex digits.
	Version  string
	Name     string
	TopUpURL string

	file       string
	actions    []*Action
	byID       map[string]*Action // ids and aliases
	categories []*Category
	defaults   map[string]string
	plans      []*Plan
	planByCode map[string]*Plan
	packs      []*Pack
	workflows  []*Workflow
}

// Category groups actions for display and for category defaults.
type Category struct {
	ID   string
	Name string
}

// Action is one priced thing a user can do.
type Action struct {
	ID       string
	Name     string
	Category string
	Provider string
	// Speed is the typical time to a result as the platform prints it ("~3s").
	Speed       string
	Description string
	Tags        []string
	Aliases     []string
	Params      []*Param
	// MinPlan is the code of the lowest plan that may use the action; "" for all.
	MinPlan string

	gates   []gate
	price   *rule
	reserve *reserveRule
	slots   map[string]int
	// fixed holds the price of an action whose price depends on nothing.
	fixed   *num
	label   string
	line    int
	hasAuto bool

	labels     sync.Map // credit.Amount -> string
	labelCount atomic.Int64
}

// Param types.
const (
	TypeEnum    = "enum"
	TypeInteger = "integer"
	TypeNumber  = "number"
	TypeBoolean = "boolean"
	TypeString  = "string"
)

// Param is one input of an action.
type Param struct {
	Name        string
	Type        string
	Description string
	Required    bool
	// Auto allows the value "auto" (or omission when there is no default):
	// the size is unknown at submit time and the reserve rule prices it.
	Auto bool
	// Values lists the allowed values of an enum (or of a number with a
	// fixed set), as the catalog spells them.
	Values    []string
	Min, Max  *credit.Amount
	MaxLength int
	// Default is the value used when the caller gives none ("" for none).
	Default string

	kind     kind
	values   []value
	def      *value
	min, max *num
	// boxed holds each finite value as a quote reports it, made once.
	boxed []any
}

// Finite reports whether the parameter has a fixed set of values.
func (p *Param) Finite() bool { return len(p.values) > 0 }

// Price is an amount of money in integer minor units of a currency.
type Price struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Rollover policies.
const (
	RolloverNone      = "none"
	RolloverCapped    = "capped"
	RolloverUnlimited = "unlimited"
)

// Rollover says what happens to unspent subscription credits at cycle end.
type Rollover struct {
	Policy     string        `json:"policy"`
	MaxCarry   credit.Amount `json:"max_carry,omitempty"`
	MaxBalance credit.Amount `json:"max_balance,omitempty"`
}

// Upgrade says what a mid-cycle upgrade to this plan does.
type Upgrade struct {
	CarryUnspent bool   `json:"carry_unspent"`
	Cycle        string `json:"cycle"` // restart | keep
}

// SignupGrant is a one-time grant on subscribing.
type SignupGrant struct {
	Credits       credit.Amount `json:"credits"`
	ExpiresInDays int           `json:"expires_in_days,omitempty"`
}

// Plan is a subscription plan.
type Plan struct {
	Code           string                   `json:"code"`
	Name           string                   `json:"name"`
	Tier           int                      `json:"tier"`
	MonthlyCredits credit.Amount            `json:"monthly_credits"`
	Interval       string                   `json:"interval"` // month | year
	Price          Price                    `json:"price"`
	StripePrice    string                   `json:"stripe_price,omitempty"`
	Features       []string                 `json:"features,omitempty"`
	Unlimited      []string                 `json:"unlimited,omitempty"`
	Discounts      map[string]credit.Amount `json:"discounts,omitempty"` // percent
	Quotas         map[string]int64         `json:"quotas,omitempty"`
	Rollover       Rollover                 `json:"rollover"`
	Upgrade        Upgrade                  `json:"upgrade"`
	GraceDays      int                      `json:"grace_days"`
	SignupGrant    *SignupGrant             `json:"signup_grant,omitempty"`

	unlimited map[string]bool
	line      int
}

// Pack is a one-time credit pack.
type Pack struct {
	Code        string        `json:"code"`
	Name        string        `json:"name"`
	Credits     credit.Amount `json:"credits"`
	Price       Price         `json:"price"`
	StripePrice string        `json:"stripe_price,omitempty"`
}

// Workflow is a named multi-step estimate.
type Workflow struct {
	ID          string
	Name        string
	Description string
	Steps       []Step
}

// Step is one action of an estimate, repeated Count times.
type Step struct {
	Action string         `json:"action"`
	Params map[string]any `json:"params,omitempty"`
	Count  int            `json:"count,omitempty"`
	Label  string         `json:"label,omitempty"`
}

// File is the path or name the catalog was loaded from.
func (c *Catalog) File() string { return c.file }

// Actions returns the actions in catalog order.
func (c *Catalog) Actions() []*Action { return c.actions }

// Action returns the action with the given id or alias.
func (c *Catalog) Action(id string) (*Action, bool) {
	a, ok := c.byID[id]
	return a, ok
}

// Categories returns the categories in display order.
func (c *Catalog) Categories() []*Category { return c.categories }

// CategoryDefaults maps a category to its default action id.
func (c *Catalog) CategoryDefaults() map[string]string {
	m := make(map[string]string, len(c.defaults))
	for k, v := range c.defaults {
		m[k] = v
	}
	return m
}

// Plans returns the plans in tier order.
func (c *Catalog) Plans() []*Plan { return c.plans }

// Plan returns the plan with the given code.
func (c *Catalog) Plan(code string) (*Plan, bool) {
	p, ok := c.planByCode[code]
	return p, ok
}

// Packs returns the credit packs in catalog order.
func (c *Catalog) Packs() []*Pack { return c.packs }

// Pack returns the pack with the given code.
func (c *Catalog) Pack(code string) (*Pack, bool) {
	for _, p := range c.packs {
		if p.Code == code {
			return p, true
		}
	}
	return nil, false
}

// Workflows returns the workflows in catalog order.
func (c *Catalog) Workflows() []*Workflow { return c.workflows }

// Workflow returns the workflow with the given id.
func (c *Catalog) Workflow(id string) (Workflow, bool) {
	for _, w := range c.workflows {
		if w.ID == id {
			return *w, true
		}
	}
	return Workflow{}, false
}

// Param returns the action's parameter by name.
func (a *Action) Param(name string) (*Param, bool) {
	i, ok := a.slots[name]
	if !ok {
		return nil, false
	}
	return a.Params[i], true
}

// Fixed returns the action's list price when it depends on no parameter.
func (a *Action) Fixed() (credit.Amount, bool) {
	if a.fixed == nil {
		return 0, false
	}
	return a.fixed.amount(), true
}
