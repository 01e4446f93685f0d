// Command scrip is the credits engine: the HTTP API server and the
// operator's tools in one binary.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	root := &cobra.Command{
		Use:           "scrip",
		Short:         "scrip prices AI actions in credits and keeps every account's credits exact",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(commands()...)
	if err := root.Execute(); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil && ee.err.Error() != "" {
				fmt.Fprintln(os.Stderr, "scrip:", ee.err)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "scrip:", err)
		os.Exit(1)
	}
}

// commands lists every subcommand; each lives in its own file.
func commands() []*cobra.Command {
	return []*cobra.Command{
		newCatalogCmd(),
		newQuoteCmd(),
		newServeCmd(),
		newMigrateCmd(),
		newKeysCmd(),
		newAccountCmd(),
		newVerifyCmd(),
		newExportCmd(),
		newBenchCmd(),
		newEventsCmd(),
	}
}
