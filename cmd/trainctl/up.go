package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/trainctl/trainctl/coordinator"
	"github.com/trainctl/trainctl/coordinator/client"
	"github.com/trainctl/trainctl/coordinator/jobspec"
	"github.com/trainctl/trainctl/coordinator/membership"
	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/worker"
)

// defaultAgentHeartbeat is the worker's default heartbeat interval, well
// under the coordinators' default worker lease (15 s).
const defaultAgentHeartbeat = 3 * time.Second

// defaultFlightAddr is where `trainctl up` serves datasets over Arrow
// Flight.
const defaultFlightAddr = "127.0.0.1:7422"

// upCommand is `trainctl up`: a single-voter coordinator and one worker in
// one process, everything under --data-dir/up.
func upCommand() *cli.Command {
	d := coordinator.DefaultConfig()
	return &cli.Command{
		Name:         "up",
		Usage:        "run a one-machine cluster: a single-voter coordinator and a worker (until Ctrl-C)",
		ArgsUsage:    " ",
		OnUsageError: globalFlagHint,
		Description: "Embedded mode: one process hosts a coordinator (bootstrapping a single-voter\n" +
			"cluster, or resuming the one already under --data-dir/up) and a worker that runs\n" +
			"its jobs; the same code paths as a real cluster. State lives under\n" +
			"--data-dir/up/coordinator, the worker's files under --data-dir/up/worker. The\n" +
			"other commands reach it at the default --coordinator address. The coordinator and\n" +
			"the worker also gossip with each other on free 127.0.0.1 ports, as a cluster started\n" +
			"with --gossip-addr does (see `trainctl coordinator --help`), so that a worker's\n" +
			"graceful stop is seen at once.\n\n" +
			"With --demo it also generates a small synthetic dataset, uploads it, submits a\n" +
			"short training job and prints its progress until it finishes.\n" +
			"Ctrl-C stops it: a running job is checkpointed and handed back, then the\n" +
			"coordinator shuts down; the next `trainctl up` resumes it.\n\n" +
			"Examples:\n" +
			"  trainctl up --demo\n" +
			"  trainctl up &  trainctl dataset push shapes  &&  trainctl submit -f job.yaml --wait",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "http-addr", Usage: "`HOST:PORT` of the /v1/ API", Value: d.HTTPAddr},
			&cli.StringFlag{Name: "raft-addr", Usage: "`HOST:PORT` of the Raft transport", Value: d.RaftAddr},
			&cli.StringFlag{Name: "flight-addr", Usage: "`HOST:PORT` of the dataset Arrow Flight server", Value: defaultFlightAddr},
			&cli.IntFlag{Name: "cores", Usage: "CPU cores the worker offers", Value: runtime.NumCPU()},
			&cli.DurationFlag{Name: "grace", Usage: "time after Ctrl-C for a running job to checkpoint", Value: worker.DefaultGrace},
			&cli.BoolFlag{Name: "demo", Usage: "generate a dataset, submit a short job and show it finish"},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "warn"},
			&cli.StringFlag{Name: "log-format", Usage: "text or json", Value: "text"},
		},
		Action: runUp,
	}
}

