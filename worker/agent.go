package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/artifact"
	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/membership"
	"github.com/trainctl/trainctl/trainer/collective"
)

// DefaultAssignmentWait is the default AgentConfig.AssignmentWait. It is
// short, not the coordinators' api.DefaultBlockingWait of minutes: a
// coordinator cut off from the cluster (not crashed) answers a blocking
// query only when its wait ends, and until then the leader's placements on
// this worker (whose heartbeats fail over to the others) go unseen. An idle
// worker pays for it with one request per 30 s.
const DefaultAssignmentWait = 30 * time.Second

// AgentConfig configures an Agent. Zero fields take the defaults noted.
type AgentConfig struct {
	// ID names the worker in the cluster (required); a restarted worker
	// keeps its id.
	ID string
	// Coordinators are HTTP addresses of coordinators, any of them
	// (required).
	Coordinators []string
	// Addr is the worker's own address as the cluster lists it
	// (informational for now); with Gossip and no Addr, its gossip
	// address.
	Addr string
	// Cores and GPUs are the capacity the scheduler may fill (Cores
	// default runtime.NumCPU()); Spot marks a preemptible machine; Zone is
	// its failure domain.
	Cores int
	GPUs  int
	Spot  bool
	Zone  string
	// Version is the software version advertised in the metadata.
	Version string
	// WorkDir holds runs (<WorkDir>/runs), downloaded checkpoints
	// (<WorkDir>/checkpoints) and the dataset cache (<WorkDir>/datasets)
	// (required).
	WorkDir string
	// HeartbeatInterval paces the registrations that renew the worker's
	// lease; keep it well below the coordinators' WorkerLease (default
	// 3s).
	HeartbeatInterval time.Duration
	// AssignmentWait is how long one blocking query for the worker's
	// assignments waits for a change before it is sent again (default
	// DefaultAssignmentWait; the coordinators cut it to
	// api.MaxBlockingWait). A new assignment wakes the query at once.
	AssignmentWait time.Duration
	// PollInterval is the pause before retrying a failed registration and
	// the first pause after a failed assignments query (the pauses double
	// up to api.DefaultWatchMaxBackoff); while a run is no longer assigned
	// but its job still shows it running (a lagging coordinator), the
	// assignments are asked again every PollInterval (default 1s).
	PollInterval time.Duration
	// Grace is how long a run may take, after the stop notice, to
	// checkpoint and hand back (default DefaultGrace).
	Grace time.Duration
	// ReportEvery and ReportInterval batch metrics (see RunnerConfig).
	ReportEvery    int
	ReportInterval time.Duration
	// Store, when set, is a local dataset store consulted before the
	// coordinators' Flight servers (embedded mode shares one).
	Store *dataset.Store
	// Logger receives the agent's logs (default slog.Default()).
	Logger *slog.Logger
	// RingHost is the host the ranks of data-parallel attempts listen on
	// for their peers and advertise to them (default: the local address
	// this machine reaches the first coordinator from).
	RingHost string
	// CollectiveTimeout is the deadline of every collective of a
	// data-parallel rank: a peer silent for that long fails the step
	// (default collective.DefaultTimeout).
	CollectiveTimeout time.Duration
	// RendezvousTimeout bounds the wait for every rank of an attempt to
	// register its address (default DefaultRendezvousTimeout).
	RendezvousTimeout time.Duration
	// Gossip, when set, makes the worker a member of the coordinators'
	// gossip cluster: its bind address, timings and Join (the
	// coordinators' gossip addresses, required); the agent sets the node
	// name (ID) and the metadata (role worker, Cores, GPUs, Spot, Zone,
	// Version, Addr). The coordinators then see a graceful stop at once
	// (a leave); a worker that dies still keeps its assignments until
	// its lease runs out, as without gossip. HTTP heartbeats go on either
	// way. Nil: no gossip.
	Gossip *membership.Config

	// tuneRunner, for tests, adjusts the runner's configuration (a tiny
	// model, a step hook).
	tuneRunner func(*RunnerConfig)
	// onAssignment, for tests and benchmarks, is called with each new
	// assignment as the agent receives it, before it starts it; onQuery
	// with the options of each assignments query as it is sent.
	onAssignment func(api.WorkerAssignment)
	onQuery      func(api.QueryOptions)
}

