// Command server runs the Lowrank service: a REST API that turns weight
// tensors into low-rank factors (SVD, PCA, CP, Tucker) on a job queue.
// Run it with --help for its flags and LOWRANK_* environment variables.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "lowrank:", err)
		os.Exit(1)
	}
}
