package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/scriphq/scrip/web"
)

func serve(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("GET "+web.Path, web.Handler())
	mux.Handle("GET /{$}", web.Redirect())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func get(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// TestFiles: the page and every file it loads are served with their types
// and the headers that keep the page to its own origin.
func TestFiles(t *testing.T) {
	srv := serve(t)
	resp, page := get(t, http.MethodGet, srv.URL+web.Path)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	wantTypes := map[string]string{"app.js": "text/javascript", "app.css": "text/css"}
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) != len(wantTypes) {
		t.Fatalf("the page loads %v, want %d files", refs, len(wantTypes))
	}
	for _, ref := range refs {
		name := ref[1]
		want, ok := wantTypes[name]
		if !ok {
			t.Errorf("the page loads %q, which is not one of its own files", name)
			continue
		}
		resp, body := get(t, http.MethodGet, srv.URL+web.Path+name)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) || body == "" {
			t.Errorf("%s: %d %q, %d bytes; want 200 %s", name, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), want)
		}
	}
	for _, path := range []string{web.Path, web.Path + "app.js"} {
		resp, _ := get(t, http.MethodGet, srv.URL+path)
		for header, want := range map[string]string{
			"X-Content-Type-Options": "nosniff",
			"X-Frame-Options":        "DENY",
			"Referrer-Policy":        "no-referrer",
			"Cache-Control":          "no-cache",
		} {
			if got := resp.Header.Get(header); got != want {
				t.Errorf("%s: %s %q, want %q", path, header, got, want)
			}
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'self'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "require-trusted-types-for 'script'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("%s: Content-Security-Policy %q lacks %q", path, csp, d)
			}
		}
		if strings.Contains(csp, "unsafe-") {
			t.Errorf("%s: Content-Security-Policy %q allows unsafe sources", path, csp)
		}
	}
	// The policy forbids inline script, so the page must have none.
	if regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]+</script>|\son[a-z]+=`).MatchString(page) {
		t.Error("the page has inline script, which its policy would block")
	}
}

func TestPaths(t *testing.T) {
	srv := serve(t)
	for _, c := range []struct {
		method, path string
		status       int
		location     string
	}{
		{http.MethodGet, "/", http.StatusFound, "dashboard/"},
		{http.MethodHead, web.Path, http.StatusOK, ""},
		{http.MethodGet, web.Path + "nope.js", http.StatusNotFound, ""},
		// The mux cleans the path before the dashboard sees it.
		{http.MethodGet, web.Path + "../web.go", http.StatusTemporaryRedirect, "/web.go"},
		{http.MethodGet, web.Path + "index.html", http.StatusMovedPermanently, "./"},
		{http.MethodPost, web.Path, http.StatusMethodNotAllowed, ""},
	} {
		resp, _ := get(t, c.method, srv.URL+c.path)
		if resp.StatusCode != c.status || resp.Header.Get("Location") != c.location {
			t.Errorf("%s %s: %d, Location %q; want %d %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Location"), c.status, c.location)
		}
	}
}

// TestRevalidation: a browser that asks again with a file's ETag, as
// "no-cache" has it do, gets a 304 without the file while it is the same.
func TestRevalidation(t *testing.T) {
	srv := serve(t)
	seen := map[string]string{}
	for _, path := range []string{web.Path, web.Path + "app.js", web.Path + "app.css"} {
		resp, body := get(t, http.MethodGet, srv.URL+path)
		tag := resp.Header.Get("ETag")
		if !regexp.MustCompile(`^"[0-9a-f]{24}"$`).MatchString(tag) || body == "" {
			t.Errorf("%s: ETag %q with %d bytes, want a strong tag and the file", path, tag, len(body))
			continue
		}
		if other, ok := seen[tag]; ok {
			t.Errorf("%s and %s share the ETag %s", path, other, tag)
		}
		seen[tag] = path
		for _, c := range []struct {
			ifNoneMatch string
			status      int
		}{{tag, http.StatusNotModified}, {`"0123"`, http.StatusOK}} {
			req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("If-None-Match", c.ifNoneMatch)
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status || (c.status == http.StatusNotModified) != (len(b) == 0) {
				t.Errorf("%s with If-None-Match %s: %d and %d bytes, want %d", path, c.ifNoneMatch, resp.StatusCode, len(b), c.status)
			}
		}
	}
}
