package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/scriphq/scrip/catalog"
	"github.com/scriphq/scrip/credit"
	"github.com/scriphq/scrip/examples/catalogs"
)

func newCatalogCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "Check and show catalog files",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE...",
		Short: "Validate catalog files, listing every problem with file:line and field",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			for _, f := range args {
				c, err := catalog.Load(f)
				if err != nil {
					bad++
					var ve *catalog.ValidationError
					if errors.As(err, &ve) {
						for _, p := range ve.Problems {
							fmt.Fprintln(cmd.OutOrStdout(), p.String())
						}
						continue
					}
					fmt.Fprintln(cmd.OutOrStdout(), err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok, %s, %s: %d actions, %d plans, %d packs, %d workflows\n",
					f, c.Name, c.Version, len(c.Actions()), len(c.Plans()), len(c.Packs()), len(c.Workflows()))
			}
			if bad > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d of %d catalogs invalid", bad, len(args))}
			}
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "show [FILE]",
		Short: "Print the price table per category (the bundled demo catalog without FILE)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := ""
			if len(args) == 1 {
				file = args[0]
			}
			c, err := loadCatalog(file)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			showCatalog(cmd.OutOrStdout(), c)
			return nil
		},
	})
	return cmd
}

// loadCatalog reads file, or the bundled demo catalog when file is "".
func loadCatalog(file string) (*catalog.Catalog, error) {
	if file == "" {
		return catalogs.LoadDemo()
	}
	return catalog.Load(file)
}

func showCatalog(out io.Writer, c *catalog.Catalog) {
	fmt.Fprintf(out, "%s (%s)\n", c.Name, c.Version)
	defaults := c.CategoryDefaults()
	for _, cat := range c.Categories() {
		fmt.Fprintf(out, "\n%s\n", cat.Name)
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "Model\tID\tCredits\tSpeed\tPlan")
		for _, a := range c.Actions() {
			if a.Category != cat.ID {
				continue
			}
			name := a.Name
			if defaults[cat.ID] == a.ID {
				name += " (default)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, a.ID, priceText(c, a), a.Speed, planText(c, a))
		}
		tw.Flush()
	}
	if ps := c.Plans(); len(ps) > 0 {
		fmt.Fprintf(out, "\nPlans\n")
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "Code\tName\tTier\tCredits/month\tInterval\tPrice")
		for _, p := range ps {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", p.Code, p.Name, p.Tier, p.MonthlyCredits, p.Interval, money(p.Price))
		}
		tw.Flush()
	}
	if ps := c.Packs(); len(ps) > 0 {
		fmt.Fprintf(out, "\nCredit packs\n")
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "Code\tName\tCredits\tPrice")
		for _, p := range ps {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Code, p.Name, p.Credits, money(p.Price))
		}
		tw.Flush()
	}
}

func money(p catalog.Price) string {
	return fmt.Sprintf("%d.%02d %s", p.Amount/100, p.Amount%100, strings.ToUpper(p.Currency))
}

func planText(c *catalog.Catalog, a *catalog.Action) string {
	if a.MinPlan == "" {
		return ""
	}
	if p, ok := c.Plan(a.MinPlan); ok {
		return p.Name + "+"
	}
	return a.MinPlan
}

// priceText prints a fixed price as a number, a one-parameter table as
// "1K=4, 2K=6, 4K=8", and anything else as the range over its finite values
// or the quote at its defaults.
func priceText(c *catalog.Catalog, a *catalog.Action) string {
	if amt, ok := a.Fixed(); ok {
		return amt.String()
	}
	var finite []*catalog.Param
	for _, p := range a.Params {
		if p.Finite() && p.Type != catalog.TypeBoolean {
			finite = append(finite, p)
		}
	}
	if len(finite) == 1 && len(finite[0].Values) <= 6 {
		p := finite[0]
		parts := make([]string, 0, len(p.Values))
		for _, v := range p.Values {
			q, err := c.Estimate([]catalog.Step{{Action: a.ID, Params: map[string]any{p.Name: v}}})
			if err != nil {
				return "varies"
			}
			parts = append(parts, v+"="+q.Total.String())
		}
		return strings.Join(parts, ", ")
	}
	if lo, hi, ok := priceRange(c, a, finite); ok && len(finite) > 1 {
		return lo + "–" + hi
	}
	est, err := c.Estimate([]catalog.Step{{Action: a.ID}})
	if err != nil {
		return "varies"
	}
	l := est.Lines[0]
	if l.Reserve != l.Credits {
		return fmt.Sprintf("%s (holds %s)", l.Credits, l.Reserve)
	}
	return l.Credits.String() + " (defaults)"
}

// priceRange prices every combination of the finite parameters (bounded).
func priceRange(c *catalog.Catalog, a *catalog.Action, finite []*catalog.Param) (string, string, bool) {
	const combosMax = 256
	combos := []map[string]any{{}}
	for _, p := range finite {
		var next []map[string]any
		for _, m := range combos {
			for _, v := range p.Values {
				n := map[string]any{p.Name: v}
				for k, x := range m {
					n[k] = x
				}
				next = append(next, n)
			}
		}
		if len(next) > combosMax {
			return "", "", false
		}
		combos = next
	}
	var lo, hi credit.Amount
	for i, m := range combos {
		est, err := c.Estimate([]catalog.Step{{Action: a.ID, Params: m}})
		if err != nil {
			return "", "", false
		}
		t := est.Total
		if i == 0 || t < lo {
			lo = t
		}
		if i == 0 || t > hi {
			hi = t
		}
	}
	return lo.String(), hi.String(), true
}
