package serving

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/artifact"
	"github.com/trainctl/trainctl/tuning"
)

// Target names what a Follower serves: the best checkpoint of a job, the
// best checkpoint of a sweep, or the newest version of a registered model.
// Exactly one field is set.
type Target struct {
	JobID   string
	SweepID string
	Model   string
}

// Validate checks that exactly one field is set.
func (t Target) Validate() error {
	n := 0
	for _, s := range []string{t.JobID, t.SweepID, t.Model} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("serving: name exactly one of a job, a sweep or a model to follow, got %d", n)
	}
	return nil
}

// String names the target as the CLI flags do ("--sweep 1a2b…").
func (t Target) String() string {
	switch {
	case t.JobID != "":
		return "job " + t.JobID
	case t.SweepID != "":
		return "sweep " + t.SweepID
	}
	return "model " + t.Model
}

// ErrNoCheckpoint is returned while the target has no checkpoint to serve
// yet (a job or sweep still early in its training).
var ErrNoCheckpoint = errors.New("no checkpoint yet")

// Choice is a checkpoint a target resolved to and the version label that
// responses carry for it.
type Choice struct {
	Digest  string
	Version string
}

// Resolve asks the coordinator which checkpoint the target serves now: a
// sweep's best checkpoint (the controller only ever replaces it with a
// better one), a model's newest version, or the checkpoint of a job whose
// epoch-end val_mean_iou is best (its latest checkpoint before any epoch
// ended with one).
func Resolve(ctx context.Context, ac *api.Client, t Target) (Choice, error) {
	switch {
	case t.SweepID != "":
		sw, err := ac.Sweep(ctx, t.SweepID)
		if err != nil {
			return Choice{}, err
		}
		if sw.Best == nil || sw.Best.Checkpoint == "" {
			return Choice{}, fmt.Errorf("sweep %s: %w", sw.ID, ErrNoCheckpoint)
		}
		return Choice{Digest: sw.Best.Checkpoint, Version: fmt.Sprintf("%s-trial%d-%s", shortID(sw.ID), sw.Best.Trial, shortHex(sw.Best.Checkpoint))}, nil
	case t.Model != "":
		vs, err := ac.Models(ctx, t.Model)
		if err != nil {
			return Choice{}, err
		}
		if len(vs) == 0 {
			return Choice{}, fmt.Errorf("model %s: %w", t.Model, ErrNoCheckpoint)
		}
		v := vs[len(vs)-1]
		return Choice{Digest: v.Checkpoint, Version: fmt.Sprintf("%s@v%d-%s", v.Name, v.Version, shortHex(v.Checkpoint))}, nil
	}
	j, err := ac.Job(ctx, t.JobID)
	if err != nil {
		return Choice{}, err
	}
	digest, err := bestJobCheckpoint(ctx, ac, j)
	if err != nil {
		return Choice{}, err
	}
	if digest == "" {
		return Choice{}, fmt.Errorf("job %s: %w", j.ID, ErrNoCheckpoint)
	}
	return Choice{Digest: digest, Version: shortID(j.ID) + "-" + shortHex(digest)}, nil
}

// bestJobCheckpoint picks the job's checkpoint taken at the step of its
// best epoch-end val_mean_iou, as a sweep picks a trial's
// (tuning.BestCheckpoint); when no epoch reported one, its latest
// checkpoint. It fails when the job's metrics or checkpoints cannot be
// read, rather than guessing: falling back to the latest checkpoint on a
// transient error would swap it in and the best one back a tick later.
func bestJobCheckpoint(ctx context.Context, ac *api.Client, j *api.Job) (string, error) {
	ms, err := ac.JobMetrics(ctx, j.ID)
	if err != nil {
		return "", fmt.Errorf("job %s: read its metrics: %w", j.ID, err)
	}
	cs, err := ac.Checkpoints(ctx, j.ID)
	if err != nil {
		return "", fmt.Errorf("job %s: list its checkpoints: %w", j.ID, err)
	}
	reports := make([]tuning.StepReport, len(ms))
	for i, m := range ms {
		reports[i] = tuning.StepReport{Attempt: m.Attempt, Step: m.Step, Values: m.Values}
	}
	cks := make([]tuning.CheckpointAt, len(cs))
	for i, c := range cs {
		cks[i] = tuning.CheckpointAt{Digest: c.Digest, Attempt: c.Attempt, Step: c.Step}
	}
	if digest, _, ok := tuning.BestCheckpoint("val_mean_iou", tuning.Maximize, reports, cks); ok {
		return digest, nil
	}
	return j.LatestCheckpoint, nil
}