func runUp(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	logger, err := coordinatorLogger(c)
	if err != nil {
		return err
	}
	if c.Int("cores") < 1 {
		return fmt.Errorf("up: --cores %d: want at least 1", c.Int("cores"))
	}
	root := filepath.Join(dataDir(c), "up")
	cfg := coordinator.DefaultConfig()
	cfg.NodeID = "up"
	cfg.DataDir = filepath.Join(root, "coordinator")
	cfg.Bootstrap = true // ignored when the data dir holds Raft state
	cfg.HTTPAddr, cfg.RaftAddr, cfg.FlightAddr = c.String("http-addr"), c.String("raft-addr"), c.String("flight-addr")
	cfg.Logger = logger
	g := upGossip()
	cfg.Gossip = &g
	ctx := c.Context
	srv, err := coordinator.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("up: coordinator: %w", err)
	}
	defer srv.Shutdown()
	wg := upGossip()
	wg.Join = []string{srv.GossipAddr()}
	agent, err := worker.NewAgent(worker.AgentConfig{
		ID: "up-worker", Coordinators: []string{srv.HTTPAddr()}, Cores: c.Int("cores"),
		WorkDir: filepath.Join(root, "worker"), Grace: c.Duration("grace"), HeartbeatInterval: defaultAgentHeartbeat,
		Store: srv.DatasetStore(), Logger: logger, Gossip: &wg,
	})
	if err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "trainctl up: coordinator API http://%s (raft %s, datasets over Flight at %s, gossip %s), worker up-worker\n",
		srv.HTTPAddr(), srv.RaftAddr(), srv.FlightAddr(), srv.GossipAddr())
	fmt.Fprintf(w, "state under %s; other commands: --coordinator %s (or TRAINCTL_COORDINATOR); Ctrl-C to stop\n", root, srv.HTTPAddr())

	demoDone := make(chan error, 1)
	if c.Bool("demo") {
		go func() { demoDone <- runDemo(ctx, w, client.New(srv.HTTPAddr()), filepath.Join(root, "demo")) }()
	} else {
		demoDone <- nil
	}
	runErr := agent.Run(ctx)
	demoErr := <-demoDone
	if err := srv.Shutdown(); err != nil {
		return fmt.Errorf("up: shutdown: %w", err)
	}
	if runErr != nil {
		return fmt.Errorf("up: worker: %w", runErr)
	}
	if demoErr != nil && ctx.Err() == nil {
		return fmt.Errorf("up: demo: %w", demoErr)
	}
	fmt.Fprintln(w, "trainctl up: stopped")
	return nil
}

// upGossip is the gossip configuration of `trainctl up`'s coordinator and
// worker: the loopback interface, any free port.
func upGossip() membership.Config {
	g := membership.DefaultConfig()
	g.BindAddr, g.BindPort = "127.0.0.1", 0
	return g
}

// runDemo generates a small dataset in its own store under dir, uploads
// it, submits a short job and prints its progress until it ends.
func runDemo(ctx context.Context, w io.Writer, api *client.Client, dir string) error {
	st, err := dataset.OpenStore(filepath.Join(dir, "datasets"))
	if err != nil {
		return err
	}
	gen := dataset.ShapesConfig{N: 64, Size: 32, Seed: 1}
	m, _, err := st.Register(ctx, "demo-shapes", gen.Meta(), func(yield func(dataset.Example) error) (dataset.Provenance, error) {
		return dataset.Provenance{Source: gen.Source()}, dataset.GenerateShapes(ctx, gen, yield)
	})
	if err != nil {
		return err
	}
	v, err := api.UploadDataset(ctx, m.Name, st.DataPath(m.ID))
	if err != nil {
		return err
	}
	ref := fmt.Sprintf("%s@v%d", v.Name, v.Seq)
	fmt.Fprintf(w, "demo: dataset %s uploaded (%d examples, %dx%d)\n", ref, m.Examples, gen.Size, gen.Size)
	spec := jobspec.Defaults()
	spec.Name, spec.Dataset = "demo", ref
	spec.Hyperparameters.Epochs, spec.Hyperparameters.Batch = 2, 8
	spec.CheckpointEvery = 4
	j, err := api.SubmitJob(ctx, "demo-"+m.ID[:16], spec)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "demo: job %s submitted (%s, %d epochs of batch %d); `trainctl jobs get %s` shows it too\n",
		j.ID, ref, spec.Hyperparameters.Epochs, spec.Hyperparameters.Batch, j.ID)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if j, err = api.Job(ctx, j.ID); err != nil {
			return err
		}
		line := fmt.Sprintf("demo: job %s %s, step %d", j.ID, j.State, j.Progress.Step)
		if line != last {
			fmt.Fprintln(w, line)
			last = line
		}
		switch j.State {
		case structs.JobSucceeded:
			fmt.Fprintf(w, "demo: finished: val mean IoU %.3f, checkpoint %s\n", j.Progress.Metrics["val_mean_iou"], j.LatestCheckpoint)
			return nil
		case structs.JobFailed, structs.JobCancelled:
			return errors.New("job " + j.ID + " ended " + string(j.State) + ": " + j.Error)
		}
	}
}
