// Conversions from the server's state types (coordinator/structs) to the
// wire types of the /v1/ API (api/), applied at the endpoint boundary.
// Keep them in step with both packages.
package coordinator

import (
	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// apiAttempt converts the server's Attempt to its wire form.
func apiAttempt(v structs.Attempt) api.Attempt {
	return api.Attempt{
		Number:     v.Number,
		Nodes:      v.Nodes,
		ResumeFrom: v.ResumeFrom,
		State:      api.AttemptState(v.State),
		Error:      v.Error,
		FailedNode: v.FailedNode,
		StartTime:  v.StartTime,
		EndTime:    v.EndTime,
		Ranks:      apiRanks(v), // never the secret
	}
}

// apiRanks is the per-rank status of a data-parallel attempt.
func apiRanks(v structs.Attempt) []api.RankStatus {
	if len(v.Ranks) == 0 {
		return nil
	}
	out := make([]api.RankStatus, len(v.Ranks))
	for r, rs := range v.Ranks {
		out[r] = api.RankStatus{
			Rank: r, Node: v.Nodes[r], Addr: rs.Addr, Ring: api.RingState(rs.Ring), Step: rs.Step,
			ImagesPerSec: rs.ImagesPerSec, Registered: rs.Registered, Connected: rs.Connected,
		}
	}
	return out
}

// apiProgress converts the server's Progress to its wire form.
func apiProgress(v structs.Progress) api.Progress {
	return api.Progress{
		Step:    v.Step,
		Epoch:   v.Epoch,
		Metrics: v.Metrics,
	}
}

// apiJob converts the server's Job to its wire form.
func apiJob(v structs.Job) api.Job {
	return api.Job{
		ID:               v.ID,
		RequestID:        v.RequestID,
		Spec:             v.Spec.User(),
		DatasetVersionID: v.DatasetVersionID,
		SweepID:          v.SweepID,
		Trial:            v.Trial,
		State:            api.JobState(v.State),
		Attempts:         convertSlice(v.Attempts, apiAttempt),
		Restarts:         v.Restarts,
		ExcludedNodes:    v.ExcludedNodes,
		Progress:         apiProgress(v.Progress),
		LatestCheckpoint: v.LatestCheckpoint,
		Error:            v.Error,
		SubmitTime:       v.SubmitTime,
		ModifyTime:       v.ModifyTime,
		CreateIndex:      v.CreateIndex,
		ModifyIndex:      v.ModifyIndex,
	}
}

// apiResources converts the server's Resources to its wire form.
func apiResources(v structs.Resources) api.Resources {
	return api.Resources{
		Cores: v.Cores,
		GPUs:  v.GPUs,
	}
}

// apiWorkerMeta converts the server's WorkerMeta to its wire form.
func apiWorkerMeta(v structs.WorkerMeta) api.WorkerMeta {
	return api.WorkerMeta{
		Cores:   v.Cores,
		GPUs:    v.GPUs,
		Spot:    v.Spot,
		Zone:    v.Zone,
		Version: v.Version,
	}
}

// apiWorker converts the server's Worker to its wire form.
func apiWorker(v structs.Worker) api.Worker {
	return api.Worker{
		ID:          v.ID,
		Addr:        v.Addr,
		Meta:        apiWorkerMeta(v.Meta),
		Status:      api.WorkerStatus(v.Status),
		Free:        apiResources(v.Free),
		StatusTime:  v.StatusTime,
		CreateIndex: v.CreateIndex,
		ModifyIndex: v.ModifyIndex,
	}
}

// apiCheckpoint converts the server's Checkpoint to its wire form.
func apiCheckpoint(v structs.Checkpoint) api.Checkpoint {
	return api.Checkpoint{
		Digest:      v.Digest,
		JobID:       v.JobID,
		Attempt:     v.Attempt,
		Step:        v.Step,
		Epoch:       v.Epoch,
		Metrics:     v.Metrics,
		Size:        v.Size,
		Time:        v.Time,
		CreateIndex: v.CreateIndex,
	}
}

// apiMetric converts the server's Metric to its wire form.
func apiMetric(v structs.Metric) api.Metric {
	return api.Metric{
		JobID:   v.JobID,
		Attempt: v.Attempt,
		Epoch:   v.Epoch,
		Step:    v.Step,
		Values:  v.Values,
		Time:    v.Time,
	}
}

// apiDatasetVersion converts the server's DatasetVersion to its wire form.
func apiDatasetVersion(v structs.DatasetVersion) api.DatasetVersion {
	return api.DatasetVersion{
		Name:        v.Name,
		ID:          v.ID,
		Seq:         v.Seq,
		Manifest:    v.Manifest,
		Blob:        v.Blob,
		CreateTime:  v.CreateTime,
		CreateIndex: v.CreateIndex,
	}
}

// apiTrial converts the server's Trial to its wire form.
func apiTrial(v structs.Trial) api.Trial {
	return api.Trial{
		Number:              v.Number,
		Params:              v.Params,
		JobID:               v.JobID,
		ResultsSeen:         v.ResultsSeen,
		State:               api.TrialState(v.State),
		Budget:              v.Budget,
		HasValue:            v.HasValue,
		LastValue:           v.LastValue,
		BestValue:           v.BestValue,
		BestBudget:          v.BestBudget,
		Decision:            v.Decision,
		BestCheckpoint:      v.BestCheckpoint,
		BestCheckpointValue: v.BestCheckpointValue,
		Error:               v.Error,
		StartTime:           v.StartTime,
		EndTime:             v.EndTime,
	}
}

// apiSweepResult converts the server's SweepResult to its wire form.
func apiSweepResult(v structs.SweepResult) api.SweepResult {
	return api.SweepResult{
		Trial:     v.Trial,
		Budget:    v.Budget,
		Value:     v.Value,
		NonFinite: v.NonFinite,
		Decision:  v.Decision,
		Time:      v.Time,
	}
}

// apiSweepBest converts the server's SweepBest to its wire form.
func apiSweepBest(v structs.SweepBest) api.SweepBest {
	return api.SweepBest{
		Trial:      v.Trial,
		JobID:      v.JobID,
		Checkpoint: v.Checkpoint,
		Value:      v.Value,
	}
}

// apiSweep converts the server's Sweep to its wire form.
func apiSweep(v structs.Sweep) api.Sweep {
	return api.Sweep{
		ID:               v.ID,
		RequestID:        v.RequestID,
		Spec:             v.Spec.User(),
		DatasetVersionID: v.DatasetVersionID,
		State:            api.SweepState(v.State),
		Trials:           convertSlice(v.Trials, apiTrial),
		Results:          convertSlice(v.Results, apiSweepResult),
		Best:             convertPtr(v.Best, apiSweepBest),
		Exhausted:        v.Exhausted,
		Error:            v.Error,
		SubmitTime:       v.SubmitTime,
		ModifyTime:       v.ModifyTime,
		EndTime:          v.EndTime,
		CreateIndex:      v.CreateIndex,
		ModifyIndex:      v.ModifyIndex,
	}
}

// apiModelVersion converts the server's ModelVersion to its wire form.
func apiModelVersion(v structs.ModelVersion) api.ModelVersion {
	return api.ModelVersion{
		Name:        v.Name,
		Version:     v.Version,
		Checkpoint:  v.Checkpoint,
		JobID:       v.JobID,
		SweepID:     v.SweepID,
		Metric:      v.Metric,
		Value:       v.Value,
		CreateTime:  v.CreateTime,
		CreateIndex: v.CreateIndex,
	}
}

// convertSlice converts each element of in with f; nil stays nil.
func convertSlice[S, A any](in []S, f func(S) A) []A {
	if in == nil {
		return nil
	}
	out := make([]A, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// convertPtr converts *in with f; nil stays nil.
func convertPtr[S, A any](in *S, f func(S) A) *A {
	if in == nil {
		return nil
	}
	a := f(*in)
	return &a
}

// apiJobSummary converts the server's JobSummary to its wire form.
func apiJobSummary(v structs.JobSummary) api.JobSummary {
	return api.JobSummary{
		ID: v.ID, Name: v.Name, SweepID: v.SweepID, Trial: v.Trial, State: api.JobState(v.State), Error: v.Error,
		Attempts: v.Attempts, Restarts: v.Restarts, Progress: apiProgress(v.Progress), LatestCheckpoint: v.LatestCheckpoint,
		SubmitTime: v.SubmitTime, EndTime: v.EndTime, CollectTime: v.CollectTime,
	}
}

// apiSweepSummary converts the server's SweepSummary to its wire form.
func apiSweepSummary(v structs.SweepSummary) api.SweepSummary {
	return api.SweepSummary{
		ID: v.ID, Name: v.Name, State: api.SweepState(v.State), Error: v.Error, Trials: v.Trials,
		Best: convertPtr(v.Best, apiSweepBest), SubmitTime: v.SubmitTime, EndTime: v.EndTime, CollectTime: v.CollectTime,
	}
}

// serverMetric converts a metric report of the API to the server's form.
func serverMetric(v api.Metric) structs.Metric {
	return structs.Metric{JobID: v.JobID, Attempt: v.Attempt, Epoch: v.Epoch, Step: v.Step, Values: v.Values, Time: v.Time}
}

// serverWorkerMeta converts a worker's advertised metadata to the server's
// form.
func serverWorkerMeta(v api.WorkerMeta) structs.WorkerMeta {
	return structs.WorkerMeta{Cores: v.Cores, GPUs: v.GPUs, Spot: v.Spot, Zone: v.Zone, Version: v.Version}
}

// convertPtrs converts each non-nil element of in with f. The result is
// never nil: a list answers [] in JSON, never null.
func convertPtrs[S, A any](in []*S, f func(S) A) []*A {
	out := make([]*A, 0, len(in))
	for _, v := range in {
		if v != nil {
			out = append(out, convertPtr(v, f))
		}
	}
	return out
}