func shortHex(digest string) string {
	h := strings.TrimPrefix(digest, artifact.DigestPrefix)
	return h[:min(12, len(h))]
}

func shortID(id string) string { return id[:min(8, len(id))] }

// DefaultFollowWait is the default FollowConfig.Wait. It is short, not
// the coordinators' api.DefaultBlockingWait of minutes: a coordinator cut
// off from the cluster (not crashed) answers a blocking query only when its
// wait ends, and a new checkpoint goes unseen until then. An idle follower
// pays for it with one request per 30 s.
const DefaultFollowWait = 30 * time.Second

// FollowConfig configures Follow.
type FollowConfig struct {
	// API reaches the coordinators; Peers are their HTTP addresses, to
	// fetch checkpoint blobs from.
	API   *api.Client
	Peers []string
	// Blobs downloads checkpoints (default artifact.NewClient with its
	// defaults).
	Blobs *artifact.Client
	// Target is what to serve.
	Target Target
	// Dir caches downloaded checkpoints, one file per checkpoint named by
	// its digest. Follow deletes a file it downloaded once it no longer
	// serves it (a newer checkpoint replaced it, or it could not be
	// loaded); other files in Dir are left alone.
	Dir string
	// Interval is the least time between two resolutions of the target
	// (each reads the target, and for a job its metrics and checkpoints),
	// and the pace of retries after an error (default 2 s). Between them
	// Follow waits on blocking queries, so a change is seen as soon as
	// Interval allows and an idle target costs one query per Wait (two for
	// a job: the job and its checkpoints). Against a coordinator without
	// blocking queries it polls every Interval.
	Interval time.Duration
	// Wait is how long one blocking query on the target waits for a change
	// before it is sent again (default DefaultFollowWait).
	Wait time.Duration
	// AskTimeout bounds one resolution, and the first question to the
	// coordinators, retries included (default 10 s), so that unreachable
	// coordinators are logged within that time rather than after the
	// client's own retry timeout.
	AskTimeout time.Duration
	// Threads and MaxBatch configure each loaded model (see LoadModel).
	Threads, MaxBatch int
	// Logger receives Follow's logs: each swap (Info), waiting for a first
	// checkpoint (Info), coordinator or download errors it keeps retrying
	// (Warn, once per distinct error) and checkpoints it cannot serve
	// (Error); nil means slog.Default().
	Logger *slog.Logger
}

