package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/trainctl/trainctl/coordinator"
)

// coordinatorCommand is `trainctl coordinator`: one coordinator server, run
// until Ctrl-C or SIGTERM. Owned by the cluster CLI work.
func coordinatorCommand() *cli.Command {
	d := coordinator.DefaultConfig()
	return &cli.Command{
		Name:         "coordinator",
		Usage:        "run a coordinator: a Raft voter serving the /v1/ API (until Ctrl-C)",
		ArgsUsage:    " ",
		OnUsageError: globalFlagHint,
		Description: "Runs one coordinator server with its Raft log, snapshots and state under\n" +
			"--data-dir/coordinator/NODE-ID. The first server of a new cluster starts with\n" +
			"--bootstrap; every other one with --join, naming the HTTP address of any running\n" +
			"coordinator (it asks to be added as a voter). A server restarted on a data directory\n" +
			"that already holds Raft state needs neither: it replays its log and catches up.\n" +
			"Clients (trainctl submit, jobs, workers, cluster) reach it through --coordinator.\n" +
			"Ctrl-C or SIGTERM stops it cleanly. Logs go to stderr.\n\n" +
			"A server listening on all interfaces (0.0.0.0) must say how others reach it with\n" +
			"--raft-advertise and --http-advertise.\n\n" +
			gossipHelp + "A coordinator's gossip metadata carries its API and Raft addresses; coordinators\n" +
			"join each other's gossip with --gossip-join.\n\n" +
			"Examples:\n" +
			"  # a single-voter cluster on this machine (the default addresses)\n" +
			"  trainctl coordinator --node-id c1 --bootstrap\n\n" +
			"  # three voters on one machine\n" +
			"  trainctl --data-dir /tmp/tc coordinator --node-id c1 --bootstrap\n" +
			"  trainctl --data-dir /tmp/tc coordinator --node-id c2 --raft-addr 127.0.0.1:7430 --http-addr 127.0.0.1:7431 --join 127.0.0.1:7421\n" +
			"  trainctl --data-dir /tmp/tc coordinator --node-id c3 --raft-addr 127.0.0.1:7440 --http-addr 127.0.0.1:7441 --join 127.0.0.1:7421,127.0.0.1:7431\n" +
			"  trainctl cluster status --coordinator 127.0.0.1:7421,127.0.0.1:7431,127.0.0.1:7441\n\n" +
			"  # with gossip (workers then join it with --gossip-join 127.0.0.1:7946)\n" +
			"  trainctl coordinator --node-id c1 --bootstrap --gossip-addr 127.0.0.1:7946",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "node-id", Usage: "this server's `ID` in the Raft configuration, for all time (default: the host name)", EnvVars: []string{"TRAINCTL_NODE_ID"}},
			&cli.StringFlag{Name: "raft-addr", Usage: "`HOST:PORT` the Raft transport listens on (port 0: any free port)", Value: d.RaftAddr},
			&cli.StringFlag{Name: "http-addr", Usage: "`HOST:PORT` the /v1/ API listens on (port 0: any free port)", Value: d.HTTPAddr},
			&cli.StringFlag{Name: "raft-advertise", Usage: "`HOST:PORT` other servers dial for Raft (default: the listening address)"},
			&cli.StringFlag{Name: "http-advertise", Usage: "`HOST:PORT` other servers and clients use for the API (default: the listening address)"},
			&cli.BoolFlag{Name: "bootstrap", Usage: "start a new cluster with this server as its first voter"},
			&cli.StringFlag{Name: "join", Usage: "join a running cluster as a voter through the HTTP API `ADDR[,ADDR...]` of any of its coordinators", EnvVars: []string{"TRAINCTL_JOIN"}},
			&cli.IntFlag{Name: "raft-multiplier", Usage: "scale the Raft heartbeat, election and leader lease timeouts (1-10): 1 fails over fastest; raise it on a machine that stalls for longer than the heartbeat timeout", Value: 1},
			&cli.DurationFlag{Name: "heartbeat-timeout", Usage: "Raft heartbeat timeout: a follower calls an election after this long without the leader", DefaultText: "300ms × --raft-multiplier"},
			&cli.DurationFlag{Name: "election-timeout", Usage: "Raft election timeout: a candidate retries after this long", DefaultText: "300ms × --raft-multiplier"},
			&cli.DurationFlag{Name: "leader-lease-timeout", Usage: "Raft leader lease: a leader steps down after this long without a quorum; at most the heartbeat timeout", DefaultText: "300ms × --raft-multiplier"},
			&cli.DurationFlag{Name: "commit-timeout", Usage: "Raft commit timeout", Value: d.CommitTimeout},
			&cli.DurationFlag{Name: "snapshot-interval", Usage: "how often to check whether to snapshot", Value: d.SnapshotInterval},
			&cli.Uint64Flag{Name: "snapshot-threshold", Usage: "log entries since the last snapshot that trigger one", Value: d.SnapshotThreshold},
			&cli.DurationFlag{Name: "apply-timeout", Usage: "how long a write waits to be committed", Value: d.ApplyTimeout},
			&cli.StringFlag{Name: "flight-addr", Usage: "`HOST:PORT` the Arrow Flight dataset server listens on (default: the API host, any free port; workers find it through the API)", Value: d.FlightAddr},
			&cli.DurationFlag{Name: "worker-lease", Usage: "how long a worker may miss heartbeats before its attempts are requeued", Value: d.WorkerLease},
			&cli.DurationFlag{Name: "scheduler-interval", Usage: "how often the leader runs a scheduling pass besides the passes events trigger", Value: d.SchedulerInterval},
			&cli.DurationFlag{Name: "blob-catch-up-interval", Usage: "how often a coordinator fetches referenced blobs it lacks", Value: d.BlobCatchUpInterval},
			&cli.Int64Flag{Name: "max-dataset-bytes", Usage: "largest dataset version file an upload may send (413 beyond); one import at a time holds it in memory", Value: d.MaxDatasetBytes},
			&cli.Int64Flag{Name: "max-blob-bytes", Usage: "largest blob (checkpoint, dataset file) the artifact store accepts (413 beyond); at least --max-dataset-bytes", Value: d.MaxBlobBytes},
			&cli.DurationFlag{Name: "job-retention", Usage: "how long a finished job stays whole before garbage collection replaces it by a summary (with its metrics and the checkpoints nothing else refers to)", Value: d.GC.JobRetention},
			&cli.DurationFlag{Name: "sweep-retention", Usage: "how long a finished sweep stays whole before garbage collection replaces it by a summary", Value: d.GC.SweepRetention},
			&cli.DurationFlag{Name: "gc-interval", Usage: "how often the leader collects finished jobs and sweeps, unreferenced checkpoints and removed datasets", Value: d.GC.Interval},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info"},
			&cli.StringFlag{Name: "log-format", Usage: "text or json", Value: "text"},
		}, gossipFlags("gossip addresses `ADDR[,ADDR...]` of other coordinators to join (default: start a new gossip cluster)")...),
		Action: runCoordinator,
	}
}

