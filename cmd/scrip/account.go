package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/ledger"
)

func newAccountCmd() *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "account",
		Short: "Create accounts, read balances and history, grant credits, manage subscriptions",
	}
	addPersistentStoreFlags(cmd, &url)

	create := &cobra.Command{
		Use:   "create ID",
		Short: "Create an account (nothing happens if it exists)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withEngine(cmd, &url, func(ctx context.Context, e *ledger.Engine) error {
				a, created, err := e.CreateAccount(ctx, args[0], nil)
				if err != nil {
					return err
				}
				if created {
					fmt.Fprintf(cmd.OutOrStdout(), "account %s created\n", a.ID)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "account %s already exists (created %s)\n", a.ID, a.CreatedAt.Format(time.RFC3339))
				}
				return nil
			})
		},
	}

	var asJSON bool
	balance := &cobra.Command{
		Use:   "balance ID",
		Short: "Show an account's balance and live grants",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withEngine(cmd, &url, func(ctx context.Context, e *ledger.Engine) error {
				b, err := e.Balance(ctx, args[0])
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					enc := json.NewEncoder(out)
					enc.SetIndent("", "  ")
					return enc.Encode(b)
				}
				fmt.Fprintf(out, "account   %s\navailable %s\nheld      %s\n", b.AccountID, b.Available, b.Held)
				for _, k := range ledger.Kinds {
					if b.ByKind[k] != 0 {
						fmt.Fprintf(out, "  %-13s %s\n", k, b.ByKind[k])
					}
				}
				if len(b.Grants) == 0 {
					return nil
				}
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "\nGRANT\tKIND\tREMAINING\tAMOUNT\tEXPIRES")
				for _, g := range b.Grants {
					exp := "never"
					if !g.Never() {
						exp = g.ExpiresAt.Format(time.RFC3339)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", g.ID, g.Kind, g.Remaining, g.Amount, exp)
				}
				return w.Flush()
			})
		},
	}
	balance.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var kind, reason, key string
	var expiresIn time.Duration
	grant := &cobra.Command{
		Use:   "grant ID CREDITS",
		Short: "Grant credits to an account",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			amt, err := credit.Parse(args[1])
			if err != nil {
				return err
			}
			return withEngine(cmd, &url, func(ctx context.Context, e *ledger.Engine) error {
				if key == "" {
					key = "cli_" + randomHex(12)
				}
				req := ledger.GrantRequest{AccountID: args[0], Key: key, Kind: ledger.Kind(kind), Amount: amt,
					Source: ledger.Source{Type: "admin", Reason: reason}}
				if expiresIn > 0 {
					req.ExpiresAt = time.Now().Add(expiresIn)
				}
				res, err := e.Grant(ctx, req)
				if err != nil {
					return err
				}
				replay := ""
				if res.Replayed {
					replay = " (already applied under this key)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "granted %s %s credits to %s as %s%s; available %s\n",
					amt, kind, args[0], res.Grant.ID, replay, res.Available)
				return nil
			})
		},
	}
	grant.Flags().StringVar(&kind, "kind", string(ledger.KindPromotional), "grant kind: subscription, top_up, promotional or adjustment")
	grant.Flags().StringVar(&reason, "reason", "", "why the credits were granted")
	grant.Flags().StringVar(&key, "idempotency-key", "", "makes a repeated grant a no-op (default: a fresh key)")
	grant.Flags().DurationVar(&expiresIn, "expires-in", 0, "expire the credits after this long (default: never)")

	var limit int
	var types []string
	history := &cobra.Command{
		Use:   "history ID",
		Short: "Show an account's latest transactions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withEngine(cmd, &url, func(ctx context.Context, e *ledger.Engine) error {
				q := ledger.HistoryQuery{AccountID: args[0], Limit: limit}
				for _, t := range types {
					q.Types = append(q.Types, ledger.TxType(t))
				}
				txs, err := e.History(ctx, q)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					enc := json.NewEncoder(out)
					for _, t := range txs {
						if err := enc.Encode(t); err != nil {
							return err
						}
					}
					return nil
				}
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "SEQ\tTIME\tTYPE\tAMOUNT\tACTION\tREF")
				for _, t := range txs {
					ref := firstNonEmpty(t.HoldID, t.ChargeID, t.GrantID)
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", t.Seq, t.CreatedAt.Format(time.RFC3339), t.Type, t.Amount, t.Ref.Action, ref)
				}
				return w.Flush()
			})
		},
	}
	history.Flags().IntVar(&limit, "limit", 20, "transactions to show (at most 100)")
	history.Flags().StringSliceVar(&types, "type", nil, "only these types (grant, hold, capture, release, charge, refund, ...)")
	history.Flags().BoolVar(&asJSON, "json", false, "print JSON lines")

	cmd.AddCommand(create, balance, grant, history, newSubscribeCmd(), newCancelCmd())
	return cmd
}

// withEngine runs fn with an engine on the configured store and drains it
// afterwards.
func withEngine(cmd *cobra.Command, url *string, fn func(ctx context.Context, e *ledger.Engine) error) error {
	return withStore(cmd, url, func(ctx context.Context, st store) error {
		e := ledger.NewEngine(st, ledger.Options{SweepEvery: -1})
		err := fn(ctx, e)
		if cerr := e.Close(ctx); err == nil {
			err = cerr
		}
		return err
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
