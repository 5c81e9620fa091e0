package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"strata.dev/strata/internal/testing/demo"
	"strata.dev/strata/internal/testing/testenv"
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
	if errors.Is(err, demo.ErrNoArgoCD) {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
