package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/dataset/stream"
	"github.com/trainctl/trainctl/internal/durable"
)

// Datasets on the coordinators. Every server keeps a dataset.Store under
// <DataDir>/datasets and serves it over Arrow Flight (dataset/stream) on
// Config.FlightAddr. A version travels like this:
//
//  1. POST /v1/datasets/upload?name=NAME with the version's Arrow file as
//     the body reaches any server and is forwarded to the leader, which
//     imports it into its dataset store (every example checked, the file
//     rewritten canonically), puts the canonical file into the artifact
//     store, replicates that blob to a majority of the servers and commits
//     the registry entry (name, content id, manifest, blob digest); the
//     servers that missed the blob fetch it later (catchUpBlobs).
//  2. A worker about to train asks any server GET /v1/datasets/flight?id=ID.
//     The server imports the version from its blob into its own dataset
//     store if it has not yet (503 while it lacks the blob, so the client
//     tries another) and answers its Flight address; the worker streams
//     the version from there into its cache.
//
// So every server can serve every registered version that has a blob,
// without a second copy path besides the artifact store's replication.

// datasetService is a server's dataset store and its Flight server.
type datasetService struct {
	store *dataset.Store
	// addr is the advertised Flight address.
	addr   string
	flight *stream.Server
	// uploads holds the temporary files of uploads and of blobs being
	// imported (uploads.go).
	uploads *durable.TempDir
	// importMu serialises imports into the store, from uploads and from
	// blobs: an import holds the version file in memory, so one at a
	// time keeps that within Config.MaxDatasetBytes.
	importMu sync.Mutex
}

