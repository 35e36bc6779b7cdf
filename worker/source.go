package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/dataset/stream"
)

// DatasetSource makes a dataset version available on this machine.
type DatasetSource interface {
	// Open returns the version id names (64 hex digits), or, when id is
	// empty, the version ref resolves to now, with its id. The caller
	// closes the Version and names ref in its errors. Open must return
	// when ctx is done.
	Open(ctx context.Context, ref, id string) (*dataset.Version, string, error)
}

// FlightSourceConfig configures a FlightSource.
type FlightSourceConfig struct {
	// Addr is the host:port of a dataset Flight server (a coordinator's).
	Addr string
	// CacheDir holds downloaded versions as <id>.arrow, verified against
	// their content id (stream.CachePath). Required.
	CacheDir string
	// Store, when set, is a local dataset store consulted first: in
	// embedded mode the worker shares the coordinator's.
	Store *dataset.Store
	// Logger receives fetch events (default slog.Default()).
	Logger *slog.Logger
}

// FlightSource is a DatasetSource that reads versions from a local store
// or cache when they are there and otherwise downloads them over Arrow
// Flight into the cache (stream.Client.FetchVersion: streamed into a
// temporary file, verified by content digest, renamed into place). A
// cached version is used without contacting the server.
type FlightSource struct {
	cfg FlightSourceConfig
}

// NewFlightSource returns a FlightSource; it does not connect yet.
func NewFlightSource(cfg FlightSourceConfig) (*FlightSource, error) {
	if cfg.CacheDir == "" {
		return nil, errors.New("flight dataset source: no cache directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &FlightSource{cfg: cfg}, nil
}

// Open implements DatasetSource.
func (s *FlightSource) Open(ctx context.Context, ref, id string) (*dataset.Version, string, error) {
	if id != "" {
		if !dataset.ValidID(id) {
			return nil, "", fmt.Errorf("%w: version id %q is not 64 lowercase hex digits", dataset.ErrBadRef, id)
		}
		if st := s.cfg.Store; st != nil && st.HasObject(id) {
			v, err := st.OpenObject(id)
			if err != nil {
				return nil, "", fmt.Errorf("local store: %w", err)
			}
			return v, id, nil
		}
		if v, err := s.openCached(id); err == nil {
			return v, id, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			s.cfg.Logger.Warn("cached dataset version unusable; fetching it again", "version", dataset.ShortID(id), "err", err)
		}
	}
	if s.cfg.Addr == "" {
		return nil, "", fmt.Errorf("%w locally and no dataset server is configured", dataset.ErrNotFound)
	}
	c, err := stream.DialConfig(ctx, s.cfg.Addr, stream.ClientConfig{Logger: s.cfg.Logger})
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	var res stream.FetchResult
	if id != "" {
		res, err = c.FetchVersion(ctx, id, s.cfg.CacheDir)
	} else {
		res, err = c.Fetch(ctx, ref, s.cfg.CacheDir)
	}
	if err != nil {
		return nil, "", err
	}
	s.cfg.Logger.Info("dataset version fetched", "ref", ref, "version", dataset.ShortID(res.Manifest.ID),
		"bytes", res.Bytes, "cached", res.Cached, "from", s.cfg.Addr)
	v, err := dataset.OpenVersionFile(res.Path)
	if err != nil {
		return nil, "", err
	}
	return v, res.Manifest.ID, nil
}

// openCached opens the cached file of version id after checking its
// content id; fs.ErrNotExist when there is none.
func (s *FlightSource) openCached(id string) (*dataset.Version, error) {
	path := stream.CachePath(s.cfg.CacheDir, id)
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	v, err := dataset.OpenVersionFile(path)
	if err != nil {
		return nil, err
	}
	if got := dataset.ContentID(v); got != id {
		v.Close()
		return nil, fmt.Errorf("%s: %w: content id %s", path, dataset.ErrCorrupt, dataset.ShortID(got))
	}
	return v, nil
}
