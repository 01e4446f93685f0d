package httpapi

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/scriphq/scrip/httpapi/auth"
)

// Route is an extra endpoint mounted behind the server's authentication
// (Config.Routes), such as the outbox's admin API.
type Route struct {
	// Pattern is a ServeMux pattern with a method: "GET /v1/events".
	Pattern string
	// Scope is what a secret key needs; account tokens are refused.
	Scope auth.Scope
	// Handle serves the request. An error it returns is answered as a
	// problem document, with the status of its code, like the built-in
	// routes' errors.
	Handle func(w http.ResponseWriter, r *http.Request) error
}

// extraRoutes checks cfg.Routes and turns them into routes of the table.
func extraRoutes(builtin []route, extra []Route) ([]route, error) {
	taken := make(map[string]bool, len(builtin)+len(extra))
	for _, rt := range builtin {
		taken[rt.pattern] = true
	}
	out := make([]route, 0, len(extra))
	for _, r := range extra {
		method, path, ok := strings.Cut(r.Pattern, " ")
		switch {
		case !ok || method == "" || !strings.HasPrefix(path, "/"):
			return nil, fmt.Errorf("httpapi: route %q: want a method and a path", r.Pattern)
		case r.Scope == "":
			return nil, fmt.Errorf("httpapi: route %q has no scope (mount routes without credentials in Public)", r.Pattern)
		case !r.Scope.Valid():
			return nil, fmt.Errorf("httpapi: route %q: unknown scope %q", r.Pattern, r.Scope)
		case r.Handle == nil:
			return nil, fmt.Errorf("httpapi: route %q has no handler", r.Pattern)
		case taken[r.Pattern]:
			return nil, fmt.Errorf("httpapi: route %q is mounted twice", r.Pattern)
		}
		taken[r.Pattern] = true
		out = append(out, route{pattern: r.Pattern, scope: r.Scope, h: r.Handle})
	}
	return out, nil
}
