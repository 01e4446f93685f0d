package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scriphq/scrip/httpapi/auth"
)

// keysMax bounds how many keys Keys lists.
const keysMax = 10_000

var _ auth.KeyStore = (*Store)(nil)

// CreateKey stores a new API key.
func (s *Store) CreateKey(ctx context.Context, k auth.Key) error {
	var revoked *time.Time
	if !k.RevokedAt.IsZero() {
		revoked = &k.RevokedAt
	}
	_, err := s.pool.Exec(ctx,
		`INSERT INTO api_keys (id, name, scopes, hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.ID, k.Name, joinScopes(k.Scopes), k.Hash, k.CreatedAt, revoked)
	if err != nil {
		return fmt.Errorf("postgres: create key: %w", err)
	}
	return nil
}

// Key returns the key with the given id.
func (s *Store) Key(ctx context.Context, id string) (auth.Key, error) {
	row := s.pool.QueryRow(ctx,
		`SELECT id, name, scopes, hash, created_at, revoked_at FROM api_keys WHERE id = $1`, id)
	k, err := scanKey(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.Key{}, auth.ErrKeyNotFound
	}
	if err != nil {
		return auth.Key{}, fmt.Errorf("postgres: key %s: %w", id, err)
	}
	return k, nil
}

// Keys returns every key, oldest first.
func (s *Store) Keys(ctx context.Context) ([]auth.Key, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT id, name, scopes, hash, created_at, revoked_at FROM api_keys ORDER BY created_at, id LIMIT $1`, keysMax)
	if err != nil {
		return nil, fmt.Errorf("postgres: keys: %w", err)
	}
	defer rows.Close()
	var out []auth.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeKey marks a key revoked; the first revocation time stays.
func (s *Store) RevokeKey(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx,
		`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`, at, id)
	if err != nil {
		return fmt.Errorf("postgres: revoke key %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return auth.ErrKeyNotFound
	}
	return nil
}

// Secret returns the named secret, storing value first if there is none;
// concurrent first calls agree on one value.
func (s *Store) Secret(ctx context.Context, name string, value []byte) ([]byte, error) {
	if _, err := s.pool.Exec(ctx,
		`INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, value); err != nil {
		return nil, fmt.Errorf("postgres: secret %s: %w", name, err)
	}
	var v []byte
	if err := s.pool.QueryRow(ctx, `SELECT value FROM server_secrets WHERE name = $1`, name).Scan(&v); err != nil {
		return nil, fmt.Errorf("postgres: secret %s: %w", name, err)
	}
	return v, nil
}

func scanKey(row pgx.Row) (auth.Key, error) {
	var (
		k       auth.Key
		scopes  string
		revoked *time.Time
	)
	if err := row.Scan(&k.ID, &k.Name, &scopes, &k.Hash, &k.CreatedAt, &revoked); err != nil {
		return auth.Key{}, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	if revoked != nil {
		k.RevokedAt = revoked.UTC()
	}
	k.Scopes = splitScopes(scopes)
	return k, nil
}

func joinScopes(ss []auth.Scope) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ",")
}

func splitScopes(s string) []auth.Scope {
	var out []auth.Scope
	for _, p := range strings.Split(s, ",") {
		if p != "" {
			out = append(out, auth.Scope(p))
		}
	}
	return out
}
