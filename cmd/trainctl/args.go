package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// flagAfterArgs catches a flag given after a positional argument, which
// urfave/cli leaves unparsed as one more argument, and says where it goes.
// Commands are named by their full path ("trainctl jobs get").
func flagAfterArgs(c *cli.Context) error {
	for _, a := range c.Args().Slice() {
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			return fmt.Errorf("%s: flag %s must come before the arguments (%s [flags] %s)", c.Command.HelpName, a, c.Command.HelpName, c.Command.ArgsUsage)
		}
	}
	return nil
}

// noArgs checks a command that takes no positional arguments.
func noArgs(c *cli.Context) error {
	if err := flagAfterArgs(c); err != nil {
		return err
	}
	if c.NArg() != 0 {
		return fmt.Errorf("%s takes no arguments, got %q (see --help)", c.Command.HelpName, c.Args().Slice())
	}
	return nil
}

// oneArg checks a command that takes exactly one positional argument and
// returns it.
func oneArg(c *cli.Context) (string, error) {
	if err := flagAfterArgs(c); err != nil {
		return "", err
	}
	if c.NArg() != 1 {
		return "", fmt.Errorf("%s wants one argument %s, got %d (see --help)", c.Command.HelpName, c.Command.ArgsUsage, c.NArg())
	}
	return c.Args().First(), nil
}
