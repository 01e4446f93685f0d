// Package web serves scrip's dashboard: static pages, embedded in the
// binary, that run in the operator's browser against the HTTP API with the
// key the operator signs in with. The server keeps no state for them, and
// every figure they show is read from the API when it is shown.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// Path is where the dashboard is mounted.
const Path = "/dashboard/"

//go:embed static
var files embed.FS

// contentSecurityPolicy lets the pages load only their own files and call
// only their own origin's API: no inline script, no frame around them, and
// no markup put into the page from a string (trusted types).
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; require-trusted-types-for 'script'"

// Handler serves the dashboard's files under Path.
func Handler() http.Handler {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree always has it
	}
	serveFile := http.StripPrefix(Path, http.FileServerFS(static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		// The files change with the binary; a browser asks again each time.
		h.Set("Cache-Control", "no-cache")
		serveFile.ServeHTTP(w, r)
	})
}

// Redirect sends a browser at the server's root to the dashboard. The
// location is relative (http.Redirect would make it absolute), so that it
// holds behind a proxy that serves the server under a path of its own.
func Redirect() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", strings.TrimPrefix(Path, "/"))
		w.WriteHeader(http.StatusFound)
	})
}
