package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/scriphq/scrip/httpapi/auth"
)

// envChrome names the browser the dashboard test drives; without it the
// test looks for Chromium or Chrome on the PATH.
const envChrome = "SCRIP_TEST_CHROME"

// browserTimeout bounds one store's whole browser session.
const browserTimeout = 90 * time.Second

// chromePath returns the browser to drive. Without one the test skips
// loudly, and fails in CI, which installs Chromium (.ci/run).
func chromePath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envChrome); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium or Chrome on the PATH: the dashboard test needs one (apt-get install chromium, or set " + envChrome + ")"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED: " + msg)
	return ""
}

// browser starts a headless browser for the test.
func browser(t *testing.T, chrome string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, browserTimeout)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// TestDashboard signs in to the dashboard in a headless browser and works
// an account through it, on each store: every figure it shows is checked
// against the API, and every change it makes is read back through the API.
func TestDashboard(t *testing.T) {
	t.Parallel()
	chrome := chromePath(t)
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			r, err := startServe(t, db.url(t))
			if err != nil {
				t.Fatal(err)
			}
			// An endpoint that refuses every event, so that deliveries wait.
			refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
			}))
			t.Cleanup(refusing.Close)
			r.must(http.StatusCreated, http.MethodPost, "/v1/event-endpoints",
				map[string]any{"url": refusing.URL, "types": []string{"grant.created"}})
			r.must(http.StatusCreated, http.MethodPost, "/v1/accounts", map[string]any{"id": "user_dash"})
			r.keyed("/v1/accounts/user_dash/grants", "g1", map[string]any{"kind": "top_up", "amount": "12.5"})
			r.keyed("/v1/accounts/user_dash/charges", "c1", map[string]any{"action": "img"})

			ctx := browser(t, chrome)
			do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
				t.Helper()
				if err := chromedp.Do(ctx, steps...); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
			}
			eval := func(js string) string {
				t.Helper()
				s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
				if err != nil {
					t.Fatalf("evaluate %s: %v", js, err)
				}
				return s
			}
			// text is what the element shows.
			text := func(sel string) string {
				t.Helper()
				return strings.TrimSpace(eval(`document.querySelector(` + quoteJS(sel) + `)?.textContent ?? ""`))
			}
			// rows counts the rows of a table's body.
			rows := func(sel string) int {
				t.Helper()
				n, err := strconv.Atoi(eval(`String(document.querySelectorAll(` + quoteJS(sel+" tbody tr") + `).length)`))
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			// waitText waits until sel is shown and shows want.
			waitText := func(sel, want string) {
				t.Helper()
				js := `(() => { const e = document.querySelector(` + quoteJS(sel) + `); return !!e && !e.closest("[hidden]") && e.textContent.trim() === ` + quoteJS(want) + `; })()`
				if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
					t.Fatalf("%s never showed %q (it shows %q): %v", sel, want, text(sel), err)
				}
			}
			css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
			// agree waits for the page to show an account's available
			// credits after what it did, and checks the API says the same.
			agree := func(after, acct, want string) {
				t.Helper()
				waitText("#available", want)
				if got := r.available(acct); got != want {
					t.Errorf("after %s the API says %s available, want %s", after, got, want)
				}
			}

			// The server's root leads to the dashboard; a wrong key is refused.
			do("open", chromedp.Navigate(r.url+"/"), chromedp.WaitVisible(css("#signin-form")))
			do("wrong key", chromedp.SendKeys(css("#key"), "not_a_key_0123456789"),
				chromedp.Click(css("#signin-submit")))
			waitText("#signin-error", "That key was refused.")
			do("sign in", chromedp.SetValue(css("#key"), testAdminKey),
				chromedp.Click(css("#signin-submit")), chromedp.WaitVisible(css("#app")))
			if got := text("#catalog-name"); !strings.HasPrefix(got, "Payments test · sha256:") {
				t.Errorf("catalog shown as %q", got)
			}
			if got := text("#whoami"); got != "admin_key · admin" {
				t.Errorf("the key shown as %q, want the admin key", got)
			}

			// The account as the API has it: 12.5 granted, 4 charged.
			do("look up", chromedp.SendKeys(css("#account-id"), "user_dash"),
				chromedp.Click(css("#lookup button")))
			waitText("#account-title", "user_dash")
			waitText("#available", r.available("user_dash"))
			if got := text("#available"); got != "8.5" {
				t.Errorf("available %q, want 8.5", got)
			}
			if got := text("#held"); got != "0" {
				t.Errorf("held %q, want 0", got)
			}
			if n := rows("#transactions"); n != 2 {
				t.Errorf("%d journal rows, want 2 (the grant and the charge)", n)
			}
			// Each row gives the credits it left available: the charge 8.5,
			// the grant 12.5.
			if got := text("#transactions tbody tr:first-child td:nth-child(5)") + " " +
				text("#transactions tbody tr:nth-child(2) td:nth-child(5)"); got != "8.5 12.5" {
				t.Errorf("available after the charge and the grant: %q, want \"8.5 12.5\"", got)
			}
			if n := rows("#grants"); n != 1 {
				t.Errorf("%d grant rows, want 1", n)
			}
			if n, none := rows("#holds"), text("#holds-none"); n != 0 || none != "No job holds credits." {
				t.Errorf("%d open holds shown, saying %q; want none", n, none)
			}

			// A grant and an adjustment made in the page reach the ledger.
			do("grant", chromedp.SetValue(css("#grant-kind"), "promotional"),
				chromedp.SendKeys(css("#grant-amount"), "1.25"), chromedp.Click(css("#grant button")))
			agree("the page's grant", "user_dash", "9.75")
			if g := r.grants("user_dash"); g["promotional"] != 1 {
				t.Errorf("grants by kind after the page's grant: %v, want one promotional", g)
			}
			do("adjust", chromedp.SendKeys(css("#adjust-amount"), "-0.75"),
				chromedp.SendKeys(css("#adjust-reason"), "dashboard test"), chromedp.Click(css("#adjust button")))
			agree("the page's adjustment", "user_dash", "9")
			if n := rows("#transactions"); n != 4 {
				t.Errorf("%d journal rows after a grant and an adjustment, want 4", n)
			}

			// What the API holds goes into the page as text, never as markup.
			const markup = `<img src=x onerror="window.pwned=1">`
			do("markup", chromedp.SendKeys(css("#adjust-amount"), "0.5"),
				chromedp.SendKeys(css("#adjust-reason"), markup), chromedp.Click(css("#adjust button")))
			agree("an adjustment whose reason is markup", "user_dash", "9.5")
			if got := text("#transactions tbody tr:first-child td:nth-child(6)"); got != markup {
				t.Errorf("the reason shows as %q, want %q", got, markup)
			}
			if got := eval(`String(document.querySelectorAll("#app img").length + ":" + typeof window.pwned)`); got != "0:undefined" {
				t.Errorf("images in the page and window.pwned: %s, want 0:undefined", got)
			}

			// Two submits at once make one grant.
			do("double submit", chromedp.SendKeys(css("#grant-amount"), "0.5"))
			eval(`(() => { const f = document.querySelector("#grant"); f.requestSubmit(); f.requestSubmit(); return ""; })()`)
			agree("a grant submitted twice at once", "user_dash", "10")
			if g := r.grants("user_dash"); g["promotional"] != 2 {
				t.Errorf("grants by kind after one grant submitted twice: %v, want two promotional in all", g)
			}

			// Out of credits says how many are needed and how many there are.
			do("too much", chromedp.SendKeys(css("#adjust-amount"), "-1000"),
				chromedp.SendKeys(css("#adjust-reason"), "too much"), chromedp.Click(css("#adjust button")))
			waitText("#error", "insufficient credits: 1000 required, 10 available (insufficient_credits)")

			// Bad input shows the API's error and changes nothing.
			do("bad amount", chromedp.SetValue(css("#adjust-amount"), "lots"),
				chromedp.SetValue(css("#adjust-reason"), "typo"), chromedp.Click(css("#adjust button")))
			waitText("#error", `amount: invalid credit amount "lots" (invalid_amount)`)
			if got := r.available("user_dash"); got != "10" {
				t.Errorf("after refused adjustments the API says %s available, want 10", got)
			}

			// An unknown account can be created from the page.
			do("unknown account", chromedp.SetValue(css("#account-id"), "user_new"),
				chromedp.Click(css("#lookup button")), chromedp.WaitVisible(css("#not-found")))
			do("create", chromedp.Click(css("#create-account")))
			waitText("#account-title", "user_new")
			waitText("#available", "0")
			r.must(http.StatusOK, http.MethodGet, "/v1/accounts/user_new", nil)

			// A long journal comes a page at a time.
			r.must(http.StatusCreated, http.MethodPost, "/v1/accounts", map[string]any{"id": "user_long"})
			r.keyed("/v1/accounts/user_long/grants", "g1", map[string]any{"kind": "top_up", "amount": 100})
			for i := range 21 {
				r.keyed("/v1/accounts/user_long/charges", fmt.Sprint("c", i), map[string]any{"action": "img"})
			}
			// ... and a job in flight shows with its hold.
			hold := r.keyed("/v1/accounts/user_long/holds", "h1", map[string]any{"action": "img", "job": "job-dash"})
			do("long journal", chromedp.SetValue(css("#account-id"), "user_long"), chromedp.Click(css("#lookup button")))
			waitText("#available", "12")
			if n := rows("#holds"); n != 1 {
				t.Errorf("%d open holds shown, want 1", n)
			}
			if got, want := text("#holds tbody tr td:nth-child(1)")+" "+text("#holds tbody tr td:nth-child(2)")+" "+text("#holds tbody tr td:nth-child(3)"),
				fmt.Sprint(hold["id"], " 4 job-dash"); got != want {
				t.Errorf("the open hold shows as %q, want %q", got, want)
			}
			if n := rows("#transactions"); n != 20 {
				t.Errorf("%d journal rows on the first page, want 20", n)
			}
			do("older", chromedp.Click(css("#older")))
			waitText("#transactions tbody tr:nth-child(23) td:first-child", "1")
			if hidden := eval(`String(document.querySelector("#older").hidden)`); hidden != "true" {
				t.Error("the Older button is still shown after the last page")
			}

			// Credits show exactly as the ledger holds them, beyond what a
			// float keeps.
			r.must(http.StatusCreated, http.MethodPost, "/v1/accounts", map[string]any{"id": "user_big"})
			r.keyed("/v1/accounts/user_big/grants", "g1", map[string]any{"amount": "123456789012.345678"})
			do("big", chromedp.SetValue(css("#account-id"), "user_big"), chromedp.Click(css("#lookup button")))
			waitText("#available", "123456789012.345678")

			// Every account is listed, and one is opened from the list.
			do("browse", chromedp.Click(css("#browse summary")))
			waitText("#all-accounts tbody tr:nth-child(4) td:first-child", "user_new")
			if got := eval(`Array.from(document.querySelectorAll("#all-accounts tbody tr td:first-child")).map((td) => td.textContent).join(",")`); got != "user_big,user_dash,user_long,user_new" {
				t.Errorf("accounts listed %q, want the four in id order", got)
			}
			do("open from the list", chromedp.Click(css("#all-accounts tbody tr:nth-child(3) button")))
			waitText("#account-title", "user_long")
			waitText("#available", "12")

			// The catalog and a quote, as the API prices it.
			do("catalog", chromedp.Click(css(`nav button[data-tab="catalog"]`)),
				chromedp.WaitVisible(css("#tab-catalog")))
			if n := rows("#actions"); n != 1 {
				t.Errorf("%d actions listed, want 1", n)
			}
			do("quote", chromedp.Click(css("#quote button")))
			waitText("#quote-credits", "4")

			// Events: the endpoint, an account's events by type, an event's
			// data and deliveries, and a retry from the page.
			do("events", chromedp.Click(css(`nav button[data-tab="events"]`)))
			waitText("#endpoints tbody tr td:nth-child(2)", refusing.URL)
			eventIDs := func(query string) []string {
				t.Helper()
				var ids []string
				for _, e := range r.must(http.StatusOK, http.MethodGet, "/v1/events?"+query, nil)["data"].([]any) {
					ids = append(ids, e.(map[string]any)["id"].(string))
				}
				return ids
			}
			waitFor(t, "three grant.created events of user_dash and one of user_big", func() bool {
				return len(eventIDs("account_id=user_dash&type=grant.created")) == 3 &&
					len(eventIDs("account_id=user_big&type=grant.created")) == 1
			})
			listed := func(account, typ string, want []string) {
				t.Helper()
				eval(`(() => { document.querySelector("#event-account").value = ` + quoteJS(account) +
					`; document.querySelector("#event-type").value = ` + quoteJS(typ) + `; return ""; })()`)
				do("filter "+account+" "+typ, chromedp.Click(css("#event-filter button")))
				count := fmt.Sprintf("%d events", len(want))
				if len(want) == 1 {
					count = "1 event"
				}
				waitText("#events-count", count)
				got := strings.Fields(eval(`[...document.querySelectorAll("#events tbody tr button")].map(b => b.textContent).join(" ")`))
				if !slices.Equal(got, want) {
					t.Errorf("events listed for %s %s: %v, want the API's %v", account, typ, got, want)
				}
			}
			listed("user_dash", "hold.expired", nil)
			dashGrants := eventIDs("account_id=user_dash&type=grant.created")
			listed("user_dash", "grant.created", dashGrants)

			// The event's data, with its numbers as the server wrote them.
			bigGrant := eventIDs("account_id=user_big&type=grant.created")
			listed("user_big", "", bigGrant)
			do("open user_big's event", chromedp.Click(css("#events tbody tr:first-child button")))
			waitText("#event-title", "grant.created · "+bigGrant[0])
			if data := text("#event-data"); !strings.Contains(data, `"amount": 123456789012.345678,`) || !strings.Contains(data, `"account_id": "user_big"`) {
				t.Errorf("the event's data shows as %s, want its JSON with the amount exactly as sent", data)
			}

			// A retry makes the dispatcher try again before the backoff would.
			listed("user_dash", "grant.created", dashGrants)
			eventID := dashGrants[0]
			delivery := func() map[string]any {
				t.Helper()
				ds := r.must(http.StatusOK, http.MethodGet, "/v1/events/"+eventID, nil)["deliveries"].([]any)
				if len(ds) != 1 {
					t.Fatalf("event %s has %d deliveries, want 1", eventID, len(ds))
				}
				return ds[0].(map[string]any)
			}
			attempts := func() int {
				t.Helper()
				n, _ := delivery()["attempts"].(json.Number).Int64()
				return int(n)
			}
			waitFor(t, "a first attempt at "+eventID, func() bool { return attempts() >= 1 })
			do("open event", chromedp.Click(css("#events tbody tr:first-child button")))
			waitText("#event-title", "grant.created · "+eventID)
			before, due := attempts(), delivery()["next_at"].(string)
			waitText("#deliveries tbody tr td:nth-child(2)", "pending")
			waitText("#deliveries tbody tr td:nth-child(3)", strconv.Itoa(before))
			if got := text("#deliveries tbody tr td:nth-child(4)"); !strings.HasPrefix(got, "500") {
				t.Errorf("the delivery's last answer shows %q, want the endpoint's 500", got)
			}
			do("retry", chromedp.Click(css("#retry-event")))
			waitText("#event-title", "grant.created · "+eventID+" — 1 deliveries due again")
			waitFor(t, "another attempt at "+eventID+" after the retry", func() bool { return attempts() > before })
			var retried string
			for _, a := range r.must(http.StatusOK, http.MethodGet, "/v1/events/"+eventID, nil)["attempts"].([]any) {
				if n, _ := a.(map[string]any)["number"].(json.Number).Int64(); int(n) == before+1 {
					retried = a.(map[string]any)["at"].(string)
				}
			}
			if at, err := time.Parse(time.RFC3339Nano, retried); err != nil || !at.Before(mustTime(t, due)) {
				t.Errorf("attempt %d at %q, want before %s, when the backoff had it due", before+1, retried, due)
			}

			// Verification over the whole ledger.
			do("verify", chromedp.Click(css(`nav button[data-tab="ledger"]`)),
				chromedp.Click(css("#verify")))
			waitText("#verify-summary", "OK: 4 accounts and 30 transactions agree with their journals.")

			// Signing out forgets the key.
			do("sign out", chromedp.Click(css("#signout")), chromedp.WaitVisible(css("#signin-form")))
			if eval(`String(sessionStorage.getItem("scrip.key") !== null)`) != "false" {
				t.Error("the key is still stored after signing out")
			}

			// A key the server stops accepting sends the page back to sign
			// in, saying why.
			eval(`(() => { sessionStorage.setItem("scrip.key", "revoked_key_0123456789abcdef"); return ""; })()`)
			do("reload", chromedp.Navigate(r.url+"/dashboard/"))
			waitText("#signin-error", "The server no longer accepts your key; sign in again.")

			// A read key sees the accounts and the catalog, and is not
			// offered what its scope cannot do.
			key, secret := auth.NewKey("dashboard reader", []auth.Scope{auth.ScopeRead}, time.Now())
			if err := r.store.CreateKey(context.Background(), key); err != nil {
				t.Fatal(err)
			}
			do("sign in to read", chromedp.SetValue(css("#key"), secret), chromedp.Click(css("#signin-submit")),
				chromedp.WaitVisible(css("#app")), chromedp.SetValue(css("#account-id"), "user_dash"), chromedp.Click(css("#lookup button")))
			waitText("#available", "10")
			waitText("#whoami", "dashboard reader · read")
			// shown says whether the element is displayed.
			shown := func(sel string) bool {
				t.Helper()
				return eval(`(() => { const e = document.querySelector(`+quoteJS(sel)+`); return String(!!e && e.getClientRects().length > 0); })()`) == "true"
			}
			for sel, want := range map[string]bool{
				"#grant": false, "#adjust": false, `nav button[data-tab="events"]`: false, `nav button[data-tab="ledger"]`: false,
				`#account [data-lacks="admin"]`: true, "#holds": true, `nav button[data-tab="catalog"]`: true,
			} {
				if got := shown(sel); got != want {
					t.Errorf("with a read key %s shown %t, want %t", sel, got, want)
				}
			}
			do("unknown account with a read key", chromedp.SetValue(css("#account-id"), "user_other"),
				chromedp.Click(css("#lookup button")), chromedp.WaitVisible(css("#not-found")))
			if shown("#create-account") || !shown(`#not-found [data-lacks="charge"]`) {
				t.Error("a read key is offered to create an account, or not told why not")
			}
		})
	}
}

