package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/state"
	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/dataset"
)

// Datasets is the endpoint of the dataset registry. Uploads, which stream
// a file rather than carry a request, are an HTTP handler of their own
// (handleDatasetUpload).
type Datasets struct{ srv *Server }

// DatasetListRequest is the request of Datasets.List: Name, when set, keeps
// only that dataset's versions.
type DatasetListRequest struct {
	Name string
	api.QueryOptions
}

// List lists registered versions, by name and then seq (GET
// /v1/datasets[?name=N]).
func (e *Datasets) List(ctx context.Context, id Identity, req *DatasetListRequest) (Reply[[]*api.DatasetVersion], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionDatasetRead); err != nil {
		return Reply[[]*api.DatasetVersion]{}, err
	}
	if err := checkOptionalID("name", api.KindDataset, req.Name); err != nil {
		return Reply[[]*api.DatasetVersion]{}, err
	}
	idx := s.waitTables(ctx, req.QueryOptions, state.TableDatasets)
	out := convertPtrs(s.State().DatasetVersions(req.Name), apiDatasetVersion)
	return Reply[[]*api.DatasetVersion]{Value: out, Index: idx}, nil
}

// Register registers a dataset version (POST /v1/datasets) and answers
// the registry entry: Created, or not when that name and id were
// registered before. A version with a blob is committed only once the
// blob is on a majority of the coordinators (see replicateBlob).
func (e *Datasets) Register(ctx context.Context, id Identity, req *api.RegisterDatasetBody) (Reply[*api.DatasetVersion], error) {
	s := e.srv
	var zero Reply[*api.DatasetVersion]
	if err := s.authorize(ctx, id, ActionDatasetRegister); err != nil {
		return zero, err
	}
	if err := checkID("name", api.KindDataset, req.Name); err != nil {
		return zero, err
	}
	if err := checkID("id", api.KindDatasetVersion, req.ID); err != nil {
		return zero, err
	}
	if err := checkManifest(req); err != nil {
		return zero, err
	}
	if err := checkOptionalID("blob", api.KindDigest, req.Blob); err != nil {
		return zero, err
	}
	if err := s.leaderOnly(ctx); err != nil {
		return zero, err
	}
	for _, v := range s.State().DatasetVersions(req.Name) {
		if v.ID == req.ID {
			return reply(convertPtr(v, apiDatasetVersion)), nil // registered before
		}
	}
	if req.Blob != "" {
		if _, err := s.replicateBlob(ctx, req.Blob); err != nil {
			return zero, fmt.Errorf("register dataset: blob: %w", err)
		}
	}
	now := time.Now().UTC()
	resp, err := s.raftApply(ctx, structs.DatasetRegisterRequestType, &structs.DatasetRegisterRequest{
		Name:     req.Name,
		ID:       req.ID,
		Manifest: req.Manifest,
		Blob:     req.Blob,
		Time:     now,
	})
	if err != nil {
		return zero, err
	}
	v, err := answer(resp, apiDatasetVersion)
	if err != nil {
		return zero, err
	}
	return Reply[*api.DatasetVersion]{Value: v, Created: v.CreateTime.Equal(now)}, nil
}

// Flight answers this server's Flight address (GET
// /v1/datasets/flight[?id=ID]), after making sure it can serve version
// req.ID (importing it from its blob if needed). Not found for a version
// not registered, ErrReplication while this server lacks its blob.
//
// A follower that does not know the version may only be behind: it first
// waits (briefly) until it has applied what it knows to be committed, and
// if the version is still unknown it passes the question to the leader
// (leaderOnly), whose answer (its own Flight address, or not found) is
// authoritative. So a worker given a version id by the leader never hears
// "not found" from a lagging follower.
func (e *Datasets) Flight(ctx context.Context, id Identity, req *ObjectRequest) (Reply[*api.FlightEndpoint], error) {
	s := e.srv
	var zero Reply[*api.FlightEndpoint]
	if err := s.authorize(ctx, id, ActionDatasetRead); err != nil {
		return zero, err
	}
	if req.ID != "" {
		if err := checkID("id", api.KindDatasetVersion, req.ID); err != nil {
			return zero, err
		}
		err := s.ensureDataset(ctx, req.ID)
		if errors.Is(err, structs.ErrNotFound) && !s.IsLeader() {
			s.waitApplied(ctx, followerCatchUpWait)
			if err = s.ensureDataset(ctx, req.ID); errors.Is(err, structs.ErrNotFound) {
				if lerr := s.leaderOnly(ctx); lerr != nil {
					return zero, lerr
				}
			}
		}
		if err != nil {
			return zero, err
		}
	}
	return reply(&api.FlightEndpoint{Addr: s.datasets.addr}), nil
}

// maxManifestBytes bounds a registered version's manifest, which goes into
// the replicated state as it is.
const maxManifestBytes = 64 << 10

// checkManifest checks that a registration's manifest is a dataset
// manifest (dataset.Manifest, no unknown fields) of at most
// maxManifestBytes, of the version and name the request registers.
func checkManifest(req *api.RegisterDatasetBody) error {
	raw := req.Manifest
	if len(raw) > maxManifestBytes {
		return fmt.Errorf("manifest: %w: %d bytes, the limit is %d", structs.ErrInvalid, len(raw), maxManifestBytes)
	}
	if m := bytes.TrimSpace(raw); len(m) == 0 || m[0] != '{' {
		return fmt.Errorf("manifest: %w: required, a JSON object", structs.ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var m dataset.Manifest
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("manifest: %w: not a dataset manifest: %w", structs.ErrInvalid, err)
	}
	switch {
	case m.ID != req.ID:
		return fmt.Errorf("manifest.id: %w: %q is not the id %q being registered", structs.ErrInvalid, api.Truncate(m.ID, 80), req.ID)
	case m.Name != req.Name:
		return fmt.Errorf("manifest.name: %w: %q is not the name %q being registered", structs.ErrInvalid, api.Truncate(m.Name, 80), req.Name)
	}
	return nil
}