// Agent is a worker: it registers with the coordinators and heartbeats,
// watches the attempts placed on it and runs each with a Runner, reporting
// metrics, checkpoints and outcomes back. See Run.
type Agent struct {
	cfg    AgentConfig
	log    *slog.Logger
	api    *api.Client
	blobs  *artifact.Client
	runner *Runner
	// member is the worker's gossip membership (nil without
	// cfg.Gossip); addr is the address its registrations carry.
	member atomic.Pointer[membership.Member]
	addr   string

	// leaving is set on the stop notice: registrations then advertise no
	// capacity, so nothing new is placed here; withdrawn is closed once
	// that registration was sent, before any run reports preempted (so
	// the requeued job cannot come straight back).
	leaving   atomic.Bool
	withdrawn chan struct{}
	// handback ends Grace after the stop notice and bounds every report
	// sent after it; set before withdrawn is closed.
	handback context.Context
}

// NewAgent checks cfg, fills its defaults and returns an Agent; it does
// not contact the coordinators yet.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	switch {
	case cfg.ID == "":
		return nil, errors.New("agent: no worker id")
	case len(cfg.Coordinators) == 0:
		return nil, errors.New("agent: no coordinator addresses")
	case cfg.WorkDir == "":
		return nil, errors.New("agent: no work directory")
	case cfg.Cores < 0 || cfg.GPUs < 0:
		return nil, errors.New("agent: negative cores or GPUs")
	case cfg.Gossip != nil && len(cfg.Gossip.Join) == 0:
		return nil, errors.New("agent: gossip without coordinators' gossip addresses to join")
	}
	if cfg.Cores == 0 {
		cfg.Cores = runtime.NumCPU()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 3 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.AssignmentWait <= 0 {
		cfg.AssignmentWait = DefaultAssignmentWait
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CollectiveTimeout <= 0 {
		cfg.CollectiveTimeout = collective.DefaultTimeout
	}
	if cfg.RendezvousTimeout <= 0 {
		cfg.RendezvousTimeout = DefaultRendezvousTimeout
	}
	a := &Agent{
		cfg:   cfg,
		log:   cfg.Logger.With("worker", cfg.ID),
		addr:  cfg.Addr,
		api:   api.New(cfg.Coordinators...),
		blobs: artifact.NewClient(artifact.ClientConfig{}),

		withdrawn: make(chan struct{}),
	}
	rc := RunnerConfig{
		WorkDir:        filepath.Join(cfg.WorkDir, "runs"),
		Datasets:       &agentDatasets{a: a},
		Reporter:       &agentReporter{a: a},
		Checkpoints:    &agentSink{a: a},
		Ring:           &agentRing{a: a},
		Grace:          cfg.Grace,
		ReportEvery:    cfg.ReportEvery,
		ReportInterval: cfg.ReportInterval,
		Logger:         a.log,
	}
	if cfg.tuneRunner != nil {
		cfg.tuneRunner(&rc)
	}
	var err error
	if a.runner, err = NewRunner(rc); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return a, nil
}

// runKey identifies a rank of an attempt.
type runKey struct {
	job     string
	attempt int
	rank    int
}

// activeRun is a run the agent started.
type activeRun struct {
	cancel context.CancelFunc
	// dropped is set (before cancel) when the coordinator ended the
	// attempt (the job was cancelled): the run stops without a report.
	dropped atomic.Bool
	// reported is set as the run reports its outcome: the release of its
	// assignment that follows is its own doing, not a reason to stop it.
	reported atomic.Bool
	done     chan struct{}
	// listed is the index of the assignments listing that first showed
	// the run: a coordinator at that index or past it knows its job.
	listed uint64
}

// Run registers the worker (and, with cfg.Gossip, joins the gossip
// cluster) and serves until ctx ends, which is the stop (preemption)
// notice: running attempts then stop, checkpoint and hand the checkpoint
// to the coordinators within Grace, are reported preempted, the worker
// leaves gossip, and Run returns nil. Run keeps retrying while no
// coordinator answers; it returns an error only when the worker cannot
// register or join gossip before ctx ends, or gossip cannot start.
//
// It watches its assignments with blocking queries (api.Watch), so a
// placement or release reaches it as soon as the coordinator it asks has
// applied it: an attempt it has not run yet starts (each in its own
// Runner.Run; the scheduler keeps them within Cores); a running attempt
// that is no longer assigned and that the coordinators no longer list as
// running (its job was cancelled) is stopped without a report. Run may be
// called once.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.startGossip(ctx); err != nil {
		return err
	}
	if err := a.register(ctx); err != nil {
		a.stopGossip()
		return err
	}
	a.log.Info("worker registered", "coordinators", a.cfg.Coordinators, "cores", a.cfg.Cores, "gpus", a.cfg.GPUs, "spot", a.cfg.Spot)
	if err := a.joinGossip(ctx); err != nil {
		a.stopGossip()
		return err
	}

	// Heartbeats continue through the handoff after the notice, so the
	// lease does not expire while the final checkpoint uploads.
	hbCtx, hbStop := context.WithCancel(context.WithoutCancel(ctx))
	var hbWG sync.WaitGroup
	hbWG.Go(func() { a.heartbeat(hbCtx) })
	hbWG.Go(func() { a.keepJoined(hbCtx) })
	stopHeartbeats := sync.OnceFunc(func() {
		hbStop()
		hbWG.Wait()
	})
	defer stopHeartbeats()

	runs := map[runKey]*activeRun{}
	seen := map[runKey]bool{}
	var wg sync.WaitGroup
	watch := &api.Watch{Wait: a.cfg.AssignmentWait, MinBackoff: a.cfg.PollInterval}
	for {
		pause := a.watchAssignments(ctx, watch, runs, seen, &wg)
		if err := watch.Pause(ctx, pause); err != nil {
			a.log.Info("stop notice: handing back running attempts", "running", len(runs), "grace", a.cfg.Grace)
			hb, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.Grace)
			defer cancel()
			a.handback = hb
			a.withdraw()
			wg.Wait()
			// A trainer that missed its grace deadline stops after its
			// current step; wait for it, within the grace period.
			stopped := make(chan struct{})
			go func() {
				a.runner.Wait()
				close(stopped)
			}()
			select {
			case <-stopped:
			case <-hb.Done():
				a.log.Warn("a trainer is still stopping at the end of the grace period; leaving it")
			}
			// No heartbeat may follow the leave: it would bring the
			// worker back alive until its lease ran out.
			stopHeartbeats()
			a.leaveGossip(hb)
			a.log.Info("worker stopped")
			return nil
		}
	}
}

