package bench

import (
	"net/url"
	"testing"
)

// TestWithPoolSize checks that the load generator sizes its pool unless the
// URL itself sets pool_max_conns, and that a password or another
// parameter's value containing the name does not count as setting it.
func TestWithPoolSize(t *testing.T) {
	const base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	withPassword := "postgres://" + url.UserPassword("postgres", "pool_max_conns=3").String() + "@127.0.0.1:5432/test?sslmode=disable"
	cases := []struct {
		name, url, want string
	}{
		{"unset", base, "40"},
		{"set", base + "&pool_max_conns=7", "7"},
		{"password with the name", withPassword, "40"},
		{"value with the name", base + "&application_name=pool_max_conns", "40"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := &database{kind: "postgres", url: c.url}
			u, err := url.Parse(db.withPoolSize(40))
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Query().Get("pool_max_conns"); got != c.want {
				t.Fatalf("pool_max_conns = %q, want %q (URL %s)", got, c.want, u.Redacted())
			}
		})
	}
	sqlite := &database{kind: "sqlite", url: "bench.db"}
	if got := sqlite.withPoolSize(40); got != "bench.db" {
		t.Fatalf("a SQLite path became %q", got)
	}
}
