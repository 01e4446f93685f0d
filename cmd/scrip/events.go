package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/scriphq/scrip/event"
	"github.com/scriphq/scrip/stripe"
)

func newEventsCmd() *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Outgoing events: list them, see their deliveries, manage endpoints",
	}
	addPersistentStoreFlags(cmd, &url)

	withOutbox := func(cmd *cobra.Command, fn func(ctx context.Context, ob event.Store, ss stripe.Store) error) error {
		return withStore(cmd, &url, func(ctx context.Context, st store) error {
			return fn(ctx, st.Outbox(), st.StripeStore())
		})
	}

	var q event.Query
	list := &cobra.Command{
		Use:   "list",
		Short: "List events, newest first, with their delivery state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withOutbox(cmd, func(ctx context.Context, ob event.Store, _ stripe.Store) error {
				if err := q.Check(); err != nil {
					return err
				}
				evs, err := ob.Events(ctx, q)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tTYPE\tACCOUNT\tCREATED\tDELIVERIES")
				for _, e := range evs {
					ds, err := ob.Deliveries(ctx, e.ID)
					if err != nil {
						return err
					}
					var parts []string
					for _, d := range ds {
						parts = append(parts, fmt.Sprintf("%s:%s/%d", d.EndpointID, d.Status, d.Attempts))
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", e.ID, e.Type, e.AccountID, e.CreatedAt.Format(time.RFC3339), strings.Join(parts, " "))
				}
				return w.Flush()
			})
		},
	}
	list.Flags().StringVar(&q.AccountID, "account", "", "only this account's events")
	list.Flags().StringVar(&q.Type, "type", "", "only events of this type")
	list.Flags().IntVar(&q.Limit, "limit", 50, "at most this many events (up to 500)")

	show := &cobra.Command{
		Use:   "show EVENT_ID",
		Short: "Show an event, its deliveries and every attempt, as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withOutbox(cmd, func(ctx context.Context, ob event.Store, _ stripe.Store) error {
				d, err := event.Show(ctx, ob, args[0])
				if err != nil {
					return err
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(d)
			})
		},
	}

	retry := &cobra.Command{
		Use:   "retry EVENT_ID",
		Short: "Make an event's undelivered deliveries pending again, due now",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withOutbox(cmd, func(ctx context.Context, ob event.Store, _ stripe.Store) error {
				ds, err := ob.Deliveries(ctx, args[0])
				if err != nil {
					return err
				}
				n := 0
				for _, d := range ds {
					if d.Status == event.Delivered {
						continue
					}
					if err := ob.Retry(ctx, d.EventID, d.EndpointID, time.Now()); err != nil {
						return err
					}
					n++
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d deliveries of %s pending again\n", n, args[0])
				return nil
			})
		},
	}

	deliver := &cobra.Command{
		Use:   "deliver",
		Short: "Send the deliveries due now once (scrip serve does this continuously)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withOutbox(cmd, func(ctx context.Context, ob event.Store, _ stripe.Store) error {
				n, err := event.NewDispatcher(ob, event.DispatcherOptions{}).DeliverDue(ctx)
				fmt.Fprintf(cmd.OutOrStdout(), "%d deliveries attempted\n", n)
				return err
			})
		},
	}

	var limit int
	stripeEvents := &cobra.Command{
		Use:   "stripe",
		Short: "List the Stripe events applied, newest first, with what each did",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withOutbox(cmd, func(ctx context.Context, _ event.Store, ss stripe.Store) error {
				ps, err := ss.ProcessedEvents(ctx, min(max(limit, 1), 500))
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tTYPE\tACCOUNT\tOBJECT\tRECEIVED\tRESULT")
				for _, p := range ps {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Type, p.AccountID, p.ObjectID, p.Received.Format(time.RFC3339), p.Result)
				}
				return w.Flush()
			})
		},
	}
	stripeEvents.Flags().IntVar(&limit, "limit", 50, "at most this many events (up to 500)")

	cmd.AddCommand(list, show, retry, deliver, stripeEvents, newEndpointsCmd(withOutbox))
	return cmd
}

func newEndpointsCmd(withOutbox func(*cobra.Command, func(context.Context, event.Store, stripe.Store) error) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "endpoints",
		Short: "Register, list and disable the platform's event endpoints",
	}
	var epURL, secret, types string
	add := &cobra.Command{
		Use:   "add",
		Short: "Register an endpoint; prints its signing secret once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withOutbox(cmd, func(ctx context.Context, ob event.Store, _ stripe.Store) error {
				ep, err := event.AddEndpoint(ctx, ob, epURL, secret, strings.Split(types, ","), time.Now())
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), ep.Secret)
				fmt.Fprintf(cmd.ErrOrStderr(), "endpoint %s registered for %s; the secret above signs every delivery (%s)\n",
					ep.ID, strings.Join(ep.Types, ","), event.SignatureHeader)
				return nil
			})
		},
	}
	add.Flags().StringVar(&epURL, "url", "", "the endpoint's URL (http or https)")
	add.Flags().StringVar(&secret, "secret", "", "signing secret (at least 16 bytes); empty: a random one")
	add.Flags().StringVar(&types, "types", "*", "event types, comma-separated, or * for all: "+strings.Join(event.Types, ", "))
	add.MarkFlagRequired("url")

	list := &cobra.Command{
		Use:   "list",
		Short: "List endpoints (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withOutbox(cmd, func(ctx context.Context, ob event.Store, _ stripe.Store) error {
				eps, err := ob.Endpoints(ctx)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tURL\tTYPES\tCREATED\tDISABLED")
				for _, ep := range eps {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\n", ep.ID, ep.URL, strings.Join(ep.Types, ","), ep.CreatedAt.Format(time.RFC3339), ep.Disabled)
				}
				return w.Flush()
			})
		},
	}

	disable := &cobra.Command{
		Use:   "disable ENDPOINT_ID",
		Short: "Stop deliveries to an endpoint; its history stays",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withOutbox(cmd, func(ctx context.Context, ob event.Store, _ stripe.Store) error {
				if err := ob.DisableEndpoint(ctx, args[0]); errors.Is(err, event.ErrNotFound) {
					return fmt.Errorf("endpoint %q not found", args[0])
				} else if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "endpoint %s disabled\n", args[0])
				return nil
			})
		},
	}
	cmd.AddCommand(add, list, disable)
	return cmd
}
