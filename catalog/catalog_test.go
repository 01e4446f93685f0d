package catalog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/credit"
)

func mustParse(t testing.TB, src string) *Catalog {
	t.Helper()
	c, err := Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func quote(t testing.TB, c *Catalog, action string, params map[string]any, plan string) Quote {
	t.Helper()
	q, err := c.Quote(QuoteRequest{Action: action, Params: params, Plan: plan})
	if err != nil {
		t.Fatalf("%s %v: %v", action, params, err)
	}
	return q
}

const rules = `
name: Rules
plans:
  - {code: free, name: Free, tier: 0, monthly_credits: 10, price: {amount: 0, currency: usd}}
  - {code: pro, name: Pro, tier: 1, monthly_credits: 100, price: {amount: 1000, currency: usd}, discounts: {text: 25}}
  - {code: max, name: Max, tier: 2, monthly_credits: 1000, price: {amount: 5000, currency: usd}, unlimited: [speech]}
actions:
  - {id: free-thing, name: Free thing, category: tool, price: 0}
  - {id: half, name: Half, category: tool, price: 0.5}
  - id: per-mp
    name: Per megapixel
    category: image
    parameters:
      resolution: {type: string}
    price: {per: {param: resolution, unit: megapixel, rate: 2}, round: ceil, min: 1, max: 50}
  - id: words
    name: Words
    category: text
    parameters:
      text: {type: string, max_length: 1000, required: true}
    price: {per: {param: text, unit: character, size: 10, rate: 0.1, round_units: ceil}}
  - id: speech
    name: Speech
    category: speech
    parameters:
      characters: {type: integer, min: 1, required: true}
    price: {per: {param: characters, unit: character, size: 100, rate: 1, round_units: ceil}}
  - id: sum
    name: Sum
    category: video
    parameters:
      duration: {type: number, min: 1, max: 60, default: 5}
      hd: {type: boolean, default: false}
    min_plan: free
    gates:
      - {when: duration > 30, min_plan: max}
      - {when: hd, min_plan: pro}
    price:
      sum:
        - 2
        - {per: {param: duration, unit: second, rate: 1.5}}
      multiply: {hd: {true: 2}}
      round: round
  - id: cond
    name: Conditional
    category: tool
    parameters:
      n: {type: integer, min: -100, max: 100, default: 0}
    price: {formula: 'if(n < 0 || n == 0, 1, min(floor(n / 3) + ceil(n / 3) + abs(-n), 99))'}
`

func TestRules(t *testing.T) {
	t.Parallel()
	c := mustParse(t, rules)
	tests := []struct {
		action  string
		params  map[string]any
		plan    string
		credits string
		list    string
	}{
		{"free-thing", nil, "", "0", ""},
		{"half", nil, "", "0.5", ""},
		{"per-mp", map[string]any{"resolution": "1024x1024"}, "", "2", ""},
		{"per-mp", map[string]any{"resolution": "100x100"}, "", "1", ""},    // min
		{"per-mp", map[string]any{"resolution": "1000x1000"}, "", "2", ""},  // 1.907… ceil
		{"per-mp", map[string]any{"resolution": "8192x8192"}, "", "50", ""}, // max
		{"words", map[string]any{"text": "hello world"}, "", "0.2", ""},     // 11 chars -> 2 steps
		{"speech", map[string]any{"characters": "600"}, "", "6", ""},
		{"speech", map[string]any{"characters": 601}, "max", "0", "7"},
		{"sum", nil, "free", "10", ""},                                      // 2 + 7.5 = 9.5 -> 10
		{"sum", map[string]any{"duration": 3, "hd": true}, "pro", "13", ""}, // (2+4.5)*2
		{"sum", map[string]any{"duration": 40}, "max", "62", ""},
		{"cond", nil, "", "1", ""},
		{"cond", map[string]any{"n": -5}, "", "1", ""},
		{"cond", map[string]any{"n": 7}, "", "12", ""}, // 2 + 3 + 7
		{"cond", map[string]any{"n": 7}, "pro", "12", ""},
	}
	for _, tt := range tests {
		q := quote(t, c, tt.action, tt.params, tt.plan)
		list := tt.list
		if list == "" {
			list = tt.credits
		}
		if q.Credits != credit.MustParse(tt.credits) || q.ListCredits != credit.MustParse(list) {
			t.Errorf("%s %v %s: %s (list %s), want %s (list %s); %+v", tt.action, tt.params, tt.plan, q.Credits, q.ListCredits, tt.credits, list, q.Breakdown)
		}
	}
}

func TestRoundHalfAwayFromZero(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"4.5": "5", "-4.5": "-5", "4.49": "4", "0.5": "1", "5.5": "6", "2.5": "3"} {
		n, _ := parseNum(in)
		if got := n.roundTo(roundHalf).String(); got != want {
			t.Errorf("round(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestQuoteErrors(t *testing.T) {
	t.Parallel()
	c := mustParse(t, rules)
	tests := []struct {
		action string
		params map[string]any
		plan   string
		code   string
		field  string
		plan2  string
	}{
		{"spech", nil, "", scrip.EActionNotFound, "action", ""},
		{"speech", nil, "", scrip.EInvalidParam, "characters", ""},
		{"speech", map[string]any{"characters": 0}, "", scrip.EInvalidParam, "characters", ""},
		{"speech", map[string]any{"characters": 1.5}, "", scrip.EInvalidParam, "characters", ""},
		{"speech", map[string]any{"characters": "many"}, "", scrip.EInvalidParam, "characters", ""},
		{"speech", map[string]any{"characters": 5, "voice": "x"}, "", scrip.EInvalidParam, "voice", ""},
		{"speech", map[string]any{"characters": 5}, "gold", scrip.EInvalidParam, "plan", ""},
		{"words", map[string]any{"text": strings.Repeat("x", 1001)}, "", scrip.EInvalidParam, "text", ""},
		{"sum", nil, "", scrip.EPlanRequired, "", "free"},
		{"sum", map[string]any{"hd": "true"}, "free", scrip.EPlanRequired, "", "pro"},
		{"sum", map[string]any{"hd": true, "duration": 31}, "pro", scrip.EPlanRequired, "", "max"},
		{"sum", map[string]any{"hd": "yes"}, "max", scrip.EInvalidParam, "hd", ""},
		{"per-mp", map[string]any{"resolution": "big"}, "", scrip.EInvalidParam, "resolution", ""},
		{"per-mp", nil, "", scrip.EInvalidParam, "resolution", ""},
	}
	for _, tt := range tests {
		_, err := c.Quote(QuoteRequest{Action: tt.action, Params: tt.params, Plan: tt.plan})
		var e *scrip.Error
		if !errors.As(err, &e) || e.Code != tt.code || e.Field != tt.field {
			t.Errorf("%s %v %s: %v (%#v), want %s field %q", tt.action, tt.params, tt.plan, err, e, tt.code, tt.field)
			continue
		}
		if tt.plan2 != "" && e.Details["plan"] != tt.plan2 {
			t.Errorf("%s: plan %v, want %s", tt.action, e.Details["plan"], tt.plan2)
		}
	}
}

func TestValidationListsEveryProblem(t *testing.T) {
	t.Parallel()
	src := `name: Broken
plans:
  - {code: pro, name: Pro, tier: 1, monthly_credits: 1, price: {amount: 1, currency: usd}}
actions:
  - {id: a, name: A, category: image, price: {formul: 1}}
  - {id: a, name: B, category: image, price: {formula: "max(dur, 1"}}
  - id: t
    name: T
    category: video
    min_plan: gold
    parameters: {d: {type: enum, values: [5, 10]}}
    price: {table: {by: d, values: {5: 1}}}
  - id: u
    name: U
    category: video
    parameters: {d: {type: number, auto: true}}
    price: {per: {param: d, unit: secs, rate: 1}}
defaults: {image: nope}
workflows:
  - {id: w, name: W, steps: [{action: missing}]}
`
	_, err := Parse([]byte(src), "broken.yaml")
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err %v", err)
	}
	want := []string{
		`broken.yaml:5: actions[0](a).price.formul: unknown field "formul"`,
		`broken.yaml:6: actions[1](a).price.formula: bad expression "max(dur, 1": at column 5: unknown name "dur"`,
		`broken.yaml:6: actions[1].id: duplicate id "a" (also line 5)`,
		`broken.yaml:10: actions[2](t).min_plan: plan "gold" not found (want pro)`,
		`broken.yaml:12: actions[2](t).price.table.values: table missing a combination: d=10`,
		`actions[3](u).price.per.unit: unknown value "secs" (want second, minute, character`,
		`actions[3](u).reserve.params: parameter d may be auto`,
		`defaults.image: default action "nope" not found`,
		`workflows[0](w).steps[0].action: action "missing" not found`,
	}
	got := err.Error()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing problem %q in\n%s", w, got)
		}
	}
	for _, p := range ve.Problems {
		if p.File != "broken.yaml" || p.Line == 0 {
			t.Errorf("problem without place: %+v", p)
		}
	}
}

