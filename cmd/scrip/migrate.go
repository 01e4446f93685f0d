package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/scriphq/scrip/postgres"
)

func newMigrateCmd() *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Bring the store's schema up to date",
		Long:  "Apply every pending schema migration. serve does the same at start; run this to migrate ahead of a deploy.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := resolveConfig(cmd); err != nil {
				return err
			}
			ctx := context.Background()
			st, desc, err := openStore(ctx, url, postgres.Options{})
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.Migrate(ctx); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: schema up to date\n", desc)
			return nil
		},
	}
	addConfigFlag(cmd)
	addStoreFlags(cmd, &url)
	return cmd
}
