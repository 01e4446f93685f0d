package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/scriphq/scrip/ledger"
)

const (
	exportAccountsPage = 500
	// progressEvery is how often the progress line is redrawn.
	progressEvery = 200 * time.Millisecond
)

var exportColumns = []string{"account_id", "seq", "id", "created_at", "type", "amount", "grant_id", "hold_id",
	"charge_id", "action", "job", "idempotency_key", "reason", "hash"}

func newExportCmd() *cobra.Command {
	var url, format, output string
	var accounts []string
	var since, until string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export journal transactions as CSV or JSON lines",
		Long: `Export journal transactions, oldest first per account, as CSV or JSON lines.
Without --account every account is exported. A progress line is drawn on
stderr when it is a terminal.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "csv" && format != "jsonl" {
				return fmt.Errorf("--format %q: want csv or jsonl", format)
			}
			from, err := parseTimeFlag("since", since)
			if err != nil {
				return err
			}
			to, err := parseTimeFlag("until", until)
			if err != nil {
				return err
			}
			return withStore(cmd, &url, func(ctx context.Context, st store) error {
				var w io.Writer = cmd.OutOrStdout()
				if output != "" && output != "-" {
					f, err := os.Create(output)
					if err != nil {
						return err
					}
					defer f.Close()
					w = f
				}
				bw := bufio.NewWriter(w)
				x := &exporter{st: st, format: format, since: from, until: to, progress: newProgress(cmd.ErrOrStderr(), "exporting")}
				if err := x.run(ctx, bw, accounts); err != nil {
					return err
				}
				if err := bw.Flush(); err != nil {
					return err
				}
				x.progress.done(x.accounts, x.txs)
				return nil
			})
		},
	}
	addConfigFlag(cmd)
	addStoreFlags(cmd, &url)
	f := cmd.Flags()
	f.StringVar(&format, "format", "csv", "csv or jsonl")
	f.StringVarP(&output, "output", "o", "", "file to write (default: stdout)")
	f.StringSliceVar(&accounts, "account", nil, "export only these accounts")
	f.StringVar(&since, "since", "", "only transactions at or after this RFC 3339 time")
	f.StringVar(&until, "until", "", "only transactions before this RFC 3339 time")
	return cmd
}

func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s: %w", name, err)
	}
	return t, nil
}

type exporter struct {
	st           store
	format       string
	since, until time.Time
	progress     *progress
	accounts     int
	txs          int64
}

func (x *exporter) run(ctx context.Context, w io.Writer, only []string) error {
	var write func(t *ledger.Transaction) error
	switch x.format {
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(exportColumns); err != nil {
			return err
		}
		write = func(t *ledger.Transaction) error {
			cw.Write([]string{t.AccountID, strconv.FormatInt(t.Seq, 10), t.ID, t.CreatedAt.Format(time.RFC3339Nano),
				string(t.Type), t.Amount.String(), t.GrantID, t.HoldID, t.ChargeID, t.Ref.Action, t.Ref.Job,
				t.IdempotencyKey, t.Reason, t.Hash})
			cw.Flush()
			return cw.Error()
		}
	default:
		enc := json.NewEncoder(w)
		write = func(t *ledger.Transaction) error { return enc.Encode(t) }
	}
	account := func(id string) error {
		x.accounts++
		return x.st.Journal(ctx, id, func(t *ledger.Transaction) error {
			if (!x.since.IsZero() && t.CreatedAt.Before(x.since)) || (!x.until.IsZero() && !t.CreatedAt.Before(x.until)) {
				return nil
			}
			x.txs++
			x.progress.tick(x.accounts, x.txs)
			return write(t)
		})
	}
	if len(only) > 0 {
		for _, id := range only {
			if _, err := x.st.Account(ctx, id); err != nil {
				return fmt.Errorf("account %s: %w", id, err)
			}
			if err := account(id); err != nil {
				return err
			}
		}
		return nil
	}
	after := ""
	for {
		ids, err := x.st.AccountIDs(ctx, after, exportAccountsPage)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := account(id); err != nil {
				return err
			}
		}
		if len(ids) < exportAccountsPage {
			return nil
		}
		after = ids[len(ids)-1]
	}
}

func (p *progress) done(accounts int, txs int64) {
	p.clear()
	fmt.Fprintf(p.w, "exported %d transactions of %d accounts in %s\n", txs, accounts, time.Since(p.start).Round(time.Millisecond))
}
