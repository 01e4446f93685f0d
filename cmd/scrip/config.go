package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/scriphq/scrip/billing"
	"github.com/scriphq/scrip/event"
	"github.com/scriphq/scrip/httpapi/auth"
	"github.com/scriphq/scrip/ledger"
	"github.com/scriphq/scrip/postgres"
	"github.com/scriphq/scrip/sqlite"
	"github.com/scriphq/scrip/stripe"
)

// Every flag of a command can also come from the environment, as SCRIP_ and
// the flag's name in upper case with underscores (--database-url:
// SCRIP_DATABASE_URL), or from the configuration file named by --config or
// SCRIP_CONFIG, as the flag's name with underscores (database_url).
// Precedence: flag, environment, file, default.

const (
	envPrefix         = "SCRIP_"
	configFileEnv     = "SCRIP_CONFIG"
	configBytesMax    = 1 << 20
	sqlitePathDefault = "scrip.db"
)

// addConfigFlag adds --config to a command.
func addConfigFlag(cmd *cobra.Command) {
	cmd.Flags().String("config", "", "configuration file (YAML); env SCRIP_CONFIG")
}

// addStoreFlags adds the flag that picks the store.
func addStoreFlags(cmd *cobra.Command, url *string) {
	cmd.Flags().StringVar(url, "database-url", "", "postgres://... for PostgreSQL; otherwise a SQLite file path (default ./scrip.db)")
}

// addPersistentStoreFlags adds --config and --database-url to a command and
// all its subcommands.
func addPersistentStoreFlags(cmd *cobra.Command, url *string) {
	cmd.PersistentFlags().String("config", "", "configuration file (YAML); env SCRIP_CONFIG")
	cmd.PersistentFlags().StringVar(url, "database-url", "", "postgres://... for PostgreSQL; otherwise a SQLite file path (default ./scrip.db)")
}

// resolveConfig fills every flag the command line did not set from the
// environment, then from the configuration file.
func resolveConfig(cmd *cobra.Command) error {
	fs := cmd.Flags()
	file := os.Getenv(configFileEnv)
	if f := fs.Lookup("config"); f != nil && f.Changed {
		file = f.Value.String()
	}
	values := map[string]string{}
	if file != "" {
		var err error
		if values, err = readConfigFile(file, fs); err != nil {
			return err
		}
	}
	var errs []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "config" || f.Name == "help" {
			return
		}
		env := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := os.LookupEnv(env)
		src := env
		if !ok {
			v, ok = values[strings.ReplaceAll(f.Name, "-", "_")]
			src = file
		}
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %s: %v", src, f.Name, err))
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}

// readConfigFile reads a flat YAML map of settings; keys the command does
// not know are an error, so a typo never goes unnoticed.
func readConfigFile(path string, fs *pflag.FlagSet) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("configuration file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, configBytesMax+1))
	if err != nil {
		return nil, fmt.Errorf("configuration file %s: %w", path, err)
	}
	if len(data) > configBytesMax {
		return nil, fmt.Errorf("configuration file %s is larger than %d bytes", path, configBytesMax)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("configuration file %s: %w", path, err)
	}
	out := make(map[string]string, len(raw))
	var unknown []string
	for k, v := range raw {
		if fs.Lookup(strings.ReplaceAll(k, "_", "-")) == nil {
			unknown = append(unknown, k)
			continue
		}
		switch x := v.(type) {
		case []any:
			parts := make([]string, len(x))
			for i, p := range x {
				parts[i] = fmt.Sprint(p)
			}
			out[k] = strings.Join(parts, ",")
		case nil:
		default:
			out[k] = fmt.Sprint(x)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("configuration file %s: unknown settings %s", path, strings.Join(unknown, ", "))
	}
	return out, nil
}

// store is a ledger store that also keeps API keys, subscriptions, the
// outbox of events and the record of Stripe's.
type store interface {
	ledger.Store
	auth.KeyStore
	billing.Store
	Outbox() event.Store
	StripeStore() stripe.Store
	Migrate(ctx context.Context) error
}

// openStore opens PostgreSQL for a postgres:// URL, with opt, and SQLite
// otherwise, and describes which for the operator.
func openStore(ctx context.Context, url string, opt postgres.Options) (store, string, error) {
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		s, err := postgres.OpenWith(ctx, url, opt)
		if err != nil {
			return nil, "", err
		}
		return s, "PostgreSQL " + redactURL(url), nil
	}
	path := strings.TrimPrefix(strings.TrimPrefix(url, "sqlite://"), "sqlite:")
	if path == "" {
		path = sqlitePathDefault
	}
	s, err := sqlite.Open(path)
	if err != nil {
		return nil, "", err
	}
	return s, "SQLite " + path, nil
}

// redactURL hides a password in a database URL.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok {
		return u
	}
	if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
		return scheme + "://" + user + ":***@" + host
	}
	return u
}

// newLogger builds the process logger: format json or text, level debug,
// info, warn or error.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want json or text", format)
}
