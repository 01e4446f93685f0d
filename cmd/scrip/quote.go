package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/scriphq/scrip"
	"github.com/scriphq/scrip/catalog"
)

func newQuoteCmd() *cobra.Command {
	var file, plan string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "quote [--catalog FILE] [--plan CODE] ACTION [name=value ...]",
		Short: "Price one action (an action id or a category) under a plan",
		Long: "Price one action. Without --catalog the bundled demo catalog is used.\n" +
			"An invalid request exits 2; with --json it prints {\"code\", \"message\", ...}.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := loadCatalog(file)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			params := map[string]any{}
			for _, kv := range args[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return quoteFail(cmd, asJSON, &scrip.Error{Code: scrip.EInvalidParam, Field: kv,
						Message: fmt.Sprintf("parameter %q is not name=value", kv)})
				}
				params[k] = v
			}
			q, err := c.Quote(catalog.QuoteRequest{Action: args[0], Params: params, Plan: plan})
			if err != nil {
				return quoteFail(cmd, asJSON, err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(q)
			}
			fmt.Fprintln(out, q.Label)
			fmt.Fprintf(out, "  action   %s (%s)\n", q.Action, q.Category)
			fmt.Fprintf(out, "  credits  %s\n", q.Credits)
			fmt.Fprintf(out, "  reserve  %s\n", q.Reserve)
			if q.ListCredits != q.Credits {
				fmt.Fprintf(out, "  list     %s\n", q.ListCredits)
			}
			for _, l := range q.Breakdown {
				fmt.Fprintf(out, "  %-8s %-10s %s\n", l.Rule, l.Credits, l.Detail)
			}
			fmt.Fprintf(out, "  catalog  %s\n", q.Version)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "catalog", "", "catalog file (default: the bundled demo catalog)")
	cmd.Flags().StringVar(&plan, "plan", "", "plan code")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the quote as JSON")
	return cmd
}

// quoteFail reports an invalid request and exits 2.
func quoteFail(cmd *cobra.Command, asJSON bool, err error) error {
	var e *scrip.Error
	if !errors.As(err, &e) {
		return &exitError{code: 1, err: err}
	}
	if asJSON {
		body := map[string]any{"code": e.Code, "message": e.Message}
		if e.Field != "" {
			body["field"] = e.Field
		}
		for k, v := range e.Details {
			body[k] = v
		}
		b, _ := json.Marshal(body)
		fmt.Fprintln(cmd.OutOrStdout(), string(b))
		return &exitError{code: 2, err: errors.New("")}
	}
	return &exitError{code: 2, err: fmt.Errorf("%s: %s", e.Code, e.Message)}
}