// startDatasets opens the dataset store and starts the Flight server on
// cfg.FlightAddr (empty: the HTTP listener's host, any free port).
func (s *Server) startDatasets() error {
	st, err := dataset.OpenStore(dataset.StoreDir(s.cfg.DataDir))
	if err != nil {
		return err
	}
	uploads, err := openUploads(s.cfg.DataDir, s.log)
	if err != nil {
		return err
	}
	addr := s.cfg.FlightAddr
	if addr == "" {
		host, _, err := net.SplitHostPort(s.httpLn.Addr().String())
		if err != nil {
			return fmt.Errorf("flight address: %w", err)
		}
		addr = net.JoinHostPort(host, "0")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("flight listen: %w", err)
	}
	ds := &datasetService{
		store:   st,
		addr:    ln.Addr().String(),
		flight:  stream.NewServer(st, stream.ServerConfig{Logger: s.log}),
		uploads: uploads,
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && a.IP.IsUnspecified() {
		// Listening on all interfaces: others reach it at the HTTP
		// API's advertised host.
		host, _, err := net.SplitHostPort(s.httpAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("flight address: %w", err)
		}
		ds.addr = net.JoinHostPort(host, strconv.Itoa(a.Port))
	}
	s.datasets = ds
	s.goFunc(func() {
		if err := ds.flight.Serve(s.ctx, ln); err != nil {
			s.log.Error("dataset flight server stopped", "err", err)
		}
	})
	return nil
}

// stopDatasets stops the Flight server at once; Shutdown calls it.
func (s *Server) stopDatasets() {
	if s.datasets != nil {
		s.datasets.flight.Close()
	}
}

// FlightAddr returns the advertised address of the dataset Flight server.
func (s *Server) FlightAddr() string { return s.datasets.addr }

// DatasetStore returns the server's dataset store, which its Flight
// server serves.
func (s *Server) DatasetStore() *dataset.Store { return s.datasets.store }

// followerCatchUpWait bounds how long a read on a follower waits for the
// local state to reach the commit index before answering from the leader.
const followerCatchUpWait = 2 * time.Second

// waitApplied waits until this server has applied every entry it knows to
// be committed, for at most max or until ctx ends.
func (s *Server) waitApplied(ctx context.Context, max time.Duration) {
	commit := s.raft.CommitIndex()
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.raft.AppliedIndex() < commit {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

// ensureDataset imports registered version id into the dataset store from
// its blob unless the store holds it already.
func (s *Server) ensureDataset(ctx context.Context, id string) error {
	ds := s.datasets
	if ds.store.HasObject(id) {
		return nil
	}
	var reg *structs.DatasetVersion
	for _, v := range s.State().DatasetVersions("") {
		if v.ID == id {
			reg = v
			break
		}
	}
	switch {
	case reg == nil:
		return fmt.Errorf("dataset version %s: %w", id, structs.ErrNotFound)
	case reg.Blob == "":
		return fmt.Errorf("dataset version %s of %s was registered without its content: %w", dataset.ShortID(id), reg.Name, structs.ErrNotFound)
	}
	info, err := s.blobs.Stat(reg.Blob)
	switch {
	case err != nil:
		return fmt.Errorf("dataset version %s: this coordinator has not received its blob yet: %w: %w", dataset.ShortID(id), ErrReplication, err)
	case info.Size > s.cfg.MaxDatasetBytes:
		return fmt.Errorf("dataset version %s: %w", dataset.ShortID(id), tooLargeError("blob "+reg.Blob, s.cfg.MaxDatasetBytes, fmt.Sprintf("%d bytes", info.Size)))
	}
	ds.importMu.Lock()
	defer ds.importMu.Unlock()
	if ds.store.HasObject(id) {
		return nil
	}
	tmp, err := s.blobToFile(ctx, reg.Blob, info.Size)
	if err != nil {
		return fmt.Errorf("dataset version %s: %w", dataset.ShortID(id), err)
	}
	defer os.Remove(tmp)
	if _, _, err := ds.store.ImportFile(ctx, reg.Name, tmp, id, dataset.Source{Kind: dataset.SourceImport, Path: reg.Blob}); err != nil {
		return fmt.Errorf("dataset version %s: %w", dataset.ShortID(id), err)
	}
	s.log.Info("imported dataset version from its blob", "name", reg.Name, "version", dataset.ShortID(id))
	return nil
}

// blobToFile copies a blob of size bytes into a temporary file of the
// upload directory and returns its path; the caller removes it.
func (s *Server) blobToFile(ctx context.Context, digest string, size int64) (string, error) {
	rc, _, err := s.blobs.Open(digest)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	// One byte more than the size it had: a blob that changed is refused.
	path, _, err := receiveUpload(ctx, s.datasets.uploads, io.LimitReader(rc, size+1), "blob "+digest)
	return path, err
}

// handleDatasetUpload is POST /v1/datasets/upload?name=NAME: the body is a
// dataset version's Arrow file. The leader imports it into its dataset
// store, stores the canonical file as a blob, replicates the blob to a
// majority and registers the version (see the top of this file). Answers
// the registry entry: 201 when new, 200 when that name and content were
// registered before.
func (s *Server) handleDatasetUpload(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if err := checkID("name", api.KindDataset, name); err != nil {
		writeError(w, err)
		return
	}
	if !limitBody(w, r, "upload", s.cfg.MaxDatasetBytes) || s.forward(w, r) {
		return
	}
	ctx := r.Context()
	tmp, _, err := receiveUpload(ctx, s.datasets.uploads, r.Body, "upload")
	if err != nil {
		writeError(w, err)
		return
	}
	defer os.Remove(tmp)
	m, err := s.importUpload(ctx, name, tmp)
	if err != nil {
		writeError(w, err)
		return
	}
	for _, v := range s.State().DatasetVersions(name) {
		if v.ID == m.ID {
			writeJSON(w, http.StatusOK, convertPtr(v, apiDatasetVersion)) // registered before
			return
		}
	}
	digest, err := s.putDatasetBlob(ctx, m.ID)
	if err != nil {
		writeError(w, fmt.Errorf("upload: %w", err))
		return
	}
	if _, err := s.replicateBlob(ctx, digest); err != nil {
		writeError(w, fmt.Errorf("upload: blob: %w", err))
		return
	}
	manifest, err := json.Marshal(m)
	if err != nil {
		writeError(w, err)
		return
	}
	now := time.Now().UTC()
	resp, err := s.raftApply(ctx, structs.DatasetRegisterRequestType, &structs.DatasetRegisterRequest{
		Name: name, ID: m.ID, Manifest: manifest, Blob: digest, Time: now,
	})
	if err != nil {
		writeError(w, err)
		return
	}
	v, err := answer(resp, apiDatasetVersion)
	if err != nil {
		writeError(w, err)
		return
	}
	status := http.StatusOK
	if v.CreateTime.Equal(now) {
		status = http.StatusCreated
	}
	writeJSON(w, status, v)
}

// importUpload imports the uploaded version file at path as a version of
// name, one import at a time (see datasetService.importMu), and checks
// that its canonical file fits the blob limit it is replicated under.
func (s *Server) importUpload(ctx context.Context, name, path string) (dataset.Manifest, error) {
	ds := s.datasets
	ds.importMu.Lock()
	defer ds.importMu.Unlock()
	m, _, err := ds.store.ImportFile(ctx, name, path, "", dataset.Source{Kind: "upload"})
	if err != nil {
		return m, fmt.Errorf("upload: %w: %w", structs.ErrInvalid, err)
	}
	if fi, err := os.Stat(ds.store.DataPath(m.ID)); err != nil {
		return m, fmt.Errorf("upload: %w", err)
	} else if fi.Size() > s.cfg.MaxBlobBytes {
		return m, tooLargeError("upload", s.cfg.MaxBlobBytes, fmt.Sprintf("its canonical file has %d bytes", fi.Size()))
	}
	return m, nil
}

// putDatasetBlob stores the dataset store's file of version id in the
// artifact store and returns its digest.
func (s *Server) putDatasetBlob(ctx context.Context, id string) (string, error) {
	f, err := os.Open(s.datasets.store.DataPath(id))
	if err != nil {
		return "", err
	}
	defer f.Close()
	digest, _, err := s.blobs.Put(ctx, f)
	if err != nil {
		return "", fmt.Errorf("store blob: %w", err)
	}
	return digest, nil
}
