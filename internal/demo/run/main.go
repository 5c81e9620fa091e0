// Command run is `make demo`: the whole Strata chain on examples/quickstart, with a summary.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"strata.dev/strata/internal/demo"
	"strata.dev/strata/internal/testenv"
)

func main() {
	keep := flag.Bool("keep", false, "keep the demo's namespace and Application in the cluster")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	root := testenv.RepoRoot()
	if root == "" {
		fmt.Fprintln(os.Stderr, "demo: run me from the strata repository")
		os.Exit(2)
	}
	_, err := demo.Run(ctx, demo.Options{
		RepoRoot: root,
		Env:      testenv.Load(),
		Out:      os.Stdout,
		Log:      slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Keep:     *keep,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