// Follow keeps srv serving the target's checkpoint until ctx ends: it
// watches the target with blocking queries (the job and its checkpoints,
// the sweep, or the model's versions) and, when it changed, resolves it
// (at most once per Interval); an answer older than one already taken (a
// coordinator lagging behind, after a failover) is not a change. When the
// resolution changes, it downloads the checkpoint
// (verified by digest), loads it and swaps it in; requests keep being
// answered by the old model until the swap, and the file of the checkpoint
// swapped out is then deleted from Dir. Errors reaching the coordinator or
// downloading are logged and retried every Interval. A checkpoint that downloads but cannot be loaded (corrupt, or
// a model serving cannot run) is logged once at Error and not tried again
// until the target resolves to another checkpoint; the old model keeps
// serving meanwhile.
//
// Follow returns an error at once, having served nothing, when cfg.API is
// nil, cfg.Target is invalid (see Target.Validate) or cfg.Dir cannot be
// created; otherwise it runs until ctx ends and returns ctx.Err().
func Follow(ctx context.Context, srv *Server, cfg FollowConfig) error {
	if cfg.API == nil {
		return errors.New("serving: follow: no coordinator client (FollowConfig.API is nil)")
	}
	if err := cfg.Target.Validate(); err != nil {
		return err
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.AskTimeout <= 0 {
		cfg.AskTimeout = 10 * time.Second
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultFollowWait
	}
	if cfg.Blobs == nil {
		cfg.Blobs = artifact.NewClient(artifact.ClientConfig{})
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("serving: checkpoint cache: %w", err)
	}
	log := cfg.Logger.With("follow", cfg.Target.String())
	var (
		current     string // digest served
		currentPath string // its file, when Follow downloaded it
		failed      string // digest that downloaded but did not load
		lastErr     string
		// retry resolves again whatever the target's version, after an
		// error.
		retry = true
	)
	// Each query on what the target resolves from runs in its own
	// goroutine and reports a change (nil) or its error on changes.
	changes := make(chan error, 1)
	qctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	for _, q := range targetQueries(cfg) {
		wg.Go(func() { q.run(qctx, cfg, changes) })
	}
	for {
		var err error
		if retry {
			// Resolving again anyway: a change reported meanwhile is
			// covered.
			select {
			case <-changes:
			default:
			}
		} else {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case err = <-changes:
			}
		}
		resolved := time.Now()
		var choice Choice
		if err == nil {
			actx, cancel := context.WithTimeout(ctx, cfg.AskTimeout)
			choice, err = Resolve(actx, cfg.API, cfg.Target)
			cancel()
		}
		if err == nil && choice.Digest != failed {
			failed = "" // the target moved on: a later return to it retries
		}
		if err == nil && choice.Digest != current && choice.Digest != failed {
			var path string
			path, err = swapIn(ctx, srv, cfg, choice)
			var unservable *unservableError
			switch {
			case err == nil:
				log.Info("serving new checkpoint", "version", choice.Version, "checkpoint", choice.Digest)
				if currentPath != "" && currentPath != path {
					if rerr := os.Remove(currentPath); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
						log.Warn("could not delete the checkpoint swapped out", "path", currentPath, "err", rerr)
					}
				}
				current, currentPath = choice.Digest, path
			case errors.As(err, &unservable):
				failed, err = choice.Digest, nil
				log.Error("checkpoint cannot be served; keeping the current model until the target moves to another checkpoint",
					"version", choice.Version, "checkpoint", choice.Digest, "err", unservable.err)
				if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
					log.Warn("could not delete the checkpoint that failed to load", "path", path, "err", rerr)
				}
			}
		}
		if err != nil && ctx.Err() == nil && err.Error() != lastErr {
			// A model is registered when its first version is: until then
			// its name is unknown, which is waiting too.
			if errors.Is(err, ErrNoCheckpoint) || (cfg.Target.Model != "" && errors.Is(err, api.ErrNotFound)) {
				log.Info("waiting for a checkpoint", "reason", err)
			} else {
				log.Warn("follow: retrying", "every", cfg.Interval, "err", err)
			}
		}
		lastErr = ""
		// Waiting for a first checkpoint is waiting for a change, not
		// an error to retry.
		retry = err != nil && !errors.Is(err, ErrNoCheckpoint) && !(cfg.Target.Model != "" && errors.Is(err, api.ErrNotFound))
		if err != nil {
			lastErr = err.Error()
		}
		// At most one resolution per Interval; a change meanwhile waits
		// in changes.
		if err := api.Pause(ctx, time.Until(resolved.Add(cfg.Interval))); err != nil {
			return err
		}
	}
}

// unservableError is a checkpoint that downloaded but cannot be loaded:
// trying it again would fail the same way.
type unservableError struct{ err error }

func (e *unservableError) Error() string { return e.err.Error() }
func (e *unservableError) Unwrap() error { return e.err }

// swapIn downloads, loads and installs one checkpoint and returns its file.
// A load failure other than reading the file is an *unservableError.
func swapIn(ctx context.Context, srv *Server, cfg FollowConfig, c Choice) (string, error) {
	path := filepath.Join(cfg.Dir, strings.TrimPrefix(c.Digest, artifact.DigestPrefix)+".ckpt")
	if err := cfg.Blobs.FetchFile(ctx, cfg.Peers, c.Digest, path); err != nil {
		return path, fmt.Errorf("serving: %w", err)
	}
	m, err := LoadModel(path, c.Version, cfg.Threads, cfg.MaxBatch)
	if err != nil {
		err = fmt.Errorf("serving: load %s: %w", path, err)
		// A file that vanished or could not be read (another process
		// pruning a shared Dir, a disk error) is worth another download.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return path, err
		}
		return path, &unservableError{err: err}
	}
	srv.Swap(m)
	return path, nil
}
