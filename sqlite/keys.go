package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/scriphq/scrip/httpapi/auth"
)

// keysMax bounds how many keys Keys lists.
const keysMax = 10_000

var _ auth.KeyStore = (*Store)(nil)

// CreateKey stores a new API key.
func (s *Store) CreateKey(ctx context.Context, k auth.Key) error {
	_, err := s.writer.ExecContext(ctx,
		`INSERT INTO api_keys (id, name, scopes, hash, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, joinScopes(k.Scopes), k.Hash, micros(k.CreatedAt), nullMicros(k.RevokedAt))
	if err != nil {
		return fmt.Errorf("sqlite: create key: %w", err)
	}
	return nil
}

// Key returns the key with the given id.
func (s *Store) Key(ctx context.Context, id string) (auth.Key, error) {
	row := s.reader.QueryRowContext(ctx,
		`SELECT id, name, scopes, hash, created_at, revoked_at FROM api_keys WHERE id = ?`, id)
	k, err := scanKey(row)
	if errors.Is(err, sql.ErrNoRows) {
		return auth.Key{}, auth.ErrKeyNotFound
	}
	if err != nil {
		return auth.Key{}, fmt.Errorf("sqlite: key %s: %w", id, err)
	}
	return k, nil
}

// Keys returns every key, oldest first.
func (s *Store) Keys(ctx context.Context) ([]auth.Key, error) {
	rows, err := s.reader.QueryContext(ctx,
		`SELECT id, name, scopes, hash, created_at, revoked_at FROM api_keys ORDER BY created_at, id LIMIT ?`, keysMax)
	if err != nil {
		return nil, fmt.Errorf("sqlite: keys: %w", err)
	}
	defer rows.Close()
	var out []auth.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeKey marks a key revoked; the first revocation time stays.
func (s *Store) RevokeKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.writer.ExecContext(ctx,
		`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, micros(at), id)
	if err != nil {
		return fmt.Errorf("sqlite: revoke key %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return auth.ErrKeyNotFound
	}
	return nil
}

// Secret returns the named secret, storing value first if there is none.
func (s *Store) Secret(ctx context.Context, name string, value []byte) ([]byte, error) {
	if _, err := s.writer.ExecContext(ctx,
		`INSERT INTO server_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, value); err != nil {
		return nil, fmt.Errorf("sqlite: secret %s: %w", name, err)
	}
	var v []byte
	if err := s.writer.QueryRowContext(ctx, `SELECT value FROM server_secrets WHERE name = ?`, name).Scan(&v); err != nil {
		return nil, fmt.Errorf("sqlite: secret %s: %w", name, err)
	}
	return v, nil
}

func scanKey(sc interface{ Scan(...any) error }) (auth.Key, error) {
	var (
		k       auth.Key
		scopes  string
		created int64
		revoked sql.NullInt64
	)
	if err := sc.Scan(&k.ID, &k.Name, &scopes, &k.Hash, &created, &revoked); err != nil {
		return auth.Key{}, err
	}
	k.Scopes = splitScopes(scopes)
	k.CreatedAt = fromMicros(created)
	k.RevokedAt = fromNullMicros(revoked)
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
