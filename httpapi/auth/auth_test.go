package auth

import (
	"strings"
	"testing"
	"time"
)

func TestKeyRoundTrip(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	k, secret := NewKey("backend", []Scope{ScopeCharge}, now)
	id, ok := ParseKeyID(secret)
	if !ok || id != k.ID {
		t.Fatalf("ParseKeyID(%q) = %q, %v; want %q", secret, id, ok, k.ID)
	}
	if !k.Match(secret) {
		t.Fatal("key does not match its own secret")
	}
	if k.Match(secret + "x") {
		t.Fatal("key matches a different secret")
	}
	if strings.Contains(k.Hash, secret) {
		t.Fatal("hash contains the secret")
	}
	for _, bad := range []string{"", "sk_", "sk_abc", "at_x", strings.Repeat("sk_a_", 100)} {
		if _, ok := ParseKeyID(bad); ok {
			t.Errorf("ParseKeyID(%q) accepted", bad)
		}
	}
}

func TestAllows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		have []Scope
		want Scope
		ok   bool
	}{
		{[]Scope{ScopeAdmin}, ScopeRead, true},
		{[]Scope{ScopeAdmin}, ScopeCharge, true},
		{[]Scope{ScopeCharge}, ScopeRead, true},
		{[]Scope{ScopeCharge}, ScopeAdmin, false},
		{[]Scope{ScopeRead}, ScopeCharge, false},
		{nil, ScopeRead, false},
		{[]Scope{ScopeAdmin}, Scope("root"), false},
	}
	for _, tt := range tests {
		if got := Allows(tt.have, tt.want); got != tt.ok {
			t.Errorf("Allows(%v, %s) = %v, want %v", tt.have, tt.want, got, tt.ok)
		}
	}
	if _, err := ParseScopes("read,bogus"); err == nil {
		t.Error("ParseScopes accepted an unknown scope")
	}
	if s, err := ParseScopes("charge, read,charge"); err != nil || len(s) != 2 {
		t.Errorf("ParseScopes = %v, %v", s, err)
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	secret := NewSecret()
	now := time.Unix(1_700_000_000, 0)
	tok, c, err := MintToken(secret, "user_1", now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyToken(secret, tok, now.Add(30*time.Second))
	if err != nil || got != c || got.AccountID != "user_1" {
		t.Fatalf("VerifyToken = %+v, %v", got, err)
	}
	if _, err := VerifyToken(secret, tok, now.Add(time.Minute)); err != ErrTokenExpired {
		t.Errorf("expired token: err = %v", err)
	}
	if _, err := VerifyToken(NewSecret(), tok, now); err != ErrTokenInvalid {
		t.Errorf("other secret: err = %v", err)
	}
	tampered := strings.Replace(tok, tok[5:8], "AAA", 1)
	if _, err := VerifyToken(secret, tampered, now); err != ErrTokenInvalid {
		t.Errorf("tampered token: err = %v", err)
	}
	if _, _, err := MintToken(secret, "u", now, 48*time.Hour); err == nil {
		t.Error("minted a token longer than TokenTTLMax")
	}
}
