package catalog

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/scriphq/scrip/credit"
)

// Line is one step of a quote's breakdown: which rule produced which amount
// from which inputs. Credits is the running amount after the rule applied.
type Line struct {
	Rule    string        `json:"rule"`
	Detail  string        `json:"detail,omitempty"`
	Credits credit.Amount `json:"credits"`
}

// Rule kinds, as the catalog spells them.
const (
	ruleFlat    = "flat"
	ruleTable   = "table"
	rulePer     = "per"
	ruleFormula = "formula"
	ruleSum     = "sum"
)

// rule is a compiled price rule: one base (flat, table, per unit, formula or
// a sum of rules), then multipliers, rounding and bounds, in that order.
type rule struct {
	kind    string
	flat    num
	table   *table
	per     *perRule
	formula *expr
	parts   []*rule
	mults   []multiplier
	round   string
	min     *num
	max     *num
	// dynamic is false when the amount depends on no parameter.
	dynamic bool
}

// table looks an amount up by the values of one or more finite parameters.
type table struct {
	slots  []int
	names  []string
	sizes  []int
	cells  []num
	detail []string
}

// Units a per-unit rule can count. megapixel reads "WIDTHxHEIGHT" values;
// character and word count a string parameter's text, or take a number.
var units = []string{"second", "minute", "character", "word", "token", "megapixel", "image", "frame", "item", "message", "step"}

type perRule struct {
	slot       int
	param      string
	unit       string
	size       num
	rate       num
	roundUnits string
	minUnits   *num
	maxUnits   *num
}

// multiplier scales the amount by a factor chosen by a finite parameter.
type multiplier struct {
	slot    int
	param   string
	factors []num // by domain index; 1 where the catalog names no factor
}

// reserveRule prices what to hold before the final size is known.
type reserveRule struct {
	params  []reserveParam
	credits *num
}

type reserveParam struct {
	slot int
	v    value
}

func (r *rule) eval(env []value, lines *[]Line) (num, error) {
	var amt num
	switch r.kind {
	case ruleFlat:
		amt = r.flat
		addLine(lines, ruleFlat, "per call", amt)
	case ruleTable:
		i := 0
		for k, s := range r.table.slots {
			v := env[s]
			if v.absent || v.idx < 0 {
				return 0, &evalError{param: r.table.names[k], msg: fmt.Sprintf("parameter %s is needed to price this action", r.table.names[k])}
			}
			i = i*r.table.sizes[k] + v.idx
		}
		amt = r.table.cells[i]
		addLine(lines, ruleTable, r.table.detail[i], amt)
	case rulePer:
		var err error
		if amt, err = r.per.eval(env, lines); err != nil {
			return 0, err
		}
	case ruleFormula:
		v, err := r.formula.root.eval(env)
		if err != nil {
			return 0, err
		}
		amt = v.n
		if lines != nil {
			addLine(lines, ruleFormula, r.formula.src+inputs(r.formula, env), amt)
		}
	case ruleSum:
		for _, p := range r.parts {
			x, err := p.eval(env, lines)
			if err != nil {
				return 0, err
			}
			var ok bool
			if amt, ok = amt.add(x); !ok {
				return 0, errOverflow
			}
		}
		addLine(lines, ruleSum, fmt.Sprintf("%d parts", len(r.parts)), amt)
	}
	for _, m := range r.mults {
		v := env[m.slot]
		if v.absent || v.idx < 0 {
			continue
		}
		f := m.factors[v.idx]
		if f == numOne {
			continue
		}
		var ok bool
		if amt, ok = amt.mul(f); !ok {
			return 0, errOverflow
		}
		if lines != nil {
			addLine(lines, "multiply", fmt.Sprintf("%s=%s ×%s", m.param, display(v), f), amt)
		}
	}
	if r.round != roundNone {
		amt = amt.roundTo(r.round)
		addLine(lines, r.round, "", amt)
	}
	if r.min != nil && amt < *r.min {
		amt = *r.min
		addLine(lines, "min", "", amt)
	}
	if r.max != nil && amt > *r.max {
		amt = *r.max
		addLine(lines, "max", "", amt)
	}
	return amt, nil
}

func addLine(lines *[]Line, rule, detail string, amt num) {
	if lines != nil {
		*lines = append(*lines, Line{Rule: rule, Detail: detail, Credits: amt.amount()})
	}
}

func inputs(e *expr, env []value) string {
	if len(e.uses) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(" with ")
	for i, s := range e.uses {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(paramName(e.root, s))
		b.WriteByte('=')
		b.WriteString(display(env[s]))
	}
	return b.String()
}

func paramName(n *node, slot int) string {
	if n.op == opParam && n.slot == slot {
		return n.name
	}
	for _, a := range n.args {
		if s := paramName(a, slot); s != "" {
			return s
		}
	}
	return ""
}

func display(v value) string {
	if v.absent {
		return "absent"
	}
	switch v.k {
	case kindNum:
		return v.n.String()
	case kindBool:
		if v.b {
			return "true"
		}
		return "false"
	}
	return v.s
}

func (p *perRule) quantity(v value) (num, error) {
	switch {
	case v.absent:
		return 0, &evalError{param: p.param, msg: fmt.Sprintf("parameter %s is needed to price this action", p.param)}
	case v.k == kindNum:
		return v.n, nil
	case v.k == kindStr && p.unit == "megapixel":
		mp, ok := megapixels(v.s)
		if !ok {
			return 0, &evalError{param: p.param, msg: fmt.Sprintf("%s: %q is not WIDTHxHEIGHT", p.param, v.s)}
		}
		return mp, nil
	case v.k == kindStr && p.unit == "word":
		return numInt(int64(len(strings.FieldsFunc(v.s, unicode.IsSpace)))), nil
	case v.k == kindStr:
		return numInt(int64(utf8.RuneCountInString(v.s))), nil
	}
	return 0, &evalError{param: p.param, msg: fmt.Sprintf("%s cannot be counted in %ss", p.param, p.unit)}
}

func (p *perRule) eval(env []value, lines *[]Line) (num, error) {
	q, err := p.quantity(env[p.slot])
	if err != nil {
		return 0, err
	}
	raw := q
	if p.minUnits != nil && q < *p.minUnits {
		q = *p.minUnits
	}
	if p.maxUnits != nil && q > *p.maxUnits {
		q = *p.maxUnits
	}
	steps := q
	if p.size != numOne {
		var ok bool
		if steps, ok = q.div(p.size); !ok {
			return 0, errOverflow
		}
	}
	steps = steps.roundTo(p.roundUnits)
	amt, ok := steps.mul(p.rate)
	if !ok {
		return 0, errOverflow
	}
	if lines != nil {
		var b strings.Builder
		fmt.Fprintf(&b, "%s=%s", p.param, raw)
		if q != raw {
			fmt.Fprintf(&b, " (counted as %s)", q)
		}
		if p.size != numOne {
			fmt.Fprintf(&b, ", %s per %s %ss", steps, p.size, p.unit)
		} else {
			fmt.Fprintf(&b, ", %s %ss", steps, p.unit)
		}
		fmt.Fprintf(&b, " × %s", p.rate)
		addLine(lines, rulePer, b.String(), amt)
	}
	return amt, nil
}
