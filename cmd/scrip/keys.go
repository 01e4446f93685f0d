package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/scriphq/scrip/httpapi/auth"
	"github.com/scriphq/scrip/postgres"
)

func newKeysCmd() *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list and revoke API keys; mint account tokens",
	}
	addPersistentStoreFlags(cmd, &url)

	var name, scopes string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a secret key and print it once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, &url, func(ctx context.Context, st store) error {
				sc, err := auth.ParseScopes(scopes)
				if err != nil {
					return err
				}
				k, secret := auth.NewKey(name, sc, time.Now())
				if err := st.CreateKey(ctx, k); err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				fmt.Fprintln(out, secret)
				fmt.Fprintf(cmd.ErrOrStderr(), "key %s (%s) created with scopes %v; the secret above is shown only once\n", k.ID, k.Name, k.Scopes)
				return nil
			})
		},
	}
	create.Flags().StringVar(&scopes, "scope", "", "scopes, comma-separated: read, charge, admin")
	create.Flags().StringVar(&name, "name", "", "a name to recognise the key by")
	create.MarkFlagRequired("scope")

	list := &cobra.Command{
		Use:   "list",
		Short: "List keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, &url, func(ctx context.Context, st store) error {
				keys, err := st.Keys(ctx)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tNAME\tSCOPES\tCREATED\tREVOKED")
				for _, k := range keys {
					rev := ""
					if k.Revoked() {
						rev = k.RevokedAt.Format(time.RFC3339)
					}
					fmt.Fprintf(w, "%s\t%s\t%v\t%s\t%s\n", k.ID, k.Name, k.Scopes, k.CreatedAt.Format(time.RFC3339), rev)
				}
				return w.Flush()
			})
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a key at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd, &url, func(ctx context.Context, st store) error {
				err := st.RevokeKey(ctx, args[0], time.Now())
				if errors.Is(err, auth.ErrKeyNotFound) {
					return fmt.Errorf("key %q not found", args[0])
				}
				if err == nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "key %s revoked\n", args[0])
				}
				return err
			})
		},
	}

	var account, secret string
	var ttl time.Duration
	token := &cobra.Command{
		Use:   "token",
		Short: "Mint an account token offline, with the shared token secret",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, &url, func(ctx context.Context, st store) error {
				sec := []byte(secret)
				if len(sec) == 0 {
					var err error
					if sec, err = st.Secret(ctx, auth.TokenSecretName, auth.NewSecret()); err != nil {
						return err
					}
				}
				tok, c, err := auth.MintToken(sec, account, time.Now(), ttl)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), tok)
				fmt.Fprintf(cmd.ErrOrStderr(), "account token for %s, valid until %s\n", c.AccountID, c.Expiry().Format(time.RFC3339))
				return nil
			})
		},
	}
	token.Flags().StringVar(&account, "account", "", "the account the token may read")
	token.Flags().StringVar(&secret, "token-secret", "", "the server's --token-secret, if it has one (default: the secret kept in the store)")
	token.Flags().DurationVar(&ttl, "ttl", auth.TokenTTLDefault, "how long the token lives (at most 24h)")
	token.MarkFlagRequired("account")

	cmd.AddCommand(create, list, revoke, token)
	return cmd
}

// withStore resolves the configuration, opens the store, runs fn and closes
// the store.
func withStore(cmd *cobra.Command, url *string, fn func(ctx context.Context, st store) error) error {
	if err := resolveConfig(cmd); err != nil {
		return err
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	st, _, err := openStore(ctx, *url, postgres.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(ctx, st)
}
