package main

import (
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/trainctl/trainctl/api"
)

// `trainctl workers ls|drain`. Owned by the cluster CLI work.

func workersCommand() *cli.Command {
	return &cli.Command{
		Name:  "workers",
		Usage: "list workers and drain them before maintenance",
		Description: "Workers join the cluster by gossip and take the ranks the scheduler places on them.\n\n" +
			"Examples:\n" +
			"  trainctl workers ls\n" +
			"  trainctl workers drain w-7c1e",
		Subcommands: []*cli.Command{workersLsCommand(), workersDrainCommand()},
	}
}

const workersLsHint = "`trainctl workers ls` lists the workers"

func workersLsCommand() *cli.Command {
	return &cli.Command{
		Name:         "ls",
		Usage:        "list workers: status, capacity, free capacity, spot or on-demand, zone",
		ArgsUsage:    " ",
		OnUsageError: globalFlagHint,
		Description:  "Example:\n  trainctl workers ls\n  trainctl -o json workers ls",
		Flags:        clusterFlags(),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			p, cl, err := clusterSetup(c)
			if err != nil {
				return err
			}
			ws, err := cl.Workers(c.Context)
			if err != nil {
				return clusterError(c, err, "", "")
			}
			if ws == nil {
				ws = []*api.Worker{}
			}
			rows := make([][]string, len(ws))
			for i, w := range ws {
				kind := "on-demand"
				if w.Meta.Spot {
					kind = "spot"
				}
				rows[i] = []string{w.ID, string(w.Status), orDash(w.Addr),
					strconv.Itoa(w.Meta.Cores), strconv.Itoa(w.Meta.GPUs),
					fmt.Sprintf("%d/%d", w.Free.Cores, w.Free.GPUs), kind, orDash(w.Meta.Zone), orDash(w.Meta.Version), age(w.StatusTime)}
			}
			return p.Result(ws, []string{"ID", "STATUS", "ADDR", "CORES", "GPUS", "FREE CORES/GPUS", "KIND", "ZONE", "VERSION", "SINCE"}, rows)
		},
	}
}

func workersDrainCommand() *cli.Command {
	return &cli.Command{
		Name:         "drain",
		Usage:        "stop placing new ranks on a worker; the ranks it runs continue",
		ArgsUsage:    "ID",
		OnUsageError: globalFlagHint,
		Description: "Marks the worker draining: the scheduler places nothing new on it, and what it runs\n" +
			"continues to the end. Draining an already draining worker changes nothing.\n\n" +
			"Example:\n  trainctl workers drain w-7c1e",
		Flags: clusterFlags(),
		Action: func(c *cli.Context) error {
			id, err := oneArg(c)
			if err != nil {
				return err
			}
			p, cl, err := clusterSetup(c)
			if err != nil {
				return err
			}
			w, err := cl.DrainWorker(c.Context, id)
			if err != nil {
				return clusterError(c, err, fmt.Sprintf("worker %q", id), workersLsHint)
			}
			if p.JSON() {
				return p.Value(w)
			}
			_, err = fmt.Fprintf(c.App.Writer, "worker %s is %s: no new ranks go to it; the ranks it runs continue\n", w.ID, w.Status)
			return err
		},
	}
}
