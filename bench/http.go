package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/httpapi/auth"
	"github.com/scriphq/scrip/ledger"
)

// responseBytesMax bounds a response body the load generator reads.
const responseBytesMax = 4 << 20

// httpTarget drives a running scrip server through its API, end to end:
// JSON, authentication, the engine and the store.
type httpTarget struct {
	base   string
	key    string
	client *http.Client
	// wire carries the operations to a plain http:// server; nil over https.
	wire   *wire
	prefix string // the base URL's path, in front of every request's
	action string
	// price is what a charge of action costs when charges are priced;
	// 0: charges name explicit credits.
	price credit.Amount
	// before is the server's batch-size histogram when the timed run
	// started; batches reports the difference.
	before map[string]float64
	// after is the same at its end, read by batches.
	after map[string]float64
}

func newHTTPTarget(ctx context.Context, cfg Config) (*httpTarget, error) {
	ctx = patient(ctx)
	u, err := url.Parse(cfg.HTTP)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("http url %q: want http://host:port", cfg.HTTP)
	}
	if cfg.APIKey == "" {
		return nil, errors.New("an API key with the admin scope is required over HTTP (--api-key or SCRIP_API_KEY)")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = cfg.Concurrency * 2
	tr.MaxIdleConnsPerHost = cfg.Concurrency * 2
	tr.IdleConnTimeout = time.Minute
	tr.DisableCompression = true
	t := &httpTarget{
		base:   strings.TrimSuffix(cfg.HTTP, "/"),
		key:    cfg.APIKey,
		client: &http.Client{Transport: tr, Timeout: opTimeout},
		action: quoteAction,
	}
	if u.Scheme == "http" {
		host := u.Host
		if u.Port() == "" {
			host += ":80"
		}
		t.wire = &wire{addr: host, host: u.Host}
		t.prefix = strings.TrimSuffix(u.Path, "/")
	}
	if err := t.checkKey(ctx); err != nil {
		t.close(ctx)
		return nil, err
	}
	// Quote an action the server's catalog has.
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := t.do(ctx, http.MethodGet, "/v1/catalog/actions", "", nil, &list); err != nil {
		t.close(ctx)
		return nil, fmt.Errorf("list the server's actions: %w", err)
	}
	if len(list.Data) > 0 && !hasAction(list.Data, quoteAction) {
		t.action = list.Data[0].ID
	}
	if cfg.Priced {
		var q struct {
			Credits credit.Amount `json:"credits"`
		}
		err := t.do(ctx, http.MethodPost, "/v1/quotes", "", map[string]any{"action": t.action}, &q)
		if err == nil && q.Credits <= 0 {
			err = fmt.Errorf("it costs %s credits; priced charges need an action that costs some", q.Credits)
		}
		if err != nil {
			t.close(ctx)
			return nil, fmt.Errorf("price the action %s: %w", t.action, err)
		}
		t.price = q.Credits
	}
	return t, nil
}

func (t *httpTarget) chargePrice() credit.Amount { return t.price }

func hasAction(list []struct {
	ID string `json:"id"`
}, id string) bool {
	for _, a := range list {
		if a.ID == id {
			return true
		}
	}
	return false
}

// patientKey marks a context whose requests wait out the server's rate
// limit (429, rate_limited) and try again: the set-up and the checks around
// the timed part, which measure nothing and must not fail for it. In the
// timed part a refused request counts as an error.
type patientKey struct{}

func patient(ctx context.Context) context.Context {
	return context.WithValue(ctx, patientKey{}, true)
}

// Waits before a rate-limited request is sent again: the first, doubled up
// to the last. The server's limiter refills every second.
const (
	rateLimitedWaitMin = 50 * time.Millisecond
	rateLimitedWaitMax = time.Second
)

// do sends a request and decodes the response into out (when not nil). An
// error response becomes a *scrip.Error with the server's code. Under a
// patient context a rate-limited request is sent again until it is served.
func (t *httpTarget) do(ctx context.Context, method, path, key string, body, out any) error {
	wait := rateLimitedWaitMin
	for {
		err := t.send(ctx, method, path, key, body, out)
		var se *scrip.Error
		if err == nil || ctx.Value(patientKey{}) == nil || !errors.As(err, &se) || se.Code != scrip.ERateLimited {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, rateLimitedWaitMax)
	}
}

// send makes one request for do.
func (t *httpTarget) send(ctx context.Context, method, path, key string, body, out any) error {
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return err
		}
	}
	if t.wire != nil {
		var h [3][2]string
		h[0] = [2]string{"Authorization", "Bearer " + t.key}
		n := 1
		if body != nil {
			h[n] = [2]string{"Content-Type", "application/json"}
			n++
		}
		if key != "" {
			h[n] = [2]string{"Idempotency-Key", key}
			n++
		}
		return t.wire.do(ctx, method, t.prefix+path, h[:n], data, func(r wireResponse) error {
			return decode(method, path, r.status, r.reason, r.body, out)
		})
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+t.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, responseBytesMax))
	if err != nil {
		return err
	}
	return decode(method, path, resp.StatusCode, resp.Status, b, out)
}

