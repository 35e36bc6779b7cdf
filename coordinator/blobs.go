package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"

	"github.com/trainctl/trainctl/artifact"
	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/trainer"
)

// ErrReplication is wrapped by the error of a write whose blob could not be
// copied to every coordinator; the write is not committed. The API answers
// it with 503, so clients retry once the coordinator is back (or gone from
// the configuration).
var ErrReplication = errors.New("blob replication failed")

// peerHTTPAddrs returns the HTTP addresses of the other voters, from the
// server registry. A voter without a registry entry is an error: a blob
// could not be copied to it.
func (s *Server) peerHTTPAddrs() ([]string, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, raftError(err)
	}
	var out []string
	for _, rs := range f.Configuration().Servers {
		if rs.Suffrage != raft.Voter || string(rs.ID) == s.cfg.NodeID {
			continue
		}
		srv, err := s.State().Server(string(rs.ID))
		if err != nil {
			return nil, fmt.Errorf("voter %s has no HTTP address yet: %w", rs.ID, err)
		}
		out = append(out, srv.HTTPAddr)
	}
	return out, nil
}

// replicateBlob makes sure the voters store blob digest before the leader
// commits an entry that references it: the blob is fetched from a peer if it
// was uploaded to another coordinator, then pushed to every peer that lacks
// it. It succeeds when the voters that confirmed the blob, this one
// included, are a majority: the same quorum that commits the entry, so a
// committed entry's blob survives the loss of any coordinator the cluster
// itself survives. A voter that was down catches up later (catchUpBlobs).
// It returns the blob's size. Errors wrap ErrReplication, or
// structs.ErrInvalid for a malformed digest and structs.ErrNotFound for a
// blob no coordinator holds.
func (s *Server) replicateBlob(ctx context.Context, digest string) (int64, error) {
	if _, err := artifact.ParseDigest(digest); err != nil {
		return 0, fmt.Errorf("digest: %w: %w", structs.ErrInvalid, err)
	}
	peers, err := s.peerHTTPAddrs()
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w: %w", digest, ErrReplication, err)
	}
	if !s.blobs.Has(digest) {
		if err := s.replicator.Fetch(ctx, digest, peers); err != nil {
			if errors.Is(err, artifact.ErrNotFound) {
				return 0, fmt.Errorf("blob %s: %w: upload it to %s first", digest, structs.ErrNotFound, artifact.BlobsPath)
			}
			return 0, fmt.Errorf("blob %s: %w: %w", digest, ErrReplication, err)
		}
	}
	if err := s.replicator.Replicate(ctx, digest, peers); err != nil {
		var rerr *artifact.ReplicateError
		if !errors.As(err, &rerr) {
			return 0, fmt.Errorf("blob %s: %w: %w", digest, ErrReplication, err)
		}
		voters := len(peers) + 1
		if have := voters - len(rerr.Failed); have <= voters/2 {
			return 0, fmt.Errorf("blob %s: %w: on %d of %d coordinators, want a majority: %w", digest, ErrReplication, have, voters, err)
		}
		s.log.Warn("blob on a majority only; the others catch up", "digest", digest, "failed", rerr.FailedPeers())
	}
	info, err := s.blobs.Stat(digest)
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", digest, err)
	}
	return info.Size, nil
}

// referencedBlobs returns the digests of the blobs the state references:
// checkpoints and dataset versions that carry one.
func (s *Server) referencedBlobs() []string {
	var out []string
	for _, c := range s.State().Checkpoints("") {
		out = append(out, c.Digest)
	}
	for _, v := range s.State().DatasetVersions("") {
		if v.Blob != "" {
			out = append(out, v.Blob)
		}
	}
	return out
}

// catchUpBlobs runs on every server: whenever the state changed since the
// last complete check (after a restart, while following, after gaining
// leadership), it fetches the referenced blobs its store lacks from the
// other coordinators, so a server that was down while blobs were written
// ends up with all of them.
func (s *Server) catchUpBlobs(ctx context.Context) {
	t := time.NewTicker(s.cfg.BlobCatchUpInterval)
	defer t.Stop()
	var done uint64 // state index whose blobs are all here
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		idx := s.State().Index()
		if idx == done {
			continue
		}
		peers, err := s.peerHTTPAddrs()
		if err != nil {
			s.log.Debug("blob catch-up: peers", "err", err)
			continue
		}
		if err := s.replicator.CatchUp(ctx, s.referencedBlobs(), peers); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("blob catch-up", "err", err)
			}
			continue
		}
		done = idx
	}
}

// verifyCheckpointBlob checks that blob digest is a checkpoint whose file
// verifies (trainer.VerifyCheckpoint: magic, format version, every length,
// the SHA-256 digest it ends with, the header and that its parts fit
// together), reading it in fixed-size pieces. A blob this server lacks is
// fetched from the others first. A blob that does not verify gives an
// error wrapping structs.ErrInvalid that says why; one no coordinator
// holds structs.ErrNotFound.
func (s *Server) verifyCheckpointBlob(ctx context.Context, digest string) error {
	if _, err := artifact.ParseDigest(digest); err != nil {
		return fmt.Errorf("checkpoint: %w: %w", structs.ErrInvalid, err)
	}
	if !s.blobs.Has(digest) {
		peers, err := s.peerHTTPAddrs()
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w: %w", digest, ErrReplication, err)
		}
		if err := s.replicator.Fetch(ctx, digest, peers); errors.Is(err, artifact.ErrNotFound) {
			return fmt.Errorf("checkpoint %s: %w: upload it to %s first", digest, structs.ErrNotFound, artifact.BlobsPath)
		} else if err != nil {
			return fmt.Errorf("checkpoint %s: %w: %w", digest, ErrReplication, err)
		}
	}
	rc, size, err := s.blobs.Open(digest)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", digest, err)
	}
	defer rc.Close()
	ra, ok := rc.(io.ReaderAt)
	if !ok {
		return fmt.Errorf("checkpoint %s: the artifact store's reader cannot read at offsets", digest)
	}
	if _, err := trainer.VerifyCheckpoint(ra, size); err != nil {
		if errors.Is(err, trainer.ErrCorruptCheckpoint) || errors.Is(err, trainer.ErrCheckpointVersion) {
			return fmt.Errorf("checkpoint %s: %w: the blob is not a valid checkpoint: %w", digest, structs.ErrInvalid, err)
		}
		return fmt.Errorf("checkpoint %s: %w", digest, err)
	}
	return nil
}
