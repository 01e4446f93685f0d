package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/scriphq/scrip/credit"
)

// Bounds on catalog files.
const (
	catalogBytesMax = 8 << 20
	nodeVisitsMax   = 2_000_000
	actionsMax      = 10_000
	tableCellsMax   = 100_000
	ruleDepthMax    = 8
	problemsMax     = 500
	idBytesMax      = 200
)

// Problem is one thing wrong with a catalog file.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ValidationError lists every problem found in a catalog file.
type ValidationError struct {
	File     string
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "catalog %s: %d problem", e.File, len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Load reads and validates the catalog file at path.
func Load(path string) (*Catalog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, catalogBytesMax+1))
	if err != nil {
		return nil, fmt.Errorf("load catalog %s: %w", path, err)
	}
	return Parse(data, path)
}

// Parse validates a catalog held in memory; filename appears in problems.
// On any problem it returns a *ValidationError listing all of them.
func Parse(data []byte, filename string) (*Catalog, error) {
	d := &dec{file: filename}
	if len(data) > catalogBytesMax {
		d.problem(0, "", "file larger than %d bytes", catalogBytesMax)
		return nil, d.err()
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		d.yamlError(err)
		return nil, d.err()
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		d.problem(0, "", "empty catalog")
		return nil, d.err()
	}
	sum := sha256.Sum256(data)
	c := &Catalog{
		Version:    "sha256:" + hex.EncodeToString(sum[:8]),
		file:       filename,
		byID:       map[string]*Action{},
		defaults:   map[string]string{},
		planByCode: map[string]*Plan{},
	}
	d.catalog(c, doc.Content[0])
	if len(d.probs) > 0 {
		return nil, d.err()
	}
	return c, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

type dec struct {
	file   string
	probs  []Problem
	visits int
}

func (d *dec) err() error {
	slices.SortStableFunc(d.probs, func(a, b Problem) int { return a.Line - b.Line })
	return &ValidationError{File: d.file, Problems: d.probs}
}

func (d *dec) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	for _, m := range strings.Split(msg, "\n") {
		m = strings.TrimSpace(m)
		if m == "" || strings.HasPrefix(m, "unmarshal errors") {
			continue
		}
		line := 0
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			line, _ = strconv.Atoi(sm[1])
			m = strings.TrimSpace(strings.TrimPrefix(strings.Replace(m, sm[0], "", 1), ":"))
		}
		d.problem(line, "", "%s", m)
	}
}

