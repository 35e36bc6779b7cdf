package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/trainctl/trainctl/trainer/collective"
	"github.com/trainctl/trainctl/worker"
)

// workerCommand is `trainctl worker`: one worker agent, run until Ctrl-C or
// SIGTERM (a preemption notice).
func workerCommand() *cli.Command {
	return &cli.Command{
		Name:         "worker",
		Usage:        "run a worker: take training attempts from the coordinators (until Ctrl-C or SIGTERM)",
		ArgsUsage:    " ",
		OnUsageError: globalFlagHint,
		Description: "Registers with the coordinators named by --coordinator (any of them; the worker\n" +
			"follows the leader), heartbeats to keep its lease, and runs every attempt the\n" +
			"scheduler places on it as soon as it is placed (it watches its assignments with\n" +
			"blocking queries): the dataset version is streamed over Arrow Flight from a\n" +
			"coordinator into a cache under the work directory, metrics and checkpoints go back\n" +
			"to the coordinators, and a job cancelled in the cluster stops at once.\n\n" +
			"SIGTERM or Ctrl-C is a preemption notice: the worker stops advertising capacity,\n" +
			"each running attempt stops after its current step, checkpoints, uploads the\n" +
			"checkpoint and is handed back (reported preempted, resumed elsewhere from that\n" +
			"checkpoint), all within --grace; then the worker exits.\n\n" +
			"Ranks of a data-parallel job (resources.ranks > 1) listen on --ring-host, register\n" +
			"that address with the coordinators, connect into a ring with the attempt's other\n" +
			"ranks (authenticated with the attempt's secret) and sum gradients every step; a\n" +
			"peer silent for --collective-timeout fails the attempt, which resumes from its\n" +
			"checkpoint.\n\n" +
			"Its files live under --work-dir (default --data-dir/worker/ID). Logs go to stderr.\n\n" +
			gossipHelp + "With gossip, the worker leaves it after handing its attempts back, within --grace.\n\n" +
			"Examples:\n" +
			"  trainctl worker --coordinator 127.0.0.1:7421 --id w1 --cores 2\n" +
			"  trainctl worker --coordinator 10.0.0.1:7421,10.0.0.2:7421 --spot --zone eu-1a --grace 30s\n" +
			"  trainctl worker --coordinator 127.0.0.1:7421 --id w1 --gossip-addr 127.0.0.1:0 --gossip-join 127.0.0.1:7946",
		Flags: withClusterFlags(append([]cli.Flag{
			&cli.StringFlag{Name: "id", Usage: "this worker's `ID` in the cluster (default: the host name)", EnvVars: []string{"TRAINCTL_WORKER_ID"}},
			&cli.IntFlag{Name: "cores", Usage: "CPU cores the scheduler may fill", Value: runtime.NumCPU()},
			&cli.IntFlag{Name: "gpus", Usage: "GPUs the scheduler may fill"},
			&cli.BoolFlag{Name: "spot", Usage: "a preemptible (spot) machine: only jobs that allow spot run here"},
			&cli.StringFlag{Name: "zone", Usage: "the machine's failure `ZONE`"},
			&cli.DurationFlag{Name: "grace", Usage: "time from a preemption notice to exit, for the final checkpoint", Value: worker.DefaultGrace},
			&cli.DurationFlag{Name: "heartbeat", Usage: "heartbeat interval; keep it well under the coordinators' worker lease (15s)", Value: defaultAgentHeartbeat},
			&cli.StringFlag{Name: "work-dir", Usage: "`DIR` for runs, downloaded checkpoints and the dataset cache (default --data-dir/worker/ID)"},
			&cli.StringFlag{Name: "ring-host", Usage: "`HOST` the worker's data-parallel ranks listen on for their peers (default: this machine's address towards the first coordinator)"},
			&cli.DurationFlag{Name: "collective-timeout", Usage: "deadline of each gradient exchange between ranks: a peer silent this long fails the step", Value: collective.DefaultTimeout},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info"},
			&cli.StringFlag{Name: "log-format", Usage: "text or json", Value: "text"},
		}, gossipFlags("gossip addresses `ADDR[,ADDR...]` of the coordinators (their --gossip-addr) to join; required with --gossip-addr")...)...),
		Action: runWorker,
	}
}

// workerConfig builds the agent configuration from the flags.
func workerConfig(c *cli.Context) (worker.AgentConfig, error) {
	var cfg worker.AgentConfig
	if err := noArgs(c); err != nil {
		return cfg, err
	}
	addrs, err := coordinatorAddrs(c)
	if err != nil {
		return cfg, fmt.Errorf("worker: %w", err)
	}
	cfg.Coordinators = addrs
	cfg.ID = c.String("id")
	if cfg.ID == "" {
		h, err := os.Hostname()
		if err != nil || !nodeIDRE.MatchString(h) {
			return cfg, errors.New("worker: give --id ID (the host name cannot serve as one)")
		}
		cfg.ID = h
	}
	if !nodeIDRE.MatchString(cfg.ID) {
		return cfg, fmt.Errorf("worker: --id %q: want 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit", cfg.ID)
	}
	cfg.Cores, cfg.GPUs = c.Int("cores"), c.Int("gpus")
	if cfg.Cores < 1 || cfg.GPUs < 0 {
		return cfg, fmt.Errorf("worker: --cores %d --gpus %d: want at least one core and no negative GPUs", cfg.Cores, cfg.GPUs)
	}
	cfg.Spot, cfg.Zone = c.Bool("spot"), c.String("zone")
	cfg.Grace, cfg.HeartbeatInterval = c.Duration("grace"), c.Duration("heartbeat")
	if cfg.Grace <= 0 || cfg.HeartbeatInterval <= 0 {
		return cfg, fmt.Errorf("worker: --grace %v --heartbeat %v: must be positive", cfg.Grace, cfg.HeartbeatInterval)
	}
	cfg.RingHost, cfg.CollectiveTimeout = c.String("ring-host"), c.Duration("collective-timeout")
	if cfg.CollectiveTimeout <= 0 {
		return cfg, fmt.Errorf("worker: --collective-timeout %v: must be positive", cfg.CollectiveTimeout)
	}
	cfg.WorkDir = c.String("work-dir")
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join(dataDir(c), "worker", cfg.ID)
	}
	if cfg.Gossip, err = gossipConfig(c, "worker", true); err != nil {
		return cfg, err
	}
	if cfg.Logger, err = coordinatorLogger(c); err != nil {
		return cfg, fmt.Errorf("worker: %w", err)
	}
	return cfg, nil
}

func runWorker(c *cli.Context) error {
	cfg, err := workerConfig(c)
	if err != nil {
		return err
	}
	a, err := worker.NewAgent(cfg)
	if err != nil {
		return err
	}
	gossip := "off"
	if cfg.Gossip != nil {
		gossip = "join " + strings.Join(cfg.Gossip.Join, ",")
	}
	cfg.Logger.Info("worker starting; Ctrl-C or SIGTERM to hand back and stop", "id", cfg.ID, "work_dir", cfg.WorkDir, "coordinators", cfg.Coordinators, "gossip", gossip)
	// c.Context ends on SIGTERM or Ctrl-C (main): the preemption notice.
	return a.Run(c.Context)
}
