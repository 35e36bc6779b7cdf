package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/trainctl/trainctl/serving"
)

// defaultServeAddr is where `trainctl serve` and `trainctl up` listen.
const defaultServeAddr = "127.0.0.1:8080"

// serveCommand is `trainctl serve`: the HTTP inference server.
func serveCommand() *cli.Command {
	return &cli.Command{
		Name:         "serve",
		Usage:        "serve a checkpoint over HTTP: predict API, web page, health and metrics",
		ArgsUsage:    " ",
		OnUsageError: globalFlagHint,
		Description: "Serves a segmentation model: POST an image to /v1/models/NAME:predict and get its\n" +
			"mask back (PNG with Accept: image/png, JSON with run-length-encoded classes and\n" +
			"per-class fractions otherwise); open / in a browser to upload an image and see the\n" +
			"mask overlaid. /healthz, /readyz (ready once a model is loaded) and /metrics\n" +
			"(Prometheus) are served too.\n\n" +
			"With --checkpoint it serves that file (named \"default\" unless --name says\n" +
			"otherwise). With --coordinator and one of --job, --sweep or --model it follows the\n" +
			"cluster: the best checkpoint of a job or sweep by its objective, or the newest version\n" +
			"of a registered model, and swaps to a new one as it lands without failing a request.\n" +
			"Every response carries the model version that answered (X-Model-Version).\n\n" +
			"Concurrent requests share forward passes (--max-batch, --max-wait); beyond --queue\n" +
			"waiting requests it answers 503 with Retry-After instead of queueing without limit.\n\n" +
			"Examples:\n" +
			"  trainctl serve --checkpoint runs/unet/best.ckpt\n" +
			"  trainctl serve --sweep 3f2a9c01d4e5b6a7 --listen :8080\n" +
			"  trainctl serve --model demo-sweep    # served as /v1/models/demo-sweep:predict\n" +
			"  curl -s -H 'Accept: image/png' --data-binary @cat.png http://127.0.0.1:8080/v1/models/default:predict > mask.png",
		Flags: withClusterFlags(
			&cli.StringFlag{Name: "checkpoint", Usage: "serve this checkpoint `FILE`"},
			&cli.StringFlag{Name: "job", Usage: "follow the best checkpoint of job `ID`"},
			&cli.StringFlag{Name: "sweep", Usage: "follow the best checkpoint of sweep `ID`"},
			&cli.StringFlag{Name: "model", Usage: "follow the newest version of registered model `NAME`"},
			&cli.StringFlag{Name: "name", Usage: "model `NAME` in URLs (default: \"default\", or the --model name)"},
			&cli.StringFlag{Name: "listen", Usage: "`HOST:PORT` to serve on", Value: defaultServeAddr},
			&cli.IntFlag{Name: "max-batch", Usage: "most requests per forward pass (1 turns batching off)", Value: serving.DefaultMaxBatch},
			&cli.DurationFlag{Name: "max-wait", Usage: "how long a request waits for others to share its forward pass", Value: serving.DefaultMaxWait},
			&cli.IntFlag{Name: "queue", Usage: "requests waiting at most; more get 503 with Retry-After", Value: serving.DefaultQueueSize},
			&cli.IntFlag{Name: "threads", Usage: "inference threads (0: all cores)"},
			&cli.DurationFlag{Name: "poll", Usage: "least time between two looks for a better checkpoint; the target's changes wake the follower (blocking queries), errors are retried at this pace", Value: 2 * time.Second},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info"},
			&cli.StringFlag{Name: "log-format", Usage: "text or json", Value: "text"},
		),
		Action: runServe,
	}
}

