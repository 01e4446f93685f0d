package catalog

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The formula language: decimal numbers, "strings", true/false, parameter
// names, + - * / (exact decimals), comparisons, && || !, and the functions
// round ceil floor min max abs if megapixels len. Expressions are parsed and
// type-checked once when the catalog loads; evaluation allocates nothing.

// Limits on expression source so a hostile catalog cannot exhaust the loader.
const (
	exprBytesMax = 4096
	exprDepthMax = 64
)

type kind uint8

const (
	kindNone kind = iota
	kindNum
	kindStr
	kindBool
)

func (k kind) String() string {
	switch k {
	case kindNum:
		return "number"
	case kindStr:
		return "string"
	case kindBool:
		return "boolean"
	}
	return "nothing"
}

// value is one parameter or expression value.
type value struct {
	k kind
	n num
	s string
	b bool
	// idx is the position in the parameter's finite domain, -1 if none.
	idx int
	// absent marks an optional parameter the caller did not give.
	absent bool
}

type op uint8

const (
	opConst op = iota
	opParam
	opNeg
	opNot
	opAdd
	opSub
	opMul
	opDiv
	opEq
	opNe
	opLt
	opLe
	opGt
	opGe
	opAnd
	opOr
	opRound
	opCeil
	opFloor
	opMin
	opMax
	opAbs
	opIf
	opMegapixels
	opLen
)

type node struct {
	op   op
	k    kind
	c    value
	slot int
	name string
	args []*node
}

// exprVar describes a name an expression may use.
type exprVar struct {
	slot int
	k    kind
}

// expr is a compiled expression.
type expr struct {
	src  string
	root *node
	// uses lists the parameter slots the expression reads, for breakdowns.
	uses []int
}

// evalError is a failure while evaluating: a missing parameter or an
// arithmetic overflow or division by zero.
type evalError struct {
	param string
	msg   string
}

func (e *evalError) Error() string { return e.msg }

// compileExpr parses src and checks its types against vars.
func compileExpr(src string, vars map[string]exprVar, want kind) (*expr, error) {
	if len(src) > exprBytesMax {
		return nil, fmt.Errorf("expression longer than %d bytes", exprBytesMax)
	}
	p := &parser{src: src, vars: vars}
	p.next()
	n, err := p.parseOr(0)
	if p.err != nil {
		return nil, p.err
	}
	if err != nil {
		return nil, err
	}
	if p.tok.t != tEOF {
		return nil, p.errf("unexpected %s", p.tok)
	}
	if want != kindNone && n.k != want {
		return nil, fmt.Errorf("expression is a %s, want a %s", n.k, want)
	}
	e := &expr{src: src, root: n}
	seen := map[int]bool{}
	var walk func(*node)
	walk = func(n *node) {
		if n.op == opParam && !seen[n.slot] {
			seen[n.slot] = true
			e.uses = append(e.uses, n.slot)
		}
		for _, a := range n.args {
			walk(a)
		}
	}
	walk(n)
	return e, nil
}

type tokType uint8

const (
	tEOF tokType = iota
	tNum
	tStr
	tIdent
	tOp
)

type token struct {
	t   tokType
	s   string
	pos int
}

func (t token) String() string {
	switch t.t {
	case tEOF:
		return "end of expression"
	case tStr:
		return strconv.Quote(t.s)
	}
	return fmt.Sprintf("%q", t.s)
}

type parser struct {
	src  string
	pos  int
	tok  token
	err  error
	vars map[string]exprVar
}