// decode turns a response into out (when not nil) or, for an error status,
// a *scrip.Error with the server's code.
func decode(method, path string, code int, status string, data []byte, out any) error {
	if code >= 300 {
		var p struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}
		if json.Unmarshal(data, &p) != nil || p.Code == "" {
			return fmt.Errorf("%s %s: %s", method, path, status)
		}
		return &scrip.Error{Code: p.Code, Message: fmt.Sprintf("%s %s: %s", method, path, p.Detail)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// checkKey asks the server what the key may do (GET /v1/me), so that a key
// that cannot run the load is refused before the run, with its scopes, and
// not by the first write of the funding. A server without the route is
// left to refuse what its key may not do as it comes.
func (t *httpTarget) checkKey(ctx context.Context) error {
	var me struct {
		Object string       `json:"object"`
		Name   string       `json:"name"`
		Scopes []auth.Scope `json:"scopes"`
	}
	err := t.do(ctx, http.MethodGet, "/v1/me", "", nil, &me)
	var se *scrip.Error
	switch {
	case errors.As(err, &se) && se.Code == scrip.ENotFound:
		return nil
	case err != nil:
		return fmt.Errorf("check the API key: %w", err)
	case me.Object != "api_key":
		return errors.New("the API key is an account token; over HTTP the run needs an API key with the admin scope, to create and fund its accounts")
	case !auth.Allows(me.Scopes, auth.ScopeAdmin):
		return fmt.Errorf("the API key %q has the scopes %v; over HTTP the run needs the admin scope, to create and fund its accounts", me.Name, me.Scopes)
	}
	return nil
}

func (t *httpTarget) name() string { return "scrip" }

type idJSON struct {
	ID string `json:"id"`
}

func (t *httpTarget) fund(ctx context.Context, account, key string, amount credit.Amount) error {
	if err := t.do(ctx, http.MethodPost, "/v1/accounts", "", map[string]string{"id": account}, nil); err != nil {
		return err
	}
	return t.do(ctx, http.MethodPost, "/v1/accounts/"+url.PathEscape(account)+"/grants", key,
		map[string]any{"kind": "top_up", "amount": amount, "source": map[string]string{"type": "bench"}}, nil)
}

func (t *httpTarget) charge(ctx context.Context, account, key string, amount credit.Amount) (string, error) {
	body := map[string]any{"credits": amount}
	if t.price > 0 {
		body = map[string]any{"action": t.action}
	}
	var out idJSON
	err := t.do(ctx, http.MethodPost, "/v1/accounts/"+url.PathEscape(account)+"/charges", key, body, &out)
	return out.ID, err
}

func (t *httpTarget) hold(ctx context.Context, account, key string, amount credit.Amount) (string, error) {
	var out idJSON
	err := t.do(ctx, http.MethodPost, "/v1/accounts/"+url.PathEscape(account)+"/holds", key,
		map[string]any{"credits": amount}, &out)
	return out.ID, err
}

func (t *httpTarget) capture(ctx context.Context, holdID, key string, amount credit.Amount) error {
	return t.do(ctx, http.MethodPost, "/v1/holds/"+url.PathEscape(holdID)+"/capture", key,
		map[string]any{"credits": amount}, nil)
}

func (t *httpTarget) release(ctx context.Context, holdID, key string) error {
	return t.do(ctx, http.MethodPost, "/v1/holds/"+url.PathEscape(holdID)+"/release", key,
		map[string]any{"reason": "job failed"}, nil)
}

func (t *httpTarget) refund(ctx context.Context, chargeID, key string, amount credit.Amount) error {
	return t.do(ctx, http.MethodPost, "/v1/charges/"+url.PathEscape(chargeID)+"/refunds", key,
		map[string]any{"credits": amount}, nil)
}

func (t *httpTarget) balance(ctx context.Context, account string) (credit.Amount, error) {
	var out struct {
		Available credit.Amount `json:"available"`
	}
	err := t.do(ctx, http.MethodGet, "/v1/accounts/"+url.PathEscape(account)+"/balance", "", nil, &out)
	return out.Available, err
}

func (t *httpTarget) quote(ctx context.Context) error {
	return t.do(ctx, http.MethodPost, "/v1/quotes", "", map[string]any{"action": t.action}, nil)
}

func (t *httpTarget) verify(ctx context.Context, _ func(int)) (Verify, error) {
	var out struct {
		OK           bool     `json:"ok"`
		Accounts     int      `json:"accounts"`
		Transactions int64    `json:"transactions"`
		Problems     []string `json:"problems"`
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	// Verification reads the whole journal: it gets more time than an operation.
	long := &httpTarget{base: t.base, key: t.key, client: &http.Client{Transport: t.client.Transport, Timeout: 10 * time.Minute}}
	if err := long.do(ctx, http.MethodGet, "/v1/admin/verify", "", nil, &out); err != nil {
		return Verify{}, err
	}
	v := Verify{OK: true, Accounts: out.Accounts, Transactions: out.Transactions}
	for _, p := range out.Problems {
		v.addProblem(p)
	}
	if !out.OK && v.OK {
		v.addProblem("the server's verification failed")
	}
	return v, nil
}

// resetBatches remembers the server's batch-size histogram and CPU time at
// the start of the timed run.
func (t *httpTarget) resetBatches() {
	t.before, _ = t.scrapeBatches(context.Background())
	t.after = nil
}

// serverCPU is the server's CPU time during the timed run, once batches
// has read the metrics at its end; false when the server does not export
// it.
func (t *httpTarget) serverCPU() (float64, bool) {
	before, ok0 := t.before["cpu"]
	after, ok1 := t.after["cpu"]
	return after - before, ok0 && ok1
}

// batches is the distribution of the batches the server committed during
// the run, from its Prometheus histogram (power-of-two buckets), or nil
// when the server does not expose it.
func (t *httpTarget) batches() *BatchStats {
	after, err := t.scrapeBatches(context.Background())
	if err != nil || t.before == nil {
		return nil
	}
	t.after = after
	count := after["count"] - t.before["count"]
	if count <= 0 {
		return nil
	}
	s := &BatchStats{Count: int64(count), Ops: int64(after["sum"] - t.before["sum"])}
	s.Mean = round2(float64(s.Ops) / count)
	s.MeanMs = round3((after["seconds"] - t.before["seconds"]) * 1000 / count)
	prev := 0.0
	for le := 1; le <= 1024; le *= 2 {
		k := "le=" + strconv.Itoa(le)
		if _, ok := after[k]; !ok {
			continue
		}
		cum := after[k] - t.before[k]
		if n := cum - prev; n > 0 {
			s.Buckets = append(s.Buckets, Bucket{Le: le, Batches: int64(n)})
			s.Max = le
		}
		for _, q := range []struct {
			p   float64
			dst *int
		}{{0.5, &s.P50}, {0.9, &s.P90}, {0.99, &s.P99}} {
			if *q.dst == 0 && cum >= q.p*count {
				*q.dst = le
			}
		}
		prev = cum
	}
	s.Phases = t.steps()
	return s
}

// steps is the time of each step of the batches during the run, from the
// server's scrip_batch_step_duration_seconds; nil from a server that does
// not export it.
func (t *httpTarget) steps() []Phase {
	s := newStepTotals()
	for _, step := range ledger.Steps {
		name := string(step)
		if n := int64(t.after["step_count:"+name] - t.before["step_count:"+name]); n > 0 {
			s.calls[step] = n
			s.total[step] = time.Duration((t.after["step_sum:"+name] - t.before["step_sum:"+name]) * float64(time.Second))
		}
	}
	return s.phases()
}

// scrapeBatches reads scrip_batch_size, scrip_batch_duration_seconds,
// scrip_batch_step_duration_seconds and process_cpu_seconds_total from the
// server's /metrics.
func (t *httpTarget) scrapeBatches(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+t.key)
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, responseBytesMax))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch {
		case name == "scrip_batch_size_count":
			out["count"] = v
		case name == "scrip_batch_size_sum":
			out["sum"] = v
		case name == "scrip_batch_duration_seconds_sum":
			out["seconds"] = v
		case name == "process_cpu_seconds_total":
			out["cpu"] = v
		case strings.HasPrefix(name, `scrip_batch_step_duration_seconds_sum{step="`):
			out["step_sum:"+label(name)] = v
		case strings.HasPrefix(name, `scrip_batch_step_duration_seconds_count{step="`):
			out["step_count:"+label(name)] = v
		case strings.HasPrefix(name, `scrip_batch_size_bucket{le="`):
			le := strings.TrimSuffix(strings.TrimPrefix(name, `scrip_batch_size_bucket{le="`), `"}`)
			if n, err := strconv.Atoi(le); err == nil {
				out["le="+strconv.Itoa(n)] = v
			}
		}
	}
	return out, sc.Err()
}

// label is the value of a series' one label: step of
// name{step="step"}.
func label(series string) string {
	_, v, _ := strings.Cut(series, `="`)
	return strings.TrimSuffix(v, `"}`)
}

func (t *httpTarget) close(context.Context) error {
	t.client.CloseIdleConnections()
	if t.wire != nil {
		t.wire.close()
	}
	return nil
}