// register sends the first registration, retrying until it is accepted or
// ctx ends.
func (a *Agent) register(ctx context.Context) error {
	for {
		_, err := a.api.RegisterWorker(ctx, a.registration())
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("worker %s: register: %w", a.cfg.ID, err)
		}
		a.log.Warn("registering failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("worker %s: register: %w", a.cfg.ID, err)
		case <-time.After(a.cfg.PollInterval):
		}
	}
}

// registration is the worker's registration: its capacity, none once it
// is leaving.
func (a *Agent) registration() api.RegisterWorkerBody {
	meta := api.WorkerMeta{Cores: a.cfg.Cores, GPUs: a.cfg.GPUs, Spot: a.cfg.Spot, Zone: a.cfg.Zone, Version: a.cfg.Version}
	if a.leaving.Load() {
		meta.Cores, meta.GPUs = 0, 0
	}
	return api.RegisterWorkerBody{ID: a.cfg.ID, Addr: a.addr, Meta: meta}
}

// withdrawTimeout bounds the registration that withdraws the worker's
// capacity on the stop notice, so that unreachable coordinators do not
// hold up the exit of an idle worker for the whole grace period.
const withdrawTimeout = 5 * time.Second

// withdraw registers the worker with no capacity, so the scheduler places
// nothing more here, and closes withdrawn. A worker restarted with the
// same id registers its capacity again.
func (a *Agent) withdraw() {
	defer close(a.withdrawn)
	a.leaving.Store(true)
	wctx, cancel := context.WithTimeout(a.handback, withdrawTimeout)
	defer cancel()
	if _, err := a.api.RegisterWorker(wctx, a.registration()); err != nil {
		a.log.Warn("withdrawing the worker's capacity failed", "err", err)
	}
	a.withdrawGossip(wctx)
}

