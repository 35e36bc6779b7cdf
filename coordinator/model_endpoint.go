package coordinator

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/state"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// Models is the endpoint of the model registry.
type Models struct{ srv *Server }

// List lists every version of every model, by name and then version (GET
// /v1/models).
func (e *Models) List(ctx context.Context, id Identity, req *ListRequest) (Reply[[]*api.ModelVersion], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionModelRead); err != nil {
		return Reply[[]*api.ModelVersion]{}, err
	}
	idx := s.waitTables(ctx, req.QueryOptions, state.TableModels)
	out := convertPtrs(s.State().ModelVersions(""), apiModelVersion)
	return Reply[[]*api.ModelVersion]{Value: out, Index: idx}, nil
}

// Get answers the versions of the model req.ID names, oldest first (GET
// /v1/models/{name}); a name with no versions is not found.
func (e *Models) Get(ctx context.Context, id Identity, req *ObjectRequest) (Reply[[]*api.ModelVersion], error) {
	s := e.srv
	if err := s.authorize(ctx, id, ActionModelRead); err != nil {
		return Reply[[]*api.ModelVersion]{}, err
	}
	if err := checkID("name", api.KindModel, req.ID); err != nil {
		return Reply[[]*api.ModelVersion]{}, err
	}
	idx := s.waitTables(ctx, req.QueryOptions, state.TableModels)
	out := s.State().ModelVersions(req.ID)
	if len(out) == 0 {
		return Reply[[]*api.ModelVersion]{Index: idx}, fmt.Errorf("model %q: %w", req.ID, structs.ErrNotFound)
	}
	return Reply[[]*api.ModelVersion]{Value: convertPtrs(out, apiModelVersion), Index: idx}, nil
}

// Register registers a model version (POST /v1/models). The request names
// exactly one source: a checkpoint digest, a job (its latest checkpoint)
// or a sweep (its best checkpoint, with the sweep's objective and value).
// Answers the new version (Created). Registering the checkpoint the
// model's latest version already points at answers that version, so a
// retried registration adds no second version.
func (e *Models) Register(ctx context.Context, id Identity, req *api.RegisterModelBody) (Reply[*api.ModelVersion], error) {
	s := e.srv
	var zero Reply[*api.ModelVersion]
	if err := s.authorize(ctx, id, ActionModelRegister); err != nil {
		return zero, err
	}
	if err := checkModelRequest(req); err != nil {
		return zero, err
	}
	if err := s.leaderOnly(ctx); err != nil {
		return zero, err
	}
	cmd, err := s.modelSource(*req)
	if err != nil {
		return zero, err
	}
	if latest, err := s.State().Model(req.Name); err == nil && latest.Checkpoint == cmd.Checkpoint {
		return reply(convertPtr(latest, apiModelVersion)), nil
	}
	if err := s.verifyCheckpointBlob(ctx, cmd.Checkpoint); err != nil {
		return zero, fmt.Errorf("register model: %w", err)
	}
	cmd.Name = req.Name
	cmd.Time = time.Now().UTC()
	resp, err := s.raftApply(ctx, structs.ModelRegisterRequestType, cmd)
	if err != nil {
		return zero, err
	}
	// The FSM answers the latest version unchanged when it already has
	// the checkpoint (a concurrent twin of this request committed first).
	m, err := answer(resp, apiModelVersion)
	if err != nil {
		return zero, err
	}
	return Reply[*api.ModelVersion]{Value: m, Created: m.CreateTime.Equal(cmd.Time)}, nil
}

// checkModelRequest checks a registration's name and that it names exactly
// one well-formed source.
func checkModelRequest(req *api.RegisterModelBody) error {
	if err := checkID("name", api.KindModel, req.Name); err != nil {
		return err
	}
	var given []string
	for _, f := range []struct {
		name, value string
		kind        api.Kind
	}{{"checkpoint", req.Checkpoint, api.KindDigest}, {"job_id", req.JobID, api.KindJob}, {"sweep_id", req.SweepID, api.KindSweep}} {
		if f.value == "" {
			continue
		}
		if err := checkID(f.name, f.kind, f.value); err != nil {
			return err
		}
		given = append(given, f.name)
	}
	if len(given) != 1 {
		got := "none"
		if len(given) > 0 {
			got = strings.Join(given, ", ")
		}
		return fmt.Errorf("checkpoint, job_id, sweep_id: %w: give exactly one, got %s", structs.ErrInvalid, got)
	}
	return nil
}

// modelSource resolves the one source a registration names to the
// checkpoint, job, sweep and objective of the new version (Name and Time
// left for the caller).
// The caller checked the request (checkModelRequest).
func (s *Server) modelSource(body api.RegisterModelBody) (*structs.ModelRegisterRequest, error) {
	switch {
	case body.Checkpoint != "":
		c, err := s.State().Checkpoint(body.Checkpoint)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		return s.checkpointModel(c), nil
	case body.JobID != "":
		j, err := s.State().Job(body.JobID)
		if err != nil {
			return nil, fmt.Errorf("job_id: %w", err)
		}
		if j.LatestCheckpoint == "" {
			return nil, fmt.Errorf("job_id: %w: job %s has no checkpoint yet", structs.ErrConflict, j.ID)
		}
		c, err := s.State().Checkpoint(j.LatestCheckpoint)
		if err != nil {
			return nil, fmt.Errorf("job_id: latest checkpoint of job %s: %w", j.ID, err)
		}
		return s.checkpointModel(c), nil
	}
	sw, err := s.State().Sweep(body.SweepID)
	if err != nil {
		return nil, fmt.Errorf("sweep_id: %w", err)
	}
	if sw.Best == nil {
		return nil, fmt.Errorf("sweep_id: %w: sweep %s has no checkpoint with an objective value yet", structs.ErrConflict, sw.ID)
	}
	return &structs.ModelRegisterRequest{
		Checkpoint: sw.Best.Checkpoint,
		JobID:      sw.Best.JobID,
		SweepID:    sw.ID,
		Metric:     sw.Spec.Objective.Metric,
		Value:      sw.Best.Value,
	}, nil
}

// checkpointModel is the version a checkpoint makes; a checkpoint of a
// sweep trial carries the sweep and its objective's value when the
// checkpoint recorded it.
func (s *Server) checkpointModel(c *structs.Checkpoint) *structs.ModelRegisterRequest {
	req := &structs.ModelRegisterRequest{Checkpoint: c.Digest, JobID: c.JobID}
	j, err := s.State().Job(c.JobID)
	if err != nil || j.SweepID == "" {
		return req
	}
	req.SweepID = j.SweepID
	if sw, err := s.State().Sweep(j.SweepID); err == nil {
		if v, ok := c.Metrics[sw.Spec.Objective.Metric]; ok {
			req.Metric, req.Value = sw.Spec.Objective.Metric, v
		}
	}
	return req
}
