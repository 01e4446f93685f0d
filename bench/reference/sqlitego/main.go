// Command sqlitego runs a SQL script as the sqlite3 shell does, but with the
// SQLite that scrip links (modernc.org/sqlite, SQLite translated to Go)
// instead of SQLite in C. bench/reference/sqlite.sh runs its script through
// it with SQLITE=go, so that the same statements measure both.
//
// Usage:
//
//	sqlitego DATABASE < SCRIPT
//
// It knows the two dot-commands sqlite.sh uses: ".read FILE" runs the
// statements of FILE, and ".output", which it ignores, as it prints nothing.
// Every other line is SQL, run on one connection up to the next
// dot-command. It stops at the first error, with exit status 1.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"

	_ "modernc.org/sqlite"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: sqlitego DATABASE < SCRIPT")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "sqlitego:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	ctx := context.Background()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer db.Close()
	// Pragmas and temporary tables belong to a connection: one for all.
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()

	files := map[string]string{}
	var pending strings.Builder
	exec := func(line int, query string) error {
		if strings.TrimSpace(query) == "" {
			return nil
		}
		if _, err := conn.ExecContext(ctx, query); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		return nil
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if !strings.HasPrefix(line, ".") {
			pending.WriteString(line)
			pending.WriteByte('\n')
			continue
		}
		if err := exec(n, pending.String()); err != nil {
			return err
		}
		pending.Reset()
		cmd, arg, _ := strings.Cut(line, " ")
		switch cmd {
		case ".output":
		case ".read":
			name := strings.TrimSpace(arg)
			text, ok := files[name]
			if !ok {
				b, err := os.ReadFile(name)
				if err != nil {
					return fmt.Errorf("line %d: %w", n, err)
				}
				text = string(b)
				files[name] = text
			}
			if err := exec(n, text); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		default:
			return fmt.Errorf("line %d: unknown command %s (only .read and .output)", n, cmd)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return exec(n, pending.String())
}