// heartbeat re-registers every HeartbeatInterval until ctx ends.
func (a *Agent) heartbeat(ctx context.Context) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := a.api.RegisterWorker(ctx, a.registration()); err != nil && ctx.Err() == nil {
			a.log.Warn("heartbeat failed", "err", err)
		}
	}
}

// watchAssignments sends one blocking query for the worker's assignments
// (it returns when they change, when the query's wait passes or when ctx
// ends), reconciles the runs with its answer, and returns how long to
// pause before the next query.
func (a *Agent) watchAssignments(ctx context.Context, w *api.Watch, runs map[runKey]*activeRun, seen map[runKey]bool, wg *sync.WaitGroup) time.Duration {
	q := w.Options()
	if a.cfg.onQuery != nil {
		a.cfg.onQuery(*q)
	}
	list, meta, err := a.api.AssignmentsQuery(ctx, a.cfg.ID, q)
	_, pause := w.Done(meta, err)
	if ctx.Err() != nil {
		return 0
	}
	if err != nil {
		a.log.Warn("watching assignments failed", "err", err, "retry_in", pause)
		return pause
	}
	// A run no longer assigned whose job a lagging coordinator still
	// shows running is checked again soon, not after a full wait.
	w.Wait = a.cfg.AssignmentWait
	if a.reconcile(ctx, list, meta.LastIndex, runs, seen, wg) {
		w.Wait = a.cfg.PollInterval
	}
	return pause
}

// reconcile brings the runs in line with the assignments list, answered
// at index: it forgets finished runs, starts new attempts and stops those
// the coordinators ended. It reports whether a run is left that is no
// longer assigned but whose attempt still shows running, or whose job a
// lagging coordinator does not know, to be checked again.
func (a *Agent) reconcile(ctx context.Context, list []api.WorkerAssignment, index uint64, runs map[runKey]*activeRun, seen map[runKey]bool, wg *sync.WaitGroup) (recheck bool) {
	for k, r := range runs {
		select {
		case <-r.done:
			delete(runs, k)
		default:
		}
	}
	assigned := map[runKey]bool{}
	for _, wa := range list {
		k := runKey{wa.JobID, wa.Attempt, wa.Rank}
		assigned[k] = true
		if seen[k] {
			continue
		}
		seen[k] = true
		if a.cfg.onAssignment != nil {
			a.cfg.onAssignment(wa)
		}
		rctx, cancel := context.WithCancel(ctx)
		r := &activeRun{cancel: cancel, done: make(chan struct{}), listed: index}
		runs[k] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(r.done)
			defer cancel()
			a.execute(rctx, wa, r)
		}()
	}
	for k := range seen {
		if !assigned[k] && runs[k] == nil {
			delete(seen, k) // ended and gone: a stale listing is refused at its start report
		}
	}
	for k, r := range runs {
		if assigned[k] || r.dropped.Load() || r.reported.Load() {
			continue
		}
		// Not assigned any more: stop it if its attempt ended or its job
		// is gone (a lagging coordinator may still show it running,
		// which is safe: it is checked again soon). A job is collected
		// only once it ended and its retention passed, so "not found"
		// from a coordinator that has not reached the listing that
		// placed the run here (one the client failed over to, still
		// catching up) is that coordinator lagging: checked again too.
		j, meta, err := a.api.JobQuery(ctx, k.job, nil)
		var state api.AttemptState
		switch {
		case errors.Is(err, api.ErrNotFound) && meta.LastIndex > 0 && meta.LastIndex >= r.listed:
			state = "gone"
		case err != nil:
			recheck = true
			continue
		case k.attempt <= len(j.Attempts) && j.Attempts[k.attempt-1].State != api.AttemptRunning:
			state = j.Attempts[k.attempt-1].State
		default:
			recheck = true
			continue
		}
		a.log.Info("attempt ended by the coordinators; stopping it", "job", k.job, "attempt", k.attempt, "state", state)
		r.dropped.Store(true)
		r.cancel()
	}
	return recheck
}

