package main

import "github.com/urfave/cli/v2"

// datasetCommand is the `trainctl dataset` group. Owned by the dataset work.
func datasetCommand() *cli.Command {
	return &cli.Command{
		Name:        "dataset",
		Usage:       "generate, ingest, inspect, verify and stream versioned datasets",
		Subcommands: datasetStreamCommands(),
	}
}
