package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/scriphq/scrip/ledger"
)

func newVerifyCmd() *cobra.Command {
	var url string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the journal: hashes, sums and balances; exit 1 on any difference",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep ledger.VerifyReport
			err := withEngine(cmd, &url, func(ctx context.Context, e *ledger.Engine) error {
				p := newProgress(cmd.ErrOrStderr(), "verifying")
				defer p.clear()
				var err error
				rep, err = e.VerifyProgress(ctx, p.tick)
				return err
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "accounts     %d\ntransactions %d\n", rep.Accounts, rep.Transactions)
				names := make([]string, 0, len(rep.Totals))
				for n := range rep.Totals {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					fmt.Fprintf(out, "  %-10s %s\n", n, rep.Totals[n])
				}
				for _, p := range rep.Problems {
					fmt.Fprintln(out, "PROBLEM:", p)
				}
			}
			if !rep.OK() {
				return &exitError{code: 1, err: fmt.Errorf("verify found %d problems", len(rep.Problems))}
			}
			if !asJSON {
				fmt.Fprintln(out, "ok: the journal and the balances agree")
			}
			return nil
		},
	}
	addConfigFlag(cmd)
	addStoreFlags(cmd, &url)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}
