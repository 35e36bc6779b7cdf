package main

import "github.com/urfave/cli/v2"

// datasetStreamCommands are `trainctl dataset serve|pull|stream`, the Arrow
// Flight side of datasets. Owned by the streaming work.
func datasetStreamCommands() []*cli.Command { return nil }