// execute runs one assigned rank and reports its outcome.
func (a *Agent) execute(ctx context.Context, wa api.WorkerAssignment, r *activeRun) {
	log := a.log.With("job", wa.JobID, "attempt", wa.Attempt, "rank", wa.Rank)
	// The outcome is reported even after the stop notice, until the end
	// of the grace period (a.handback); otherwise within Grace.
	report := func(body api.AttemptReportBody) {
		r.reported.Store(true)
		body.WorkerID = a.cfg.ID
		parent := context.WithoutCancel(ctx)
		if ctx.Err() != nil && !r.dropped.Load() {
			<-a.withdrawn // the stop notice: see Agent.withdrawn
			parent = a.handback
		}
		rctx, cancel := context.WithTimeout(parent, a.cfg.Grace)
		defer cancel()
		if _, err := a.api.ReportAttempt(rctx, wa.JobID, wa.Attempt, body); errors.Is(err, api.ErrConflict) {
			// The coordinators ended the attempt first (the job was
			// cancelled, or a sweep stopped its trial, while the run
			// finished): their outcome stands.
			log.Info("attempt already ended by the coordinators", "state", body.State, "err", err)
		} else if err != nil {
			log.Warn("attempt report failed", "state", body.State, "err", err)
		}
	}
	start := api.AttemptReportBody{WorkerID: a.cfg.ID, State: api.AttemptRunning, Rank: wa.Rank}
	if len(wa.Nodes) > 1 {
		start.Ring = api.RingWaiting
	}
	if _, err := a.api.ReportAttempt(ctx, wa.JobID, wa.Attempt, start); err != nil {
		if errors.Is(err, api.ErrConflict) {
			log.Info("attempt already ended; not running it", "err", err)
			return
		}
		log.Warn("reporting the start failed", "err", err)
	}
	asg := Assignment{
		JobID: wa.JobID, Attempt: wa.Attempt, Rank: wa.Rank, Ranks: len(wa.Nodes),
		Spec: wa.Spec, DatasetVersion: wa.DatasetVersionID,
	}
	if wa.ResumeFrom != "" {
		path, err := a.fetchCheckpoint(ctx, wa.ResumeFrom)
		if err != nil {
			switch {
			case r.dropped.Load():
			case ctx.Err() != nil:
				report(api.AttemptReportBody{State: api.AttemptPreempted})
			default:
				report(api.AttemptReportBody{State: api.AttemptFailed, Error: "fetch checkpoint: " + err.Error()})
			}
			return
		}
		asg.ResumeFrom = path
	}
	out := a.runner.Run(ctx, asg)
	defer func() {
		// The rank's directory, then the attempt's once no other rank of
		// it on this worker still uses it (Remove fails on a non-empty one).
		dir := a.runner.Dir(asg)
		os.RemoveAll(dir)
		os.Remove(filepath.Dir(dir))
	}()
	if r.dropped.Load() {
		log.Info("run stopped: its attempt was ended by the coordinators", "status", out.Status, "step", out.Step)
		return
	}
	// The metrics went through the Reporter (its final batch holds the
	// last epoch's evaluation, which stays the job's progress); the
	// outcome carries none.
	body := api.AttemptReportBody{Step: out.Step, Rank: wa.Rank}
	switch out.Status {
	case Succeeded:
		if wa.Rank != 0 {
			// Rank 0 holds the checkpoint and reports the attempt.
			log.Info("rank finished; rank 0 reports the attempt", "step", out.Step)
			return
		}
		body.State = api.AttemptSucceeded
	case Preempted:
		body.State = api.AttemptPreempted
	default:
		body.State = api.AttemptFailed
		if out.Err != nil {
			body.Error = out.Err.Error()
		}
		if re := (*collective.RankError)(nil); errors.As(out.Err, &re) && re.Rank >= 0 && re.Rank < len(wa.Nodes) {
			body.Ring, body.FailedRank = api.RingFailed, &re.Rank
		}
	}
	report(body)
	log.Info("attempt reported", "state", body.State, "step", out.Step, "checkpoint_step", out.CheckpointStep)
}

// fetchCheckpoint downloads checkpoint blob digest from a coordinator into
// <WorkDir>/checkpoints, verified against its digest, and returns its path.
func (a *Agent) fetchCheckpoint(ctx context.Context, digest string) (string, error) {
	hexPart, err := artifact.ParseDigest(digest)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(a.cfg.WorkDir, "checkpoints")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, hexPart+".ckpt")
	if err := a.blobs.FetchFile(ctx, a.cfg.Coordinators, digest, path); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	return path, nil
}

