package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator"
	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/membership"
	"github.com/trainctl/trainctl/serving"
	"github.com/trainctl/trainctl/tuning"
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
			"With --demo it also generates a synthetic dataset (1200 shapes images of 64x64),\n" +
			"uploads it, runs a short sweep (five learning rates; ASHA stops the poorer half at\n" +
			"epochs 1 and 2 of 4; about 3 minutes on 2 cores) printing each trial and result, and serves\n" +
			"the sweep's best model at --serve-addr, swapping in each better checkpoint as it\n" +
			"lands; it prints the URL (a web page to upload an image) and a curl line to try.\n" +
			"With --serve-model NAME it serves that registered model the same way.\n" +
			"Ctrl-C stops it: a running job is checkpointed and handed back, then the\n" +
			"coordinator shuts down; the next `trainctl up` resumes it (and `up --demo` again\n" +
			"finds its finished sweep and serves it at once).\n\n" +
			"Examples:\n" +
			"  trainctl up --demo\n" +
			"  trainctl up &  trainctl dataset push shapes  &&  trainctl submit -f job.yaml --wait",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "http-addr", Usage: "`HOST:PORT` of the /v1/ API", Value: d.HTTPAddr},
			&cli.StringFlag{Name: "raft-addr", Usage: "`HOST:PORT` of the Raft transport", Value: d.RaftAddr},
			&cli.StringFlag{Name: "flight-addr", Usage: "`HOST:PORT` of the dataset Arrow Flight server", Value: defaultFlightAddr},
			&cli.IntFlag{Name: "cores", Usage: "CPU cores the worker offers", Value: runtime.NumCPU()},
			&cli.DurationFlag{Name: "grace", Usage: "time after Ctrl-C for a running job to checkpoint", Value: worker.DefaultGrace},
			&cli.BoolFlag{Name: "demo", Usage: "generate a dataset, run a short sweep and serve its best model"},
			&cli.StringFlag{Name: "serve-addr", Usage: "`HOST:PORT` of the serving endpoint (with --demo or --serve-model)", Value: defaultServeAddr},
			&cli.StringFlag{Name: "serve-model", Usage: "serve the newest version of registered model `NAME` (see `trainctl serve`)"},
			&cli.IntFlag{Name: "demo-examples", Usage: "examples in the demo dataset", Value: 1200, Hidden: true},
			&cli.IntFlag{Name: "demo-size", Usage: "image side of the demo dataset", Value: 64, Hidden: true},
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
	if c.Bool("demo") && c.IsSet("serve-model") {
		return fmt.Errorf("up: --serve-model with --demo: the demo serves its own sweep's best model as %q; give one of them", demoModelName)
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
	// A part that fails on its own (the demo, serving, a follower) stops
	// every part, and up returns its error.
	ctx, stop := context.WithCancelCause(c.Context)
	defer stop(nil)
	fail := func(what string, err error) {
		if err != nil && ctx.Err() == nil {
			stop(fmt.Errorf("%s: %w", what, err))
		}
	}
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

	// Serving, when asked for: the endpoint starts at once (not ready until
	// a model is loaded) and follows its target as checkpoints land.
	var (
		serveDone = make(chan error, 1)
		follow    = func(serving.Target) {}
		served    *serving.Server
		serveURL  string
	)
	if c.Bool("demo") || c.String("serve-model") != "" {
		name := demoModelName
		if m := c.String("serve-model"); m != "" {
			name = m
		}
		opts := serveOptions{Name: name, Listen: c.String("serve-addr"), MaxBatch: serving.DefaultMaxBatch,
			MaxWait: serving.DefaultMaxWait, Queue: serving.DefaultQueueSize, Logger: logger}
		if served, err = newServingServer(opts); err != nil {
			return fmt.Errorf("up: %w", err)
		}
		ln, err := net.Listen("tcp", opts.Listen)
		if err != nil {
			return fmt.Errorf("up: --serve-addr %s: %w", opts.Listen, err)
		}
		serveURL = "http://" + ln.Addr().String()
		fmt.Fprintf(w, "serving model %q at %s/ (ready once a model is loaded)\n", name, serveURL)
		go func() {
			err := serveOn(ctx, served, ln)
			fail("serving", err)
			serveDone <- err
		}()
		follow = func(t serving.Target) {
			go func() {
				fail("following "+t.String(), serving.Follow(ctx, served, serving.FollowConfig{
					API: api.New(srv.HTTPAddr()), Peers: []string{"http://" + srv.HTTPAddr()}, Target: t,
					Dir: filepath.Join(root, "serve"), Interval: time.Second, MaxBatch: serving.DefaultMaxBatch, Logger: logger,
				}))
			}()
		}
		if m := c.String("serve-model"); m != "" {
			follow(serving.Target{Model: m})
		}
	} else {
		serveDone <- nil
	}

	demoDone := make(chan error, 1)
	if c.Bool("demo") {
		d := demo{
			w: w, ac: api.New(srv.HTTPAddr()), dir: filepath.Join(root, "demo"), root: root,
			examples: c.Int("demo-examples"), size: c.Int("demo-size"),
			follow: follow, served: served, url: serveURL,
		}
		go func() {
			err := d.run(ctx)
			fail("demo", err)
			demoDone <- err
		}()
	} else {
		demoDone <- nil
	}
	runErr := agent.Run(ctx)
	fail("worker", runErr)
	stop(nil) // whatever ended the worker ends the other parts too
	<-demoDone
	<-serveDone
	shutErr := srv.Shutdown()
	// The part that failed first is the news; the worker's error then
	// only says it was stopped.
	switch cause := context.Cause(ctx); {
	case cause != nil && !errors.Is(cause, context.Canceled):
		return fmt.Errorf("up: %w (everything is stopped; state is kept under %s)", cause, root)
	case runErr != nil:
		return fmt.Errorf("up: worker: %w", runErr)
	case shutErr != nil:
		return fmt.Errorf("up: shutdown: %w", shutErr)
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

// demoModelName is the name `up --demo` serves its model under.
const demoModelName = "demo"

// demo is `trainctl up --demo`'s walk through the system: a generated
// dataset, a sweep on it, and its best model served.
type demo struct {
	w        io.Writer
	ac       *api.Client
	dir      string
	root     string // up's state, named in advice
	examples int
	size     int
	follow   func(serving.Target)
	served   *serving.Server
	url      string
}

// demoSweepSpec is the demo's sweep over dataset ref: five random
// learning rates of UNet-S, one trial at a time on all the worker's
// cores, judged by ASHA (reduction factor 2) at epochs 1 and 2 of 4, so
// the poorer half stops early at each. Training is deterministic: every
// run stops the same trials.
func demoSweepSpec(ref string, cores int) (tuning.Spec, error) {
	s := tuning.Defaults()
	s.Name = "demo-sweep"
	s.Job.Name, s.Job.Dataset = "demo-trial", ref
	s.Job.Hyperparameters.Batch, s.Job.Hyperparameters.Seed = 8, 1
	s.Job.Resources.CPUsPerRank = cores
	lr := tuning.Param{Name: "lr", Type: tuning.LogUniform, Low: 1e-3, High: 1e-2}
	space, err := tuning.NewSpace(lr)
	if err != nil {
		return tuning.Spec{}, err
	}
	s.SearchSpace = space
	s.Objective = tuning.Objective{Metric: "val_mean_iou", Mode: tuning.Maximize}
	s.Scheduler = tuning.SchedulerSpec{Name: tuning.SchedulerASHA, ReductionFactor: 2}
	s.MaxTrials, s.MaxConcurrent = 5, 1
	s.Budget = tuning.Budget{Unit: tuning.UnitEpochs, Min: 1, Max: 4}
	s.Job.Hyperparameters.Epochs = s.Budget.Max
	s.Seed = 1
	return s, s.Validate()
}

// run generates the dataset (in its own store under dir) and uploads it,
// writes a sample image to try the model with, submits the sweep (with a
// request id derived from the dataset, so running the demo again finds
// the same sweep), serves its best checkpoint, prints the sweep's progress
// until it ends and then how to try the served model.
func (d *demo) run(ctx context.Context) error {
	w := d.w
	st, err := dataset.OpenStore(filepath.Join(d.dir, "datasets"))
	if err != nil {
		return err
	}
	gen := dataset.ShapesConfig{N: d.examples, Size: d.size, Seed: 1}
	fmt.Fprintf(w, "demo: generating %d shapes images of %dx%d\n", gen.N, gen.Size, gen.Size)
	var sample *dataset.Example
	m, _, err := st.Register(ctx, "demo-shapes", gen.Meta(), func(yield func(dataset.Example) error) (dataset.Provenance, error) {
		return dataset.Provenance{Source: gen.Source()}, dataset.GenerateShapes(ctx, gen, func(e dataset.Example) error {
			if sample == nil && e.Split == dataset.SplitVal {
				sample = &e
			}
			return yield(e)
		})
	})
	if err != nil {
		return err
	}
	v, err := d.ac.UploadDataset(ctx, m.Name, st.DataPath(m.ID))
	if err != nil {
		return err
	}
	ref := fmt.Sprintf("%s@v%d", v.Name, v.Seq)
	fmt.Fprintf(w, "demo: dataset %s uploaded (%d examples, %dx%d)\n", ref, m.Examples, gen.Size, gen.Size)
	samplePath := filepath.Join(d.dir, "sample.png")
	if sample != nil {
		if err := writeSamplePNG(samplePath, sample.Image, gen.Size); err != nil {
			return err
		}
	}

	ws, err := d.ac.Workers(ctx)
	if err != nil {
		return err
	}
	cores := 1
	for _, wk := range ws {
		cores = max(cores, wk.Meta.Cores)
	}
	spec, err := demoSweepSpec(ref, cores)
	if err != nil {
		return err
	}
	sw, err := d.ac.SubmitSweep(ctx, "demo-"+m.ID[:16], spec)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "demo: sweep %s: %d learning rates of UNet-S, up to %d epochs each; ASHA stops the poorer half early; `trainctl sweeps get %s` shows it too\n",
		sw.ID, spec.MaxTrials, spec.Budget.Max, sw.ID)
	d.follow(serving.Target{SweepID: sw.ID})

	id := sw.ID
	sw, err = follow(ctx, w, time.Second, sw, sw.CreateIndex,
		func(ctx context.Context, q *api.QueryOptions) (*api.Sweep, api.QueryMeta, error) {
			return d.ac.SweepQuery(ctx, id, q)
		},
		sweepChanges,
		func(s *api.Sweep) bool { return s.State.Terminal() }, func() string { return "demo: " })
	if err != nil {
		return err
	}
	if sw.State != api.SweepCompleted || sw.Best == nil {
		// A rerun finds this same sweep again (its request id comes from
		// the dataset), so say how to start afresh.
		return fmt.Errorf("sweep %s ended %s: %s; `trainctl sweeps get %s` shows its trials; to run the demo afresh, remove %s", sw.ID, sw.State, orDash(sw.Error), sw.ID, d.root)
	}
	// Wait for the server to load the best checkpoint: the version the
	// follower labels it with is the one Resolve gives for the sweep.
	want, err := serving.Resolve(ctx, d.ac, serving.Target{SweepID: sw.ID})
	if err != nil {
		return err
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if m := d.served.Model(); m != nil && m.Version() == want.Version {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	model := sw.Spec.Name
	if vs, err := d.ac.Models(ctx, sw.Spec.Name); err == nil {
		for _, v := range vs {
			if v.SweepID == sw.ID && v.Checkpoint == sw.Best.Checkpoint {
				model = fmt.Sprintf("%s v%d", v.Name, v.Version)
			}
		}
	}
	fmt.Fprintf(w, "demo: done: best trial %d (%s) %s=%.3f, model %s\n", sw.Best.Trial,
		compactParams(sw.Trials[sw.Best.Trial].Params), sw.Spec.Objective.Metric, sw.Best.Value, model)
	fmt.Fprintf(w, "demo: the best model is served at %s/ (open it in a browser and drop an image on it)\n", d.url)
	fmt.Fprintf(w, "demo: try it:  curl -s -H 'Accept: image/png' --data-binary @%s %s/v1/models/%s:predict -o mask.png\n",
		samplePath, d.url, demoModelName)
	fmt.Fprintln(w, "demo: Ctrl-C stops trainctl up; running it again serves this model at once")
	return nil
}

// writeSamplePNG writes an H×W×3 image as a PNG file.
func writeSamplePNG(path string, pix []byte, size int) error {
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	for i := range size * size {
		copy(img.Pix[4*i:4*i+3], pix[3*i:3*i+3])
		img.Pix[4*i+3] = 0xff
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