func (p *parser) errf(format string, args ...any) error {
	return fmt.Errorf("at column %d: %s", p.tok.pos+1, fmt.Sprintf(format, args...))
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (p *parser) next() {
	if p.err != nil {
		p.tok = token{t: tEOF, pos: p.pos}
		return
	}
	for p.pos < len(p.src) && strings.IndexByte(" \t\r\n", p.src[p.pos]) >= 0 {
		p.pos++
	}
	start := p.pos
	if p.pos >= len(p.src) {
		p.tok = token{t: tEOF, pos: start}
		return
	}
	c := p.src[p.pos]
	switch {
	case isDigit(c) || (c == '.' && p.pos+1 < len(p.src) && isDigit(p.src[p.pos+1])):
		for p.pos < len(p.src) && (isDigit(p.src[p.pos]) || p.src[p.pos] == '.') {
			p.pos++
		}
		p.tok = token{t: tNum, s: p.src[start:p.pos], pos: start}
	case isIdentStart(c):
		for p.pos < len(p.src) && (isIdentStart(p.src[p.pos]) || isDigit(p.src[p.pos])) {
			p.pos++
		}
		p.tok = token{t: tIdent, s: p.src[start:p.pos], pos: start}
	case c == '"' || c == '\'':
		end := strings.IndexByte(p.src[p.pos+1:], c)
		if end < 0 {
			p.err = fmt.Errorf("at column %d: unterminated string", start+1)
			p.tok = token{t: tEOF, pos: start}
			return
		}
		p.tok = token{t: tStr, s: p.src[p.pos+1 : p.pos+1+end], pos: start}
		p.pos += end + 2
	default:
		two := ""
		if p.pos+1 < len(p.src) {
			two = p.src[p.pos : p.pos+2]
		}
		switch two {
		case "==", "!=", "<=", ">=", "&&", "||":
			p.pos += 2
			p.tok = token{t: tOp, s: two, pos: start}
			return
		}
		if strings.IndexByte("+-*/()<>!,", c) < 0 {
			r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
			p.err = fmt.Errorf("at column %d: unexpected character %q", start+1, r)
			p.tok = token{t: tEOF, pos: start}
			return
		}
		p.pos++
		p.tok = token{t: tOp, s: string(c), pos: start}
	}
}

func (p *parser) is(s string) bool { return p.tok.t == tOp && p.tok.s == s }

func (p *parser) fail(err error) (*node, error) {
	if p.err != nil {
		return nil, p.err
	}
	return nil, err
}

func (p *parser) binary(o op, l, r *node, opTok string) (*node, error) {
	var k kind
	switch o {
	case opAdd, opSub, opMul, opDiv:
		if l.k != kindNum || r.k != kindNum {
			return nil, fmt.Errorf("%q needs numbers, got %s and %s", opTok, l.k, r.k)
		}
		k = kindNum
	case opLt, opLe, opGt, opGe:
		if l.k != kindNum || r.k != kindNum {
			return nil, fmt.Errorf("%q needs numbers, got %s and %s", opTok, l.k, r.k)
		}
		k = kindBool
	case opEq, opNe:
		if l.k != r.k {
			return nil, fmt.Errorf("%q compares a %s with a %s", opTok, l.k, r.k)
		}
		k = kindBool
	case opAnd, opOr:
		if l.k != kindBool || r.k != kindBool {
			return nil, fmt.Errorf("%q needs booleans, got %s and %s", opTok, l.k, r.k)
		}
		k = kindBool
	}
	return &node{op: o, k: k, args: []*node{l, r}}, nil
}

func (p *parser) parseOr(depth int) (*node, error) {
	l, err := p.parseAnd(depth)
	if err != nil {
		return nil, err
	}
	for p.is("||") {
		p.next()
		r, err := p.parseAnd(depth)
		if err != nil {
			return nil, err
		}
		if l, err = p.binary(opOr, l, r, "||"); err != nil {
			return p.fail(err)
		}
	}
	return l, nil
}

func (p *parser) parseAnd(depth int) (*node, error) {
	l, err := p.parseCmp(depth)
	if err != nil {
		return nil, err
	}
	for p.is("&&") {
		p.next()
		r, err := p.parseCmp(depth)
		if err != nil {
			return nil, err
		}
		if l, err = p.binary(opAnd, l, r, "&&"); err != nil {
			return p.fail(err)
		}
	}
	return l, nil
}

var cmpOps = map[string]op{"==": opEq, "!=": opNe, "<": opLt, "<=": opLe, ">": opGt, ">=": opGe}

func (p *parser) parseCmp(depth int) (*node, error) {
	l, err := p.parseAdd(depth)
	if err != nil {
		return nil, err
	}
	if p.tok.t == tOp {
		if o, ok := cmpOps[p.tok.s]; ok {
			s := p.tok.s
			p.next()
			r, err := p.parseAdd(depth)
			if err != nil {
				return nil, err
			}
			if l, err = p.binary(o, l, r, s); err != nil {
				return p.fail(err)
			}
		}
	}
	return l, nil
}

func (p *parser) parseAdd(depth int) (*node, error) {
	l, err := p.parseMul(depth)
	if err != nil {
		return nil, err
	}
	for p.is("+") || p.is("-") {
		s := p.tok.s
		o := opAdd
		if s == "-" {
			o = opSub
		}
		p.next()
		r, err := p.parseMul(depth)
		if err != nil {
			return nil, err
		}
		if l, err = p.binary(o, l, r, s); err != nil {
			return p.fail(err)
		}
	}
	return l, nil
}

func (p *parser) parseMul(depth int) (*node, error) {
	l, err := p.parseUnary(depth)
	if err != nil {
		return nil, err
	}
	for p.is("*") || p.is("/") {
		s := p.tok.s
		o := opMul
		if s == "/" {
			o = opDiv
		}
		p.next()
		r, err := p.parseUnary(depth)
		if err != nil {
			return nil, err
		}
		if l, err = p.binary(o, l, r, s); err != nil {
			return p.fail(err)
		}
	}
	return l, nil
}

func (p *parser) parseUnary(depth int) (*node, error) {
	if depth > exprDepthMax {
		return p.fail(p.errf("expression nested deeper than %d", exprDepthMax))
	}
	switch {
	case p.is("-"):
		p.next()
		x, err := p.parseUnary(depth + 1)
		if err != nil {
			return nil, err
		}
		if x.k != kindNum {
			return p.fail(fmt.Errorf("unary - needs a number, got %s", x.k))
		}
		return &node{op: opNeg, k: kindNum, args: []*node{x}}, nil
	case p.is("!"):
		p.next()
		x, err := p.parseUnary(depth + 1)
		if err != nil {
			return nil, err
		}
		if x.k != kindBool {
			return p.fail(fmt.Errorf("! needs a boolean, got %s", x.k))
		}
		return &node{op: opNot, k: kindBool, args: []*node{x}}, nil
	}
	return p.parsePrimary(depth)
}

type fn struct {
	op       op
	min, max int
}

var funcs = map[string]fn{
	"round": {opRound, 1, 1}, "ceil": {opCeil, 1, 1}, "floor": {opFloor, 1, 1},
	"min": {opMin, 2, 16}, "max": {opMax, 2, 16}, "abs": {opAbs, 1, 1},
	"if": {opIf, 3, 3}, "megapixels": {opMegapixels, 1, 1}, "len": {opLen, 1, 1},
}

func (p *parser) parsePrimary(depth int) (*node, error) {
	t := p.tok
	switch t.t {
	case tNum:
		n, err := parseNum(t.s)
		if err != nil {
			return p.fail(p.errf("bad number %q", t.s))
		}
		p.next()
		return &node{op: opConst, k: kindNum, c: value{k: kindNum, n: n}}, nil
	case tStr:
		p.next()
		return &node{op: opConst, k: kindStr, c: value{k: kindStr, s: t.s}}, nil
	case tIdent:
		p.next()
		if p.is("(") {
			return p.parseCall(t, depth)
		}
		switch t.s {
		case "true", "false":
			return &node{op: opConst, k: kindBool, c: value{k: kindBool, b: t.s == "true"}}, nil
		}
		v, ok := p.vars[t.s]
		if !ok {
			return p.fail(fmt.Errorf("at column %d: unknown name %q (want one of the action's parameters: %s)", t.pos+1, t.s, varNames(p.vars)))
		}
		return &node{op: opParam, k: v.k, slot: v.slot, name: t.s}, nil
	case tOp:
		if t.s == "(" {
			p.next()
			x, err := p.parseOr(depth + 1)
			if err != nil {
				return nil, err
			}
			if !p.is(")") {
				return p.fail(p.errf("want ), got %s", p.tok))
			}
			p.next()
			return x, nil
		}
	}
	return p.fail(p.errf("unexpected %s", t))
}

func varNames(vars map[string]exprVar) string {
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func (p *parser) parseCall(name token, depth int) (*node, error) {
	f, ok := funcs[name.s]
	if !ok {
		return p.fail(fmt.Errorf("at column %d: unknown function %q (want round, ceil, floor, min, max, abs, if, megapixels, len)", name.pos+1, name.s))
	}
	p.next() // (
	var args []*node
	for !p.is(")") {
		if len(args) > 0 {
			if !p.is(",") {
				return p.fail(p.errf("want , or ), got %s", p.tok))
			}
			p.next()
		}
		a, err := p.parseOr(depth + 1)
		if err != nil {
			return nil, err
		}
		args = append(args, a)
		if len(args) > f.max {
			return p.fail(fmt.Errorf("%s takes at most %d arguments", name.s, f.max))
		}
	}
	p.next()
	if len(args) < f.min {
		return p.fail(fmt.Errorf("%s takes at least %d arguments", name.s, f.min))
	}
	n := &node{op: f.op, k: kindNum, args: args, name: name.s}
	switch f.op {
	case opIf:
		if args[0].k != kindBool {
			return p.fail(fmt.Errorf("if: condition is a %s, want a boolean", args[0].k))
		}
		if args[1].k != args[2].k {
			return p.fail(fmt.Errorf("if: branches are a %s and a %s, want the same", args[1].k, args[2].k))
		}
		n.k = args[1].k
	case opMegapixels:
		if args[0].k == kindBool {
			return p.fail(fmt.Errorf("megapixels needs a \"WIDTHxHEIGHT\" string or a number"))
		}
	case opLen:
		if args[0].k != kindStr {
			return p.fail(fmt.Errorf("len needs a string, got %s", args[0].k))
		}
	default:
		for _, a := range args {
			if a.k != kindNum {
				return p.fail(fmt.Errorf("%s needs numbers, got %s", name.s, a.k))
			}
		}
	}
	return n, nil
}

var errOverflow = &evalError{msg: "price arithmetic out of range"}

// eval computes n over the parameter values env.
func (n *node) eval(env []value) (value, error) {
	switch n.op {
	case opConst:
		return n.c, nil
	case opParam:
		v := env[n.slot]
		if v.absent {
			return value{}, &evalError{param: n.name, msg: fmt.Sprintf("parameter %s is needed to price this action", n.name)}
		}
		return v, nil
	case opIf:
		c, err := n.args[0].eval(env)
		if err != nil {
			return c, err
		}
		if c.b {
			return n.args[1].eval(env)
		}
		return n.args[2].eval(env)
	case opAnd, opOr:
		l, err := n.args[0].eval(env)
		if err != nil {
			return l, err
		}
		if (n.op == opAnd && !l.b) || (n.op == opOr && l.b) {
			return l, nil
		}
		return n.args[1].eval(env)
	}
	var a, b value
	var err error
	if len(n.args) > 0 {
		if a, err = n.args[0].eval(env); err != nil {
			return a, err
		}
	}
	if len(n.args) > 1 && n.op != opMin && n.op != opMax {
		if b, err = n.args[1].eval(env); err != nil {
			return b, err
		}
	}
	var r num
	ok := true
	switch n.op {
	case opNeg:
		r, ok = num(0).sub(a.n)
	case opNot:
		return value{k: kindBool, b: !a.b}, nil
	case opAdd:
		r, ok = a.n.add(b.n)
	case opSub:
		r, ok = a.n.sub(b.n)
	case opMul:
		r, ok = a.n.mul(b.n)
	case opDiv:
		if b.n == 0 {
			return value{}, &evalError{msg: "price formula divides by zero"}
		}
		r, ok = a.n.div(b.n)
	case opEq, opNe:
		eq := a.k == b.k && a.n == b.n && a.s == b.s && a.b == b.b
		return value{k: kindBool, b: eq == (n.op == opEq)}, nil
	case opLt:
		return value{k: kindBool, b: a.n < b.n}, nil
	case opLe:
		return value{k: kindBool, b: a.n <= b.n}, nil
	case opGt:
		return value{k: kindBool, b: a.n > b.n}, nil
	case opGe:
		return value{k: kindBool, b: a.n >= b.n}, nil
	case opRound:
		r = a.n.roundTo(roundHalf)
	case opCeil:
		r = a.n.roundTo(roundCeil)
	case opFloor:
		r = a.n.roundTo(roundFloor)
	case opAbs:
		r = a.n
		if r < 0 {
			r, ok = num(0).sub(r)
		}
	case opMin, opMax:
		r = a.n
		for _, x := range n.args[1:] {
			v, err := x.eval(env)
			if err != nil {
				return v, err
			}
			if (n.op == opMin && v.n < r) || (n.op == opMax && v.n > r) {
				r = v.n
			}
		}
	case opMegapixels:
		if a.k == kindNum {
			r = a.n
		} else if r, ok = megapixels(a.s); !ok {
			return value{}, &evalError{msg: fmt.Sprintf("megapixels: %q is not WIDTHxHEIGHT", a.s)}
		}
	case opLen:
		r = numInt(int64(utf8.RuneCountInString(a.s)))
	}
	if !ok {
		return value{}, errOverflow
	}
	return value{k: kindNum, n: r}, nil
}

const pixelsPerMegapixel = 1024 * 1024

// megapixels reads "WIDTHxHEIGHT" (1MP = 1024x1024, as the seeds define it).
func megapixels(s string) (num, bool) {
	w, h, ok := strings.Cut(strings.ToLower(s), "x")
	if !ok {
		return 0, false
	}
	wi, err1 := strconv.ParseInt(strings.TrimSpace(w), 10, 32)
	hi, err2 := strconv.ParseInt(strings.TrimSpace(h), 10, 32)
	if err1 != nil || err2 != nil || wi <= 0 || hi <= 0 {
		return 0, false
	}
	return num(wi * hi).div(num(pixelsPerMegapixel))
}