func runServe(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	logger, err := coordinatorLogger(c)
	if err != nil {
		return err
	}
	target := serving.Target{JobID: c.String("job"), SweepID: c.String("sweep"), Model: c.String("model")}
	ckpt := c.String("checkpoint")
	following := target != (serving.Target{})
	switch {
	case ckpt != "" && following:
		return errors.New("serve: give --checkpoint or one of --job, --sweep, --model, not both")
	case ckpt == "" && !following:
		return errors.New("serve: nothing to serve: give --checkpoint FILE, or --job ID, --sweep ID or --model NAME with --coordinator")
	case following:
		if err := target.Validate(); err != nil {
			return errors.New("serve: give only one of --job, --sweep, --model")
		}
		if p := c.Duration("poll"); p <= 0 {
			return fmt.Errorf("serve: --poll %v: must be positive", p)
		}
	}
	name := c.String("name")
	if name == "" {
		name = "default"
		if target.Model != "" {
			name = target.Model
			if strings.ContainsAny(name, "/:") {
				return fmt.Errorf("serve: model %q cannot name the URL /v1/models/NAME:predict; give one with --name", name)
			}
		}
	}
	opts := serveOptions{
		Name: name, Listen: c.String("listen"), MaxBatch: c.Int("max-batch"), MaxWait: c.Duration("max-wait"),
		Queue: c.Int("queue"), Threads: c.Int("threads"), Logger: logger,
	}
	srv, err := newServingServer(opts)
	if err != nil {
		return err
	}
	if ckpt != "" {
		m, err := serving.LoadModel(ckpt, "", opts.Threads, opts.MaxBatch)
		if err != nil {
			return fmt.Errorf("serve: --checkpoint %s: %w", ckpt, err)
		}
		srv.Swap(m)
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("serve: --listen %s: %w", opts.Listen, err)
	}
	ctx, stop := context.WithCancelCause(c.Context)
	defer stop(nil)
	if following {
		api, err := newClusterClient(c)
		if err != nil {
			return err
		}
		addrs, err := coordinatorAddrs(c)
		if err != nil {
			return err
		}
		cfg := serving.FollowConfig{
			API: api, Peers: httpURLs(addrs), Target: target,
			Dir: filepath.Join(dataDir(c), "serve", "checkpoints"), Interval: c.Duration("poll"),
			Threads: opts.Threads, MaxBatch: opts.MaxBatch, Logger: logger,
		}
		// Follow returns early only when it cannot work at all (its
		// cache directory, say); serving then stops with that error.
		go func() {
			if err := serving.Follow(ctx, srv, cfg); ctx.Err() == nil {
				stop(fmt.Errorf("following %s: %w", target, err))
			}
		}()
	}
	url := "http://" + ln.Addr().String()
	fmt.Fprintf(c.App.Writer, "serving %s at %s/ (predict: POST %s/v1/models/%s:predict); Ctrl-C to stop\n", opts.Name, url, url, opts.Name)
	err = serveOn(ctx, srv, ln)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return fmt.Errorf("serve: %w", cause)
	}
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// serveOptions are the settings `serve` and `up` share.
type serveOptions struct {
	Name     string
	Listen   string
	MaxBatch int
	MaxWait  time.Duration
	Queue    int
	Threads  int
	Logger   *slog.Logger
}

func newServingServer(o serveOptions) (*serving.Server, error) {
	if o.MaxBatch < 1 {
		return nil, fmt.Errorf("serve: --max-batch %d: want at least 1", o.MaxBatch)
	}
	if o.Queue < 1 {
		return nil, fmt.Errorf("serve: --queue %d: want at least 1", o.Queue)
	}
	if o.MaxWait < 0 {
		return nil, fmt.Errorf("serve: --max-wait %v: must not be negative", o.MaxWait)
	}
	srv, err := serving.New(serving.Config{
		Name: o.Name, MaxBatch: o.MaxBatch, MaxWait: o.MaxWait, QueueSize: o.Queue,
		Threads: o.Threads, Logger: o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	srv.MountWebPage()
	return srv, nil
}

// serveOn serves srv on ln until ctx ends, then shuts down gracefully:
// the listener closes, in-flight requests finish, and the batching loop
// stops last.
func serveOn(ctx context.Context, srv *serving.Server, ln net.Listener) error {
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	errc := make(chan error, 2)
	go func() { errc <- srv.Run(runCtx) }()
	go func() {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	select {
	case <-ctx.Done():
	case err := <-errc:
		_ = hs.Close()
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	stopRun()
	return err
}

// httpURLs turns coordinator addresses (host:port or URLs) into URLs.
func httpURLs(addrs []string) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		out[i] = a
	}
	return out
}