// keyed posts body with an Idempotency-Key and an admin key, and needs
// 200.
func (r *running) keyed(path, key string, body any) map[string]any {
	r.t.Helper()
	code, out := r.do(http.MethodPost, path, testAdminKey, body, map[string]string{"Idempotency-Key": key})
	if code != http.StatusOK {
		r.t.Fatalf("POST %s: status %d, want 200: %v", path, code, out)
	}
	return out
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// waitFor polls cond until it holds, for at most 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quoteJS quotes s as a JavaScript string literal.
func quoteJS(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// TestServeDashboardFlag: the dashboard is on by default, its root leading
// to it, and --dashboard=false leaves both paths unrouted.
func TestServeDashboardFlag(t *testing.T) {
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	status := func(url string) (int, string) {
		t.Helper()
		resp, err := noRedirect.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	for _, c := range []struct {
		args          []string
		root, page    int
		rootRedirects bool
	}{
		{nil, http.StatusFound, http.StatusOK, true},
		{[]string{"--dashboard=false"}, http.StatusNotFound, http.StatusNotFound, false},
	} {
		r, err := startServe(t, filepath.Join(t.TempDir(), "scrip.db"), c.args...)
		if err != nil {
			t.Fatal(err)
		}
		root, loc := status(r.url + "/")
		page, _ := status(r.url + "/dashboard/")
		if root != c.root || page != c.page || (loc == "dashboard/") != c.rootRedirects {
			t.Errorf("%v: / answers %d (Location %q), /dashboard/ %d; want %d and %d", c.args, root, loc, page, c.root, c.page)
		}
	}
}
