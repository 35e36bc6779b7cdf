package artifact

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// ReplicatorConfig configures a Replicator. Zero fields take the defaults
// noted.
type ReplicatorConfig struct {
	// Client carries the HTTP settings (timeouts, TLS, size limit).
	Client ClientConfig
	// Attempts is how often a push to one peer is tried before that peer
	// counts as failed; default 3. Only transport failures and 5xx
	// answers are retried.
	Attempts int
	// RetryBackoff is the wait before the second attempt, doubled before
	// each later one; default 200 ms.
	RetryBackoff time.Duration
	// Logger receives progress and failures; slog.Default() when nil.
	Logger *slog.Logger
}

// Replicator copies blobs between the stores of coordinators: Replicate
// pushes a local blob to peers, Fetch and CatchUp pull missing blobs from
// them. It is safe for concurrent use.
type Replicator struct {
	store  *Store
	client *Client
	cfg    ReplicatorConfig
	log    *slog.Logger
}

// NewReplicator returns a replicator for store with cfg's zero fields set
// to their defaults.
func NewReplicator(store *Store, cfg ReplicatorConfig) *Replicator {
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Replicator{store: store, client: NewClient(cfg.Client), cfg: cfg, log: cfg.Logger}
}

// Client is the HTTP client the replicator uses.
func (r *Replicator) Client() *Client { return r.client }

// ReplicateError is returned by Replicate when some peers did not confirm
// the blob. It unwraps to the peers' errors, so errors.Is finds, say,
// ErrDigestMismatch (the local copy is corrupt) or context.Canceled.
type ReplicateError struct {
	// Digest is the blob being replicated.
	Digest string
	// Failed maps each failed peer to its last error.
	Failed map[string]error
	// Peers is the number of peers asked.
	Peers int
}

// FailedPeers lists the peers that failed, sorted.
func (e *ReplicateError) FailedPeers() []string {
	out := make([]string, 0, len(e.Failed))
	for p := range e.Failed {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Error names every failed peer with its error.
func (e *ReplicateError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "replicate blob %s: %d of %d peers failed:", ShortDigest(e.Digest), len(e.Failed), e.Peers)
	for i, p := range e.FailedPeers() {
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " %s: %v", p, e.Failed[p])
	}
	return b.String()
}

// Unwrap returns the peers' errors.
func (e *ReplicateError) Unwrap() []error {
	out := make([]error, 0, len(e.Failed))
	for _, p := range e.FailedPeers() {
		out = append(out, e.Failed[p])
	}
	return out
}

// Replicate makes sure every peer stores the local blob digest durably:
// it asks each peer in parallel (HEAD) and pushes the blob (PUT) to those
// that lack it, retrying transient failures. It returns nil only when every
// peer has confirmed the blob with the right digest and size; otherwise a
// *ReplicateError naming the peers that failed. A blob missing locally
// gives ErrNotFound before any peer is contacted. Duplicate peers are asked
// once; no peers is success.
//
// The leader calls it before proposing the Raft entry that references the
// blob, with the addresses of all other coordinators.
func (r *Replicator) Replicate(ctx context.Context, digest string, peers []string) error {
	info, err := r.store.Stat(digest)
	if err != nil {
		return fmt.Errorf("replicate: %w", err)
	}
	peers = slices.Compact(slices.Sorted(slices.Values(peers)))
	start := time.Now()
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() { errs[i] = r.replicateTo(ctx, info, p) })
	}
	wg.Wait()
	failed := make(map[string]error)
	for i, err := range errs {
		if err != nil {
			failed[peers[i]] = err
		}
	}
	if len(failed) > 0 {
		rerr := &ReplicateError{Digest: digest, Failed: failed, Peers: len(peers)}
		r.log.Warn("blob replication failed", "digest", digest, "size", info.Size, "failed", rerr.FailedPeers(), "err", rerr)
		return rerr
	}
	r.log.Debug("replicated blob", "digest", digest, "size", info.Size, "peers", len(peers), "took", time.Since(start))
	return nil
}

// replicateTo pushes a blob to one peer unless it has it, with retries.
func (r *Replicator) replicateTo(ctx context.Context, info Info, peer string) error {
	backoff := r.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		err := r.pushOnce(ctx, info, peer)
		if err == nil || attempt >= r.cfg.Attempts || !retryable(ctx, err) {
			return err
		}
		r.log.Debug("retrying blob push", "digest", info.Digest, "peer", peer, "attempt", attempt, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after: %w)", ctx.Err(), err)
		case <-t.C:
		}
		backoff *= 2
	}
}

func (r *Replicator) pushOnce(ctx context.Context, info Info, peer string) error {
	switch size, err := r.client.Stat(ctx, peer, info.Digest); {
	case err == nil && size == info.Size:
		r.log.Debug("peer has blob", "digest", info.Digest, "peer", peer)
		return nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	}
	f, size, err := r.store.Open(info.Digest)
	if err != nil {
		return err
	}
	defer f.Close()
	return r.client.Push(ctx, peer, info.Digest, f, size)
}

// Fetch makes the blob digest present in the local store: if it is not
// there yet, it is downloaded from the first peer in from that serves it,
// verified against digest while it is written, and stored durably. It
// returns nil when the blob is stored; otherwise an error naming every
// peer's failure, which wraps ErrNotFound when none had it.
func (r *Replicator) Fetch(ctx context.Context, digest string, from []string) error {
	if _, err := ParseDigest(digest); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if r.store.Has(digest) {
		return nil
	}
	if len(from) == 0 {
		return fmt.Errorf("fetch blob %s: %w: no peers to fetch from", ShortDigest(digest), ErrNotFound)
	}
	var errs []error
	for _, p := range from {
		err := r.fetchOnce(ctx, digest, p)
		if err == nil {
			r.log.Info("fetched missing blob", "digest", digest, "peer", p)
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("fetch blob %s: %w", ShortDigest(digest), errors.Join(errs...))
}

func (r *Replicator) fetchOnce(ctx context.Context, digest, peer string) error {
	body, _, err := r.client.Get(ctx, peer, digest)
	if err != nil {
		return err
	}
	defer body.Close()
	if _, _, _, err := r.store.put(ctx, body, digest, r.client.cfg.MaxBlobSize); err != nil {
		return fmt.Errorf("from %s: %w", peer, err)
	}
	return nil
}

// CatchUp fetches every blob of referenced that the local store lacks
// from the peers in from (see Fetch). A coordinator calls it after it
// restarts or rejoins, with the digests its replicated state references,
// so that blobs written while it was away end up on its disk. It tries
// every missing blob and returns the errors of those it could not fetch.
func (r *Replicator) CatchUp(ctx context.Context, referenced, from []string) error {
	missing, err := r.store.Missing(ctx, referenced)
	if err != nil {
		return fmt.Errorf("catch up: %w", err)
	}
	if len(missing) == 0 {
		return nil
	}
	r.log.Info("catching up on missing blobs", "missing", len(missing), "referenced", len(referenced))
	var errs []error
	for _, d := range missing {
		if err := r.Fetch(ctx, d, from); err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("catch up: %d of %d missing blobs not fetched: %w", len(errs), len(missing), errors.Join(errs...))
	}
	return nil
}
