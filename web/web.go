// Package web serves scrip's dashboard: static pages, embedded in the
// binary, that run in the operator's browser against the HTTP API with the
// key the operator signs in with. The server keeps no state for them, and
// every figure they show is read from the API when it is shown.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
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
	tags, err := etags(static)
	if err != nil {
		panic(err) // reading the embedded tree cannot fail
	}
	serveFile := http.StripPrefix(Path, http.FileServerFS(static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		// The files change with the binary; a browser asks again each time,
		// and with the file's ETag gets a 304 while the binary is the same.
		h.Set("Cache-Control", "no-cache")
		name := strings.TrimPrefix(r.URL.Path, Path)
		if name == "" {
			name = "index.html"
		}
		if tag, ok := tags[name]; ok {
			h.Set("ETag", tag)
		}
		serveFile.ServeHTTP(w, r)
	})
}

// etags gives each file of the tree a strong ETag from its contents:
// embedded files have no modification time to revalidate by.
func etags(tree fs.FS) (map[string]string, error) {
	tags := map[string]string{}
	err := fs.WalkDir(tree, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(tree, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		tags[name] = `"` + hex.EncodeToString(sum[:12]) + `"`
		return nil
	})
	return tags, err
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