// nodeIDRE is what a node id may look like: it names a directory.
var nodeIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// coordinatorConfig builds the server configuration from the flags and
// checks everything that can be checked before starting.
func coordinatorConfig(c *cli.Context) (coordinator.Config, error) {
	cfg := coordinator.DefaultConfig()
	if err := noArgs(c); err != nil {
		return cfg, err
	}
	cfg.NodeID = c.String("node-id")
	if cfg.NodeID == "" {
		h, err := os.Hostname()
		if err != nil || !nodeIDRE.MatchString(h) {
			return cfg, errors.New("coordinator: give --node-id ID (the host name cannot serve as one)")
		}
		cfg.NodeID = h
	}
	if !nodeIDRE.MatchString(cfg.NodeID) {
		return cfg, fmt.Errorf("coordinator: --node-id %q: want 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit", cfg.NodeID)
	}
	cfg.DataDir = filepath.Join(dataDir(c), "coordinator", cfg.NodeID)

	cfg.RaftAddr, cfg.HTTPAddr = c.String("raft-addr"), c.String("http-addr")
	cfg.RaftAdvertise, cfg.HTTPAdvertise = c.String("raft-advertise"), c.String("http-advertise")
	for _, a := range []struct{ flag, addr, advertise, advFlag string }{
		{"--raft-addr", cfg.RaftAddr, cfg.RaftAdvertise, "--raft-advertise"},
		{"--http-addr", cfg.HTTPAddr, cfg.HTTPAdvertise, "--http-advertise"},
	} {
		host, _, err := splitHostPort(a.addr)
		if err != nil {
			return cfg, fmt.Errorf("coordinator: %s: %w", a.flag, err)
		}
		if a.advertise != "" {
			advHost, advPort, err := splitHostPort(a.advertise)
			if err != nil {
				return cfg, fmt.Errorf("coordinator: %s: %w", a.advFlag, err)
			}
			if ip := net.ParseIP(advHost); advHost == "" || (ip != nil && ip.IsUnspecified()) || advPort == 0 {
				return cfg, fmt.Errorf("coordinator: %s %q: give the host and port others reach this server at", a.advFlag, a.advertise)
			}
		} else if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return cfg, fmt.Errorf("coordinator: %s %q listens on all interfaces; also give %s HOST:PORT, the address other servers and clients should use",
				a.flag, a.addr, a.advFlag)
		}
	}

	cfg.Bootstrap = c.Bool("bootstrap")
	if j := c.String("join"); j != "" {
		addrs, err := splitAddrs(j)
		if err != nil {
			return cfg, fmt.Errorf("coordinator: --join %q: %w", j, err)
		}
		for _, a := range addrs {
			if err := checkClientAddr(a); err != nil {
				return cfg, fmt.Errorf("coordinator: --join: %w", err)
			}
		}
		cfg.Join = addrs
	}
	if cfg.Bootstrap && len(cfg.Join) > 0 {
		return cfg, errors.New("coordinator: give --bootstrap (start a new cluster) or --join ADDR (join a running one), not both")
	}
	if !cfg.Bootstrap && len(cfg.Join) == 0 && !hasRaftState(cfg.DataDir) {
		return cfg, fmt.Errorf("coordinator: %s holds no Raft state, so this server is new: give --bootstrap to start a new cluster, or --join ADDR[,ADDR...] to join a running one (HTTP addresses of its coordinators)", cfg.DataDir)
	}

	for _, f := range []string{"heartbeat-timeout", "election-timeout", "leader-lease-timeout", "commit-timeout", "snapshot-interval", "apply-timeout", "worker-lease", "scheduler-interval", "blob-catch-up-interval"} {
		if c.IsSet(f) && c.Duration(f) <= 0 { // every default is positive
			return cfg, fmt.Errorf("coordinator: --%s %v: must be positive", f, c.Duration(f))
		}
	}
	if err := cfg.SetRaftMultiplier(c.Int("raft-multiplier")); err != nil {
		return cfg, fmt.Errorf("coordinator: --raft-multiplier: %w", err)
	}
	for _, f := range []struct {
		flag string
		dst  *time.Duration
	}{{"heartbeat-timeout", &cfg.HeartbeatTimeout}, {"election-timeout", &cfg.ElectionTimeout}, {"leader-lease-timeout", &cfg.LeaderLeaseTimeout}} {
		if c.IsSet(f.flag) {
			*f.dst = c.Duration(f.flag)
		}
	}
	if cfg.LeaderLeaseTimeout > cfg.HeartbeatTimeout || cfg.ElectionTimeout < cfg.HeartbeatTimeout {
		return cfg, fmt.Errorf("coordinator: leader lease %v, heartbeat %v, election %v: want lease ≤ heartbeat ≤ election timeout",
			cfg.LeaderLeaseTimeout, cfg.HeartbeatTimeout, cfg.ElectionTimeout)
	}
	cfg.CommitTimeout = c.Duration("commit-timeout")
	cfg.SnapshotInterval = c.Duration("snapshot-interval")
	cfg.SnapshotThreshold = c.Uint64("snapshot-threshold")
	cfg.ApplyTimeout = c.Duration("apply-timeout")
	cfg.FlightAddr = c.String("flight-addr")
	cfg.WorkerLease = c.Duration("worker-lease")
	cfg.SchedulerInterval = c.Duration("scheduler-interval")
	cfg.BlobCatchUpInterval = c.Duration("blob-catch-up-interval")
	cfg.MaxDatasetBytes, cfg.MaxBlobBytes = c.Int64("max-dataset-bytes"), c.Int64("max-blob-bytes")
	cfg.GC.JobRetention, cfg.GC.SweepRetention = c.Duration("job-retention"), c.Duration("sweep-retention")
	cfg.GC.Interval = c.Duration("gc-interval")

	g, err := gossipConfig(c, "coordinator", false)
	if err != nil {
		return cfg, err
	}
	cfg.Gossip = g

	logger, err := coordinatorLogger(c)
	if err != nil {
		return cfg, err
	}
	cfg.Logger = logger
	return cfg, nil
}

