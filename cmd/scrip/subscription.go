package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/scriphq/scrip/billing"
	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/ledger"
)

// newSubscribeCmd is `scrip account subscribe`: an admin subscription, or a
// plan change for an account that already has one.
func newSubscribeCmd() *cobra.Command {
	var (
		catalogFile, key, start, externalID string
		asJSON                              bool
	)
	cmd := &cobra.Command{
		Use:   "subscribe ID PLAN",
		Short: "Subscribe an account to a plan, or change its plan",
		Long: `Subscribe an account to a plan; the first cycle's allowance is granted at once.
For an account that is already subscribed, change its plan instead: an upgrade
takes effect at once, a downgrade at the period end. The account is created if
it does not exist.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var at time.Time
			if start != "" {
				t, err := time.Parse(time.RFC3339, start)
				if err != nil {
					return fmt.Errorf("--start: want an RFC 3339 time such as 2025-01-31T00:00:00Z: %w", err)
				}
				at = t
			}
			return withBilling(cmd, catalogFile, func(ctx context.Context, e *ledger.Engine, svc *billing.Service) error {
				id, plan := args[0], args[1]
				if _, _, err := e.CreateAccount(ctx, id, nil); err != nil {
					return err
				}
				k := firstNonEmpty(key, "cli-"+randomHex(8))
				sub, err := svc.Get(ctx, id)
				var out billing.Subscription
				if err == nil && sub.Status != billing.StatusCanceled {
					out, err = svc.ChangePlan(ctx, billing.ChangePlanRequest{AccountID: id, PlanCode: plan, Key: k})
				} else {
					out, err = svc.Subscribe(ctx, billing.SubscribeRequest{AccountID: id, PlanCode: plan, Key: k, Start: at, ExternalID: externalID})
				}
				if err != nil {
					return err
				}
				return printSubscription(cmd.OutOrStdout(), out, asJSON)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&catalogFile, "catalog", "", "catalog file (default: the bundled demo catalog)")
	f.StringVar(&key, "key", "", "idempotency key: the same command repeated with the same key is applied once (default: a random key, so a repeat is a new request)")
	f.StringVar(&start, "start", "", "cycle anchor, RFC 3339 (default: now); a past start catches up the cycles since")
	f.StringVar(&externalID, "external-id", "", "payment provider's subscription id")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// newCancelCmd is `scrip account cancel`.
func newCancelCmd() *cobra.Command {
	var (
		catalogFile string
		now, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel an account's subscription at the period end (or --now)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withBilling(cmd, catalogFile, func(ctx context.Context, _ *ledger.Engine, svc *billing.Service) error {
				sub, err := svc.Cancel(ctx, args[0], !now)
				if err != nil {
					return err
				}
				return printSubscription(cmd.OutOrStdout(), sub, asJSON)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&catalogFile, "catalog", "", "catalog file (default: the bundled demo catalog)")
	f.BoolVar(&now, "now", false, "end the subscription at once instead of at the period end")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// withBilling runs fn with a billing service on the store named by the
// inherited --database-url, and drains the engine afterwards.
func withBilling(cmd *cobra.Command, catalogFile string, fn func(ctx context.Context, e *ledger.Engine, svc *billing.Service) error) error {
	if err := resolveConfig(cmd); err != nil {
		return err
	}
	var url string
	if f := cmd.Flags().Lookup("database-url"); f != nil {
		url = f.Value.String()
	}
	if f := cmd.Flags().Lookup("catalog"); f != nil {
		catalogFile = f.Value.String()
	}
	c, err := loadCatalog(catalogFile)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	return withStore(cmd, &url, func(ctx context.Context, st store) error {
		e := ledger.NewEngine(st, ledger.Options{SweepEvery: -1})
		svc := billing.New(e, st, func() *catalog.Catalog { return c }, billing.Options{})
		err := fn(ctx, e, svc)
		if cerr := e.Close(ctx); err == nil {
			err = cerr
		}
		return err
	})
}

func printSubscription(out io.Writer, s billing.Subscription, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	fmt.Fprintf(out, "subscription %s\naccount      %s\nplan         %s\nstatus       %s\ncycle        %d: %s to %s\n",
		s.ID, s.AccountID, s.PlanCode, s.Status, s.Cycle,
		s.CurrentPeriodStart.Format(time.RFC3339), s.CurrentPeriodEnd.Format(time.RFC3339))
	if s.PendingPlanCode != "" {
		fmt.Fprintf(out, "pending      %s at the period end\n", s.PendingPlanCode)
	}
	if s.CancelAtPeriodEnd {
		fmt.Fprintln(out, "cancels      at the period end")
	}
	if !s.CanceledAt.IsZero() {
		fmt.Fprintf(out, "canceled     %s\n", s.CanceledAt.Format(time.RFC3339))
	}
	return nil
}
