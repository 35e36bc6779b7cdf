// Command trainctl is the single binary of the trainctl training cluster:
// dataset management today, and the coordinator, worker, trainer and serving
// roles as they land. See README.md and docs/architecture.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newApp().RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "trainctl:", err)
		os.Exit(1)
	}
}

// newApp builds the command tree. Each command group lives in its own file
// and contributes its commands here.
func newApp() *cli.App {
	var cmds []*cli.Command
	cmds = append(cmds, datasetCommand())
	cmds = append(cmds, trainCommands()...)
	cmds = append(cmds, coordinatorCommand())
	cmds = append(cmds, submitCommand(), jobsCommand())
	cmds = append(cmds, sweepCommand(), sweepsCommand(), modelsCommand())
	cmds = append(cmds, workersCommand())
	cmds = append(cmds, clusterCommand())
	cmds = append(cmds, workerCommand(), upCommand(), serveCommand())
	return &cli.App{
		Name:  "trainctl",
		Usage: "distributed UNet segmentation training, sweeps and serving in one binary",
		Description: "trainctl manages versioned Arrow datasets, trains UNet segmentation models and\n" +
			"(as the cluster lands) schedules jobs and sweeps on workers and serves the best model.\n" +
			"Every command has --help. State lives under --data-dir (default ~/.trainctl).",
		Flags:                globalFlags(),
		Commands:             cmds,
		EnableBashCompletion: true,
		HideHelpCommand:      true,
	}
}