// agentDatasets is the agent's DatasetSource: the local store or cache,
// else the Flight server of a coordinator that holds the version.
type agentDatasets struct{ a *Agent }

// Open implements DatasetSource.
func (d *agentDatasets) Open(ctx context.Context, ref, id string) (*dataset.Version, string, error) {
	cfg := FlightSourceConfig{CacheDir: filepath.Join(d.a.cfg.WorkDir, "datasets"), Store: d.a.cfg.Store, Logger: d.a.log}
	if id != "" {
		local, err := NewFlightSource(cfg)
		if err != nil {
			return nil, "", err
		}
		v, got, err := local.Open(ctx, ref, id)
		if err == nil || !errors.Is(err, dataset.ErrNotFound) {
			return v, got, err
		}
	}
	addr, err := d.a.api.DatasetFlight(ctx, id)
	if err != nil {
		return nil, "", fmt.Errorf("find a dataset server: %w", err)
	}
	cfg.Addr = addr
	src, err := NewFlightSource(cfg)
	if err != nil {
		return nil, "", err
	}
	return src.Open(ctx, ref, id)
}

// agentReporter sends metric batches to the coordinators: a batch's steps
// become one report (the last step's loss and throughput, the mean loss of
// the batch) and every epoch end one report with its evaluation.
type agentReporter struct{ a *Agent }

// Report implements Reporter.
func (r *agentReporter) Report(ctx context.Context, b MetricsBatch) error {
	if b.Ranks > 1 {
		if n := len(b.Steps); n > 0 {
			last := b.Steps[n-1]
			// Every rank computes 1/Ranks of each step's examples.
			r.a.reportRing(ctx, b.assignment(), api.RingConnected, last.Step, last.ImagesPerSec/float64(b.Ranks))
		}
		if b.Rank != 0 {
			return nil // the job's metrics are global: rank 0 reports them
		}
	}
	var ms []api.Metric
	if n := len(b.Steps); n > 0 {
		last := b.Steps[n-1]
		var sum float64
		for _, s := range b.Steps {
			sum += s.Loss
		}
		ms = append(ms, api.Metric{Kind: api.MetricStep, Attempt: b.Attempt, Epoch: last.Epoch, Step: last.Step, Time: last.Time.UTC(),
			Values: map[string]float64{"loss": last.Loss, "mean_loss": sum / float64(n), "images_per_sec": last.ImagesPerSec}})
	}
	for _, e := range b.Epochs {
		ms = append(ms, api.Metric{Attempt: b.Attempt, Epoch: e.Epoch, Step: e.Step, Values: map[string]float64{
			"train_loss": e.TrainLoss, "val_loss": e.Val.Loss, "val_mean_iou": e.Val.MeanIoU, "val_pixel_accuracy": e.Val.PixelAccuracy,
		}})
	}
	if len(ms) == 0 {
		return nil
	}
	slices.SortStableFunc(ms, func(x, y api.Metric) int { return int(x.Step - y.Step) })
	_, err := r.a.api.ReportMetrics(ctx, b.JobID, ms)
	return err
}

// agentSink uploads each checkpoint to a coordinator's artifact store and
// registers it; the coordinators replicate it before recording it.
type agentSink struct{ a *Agent }

// Put implements CheckpointSink.
func (s *agentSink) Put(ctx context.Context, c Checkpoint) error {
	digest, size, err := artifact.FileDigest(c.Path)
	if err != nil {
		return err
	}
	f, err := os.Open(c.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	var errs []error
	pushed := false
	for _, peer := range s.a.cfg.Coordinators {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		err := s.a.blobs.Push(ctx, peer, digest, f, size)
		if err == nil {
			pushed = true
			break
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if !pushed {
		return fmt.Errorf("upload checkpoint step %d: %w", c.Step, errors.Join(errs...))
	}
	if _, err := s.a.api.RegisterCheckpoint(ctx, api.RegisterCheckpointBody{
		Digest: digest, JobID: c.JobID, Attempt: c.Attempt, Step: c.Step, Epoch: c.Epoch,
	}); err != nil {
		return fmt.Errorf("register checkpoint step %d: %w", c.Step, err)
	}
	return nil
}
