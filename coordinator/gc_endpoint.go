package coordinator

import (
	"context"
	"fmt"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/state"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// DatasetRemoveRequest is the request of Datasets.Remove: dataset Name's
// version Version (v<N>, an id prefix or latest).
type DatasetRemoveRequest struct {
	Name, Version string
}

// maxVersionRefLen bounds the version part of a dataset reference.
const maxVersionRefLen = 80

// Remove removes a dataset version from the registry (DELETE
// /v1/datasets/{name}/versions/{version}); every coordinator then deletes
// its blob (unless another version has the same content) and its copy.
// While jobs that have not ended or running sweeps use the version it is a
// conflict naming them. Answers the removed version.
func (e *Datasets) Remove(ctx context.Context, id Identity, req *DatasetRemoveRequest) (Reply[*api.DatasetVersion], error) {
	s := e.srv
	var zero Reply[*api.DatasetVersion]
	if err := s.authorize(ctx, id, ActionDatasetRemove); err != nil {
		return zero, err
	}
	if err := checkID("name", api.KindDataset, req.Name); err != nil {
		return zero, err
	}
	if req.Version == "" || len(req.Version) > maxVersionRefLen {
		return zero, fmt.Errorf("version: %w: want v<N>, an id prefix or latest, of at most %d bytes", structs.ErrInvalid, maxVersionRefLen)
	}
	if err := s.leaderOnly(ctx); err != nil {
		return zero, err
	}
	ref := req.Name + "@" + req.Version
	vid, err := s.resolveDataset(ref)
	if err != nil {
		return zero, err
	}
	if jobs, sweeps := s.State().DatasetUsers(vid); len(jobs) > 0 || len(sweeps) > 0 {
		return zero, fmt.Errorf("dataset %s: %w: in use by jobs %v and sweeps %v; cancel them or wait until they end",
			ref, structs.ErrConflict, jobs, sweeps)
	}
	resp, err := s.raftApply(ctx, structs.DatasetRemoveRequestType, &structs.DatasetRemoveRequest{
		Name: req.Name, ID: vid, Time: time.Now().UTC(),
	})
	if err != nil {
		return zero, err
	}
	gc, ok := resp.(*structs.GCResponse)
	if !ok || len(gc.Datasets) == 0 {
		return zero, fmt.Errorf("remove dataset %s: unexpected answer %T from the state machine", ref, resp)
	}
	return reply(convertPtr(gc.Datasets[0], apiDatasetVersion)), nil
}

// Summaries answers what garbage collection kept of the jobs it removed,
// oldest end first (GET /v1/gc/jobs).
func (e *Jobs) Summaries(ctx context.Context, id Identity, req *ListRequest) (Reply[[]*api.JobSummary], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionJobRead); err != nil {
		return Reply[[]*api.JobSummary]{}, err
	}
	idx := s.waitTables(ctx, req.QueryOptions, state.TableJobs)
	out := convertPtrs(s.State().JobSummaries(), apiJobSummary)
	return Reply[[]*api.JobSummary]{Value: out, Index: idx}, nil
}

// Summaries answers what garbage collection kept of the sweeps it
// removed, oldest end first (GET /v1/gc/sweeps).
func (e *Sweeps) Summaries(ctx context.Context, id Identity, req *ListRequest) (Reply[[]*api.SweepSummary], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionSweepRead); err != nil {
		return Reply[[]*api.SweepSummary]{}, err
	}
	idx := s.waitTables(ctx, req.QueryOptions, state.TableSweeps)
	out := convertPtrs(s.State().SweepSummaries(), apiSweepSummary)
	return Reply[[]*api.SweepSummary]{Value: out, Index: idx}, nil
}