// hasRaftState reports whether dir holds a Raft log from an earlier run.
func hasRaftState(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "raft", "raft.db"))
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
}

func coordinatorLogger(c *cli.Context) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, fmt.Errorf("coordinator: --log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	w := c.App.ErrWriter
	if w == nil {
		w = os.Stderr
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f := strings.ToLower(c.String("log-format")); f {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("coordinator: --log-format %q: want text or json", f)
	}
}

func runCoordinator(c *cli.Context) error {
	cfg, err := coordinatorConfig(c)
	if err != nil {
		return err
	}
	srv, err := coordinator.New(c.Context, cfg)
	if err != nil {
		if c.Context.Err() != nil {
			return fmt.Errorf("coordinator: interrupted while starting: %w", err)
		}
		return fmt.Errorf("coordinator %s: %w", cfg.NodeID, err)
	}
	if cfg.Gossip != nil {
		cfg.Logger.Info("serving; Ctrl-C to stop", "data_dir", cfg.DataDir, "http", srv.HTTPAddr(), "raft", srv.RaftAddr(), "gossip", srv.GossipAddr())
	} else {
		cfg.Logger.Info("serving; Ctrl-C to stop", "data_dir", cfg.DataDir, "http", srv.HTTPAddr(), "raft", srv.RaftAddr())
	}
	<-c.Context.Done()
	cfg.Logger.Info("shutting down", "reason", context.Cause(c.Context))
	if err := srv.Shutdown(); err != nil {
		return fmt.Errorf("coordinator %s: shutdown: %w", cfg.NodeID, err)
	}
	return nil
}