func TestYAMLSyntaxError(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte("name: x\nactions:\n  - {id: a\n"), "s.yaml")
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) == 0 || ve.Problems[0].Line == 0 {
		t.Fatalf("%v", err)
	}
}

func TestVersionIsContentHash(t *testing.T) {
	t.Parallel()
	a := mustParse(t, rules)
	b := mustParse(t, rules+"\n# comment\n")
	if a.Version == b.Version || !strings.HasPrefix(a.Version, "sha256:") || len(a.Version) != len("sha256:")+16 {
		t.Errorf("versions %s %s", a.Version, b.Version)
	}
	if q := quote(t, a, "half", nil, ""); q.Version != a.Version || q.Label != "Half (0.5 credits)" {
		t.Errorf("%+v", q)
	}
}

func TestLiveKeepsWorkingCatalog(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(rules)
	l, err := NewLive(path)
	if err != nil {
		t.Fatal(err)
	}
	v := l.Catalog().Version
	write("name: broken\nactions: []\n")
	if changed, err := l.Reload(); err == nil || changed {
		t.Fatalf("broken reload: %v %v", changed, err)
	}
	if l.Catalog().Version != v {
		t.Fatal("broken catalog replaced the working one")
	}
	write(strings.Replace(rules, "price: 0.5", "price: 0.75", 1))
	if changed, err := l.Reload(); err != nil || !changed {
		t.Fatalf("reload: %v %v", changed, err)
	}
	if q := quote(t, l.Catalog(), "half", nil, ""); q.Credits != credit.MustParse("0.75") {
		t.Errorf("after reload %s", q.Credits)
	}
}

