// Package client is a typed Go client for scrip's HTTP API.
//
// Every POST carries an Idempotency-Key: the caller's, or one the client
// makes up. On a network error the client sends the same request again with
// the same key, so a retried hold or charge is applied once.
//
// Insufficient credits come back as an InsufficientCreditsError:
//
//	var ic client.InsufficientCreditsError
//	if errors.As(err, &ic) { redirect(ic.TopUpURL) }
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/scriphq/scrip/credit"
)

// Bounds of the client.
const (
	retriesDefault   = 3
	retriesMax       = 10
	backoffBase      = 100 * time.Millisecond
	backoffMax       = 2 * time.Second
	responseBytesMax = 16 << 20
	timeoutDefault   = 30 * time.Second
)

// Client calls one scrip server with one credential.
type Client struct {
	base    string
	key     string
	http    *http.Client
	retries int
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the http.Client used for requests.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetries sets how many times a request is retried after a network
// error (default 3, at most 10).
func WithRetries(n int) Option {
	return func(c *Client) { c.retries = min(max(n, 0), retriesMax) }
}

// New returns a client for the server at baseURL ("http://127.0.0.1:8080")
// authenticating with key: a secret key (sk_...) or an account token (at_...).
func New(baseURL, key string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), key: key, http: &http.Client{Timeout: timeoutDefault}, retries: retriesDefault}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Error is an API error: a problem document with a stable code.
type Error struct {
	Status  int            `json:"status"`
	Code    string         `json:"code"`
	Message string         `json:"detail"`
	Field   string         `json:"field,omitempty"`
	Details map[string]any `json:"details,omitempty"`
}

func (e *Error) Error() string {
	s := fmt.Sprintf("scrip: %d %s", e.Status, e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// InsufficientCreditsError is the 402 answer: the account has fewer credits
// than the operation needs.
type InsufficientCreditsError struct {
	Required  credit.Amount `json:"required"`
	Available credit.Amount `json:"available"`
	TopUpURL  string        `json:"top_up_url"`
}

func (e InsufficientCreditsError) Error() string {
	return fmt.Sprintf("scrip: insufficient credits: %s required, %s available", e.Required, e.Available)
}

// ErrorCode returns the API error code of err, "" when it is not an API
// error.
func ErrorCode(err error) string {
	var ic InsufficientCreditsError
	if errors.As(err, &ic) {
		return "insufficient_credits"
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// call sends one request, retrying on network errors with the same
// idempotency key, and decodes a 2xx answer into out.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, key string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("scrip: encode request: %w", err)
		}
	}
	if method == http.MethodPost && key == "" {
		key = newKey()
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var lastErr error
	for attempt := 0; attempt <= c.retries; attempt++ {
		if attempt > 0 {
			d := min(backoffBase<<(attempt-1), backoffMax)
			select {
			case <-ctx.Done():
				return errors.Join(ctx.Err(), lastErr)
			case <-time.After(d):
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("scrip: %w", err)
		}
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		res, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			lastErr = err
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(res.Body, responseBytesMax))
		res.Body.Close()
		if err != nil {
			lastErr = err
			continue
		}
		return decodeResponse(res.StatusCode, raw, out)
	}
	return fmt.Errorf("scrip: %s %s: gave up after %d attempts: %w", method, path, c.retries+1, lastErr)
}

func decodeResponse(status int, raw []byte, out any) error {
	if status == http.StatusPaymentRequired {
		var ic InsufficientCreditsError
		if err := json.Unmarshal(raw, &ic); err != nil {
			return &Error{Status: status, Code: "insufficient_credits", Message: string(raw)}
		}
		return ic
	}
	if status < 200 || status > 299 {
		e := &Error{}
		if err := json.Unmarshal(raw, e); err != nil || e.Code == "" {
			e = &Error{Code: "http_" + strconv.Itoa(status), Message: strings.TrimSpace(string(raw))}
		}
		e.Status = status
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("scrip: decode response: %w", err)
	}
	return nil
}

func newKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "cl_" + hex.EncodeToString(b)
}

func esc(s string) string { return url.PathEscape(s) }
