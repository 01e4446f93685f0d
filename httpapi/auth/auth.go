// Package auth holds scrip's API credentials: secret keys for the platform's
// backend, stored hashed and scoped, and short-lived signed account tokens
// for browsers.
//
// It depends on nothing but the standard library so that stores can persist
// keys without importing the HTTP layer.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Scope is what a secret key may do. admin includes charge, which includes
// read.
type Scope string

const (
	ScopeRead   Scope = "read"
	ScopeCharge Scope = "charge"
	ScopeAdmin  Scope = "admin"
)

// Scopes lists every scope, weakest first.
var Scopes = []Scope{ScopeRead, ScopeCharge, ScopeAdmin}

func (s Scope) rank() int { return slices.Index(Scopes, s) }

// Valid reports whether s is a known scope.
func (s Scope) Valid() bool { return s.rank() >= 0 }

// ParseScopes reads a comma-separated scope list.
func ParseScopes(s string) ([]Scope, error) {
	var out []Scope
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		sc := Scope(p)
		if !sc.Valid() {
			return nil, fmt.Errorf("unknown scope %q (want read, charge or admin)", p)
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no scope given (want read, charge or admin)")
	}
	return out, nil
}

// Allows reports whether a key holding scopes may act with scope want.
func Allows(scopes []Scope, want Scope) bool {
	for _, s := range scopes {
		if s.rank() >= want.rank() && want.Valid() {
			return true
		}
	}
	return false
}

// Key is a stored secret key. The secret itself is never stored: only its
// SHA-256 hash, which is enough for a 256-bit random secret.
type Key struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	Scopes    []Scope   `json:"scopes"`
	Hash      string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	// RevokedAt is zero while the key is usable.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Revoked reports whether the key has been revoked.
func (k *Key) Revoked() bool { return !k.RevokedAt.IsZero() }

// ErrKeyNotFound is returned by a KeyStore for an unknown key id.
var ErrKeyNotFound = errors.New("key not found")

// KeyStore persists keys and named server secrets. The sqlite and postgres
// stores implement it.
type KeyStore interface {
	CreateKey(ctx context.Context, k Key) error
	Key(ctx context.Context, id string) (Key, error)
	// Keys returns every key, revoked ones included, oldest first.
	Keys(ctx context.Context) ([]Key, error)
	// RevokeKey marks the key revoked at the given time; revoking a revoked
	// key keeps the first time.
	RevokeKey(ctx context.Context, id string, at time.Time) error
	// Secret returns the named secret, storing value first if there is
	// none yet, so every process sharing the store agrees on it.
	Secret(ctx context.Context, name string, value []byte) ([]byte, error)
}

// Secret key format: "sk_" + id + "_" + secret.
const (
	keyPrefix      = "sk_"
	keyIDBytes     = 10
	keySecretBytes = 32
	keyBytesMax    = 128
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewKey makes a key with a fresh random secret and returns it with the
// secret in clear, to be shown once.
func NewKey(name string, scopes []Scope, now time.Time) (Key, string) {
	id := strings.ToLower(idEncoding.EncodeToString(random(keyIDBytes)))
	secret := keyPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(random(keySecretBytes))
	return Key{ID: id, Name: name, Scopes: scopes, Hash: HashSecret(secret), CreatedAt: now.UTC().Truncate(time.Microsecond)}, secret
}

// HashSecret returns the stored form of a secret key.
func HashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// ParseKeyID returns the id part of a secret key, or false when the string is
// not shaped like one.
func ParseKeyID(secret string) (string, bool) {
	if len(secret) > keyBytesMax || !strings.HasPrefix(secret, keyPrefix) {
		return "", false
	}
	id, rest, ok := strings.Cut(secret[len(keyPrefix):], "_")
	if !ok || id == "" || rest == "" {
		return "", false
	}
	return id, true
}

// Match reports whether secret is the key's secret, in constant time.
func (k *Key) Match(secret string) bool {
	return subtle.ConstantTimeCompare([]byte(HashSecret(secret)), []byte(k.Hash)) == 1
}

// IsSecretKey reports whether s looks like a secret key rather than an
// account token.
func IsSecretKey(s string) bool { return strings.HasPrefix(s, keyPrefix) }

func random(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return b
}

// NewSecret returns a fresh random token-signing secret.
func NewSecret() []byte { return random(32) }

// Account tokens: "at_" + base64url(claims) + "." + base64url(HMAC-SHA256).
const (
	tokenPrefix   = "at_"
	tokenBytesMax = 1024
	// TokenTTLMax bounds how long an account token may live.
	TokenTTLMax = 24 * time.Hour
	// TokenTTLDefault is the lifetime of a token when none is asked for.
	TokenTTLDefault = 15 * time.Minute
)

// Claims are what an account token says.
type Claims struct {
	AccountID string `json:"acct"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
}

// Expiry returns the expiry time of the token.
func (c Claims) Expiry() time.Time { return time.Unix(c.ExpiresAt, 0).UTC() }

// MintToken signs a token for one account that expires after ttl.
func MintToken(secret []byte, accountID string, now time.Time, ttl time.Duration) (string, Claims, error) {
	if len(secret) == 0 {
		return "", Claims{}, errors.New("no token secret")
	}
	if accountID == "" {
		return "", Claims{}, errors.New("no account id")
	}
	if ttl <= 0 || ttl > TokenTTLMax {
		return "", Claims{}, fmt.Errorf("token lifetime %s out of range (0, %s]", ttl, TokenTTLMax)
	}
	c := Claims{AccountID: accountID, IssuedAt: now.Unix(), ExpiresAt: now.Add(ttl).Unix()}
	body, err := json.Marshal(c)
	if err != nil {
		return "", Claims{}, err
	}
	p := base64.RawURLEncoding.EncodeToString(body)
	tok := tokenPrefix + p + "." + base64.RawURLEncoding.EncodeToString(sign(secret, p))
	if len(tok) > tokenBytesMax {
		return "", Claims{}, fmt.Errorf("account id too long for a token")
	}
	return tok, c, nil
}

// IsToken reports whether s looks like an account token.
func IsToken(s string) bool { return strings.HasPrefix(s, tokenPrefix) }

// Token errors.
var (
	ErrTokenInvalid = errors.New("account token invalid")
	ErrTokenExpired = errors.New("account token expired")
)

// VerifyToken checks a token's signature and expiry and returns its claims.
func VerifyToken(secret []byte, tok string, now time.Time) (Claims, error) {
	if len(secret) == 0 || len(tok) > tokenBytesMax || !IsToken(tok) {
		return Claims{}, ErrTokenInvalid
	}
	p, s, ok := strings.Cut(tok[len(tokenPrefix):], ".")
	if !ok {
		return Claims{}, ErrTokenInvalid
	}
	sig, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || !hmac.Equal(sig, sign(secret, p)) {
		return Claims{}, ErrTokenInvalid
	}
	body, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return Claims{}, ErrTokenInvalid
	}
	var c Claims
	if err := json.Unmarshal(body, &c); err != nil || c.AccountID == "" {
		return Claims{}, ErrTokenInvalid
	}
	if now.Unix() >= c.ExpiresAt {
		return Claims{}, ErrTokenExpired
	}
	return c, nil
}

func sign(secret []byte, payload string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("scrip-account-token\x00"))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// TokenSecretName is the KeyStore secret that signs account tokens when no
// secret is configured.
const TokenSecretName = "account_token"
