package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestOpenAPI(t *testing.T) {
	// With the routes scrip serve mounts besides the built-in ones.
	e := newEnv(t, backends[0].open, withEventAPI())
	r := e.get("/openapi.json", "")
	e.expect(r, 200, "")
	var doc map[string]any
	if err := json.Unmarshal(r.raw, &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi version %v", doc["openapi"])
	}
	paths := doc["paths"].(map[string]any)
	for _, route := range e.api.Routes() {
		method, path, _ := strings.Cut(route, " ")
		item, ok := paths[path].(map[string]any)
		if !ok {
			t.Errorf("route %s is not in openapi.json", route)
			continue
		}
		if _, ok := item[strings.ToLower(method)]; !ok {
			t.Errorf("route %s: openapi.json lacks the %s operation", route, method)
		}
	}
	// Every $ref resolves.
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				var cur any = doc
				for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
					m, _ := cur.(map[string]any)
					cur = m[part]
				}
				if cur == nil {
					t.Errorf("unresolved $ref %s", ref)
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(doc)
}
