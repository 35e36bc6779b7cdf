package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/jobspec"
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

// requestIDFlag returns --request-id of command cmd, checked, or a new
// random one: the idempotency key that makes a retried submission return
// what the first one created.
func requestIDFlag(c *cli.Context, cmd string) (string, error) {
	id := c.String("request-id")
	if c.IsSet("request-id") && strings.TrimSpace(id) == "" {
		return "", fmt.Errorf("%s: --request-id is empty; leave it out to get a random one", cmd)
	}
	if id == "" {
		return newRequestID(), nil
	}
	// The coordinator's own rule, so a bad id never makes a round trip.
	if err := api.CheckID(api.KindRequestID, id); err != nil {
		return "", fmt.Errorf("%s: --request-id: %w", cmd, err)
	}
	return id, nil
}

// specFileError reports a spec file that did not parse: every problem as
// FILE:LINE: FIELD: message, indented under one line saying that nothing
// was submitted.
func specFileError(cmd, file string, err error) error {
	var es jobspec.Errors
	if errors.As(err, &es) {
		return fmt.Errorf("%s: %s has %d problem(s); nothing was submitted:\n  %s", cmd, file, len(es), strings.ReplaceAll(es.Error(), "\n", "\n  "))
	}
	return fmt.Errorf("%s: %w", cmd, err)
}
