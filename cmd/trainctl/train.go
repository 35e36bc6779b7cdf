package main

import "github.com/urfave/cli/v2"

// trainCommands are `trainctl train`, `eval` and `predict`. Owned by the
// trainer work.
func trainCommands() []*cli.Command { return nil }