func (d *dec) problem(line int, field, format string, args ...any) {
	if len(d.probs) == problemsMax {
		d.probs = append(d.probs, Problem{File: d.file, Line: line, Message: "too many problems; stopping here"})
	}
	if len(d.probs) > problemsMax {
		return
	}
	d.probs = append(d.probs, Problem{File: d.file, Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (d *dec) errf(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.problem(line, field, format, args...)
}

// node follows aliases and counts visits so anchors cannot blow up the walk.
func (d *dec) node(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	d.visits++
	if d.visits > nodeVisitsMax || (n != nil && n.Kind == yaml.AliasNode) {
		return nil
	}
	return n
}

type kv struct {
	key string
	k   *yaml.Node
	v   *yaml.Node
}

// mapping returns the entries of a mapping, reporting unknown and repeated
// keys. allowed nil accepts any key.
func (d *dec) mapping(n *yaml.Node, path string, allowed ...string) ([]kv, map[string]*yaml.Node) {
	n = d.node(n)
	if n == nil {
		d.errf(n, path, "document too complex")
		return nil, map[string]*yaml.Node{}
	}
	if n.Kind != yaml.MappingNode {
		if !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
			d.errf(n, path, "want a mapping, got %s", nodeKind(n))
		}
		return nil, map[string]*yaml.Node{}
	}
	m := make(map[string]*yaml.Node, len(n.Content)/2)
	var out []kv
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.node(n.Content[i])
		if k == nil || k.Kind != yaml.ScalarNode {
			d.errf(n.Content[i], path, "keys must be plain values")
			continue
		}
		f := joinPath(path, k.Value)
		if allowed != nil && !slices.Contains(allowed, k.Value) {
			d.errf(k, f, "unknown field %q (want %s)", k.Value, strings.Join(allowed, ", "))
			continue
		}
		if _, dup := m[k.Value]; dup {
			d.errf(k, f, "repeated key %q", k.Value)
			continue
		}
		m[k.Value] = n.Content[i+1]
		out = append(out, kv{k.Value, k, n.Content[i+1]})
	}
	return out, m
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func (d *dec) seq(n *yaml.Node, path string) []*yaml.Node {
	n = d.node(n)
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errf(n, path, "want a list, got %s", nodeKind(n))
		return nil
	}
	return n.Content
}

func (d *dec) scalar(n *yaml.Node, path string) (*yaml.Node, bool) {
	n = d.node(n)
	if n == nil {
		return nil, false
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errf(n, path, "want a value, got %s", nodeKind(n))
		return nil, false
	}
	return n, true
}

func (d *dec) str(n *yaml.Node, path string) string {
	if n == nil {
		return ""
	}
	s, ok := d.scalar(n, path)
	if !ok {
		return ""
	}
	return s.Value
}

func (d *dec) reqStr(m map[string]*yaml.Node, parent *yaml.Node, path, key string) string {
	n, ok := m[key]
	if !ok {
		d.errf(parent, joinPath(path, key), "required")
		return ""
	}
	s := d.str(n, joinPath(path, key))
	if s == "" {
		d.errf(n, joinPath(path, key), "must not be empty")
	}
	return s
}

func (d *dec) amount(n *yaml.Node, path string) (num, bool) {
	s, ok := d.scalar(n, path)
	if !ok {
		return 0, false
	}
	a, err := parseNum(s.Value)
	if err != nil {
		d.errf(s, path, "%q is not a credit amount: %v", s.Value, err)
		return 0, false
	}
	return a, true
}

func (d *dec) nonNeg(n *yaml.Node, path string) (num, bool) {
	a, ok := d.amount(n, path)
	if ok && a < 0 {
		d.errf(n, path, "must not be negative")
		return 0, false
	}
	return a, ok
}

func (d *dec) integer(n *yaml.Node, path string, lo, hi int64) int64 {
	s, ok := d.scalar(n, path)
	if !ok {
		return 0
	}
	v, err := strconv.ParseInt(s.Value, 10, 64)
	if err != nil || v < lo || v > hi {
		d.errf(s, path, "%q is not a whole number from %d to %d", s.Value, lo, hi)
		return 0
	}
	return v
}

func (d *dec) boolean(n *yaml.Node, path string) bool {
	s, ok := d.scalar(n, path)
	if !ok {
		return false
	}
	switch s.Value {
	case "true":
		return true
	case "false":
		return false
	}
	d.errf(s, path, "%q is not true or false", s.Value)
	return false
}

func (d *dec) strList(n *yaml.Node, path string) []string {
	var out []string
	for i, e := range d.seq(n, path) {
		if s := d.str(e, fmt.Sprintf("%s[%d]", path, i)); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (d *dec) oneOf(n *yaml.Node, path string, want ...string) string {
	s := d.str(n, path)
	if s != "" && !slices.Contains(want, s) {
		d.errf(n, path, "unknown value %q (want %s)", s, strings.Join(want, ", "))
		return ""
	}
	return s
}

var (
	paramName_ = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	idPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$`)
	codeRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	currencyRe = regexp.MustCompile(`^[a-z]{3}$`)
)

func (d *dec) catalog(c *Catalog, root *yaml.Node) {
	_, m := d.mapping(root, "", "name", "description", "top_up_url", "categories", "defaults", "actions", "plans", "packs", "workflows")
	c.Name = d.reqStr(m, root, "", "name")
	if n, ok := m["top_up_url"]; ok {
		c.TopUpURL = d.str(n, "top_up_url")
		if u := c.TopUpURL; u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "/") {
			d.errf(n, "top_up_url", "%q is neither an http(s) URL nor a path", u)
		}
	}
	d.plans(c, m["plans"])
	d.packs(c, m["packs"])
	catNames := map[string]string{}
	var catOrder []string
	for i, e := range d.seq(m["categories"], "categories") {
		path := fmt.Sprintf("categories[%d]", i)
		_, cm := d.mapping(e, path, "id", "name")
		id := d.reqStr(cm, e, path, "id")
		if _, dup := catNames[id]; dup {
			d.errf(e, path+".id", "repeated category %q", id)
			continue
		}
		catNames[id] = d.str(cm["name"], path+".name")
		catOrder = append(catOrder, id)
	}
	actions := d.seq(m["actions"], "actions")
	if len(actions) == 0 {
		d.errf(root, "actions", "a catalog needs at least one action")
	}
	if len(actions) > actionsMax {
		d.errf(root, "actions", "more than %d actions", actionsMax)
		actions = actions[:actionsMax]
	}
	for i, e := range actions {
		a := d.action(c, e, fmt.Sprintf("actions[%d]", i))
		if a == nil {
			continue
		}
		for _, id := range append([]string{a.ID}, a.Aliases...) {
			if prev, dup := c.byID[id]; dup {
				d.errf(e, fmt.Sprintf("actions[%d].id", i), "duplicate id %q (also line %d)", id, prev.line)
				continue
			}
			c.byID[id] = a
		}
		c.actions = append(c.actions, a)
		if _, ok := catNames[a.Category]; !ok && a.Category != "" {
			catNames[a.Category] = ""
			catOrder = append(catOrder, a.Category)
		}
	}
	for _, id := range catOrder {
		name := catNames[id]
		if name == "" {
			name = strings.ToUpper(id[:1]) + id[1:]
		}
		c.categories = append(c.categories, &Category{ID: id, Name: name})
	}
	for _, e := range d.entries(m["defaults"], "defaults") {
		path := joinPath("defaults", e.key)
		id := d.str(e.v, path)
		a, ok := c.byID[id]
		switch {
		case id == "":
		case !ok:
			d.errf(e.v, path, "default action %q not found%s", id, didYouMean(c, id))
		case a.Category != e.key:
			d.errf(e.v, path, "default action %q is in category %q, not %q", id, a.Category, e.key)
		default:
			c.defaults[e.key] = a.ID
		}
	}
	for _, p := range c.plans {
		for _, u := range p.Unlimited {
			if _, ok := c.byID[u]; !ok && catNames[u] == "" && !hasCategory(c, u) {
				d.problem(p.line, "plans."+p.Code+".unlimited", "%q is neither an action id nor a category", u)
			}
		}
		for k := range p.Discounts {
			if _, ok := c.byID[k]; !ok && !hasCategory(c, k) {
				d.problem(p.line, "plans."+p.Code+".discounts", "%q is neither an action id nor a category", k)
			}
		}
	}
	d.workflows(c, m["workflows"])
}

func hasCategory(c *Catalog, id string) bool {
	for _, cat := range c.categories {
		if cat.ID == id {
			return true
		}
	}
	return false
}

func didYouMean(c *Catalog, id string) string {
	if s := c.suggest(id); len(s) > 0 {
		return fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return ""
}

func (d *dec) entries(n *yaml.Node, path string) []kv {
	if n == nil {
		return nil
	}
	out, _ := d.mapping(n, path)
	return out
}

func (d *dec) action(c *Catalog, n *yaml.Node, path string) *Action {
	_, m := d.mapping(n, path, "id", "name", "category", "provider", "speed", "description", "tags", "aliases", "min_plan", "gates", "parameters", "price", "reserve")
	a := &Action{line: n.Line, slots: map[string]int{}}
	a.ID = d.reqStr(m, n, path, "id")
	if a.ID == "" {
		return nil
	}
	if len(a.ID) > idBytesMax || !idPattern.MatchString(a.ID) {
		d.errf(m["id"], path+".id", "%q is not a valid id (letters, digits and . _ / : @ + -)", a.ID)
	}
	path = fmt.Sprintf("%s(%s)", path, a.ID)
	a.Name = d.reqStr(m, n, path, "name")
	a.Category = d.reqStr(m, n, path, "category")
	if a.Category != "" && !codeRe.MatchString(a.Category) {
		d.errf(m["category"], path+".category", "%q is not a valid category (lowercase letters, digits, _ and -)", a.Category)
		a.Category = ""
	}
	a.Provider = d.str(m["provider"], path+".provider")
	a.Speed = d.str(m["speed"], path+".speed")
	a.Description = d.str(m["description"], path+".description")
	a.Tags = d.strList(m["tags"], path+".tags")
	a.Aliases = d.strList(m["aliases"], path+".aliases")
	vars := map[string]exprVar{}
	for _, e := range d.entries(m["parameters"], path+".parameters") {
		p := d.param(e, path+".parameters."+e.key)
		if p == nil {
			continue
		}
		a.slots[p.Name] = len(a.Params)
		vars[p.Name] = exprVar{slot: len(a.Params), k: p.kind}
		a.Params = append(a.Params, p)
		a.hasAuto = a.hasAuto || p.Auto
	}
	if mp, ok := m["min_plan"]; ok {
		a.MinPlan = d.planRef(c, mp, path+".min_plan")
	}
	for i, g := range d.seq(m["gates"], path+".gates") {
		gp := fmt.Sprintf("%s.gates[%d]", path, i)
		_, gm := d.mapping(g, gp, "when", "min_plan")
		src := d.reqStr(gm, g, gp, "when")
		plan := ""
		if pn, ok := gm["min_plan"]; ok {
			plan = d.planRef(c, pn, gp+".min_plan")
		} else {
			d.errf(g, gp+".min_plan", "required")
		}
		if src == "" {
			continue
		}
		e, err := compileExpr(src, vars, kindBool)
		if err != nil {
			d.errf(gm["when"], gp+".when", "bad expression %q: %v", src, err)
			continue
		}
		if plan != "" {
			a.gates = append(a.gates, gate{when: e, minPlan: plan})
		}
	}
	pn, ok := m["price"]
	if !ok {
		d.errf(n, path+".price", "required")
	} else {
		a.price = d.rule(a, vars, pn, path+".price", 0)
	}
	if rn, ok := m["reserve"]; ok {
		a.reserve = d.reserve(a, rn, path+".reserve")
	}
	for _, p := range a.Params {
		if !p.Auto {
			continue
		}
		if a.reserve == nil || !slices.ContainsFunc(a.reserve.params, func(rp reserveParam) bool { return a.Params[rp.slot] == p }) {
			d.errf(n, path+".reserve.params", "parameter %s may be auto, so the reserve rule must give the value to hold for (the largest it can be)", p.Name)
		}
	}
	if a.price == nil || a.Name == "" {
		return a
	}
	if !a.price.dynamic && !a.hasAuto {
		v, err := a.price.eval(nil, nil)
		if err == nil {
			a.fixed = &v
			a.label = label(a.Name, v.amount())
		}
	}
	return a
}

type gate struct {
	when    *expr
	minPlan string
}

func (d *dec) planRef(c *Catalog, n *yaml.Node, path string) string {
	code := d.str(n, path)
	if code == "" {
		return ""
	}
	if _, ok := c.planByCode[code]; !ok {
		d.errf(n, path, "plan %q not found (want %s)", code, c.planCodes())
		return ""
	}
	return code
}

func (d *dec) param(e kv, path string) *Param {
	if !paramName_.MatchString(e.key) {
		d.errf(e.k, path, "parameter name %q must be lowercase letters, digits and _ (formulas refer to it)", e.key)
		return nil
	}
	_, m := d.mapping(e.v, path, "type", "description", "values", "min", "max", "default", "required", "auto", "max_length")
	p := &Param{Name: e.key}
	p.Type = d.oneOf(m["type"], path+".type", TypeEnum, TypeInteger, TypeNumber, TypeBoolean, TypeString)
	if _, ok := m["type"]; !ok {
		d.errf(e.v, path+".type", "required (want enum, integer, number, boolean or string)")
		return nil
	}
	if p.Type == "" {
		return nil
	}
	p.Description = d.str(m["description"], path+".description")
	if n, ok := m["required"]; ok {
		p.Required = d.boolean(n, path+".required")
	}
	if n, ok := m["auto"]; ok {
		p.Auto = d.boolean(n, path+".auto")
	}
	valueNodes := d.seq(m["values"], path+".values")
	switch p.Type {
	case TypeEnum:
		p.kind = kindNum
		if len(valueNodes) == 0 {
			d.errf(e.v, path+".values", "an enum needs values")
			return nil
		}
		for _, vn := range valueNodes {
			if vn = d.node(vn); vn == nil || vn.Kind != yaml.ScalarNode || (vn.Tag != "!!int" && vn.Tag != "!!float") {
				p.kind = kindStr
			}
		}
	case TypeInteger, TypeNumber:
		p.kind = kindNum
	case TypeBoolean:
		p.kind = kindBool
		p.values = []value{{k: kindBool, b: false, idx: 0}, {k: kindBool, b: true, idx: 1}}
		p.Values = []string{"false", "true"}
	case TypeString:
		p.kind = kindStr
		if n, ok := m["max_length"]; ok {
			p.MaxLength = int(d.integer(n, path+".max_length", 1, 1<<30))
		}
	}
	if len(valueNodes) > 0 && (p.Type == TypeBoolean || p.Type == TypeString) {
		d.errf(m["values"], path+".values", "a %s parameter takes no values list (use type enum)", p.Type)
	}
	if p.Type != TypeBoolean {
		for i, vn := range valueNodes {
			vp := fmt.Sprintf("%s.values[%d]", path, i)
			s, ok := d.scalar(vn, vp)
			if !ok {
				continue
			}
			v, err := p.convert(s.Value)
			if err != nil {
				d.errf(s, vp, "%s", strings.TrimPrefix(err.Error(), "parameter "+p.Name+": "))
				continue
			}
			v.idx = len(p.values)
			if slices.ContainsFunc(p.values, func(o value) bool { return o.n == v.n && o.s == v.s }) {
				d.errf(s, vp, "repeated value %q", s.Value)
				continue
			}
			p.values = append(p.values, v)
			p.Values = append(p.Values, display(v))
		}
	}
	for _, v := range p.values {
		switch v.k {
		case kindBool:
			p.boxed = append(p.boxed, v.b)
		case kindNum:
			p.boxed = append(p.boxed, json.Number(v.n.String()))
		default:
			p.boxed = append(p.boxed, v.s)
		}
	}
	for _, b := range []struct {
		key string
		dst **num
		pub **credit.Amount
	}{{"min", &p.min, &p.Min}, {"max", &p.max, &p.Max}} {
		n, ok := m[b.key]
		if !ok {
			continue
		}
		if p.kind != kindNum || len(p.values) > 0 {
			d.errf(n, path+"."+b.key, "only integer and number parameters without a values list take %s", b.key)
			continue
		}
		if v, ok := d.amount(n, path+"."+b.key); ok {
			vv, a := v, v.amount()
			*b.dst, *b.pub = &vv, &a
		}
	}
	if p.min != nil && p.max != nil && *p.min > *p.max {
		d.errf(m["max"], path+".max", "max %s is below min %s", p.max, p.min)
	}
	if n, ok := m["default"]; ok {
		if s, ok := d.scalar(n, path+".default"); ok {
			v, err := p.convert(s.Value)
			if err == nil {
				v, err = p.check(v)
			}
			if err != nil {
				d.errf(s, path+".default", "%s", strings.TrimPrefix(err.Error(), "parameter "+p.Name+": "))
			} else {
				p.def = &v
				p.Default = display(v)
			}
		}
	}
	if p.Required && p.def != nil {
		d.errf(m["default"], path+".default", "a required parameter has no default")
	}
	return p
}

func (d *dec) paramRef(a *Action, n *yaml.Node, path string, finite bool) (int, bool) {
	name := d.str(n, path)
	if name == "" {
		return 0, false
	}
	slot, ok := a.slots[name]
	if !ok {
		d.errf(n, path, "unknown parameter %q (want %s)", name, a.paramNames())
		return 0, false
	}
	if finite && !a.Params[slot].Finite() {
		d.errf(n, path, "parameter %s has no fixed set of values (give it values, or make it an enum)", name)
		return 0, false
	}
	return slot, true
}

// domainIndex maps a table or multiplier key to its position in the domain.
func (d *dec) domainIndex(p *Param, k *yaml.Node, path string) (int, bool) {
	v, err := p.convert(k.Value)
	if err == nil {
		v, err = p.check(v)
	}
	if err != nil {
		d.errf(k, path, "%q is not a value of %s (want %s)", k.Value, p.Name, p.Allowed())
		return 0, false
	}
	return v.idx, true
}

var ruleKinds = []string{ruleFlat, ruleTable, rulePer, ruleFormula, ruleSum}

func (d *dec) rule(a *Action, vars map[string]exprVar, n *yaml.Node, path string, depth int) *rule {
	r := &rule{}
	n = d.node(n)
	if n == nil {
		return nil
	}
	if depth > ruleDepthMax {
		d.errf(n, path, "rules nested deeper than %d", ruleDepthMax)
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		v, ok := d.nonNeg(n, path)
		if !ok {
			return nil
		}
		r.kind, r.flat = ruleFlat, v
		return r
	}
	entries, m := d.mapping(n, path, "flat", "table", "per", "formula", "sum", "multiply", "round", "min", "max")
	var kinds []string
	for _, e := range entries {
		if slices.Contains(ruleKinds, e.key) {
			kinds = append(kinds, e.key)
		}
	}
	if len(kinds) != 1 {
		if n.Kind == yaml.MappingNode {
			d.errf(n, path, "a price needs exactly one of flat, table, per, formula, sum (got %d)", len(kinds))
		}
		return nil
	}
	r.kind = kinds[0]
	ok := true
	switch r.kind {
	case ruleFlat:
		r.flat, ok = d.nonNeg(m["flat"], path+".flat")
	case ruleTable:
		r.table = d.table(a, m["table"], path+".table")
		ok = r.table != nil
		r.dynamic = true
	case rulePer:
		r.per = d.per(a, m["per"], path+".per")
		ok = r.per != nil
		r.dynamic = true
	case ruleFormula:
		src := d.str(m["formula"], path+".formula")
		e, err := compileExpr(src, vars, kindNum)
		if err != nil {
			d.errf(m["formula"], path+".formula", "bad expression %q: %v", src, err)
			return nil
		}
		r.formula = e
		r.dynamic = len(e.uses) > 0
	case ruleSum:
		for i, pn := range d.seq(m["sum"], path+".sum") {
			p := d.rule(a, vars, pn, fmt.Sprintf("%s.sum[%d]", path, i), depth+1)
			if p == nil {
				ok = false
				continue
			}
			r.parts = append(r.parts, p)
			r.dynamic = r.dynamic || p.dynamic
		}
		if len(r.parts) == 0 && ok {
			d.errf(n, path+".sum", "a sum needs at least one rule")
			ok = false
		}
	}
	for _, e := range d.entries(m["multiply"], path+".multiply") {
		mp := path + ".multiply." + e.key
		slot, found := a.slots[e.key]
		if !found {
			d.errf(e.k, mp, "unknown parameter %q (want %s)", e.key, a.paramNames())
			ok = false
			continue
		}
		p := a.Params[slot]
		if !p.Finite() {
			d.errf(e.k, mp, "parameter %s has no fixed set of values", e.key)
			ok = false
			continue
		}
		mul := multiplier{slot: slot, param: p.Name, factors: make([]num, len(p.values))}
		for i := range mul.factors {
			mul.factors[i] = numOne
		}
		for _, fe := range d.entries(e.v, mp) {
			idx, good := d.domainIndex(p, fe.k, mp+"."+fe.key)
			f, good2 := d.nonNeg(fe.v, mp+"."+fe.key)
			if good && good2 {
				mul.factors[idx] = f
			} else {
				ok = false
			}
		}
		r.mults = append(r.mults, mul)
		r.dynamic = true
	}
	if rn, has := m["round"]; has {
		r.round = d.oneOf(rn, path+".round", roundModes...)
		if r.round == "none" {
			r.round = roundNone
		}
	}
	for _, b := range []struct {
		key string
		dst **num
	}{{"min", &r.min}, {"max", &r.max}} {
		if bn, has := m[b.key]; has {
			if v, good := d.nonNeg(bn, path+"."+b.key); good {
				*b.dst = &v
			}
		}
	}
	if r.min != nil && r.max != nil && *r.min > *r.max {
		d.errf(m["max"], path+".max", "max %s is below min %s", r.max, r.min)
	}
	if !ok {
		return nil
	}
	return r
}

func (d *dec) table(a *Action, n *yaml.Node, path string) *table {
	_, m := d.mapping(n, path, "by", "values")
	byNode, ok := m["by"]
	if !ok {
		d.errf(n, path+".by", "required: the parameter(s) the table is keyed by")
		return nil
	}
	var byNames []*yaml.Node
	if bn := d.node(byNode); bn != nil && bn.Kind == yaml.ScalarNode {
		byNames = []*yaml.Node{bn}
	} else {
		byNames = d.seq(byNode, path+".by")
	}
	if len(byNames) == 0 {
		d.errf(byNode, path+".by", "name at least one parameter")
		return nil
	}
	t := &table{}
	size := 1
	for i, bn := range byNames {
		slot, ok := d.paramRef(a, bn, fmt.Sprintf("%s.by[%d]", path, i), true)
		if !ok {
			return nil
		}
		p := a.Params[slot]
		t.slots = append(t.slots, slot)
		t.names = append(t.names, p.Name)
		t.sizes = append(t.sizes, len(p.values))
		size *= len(p.values)
		if size > tableCellsMax {
			d.errf(n, path, "more than %d cells", tableCellsMax)
			return nil
		}
	}
	t.cells = make([]num, size)
	t.detail = make([]string, size)
	set := make([]bool, size)
	valid := true
	var walk func(n *yaml.Node, level, base int, keys []string, p string)
	walk = func(n *yaml.Node, level, base int, keys []string, p string) {
		if level == len(t.slots) {
			v, ok := d.nonNeg(n, p)
			if !ok {
				valid = false
				return
			}
			t.cells[base], set[base] = v, true
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = t.names[i] + "=" + k
			}
			t.detail[base] = strings.Join(parts, ", ")
			return
		}
		prm := a.Params[t.slots[level]]
		for _, e := range d.entries(n, p) {
			idx, ok := d.domainIndex(prm, e.k, p+"."+e.key)
			if !ok {
				valid = false
				continue
			}
			walk(e.v, level+1, base*t.sizes[level]+idx, append(keys, prm.Values[idx]), p+"."+e.key)
		}
	}
	vn, ok := m["values"]
	if !ok {
		d.errf(n, path+".values", "required")
		return nil
	}
	walk(vn, 0, 0, nil, path+".values")
	var missing []string
	for i, s := range set {
		if s {
			continue
		}
		parts := make([]string, len(t.slots))
		rest := i
		for k := len(t.slots) - 1; k >= 0; k-- {
			parts[k] = t.names[k] + "=" + a.Params[t.slots[k]].Values[rest%t.sizes[k]]
			rest /= t.sizes[k]
		}
		missing = append(missing, strings.Join(parts, " "))
	}
	if len(missing) > 0 && valid {
		more := ""
		if len(missing) > 5 {
			more = fmt.Sprintf(" and %d more", len(missing)-5)
			missing = missing[:5]
		}
		d.errf(vn, path+".values", "table missing a combination: %s%s", strings.Join(missing, "; "), more)
		return nil
	}
	if !valid {
		return nil
	}
	return t
}

func (d *dec) per(a *Action, n *yaml.Node, path string) *perRule {
	_, m := d.mapping(n, path, "param", "unit", "size", "rate", "round_units", "min_units", "max_units")
	r := &perRule{size: numOne}
	slot, ok := d.paramRef(a, m["param"], path+".param", false)
	if _, has := m["param"]; !has {
		d.errf(n, path+".param", "required: the parameter that measures the size")
	}
	r.unit = d.oneOf(m["unit"], path+".unit", units...)
	if _, has := m["unit"]; !has {
		d.errf(n, path+".unit", "required (want %s)", strings.Join(units, ", "))
	}
	rate, okRate := d.nonNeg(m["rate"], path+".rate")
	if _, has := m["rate"]; !has {
		d.errf(n, path+".rate", "required: credits per unit")
	}
	r.rate = rate
	if sn, has := m["size"]; has {
		if v, good := d.nonNeg(sn, path+".size"); good {
			if v == 0 {
				d.errf(sn, path+".size", "must be more than zero")
			}
			r.size = v
		}
	}
	if rn, has := m["round_units"]; has {
		r.roundUnits = d.oneOf(rn, path+".round_units", roundModes...)
		if r.roundUnits == "none" {
			r.roundUnits = roundNone
		}
	}
	for _, b := range []struct {
		key string
		dst **num
	}{{"min_units", &r.minUnits}, {"max_units", &r.maxUnits}} {
		if bn, has := m[b.key]; has {
			if v, good := d.nonNeg(bn, path+"."+b.key); good {
				*b.dst = &v
			}
		}
	}
	if !ok || !okRate || r.unit == "" || r.size == 0 {
		return nil
	}
	p := a.Params[slot]
	r.slot, r.param = slot, p.Name
	if p.kind == kindBool || (p.kind == kindStr && r.unit != "megapixel" && r.unit != "character" && r.unit != "word") {
		d.errf(m["param"], path+".param", "parameter %s (a %s) cannot be counted in %ss", p.Name, p.Type, r.unit)
		return nil
	}
	return r
}

func (d *dec) reserve(a *Action, n *yaml.Node, path string) *reserveRule {
	_, m := d.mapping(n, path, "params", "credits")
	r := &reserveRule{}
	for _, e := range d.entries(m["params"], path+".params") {
		ep := path + ".params." + e.key
		slot, ok := a.slots[e.key]
		if !ok {
			d.errf(e.k, ep, "unknown parameter %q (want %s)", e.key, a.paramNames())
			continue
		}
		p := a.Params[slot]
		if !p.Auto {
			d.errf(e.k, ep, "parameter %s is not auto; the reserve only fills auto values", p.Name)
			continue
		}
		s, ok := d.scalar(e.v, ep)
		if !ok {
			continue
		}
		v, err := p.convert(s.Value)
		if err == nil {
			v, err = p.check(v)
		}
		if err != nil {
			d.errf(s, ep, "%s", strings.TrimPrefix(err.Error(), "parameter "+p.Name+": "))
			continue
		}
		r.params = append(r.params, reserveParam{slot: slot, v: v})
	}
	if cn, ok := m["credits"]; ok {
		if v, good := d.nonNeg(cn, path+".credits"); good {
			r.credits = &v
		}
	}
	return r
}

func (d *dec) price(n *yaml.Node, path string) Price {
	_, m := d.mapping(n, path, "amount", "currency")
	var p Price
	if an, ok := m["amount"]; ok {
		p.Amount = d.integer(an, path+".amount", 0, 1<<50)
	} else {
		d.errf(n, path+".amount", "required (integer minor units, e.g. cents)")
	}
	p.Currency = d.reqStr(m, n, path, "currency")
	if p.Currency != "" && !currencyRe.MatchString(p.Currency) {
		d.errf(m["currency"], path+".currency", "%q is not a lowercase ISO 4217 code (usd, eur)", p.Currency)
	}
	return p
}

func (d *dec) plans(c *Catalog, n *yaml.Node) {
	for i, e := range d.seq(n, "plans") {
		path := fmt.Sprintf("plans[%d]", i)
		_, m := d.mapping(e, path, "code", "name", "tier", "monthly_credits", "interval", "price", "stripe_price", "features",
			"unlimited", "discounts", "quotas", "rollover", "upgrade", "grace_days", "signup_grant")
		p := &Plan{line: e.Line, Interval: "month", Rollover: Rollover{Policy: RolloverNone}, Upgrade: Upgrade{Cycle: "restart"}, unlimited: map[string]bool{}}
		p.Code = d.reqStr(m, e, path, "code")
		if p.Code != "" && !codeRe.MatchString(p.Code) {
			d.errf(m["code"], path+".code", "%q is not a valid code (lowercase letters, digits, _ and -)", p.Code)
		}
		path = fmt.Sprintf("%s(%s)", path, p.Code)
		p.Name = d.reqStr(m, e, path, "name")
		if tn, ok := m["tier"]; ok {
			p.Tier = int(d.integer(tn, path+".tier", 0, 1000))
		} else {
			d.errf(e, path+".tier", "required: the plan's order, lowest first")
		}
		if cn, ok := m["monthly_credits"]; ok {
			v, _ := d.nonNeg(cn, path+".monthly_credits")
			p.MonthlyCredits = v.amount()
		} else {
			d.errf(e, path+".monthly_credits", "required")
		}
		if in, ok := m["interval"]; ok {
			p.Interval = d.oneOf(in, path+".interval", "month", "year")
		}
		if pn, ok := m["price"]; ok {
			p.Price = d.price(pn, path+".price")
		} else {
			d.errf(e, path+".price", "required")
		}
		p.StripePrice = d.str(m["stripe_price"], path+".stripe_price")
		p.Features = d.strList(m["features"], path+".features")
		p.Unlimited = d.strList(m["unlimited"], path+".unlimited")
		for _, u := range p.Unlimited {
			p.unlimited[u] = true
		}
		for _, de := range d.entries(m["discounts"], path+".discounts") {
			v, ok := d.nonNeg(de.v, path+".discounts."+de.key)
			if ok && v > numInt(100) {
				d.errf(de.v, path+".discounts."+de.key, "a discount is a percentage from 0 to 100")
				continue
			}
			if p.Discounts == nil {
				p.Discounts = map[string]credit.Amount{}
			}
			p.Discounts[de.key] = v.amount()
		}
		for _, qe := range d.entries(m["quotas"], path+".quotas") {
			if p.Quotas == nil {
				p.Quotas = map[string]int64{}
			}
			p.Quotas[qe.key] = d.integer(qe.v, path+".quotas."+qe.key, 0, 1<<40)
		}
		if rn, ok := m["rollover"]; ok {
			rp := path + ".rollover"
			_, rm := d.mapping(rn, rp, "policy", "max_carry", "max_balance")
			if pn, ok := rm["policy"]; ok {
				p.Rollover.Policy = d.oneOf(pn, rp+".policy", RolloverNone, RolloverCapped, RolloverUnlimited)
			}
			if cn, ok := rm["max_carry"]; ok {
				v, _ := d.nonNeg(cn, rp+".max_carry")
				p.Rollover.MaxCarry = v.amount()
			}
			if cn, ok := rm["max_balance"]; ok {
				v, _ := d.nonNeg(cn, rp+".max_balance")
				p.Rollover.MaxBalance = v.amount()
			}
			if p.Rollover.Policy == RolloverCapped && p.Rollover.MaxCarry == 0 && p.Rollover.MaxBalance == 0 {
				d.errf(rn, rp, "a capped rollover needs max_carry or max_balance")
			}
		}
		if un, ok := m["upgrade"]; ok {
			up := path + ".upgrade"
			_, um := d.mapping(un, up, "carry_unspent", "cycle")
			if cn, ok := um["carry_unspent"]; ok {
				p.Upgrade.CarryUnspent = d.boolean(cn, up+".carry_unspent")
			}
			if cn, ok := um["cycle"]; ok {
				p.Upgrade.Cycle = d.oneOf(cn, up+".cycle", "restart", "keep")
			}
		}
		if gn, ok := m["grace_days"]; ok {
			p.GraceDays = int(d.integer(gn, path+".grace_days", 0, 365))
		}
		if sn, ok := m["signup_grant"]; ok {
			sp := path + ".signup_grant"
			_, sm := d.mapping(sn, sp, "credits", "expires_in_days")
			g := &SignupGrant{}
			if cn, ok := sm["credits"]; ok {
				v, _ := d.nonNeg(cn, sp+".credits")
				g.Credits = v.amount()
			} else {
				d.errf(sn, sp+".credits", "required")
			}
			if en, ok := sm["expires_in_days"]; ok {
				g.ExpiresInDays = int(d.integer(en, sp+".expires_in_days", 1, 36500))
			}
			p.SignupGrant = g
		}
		if p.Code == "" {
			continue
		}
		if _, dup := c.planByCode[p.Code]; dup {
			d.errf(m["code"], path+".code", "duplicate plan code %q", p.Code)
			continue
		}
		c.planByCode[p.Code] = p
		c.plans = append(c.plans, p)
	}
	slices.SortStableFunc(c.plans, func(a, b *Plan) int { return a.Tier - b.Tier })
}

func (d *dec) packs(c *Catalog, n *yaml.Node) {
	seen := map[string]bool{}
	for i, e := range d.seq(n, "packs") {
		path := fmt.Sprintf("packs[%d]", i)
		_, m := d.mapping(e, path, "code", "name", "credits", "price", "stripe_price")
		p := &Pack{}
		p.Code = d.reqStr(m, e, path, "code")
		if p.Code != "" && !codeRe.MatchString(p.Code) {
			d.errf(m["code"], path+".code", "%q is not a valid code (lowercase letters, digits, _ and -)", p.Code)
		}
		path = fmt.Sprintf("%s(%s)", path, p.Code)
		p.Name = d.str(m["name"], path+".name")
		if cn, ok := m["credits"]; ok {
			v, ok := d.nonNeg(cn, path+".credits")
			if ok && v == 0 {
				d.errf(cn, path+".credits", "must be more than zero")
			}
			p.Credits = v.amount()
		} else {
			d.errf(e, path+".credits", "required")
		}
		if pn, ok := m["price"]; ok {
			p.Price = d.price(pn, path+".price")
		} else {
			d.errf(e, path+".price", "required")
		}
		p.StripePrice = d.str(m["stripe_price"], path+".stripe_price")
		if p.Name == "" {
			p.Name = p.Credits.String() + " credits"
		}
		if seen[p.Code] {
			d.errf(m["code"], path+".code", "duplicate pack code %q", p.Code)
			continue
		}
		seen[p.Code] = true
		c.packs = append(c.packs, p)
	}
}

func (d *dec) workflows(c *Catalog, n *yaml.Node) {
	seen := map[string]bool{}
	for i, e := range d.seq(n, "workflows") {
		path := fmt.Sprintf("workflows[%d]", i)
		_, m := d.mapping(e, path, "id", "name", "description", "steps")
		w := &Workflow{}
		w.ID = d.reqStr(m, e, path, "id")
		path = fmt.Sprintf("%s(%s)", path, w.ID)
		w.Name = d.reqStr(m, e, path, "name")
		w.Description = d.str(m["description"], path+".description")
		steps := d.seq(m["steps"], path+".steps")
		if len(steps) == 0 || len(steps) > stepsMax {
			d.errf(e, path+".steps", "a workflow needs 1 to %d steps", stepsMax)
		}
		good := true
		for j, sn := range steps {
			sp := fmt.Sprintf("%s.steps[%d]", path, j)
			_, sm := d.mapping(sn, sp, "action", "label", "count", "params")
			s := Step{Count: 1}
			s.Action = d.reqStr(sm, sn, sp, "action")
			s.Label = d.str(sm["label"], sp+".label")
			if cn, ok := sm["count"]; ok {
				s.Count = int(d.integer(cn, sp+".count", 1, stepCountMax))
			}
			for _, pe := range d.entries(sm["params"], sp+".params") {
				if s.Params == nil {
					s.Params = map[string]any{}
				}
				if v, ok := d.scalar(pe.v, sp+".params."+pe.key); ok {
					s.Params[pe.key] = v.Value
				}
			}
			if _, err := c.resolveAction(s.Action); s.Action != "" && err != nil {
				d.errf(sm["action"], sp+".action", "%v", err)
				good = false
			} else if s.Action != "" && len(d.probs) == 0 {
				if _, err := c.quote(QuoteRequest{Action: s.Action, Params: s.Params}, quoteOpts{ignoreGates: true, noBreakdown: true}); err != nil {
					d.errf(sn, sp, "%v", err)
					good = false
				}
			}
			w.Steps = append(w.Steps, s)
		}
		if seen[w.ID] {
			d.errf(m["id"], path+".id", "duplicate workflow id %q", w.ID)
			continue
		}
		seen[w.ID] = true
		if good {
			c.workflows = append(c.workflows, w)
		}
	}
}