func TestExpressions(t *testing.T) {
	t.Parallel()
	vars := map[string]exprVar{"x": {0, kindNum}, "s": {1, kindStr}, "b": {2, kindBool}}
	env := []value{{k: kindNum, n: numInt(3)}, {k: kindStr, s: "512x512"}, {k: kindBool, b: true}}
	good := map[string]string{
		"1 + 2 * 3":                      "7",
		"(1 + 2) * 3":                    "9",
		"x / 2":                          "1.5",
		"-x + 10":                        "7",
		"round(4.5) + round(-4.5)":       "0",
		"ceil(0.1) + floor(0.9)":         "1",
		"max(1, x, 2) - min(5, x)":       "0",
		"if(b && x >= 3, 1, 2)":          "1",
		"if(!b || s != '512x512', 1, 2)": "2",
		"megapixels(s) * 4":              "1",
		"len(s)":                         "7",
		"1 / 3":                          "0.333333",
		"2 / 3":                          "0.666667",
	}
	for src, want := range good {
		e, err := compileExpr(src, vars, kindNum)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		v, err := e.root.eval(env)
		if err != nil || v.n.String() != want {
			t.Errorf("%s = %s (%v), want %s", src, v.n, err, want)
		}
	}
	bad := []string{"", "1 +", "foo", "x +* 2", "round(1, 2)", "s + 1", "b * 2", "if(x, 1, 2)", "1 == 's'", "unknown(1)", "'open", "1 # 2", "(((1)"}
	for _, src := range bad {
		if _, err := compileExpr(src, vars, kindNum); err == nil {
			t.Errorf("%q compiled", src)
		}
	}
	e, _ := compileExpr("x / (x - 3)", vars, kindNum)
	if _, err := e.root.eval(env); err == nil {
		t.Error("division by zero evaluated")
	}
	e, _ = compileExpr("x * 9000000000000", vars, kindNum)
	if _, err := e.root.eval(env); err == nil {
		t.Error("overflow evaluated")
	}
}

func TestSuggestions(t *testing.T) {
	t.Parallel()
	c := mustParse(t, rules)
	_, err := c.Quote(QuoteRequest{Action: "spech"})
	var e *scrip.Error
	if !errors.As(err, &e) {
		t.Fatal(err)
	}
	if s := e.Details["suggestions"].([]string); len(s) == 0 || s[0] != "speech" {
		t.Errorf("suggestions %v", s)
	}
}
