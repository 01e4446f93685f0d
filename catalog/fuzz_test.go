package catalog

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(rules))
	files, _ := filepath.Glob("../examples/catalogs/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			return
		}
		for _, a := range c.Actions() {
			q, err := c.Quote(QuoteRequest{Action: a.ID})
			if err == nil && q.Reserve < q.Credits {
				t.Fatalf("%s: reserve %s below credits %s", a.ID, q.Reserve, q.Credits)
			}
		}
	})
}

func FuzzExpr(f *testing.F) {
	for _, s := range []string{
		"round(2 + 10 * megapixels(r) + if(u > 1, 3 * megapixels(r) * u, 0))",
		"max(d, 5) * 0.6", "ceil(c / 100)", "if(b && !b || d >= 1, 1, 2)", "len(r) / 0",
		"-(-(-d))", "min(1,2,3,4) - max(d, c)", "r == '512x512'",
	} {
		f.Add(s, "3.5", "1024x1024")
	}
	vars := map[string]exprVar{"d": {0, kindNum}, "c": {1, kindNum}, "u": {2, kindNum}, "r": {3, kindStr}, "b": {4, kindBool}}
	f.Fuzz(func(t *testing.T, src, n, s string) {
		e, err := compileExpr(src, vars, kindNone)
		if err != nil {
			return
		}
		x, err := parseNum(n)
		if err != nil {
			x = numOne
		}
		env := []value{{k: kindNum, n: x}, {k: kindNum, n: -x}, {k: kindNum, n: x * 2}, {k: kindStr, s: s}, {k: kindBool, b: x > 0}}
		v, err := e.root.eval(env)
		if err == nil && v.k != e.root.k {
			t.Fatalf("%q: value kind %s, compiled kind %s", src, v.k, e.root.k)
		}
	})
}
