package structs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// MessageType is the first byte of a Raft log entry; it says which request
// follows and in which version of its encoding.
//
// Never change what a committed entry means. A type number names one
// command in one encoding for good: to change a command's fields or their
// meaning, add a new type number for the new version, point the command's
// unversioned name (JobSubmitRequestType) at it, rename the old constant
// with its version (JobSubmitV1RequestType) and keep its decoder (see
// commands_v1.go), which turns an old entry into the current request with
// the meaning it had when it was committed. Adding a field whose zero value
// keeps the old behaviour is not a change: decoding ignores unknown fields,
// so an older server mid-upgrade applies a newer leader's entry as before.
// A new command that older servers may skip sets IgnoreUnknownTypeFlag.
type MessageType uint8

// Command types. Values are part of the on-disk log: never renumber or reuse
// one, only append.
const (
	// JobSubmitV1RequestType is JobSubmit as v1 wrote it: the spec is
	// jobspec.Spec's JSON, decoded on top of v1's defaults.
	JobSubmitV1RequestType        MessageType = 1
	JobCancelRequestType          MessageType = 2
	JobPlaceRequestType           MessageType = 3
	AttemptUpdateRequestType      MessageType = 4
	MetricsReportRequestType      MessageType = 5
	CheckpointRegisterRequestType MessageType = 6
	WorkerUpsertRequestType       MessageType = 7
	WorkerDownRequestType         MessageType = 8
	WorkerDrainRequestType        MessageType = 9
	DatasetRegisterRequestType    MessageType = 10
	ServerRegisterRequestType     MessageType = 11
	JobPlaceBatchRequestType      MessageType = 12
	// JobSubmitRequestType (v2) carries the normalized JobSpec, decoded
	// plainly.
	JobSubmitRequestType MessageType = 17
)

// IgnoreUnknownTypeFlag is set on a message type whose command may be skipped
// by a server that does not know it (as in Nomad). A command added in a newer
// version that older servers can safely ignore sets this bit; without it an
// unknown type is undecodable and halts the server (see state.FSM).
const IgnoreUnknownTypeFlag MessageType = 128

// String names the command type ("JobSubmit"), ignoring the flag bit.
func (t MessageType) String() string {
	switch t &^ IgnoreUnknownTypeFlag {
	case JobSubmitRequestType:
		return "JobSubmit"
	case JobSubmitV1RequestType:
		return "JobSubmit.v1"
	case JobCancelRequestType:
		return "JobCancel"
	case JobPlaceRequestType:
		return "JobPlace"
	case AttemptUpdateRequestType:
		return "AttemptUpdate"
	case MetricsReportRequestType:
		return "MetricsReport"
	case CheckpointRegisterRequestType:
		return "CheckpointRegister"
	case WorkerUpsertRequestType:
		return "WorkerUpsert"
	case WorkerDownRequestType:
		return "WorkerDown"
	case WorkerDrainRequestType:
		return "WorkerDrain"
	case DatasetRegisterRequestType:
		return "DatasetRegister"
	case ServerRegisterRequestType:
		return "ServerRegister"
	case JobPlaceBatchRequestType:
		return "JobPlaceBatch"
	case SweepSubmitRequestType:
		return "SweepSubmit"
	case SweepSubmitV1RequestType:
		return "SweepSubmit.v1"
	case SweepStepRequestType:
		return "SweepStep"
	case SweepStepV1RequestType:
		return "SweepStep.v1"
	case SweepCancelRequestType:
		return "SweepCancel"
	case ModelRegisterRequestType:
		return "ModelRegister"
	}
	if name, ok := gcTypeName(t &^ IgnoreUnknownTypeFlag); ok {
		return name
	}
	if name, ok := ranksTypeName(t &^ IgnoreUnknownTypeFlag); ok {
		return name
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// JobSubmitRequest creates a job. The leader stamps JobID and SubmitTime. If a
// job with RequestID exists, the command returns that job instead.
type JobSubmitRequest struct {
	JobID     string  `json:"job_id"`
	RequestID string  `json:"request_id"`
	Spec      JobSpec `json:"spec"`
	// DatasetVersionID is the dataset version the leader resolved
	// Spec.Dataset to.
	DatasetVersionID string    `json:"dataset_version_id,omitempty"`
	SubmitTime       time.Time `json:"submit_time"`
}

// JobCancelRequest cancels a job; cancelling a terminal job is a no-op.
type JobCancelRequest struct {
	JobID string    `json:"job_id"`
	Time  time.Time `json:"time"`
}

// JobPlaceRequest starts attempt number Attempt of a pending job with one
// placement per rank, all at once.
type JobPlaceRequest struct {
	JobID      string      `json:"job_id"`
	Attempt    int         `json:"attempt"`
	Placements []Placement `json:"placements"`
	ResumeFrom string      `json:"resume_from,omitempty"`
	Time       time.Time   `json:"time"`
	// Secret is the attempt's shared secret (hex), which its ranks prove
	// to each other; the leader draws it. Empty in entries of versions
	// before data-parallel training, whose attempts had one rank.
	Secret string `json:"secret,omitempty"`
}

// JobPlaceBatchRequest is the placements of one scheduling pass in one
// entry. They are applied in order, each validated exactly as a JobPlace
// request against the state the ones before it left; one that does not fit
// is skipped (its error goes into the response) and does not stop the
// others. The response is a *JobPlaceBatchResponse.
type JobPlaceBatchRequest struct {
	Places []JobPlaceRequest `json:"places"`
}

// JobPlaceBatchResponse is the FSM's answer to a JobPlaceBatchRequest, one
// result per request, in the request's order. It is never encoded.
type JobPlaceBatchResponse struct {
	Results []JobPlaceResult
}

// JobPlaceResult is the outcome of one placement of a batch: the placed job,
// or the error a JobPlace request would have returned.
type JobPlaceResult struct {
	Job *Job
	Err error
}

// AttemptUpdateRequest ends the running attempt of a job with an outcome
// (succeeded, failed or preempted) and the leader's decision: a failed attempt
// with Retry sends the job back to pending, counts a restart and excludes
// FailedNode; without Retry it fails the job. A preempted attempt always sends
// the job back to pending and counts nothing. The leader also sends one per
// running attempt that had a rank on a worker that went down.
type AttemptUpdateRequest struct {
	JobID      string       `json:"job_id"`
	Attempt    int          `json:"attempt"`
	State      AttemptState `json:"state"`
	Retry      bool         `json:"retry,omitempty"`
	Error      string       `json:"error,omitempty"`
	FailedNode string       `json:"failed_node,omitempty"`
	Time       time.Time    `json:"time"`
}

// MetricsReportRequest appends a batch of metrics of one job and updates its
// progress from the last one.
type MetricsReportRequest struct {
	JobID   string   `json:"job_id"`
	Metrics []Metric `json:"metrics"`
}

// CheckpointRegisterRequest records a checkpoint whose blob is already in the
// artifact store and makes it the job's latest.
type CheckpointRegisterRequest struct {
	Checkpoint Checkpoint `json:"checkpoint"`
}

// WorkerUpsertRequest adds a worker or updates its address, metadata and
// alive/suspect status. A draining worker stays draining.
type WorkerUpsertRequest struct {
	ID     string       `json:"id"`
	Addr   string       `json:"addr"`
	Meta   WorkerMeta   `json:"meta"`
	Status WorkerStatus `json:"status"`
	Time   time.Time    `json:"time"`
}

// WorkerDownRequest marks a worker dead or left. Its assignments stay until
// the leader ends the attempts that hold them with AttemptUpdateRequests.
type WorkerDownRequest struct {
	ID     string       `json:"id"`
	Status WorkerStatus `json:"status"`
	Reason string       `json:"reason,omitempty"`
	Time   time.Time    `json:"time"`
}

// WorkerDrainRequest stops new placements on a worker; its running
// assignments continue.
type WorkerDrainRequest struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
}

// DatasetRegisterRequest adds a dataset version to the registry; registering a
// (name, id) pair again returns the existing entry.
type DatasetRegisterRequest struct {
	Name     string          `json:"name"`
	ID       string          `json:"id"`
	Manifest json.RawMessage `json:"manifest"`
	Blob     string          `json:"blob,omitempty"`
	Time     time.Time       `json:"time"`
}

// ServerRegisterRequest adds or updates a coordinator in the server registry.
type ServerRegisterRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// Encode returns a Raft log entry: the type byte followed by req as JSON.
func Encode(t MessageType, req any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(byte(t))
	if err := json.NewEncoder(&buf).Encode(req); err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return buf.Bytes(), nil
}

// Decode decodes the JSON payload of a command (the entry without its type
// byte) into out, tolerantly: unknown fields are ignored (a newer leader's
// additive field must not stop an older follower mid-upgrade). A payload
// that is not one JSON object, a value of the wrong type and trailing data
// are errors wrapping ErrInvalid: the entry is undecodable.
func Decode(payload []byte, out any) error {
	if p := bytes.TrimLeft(payload, " \t\r\n"); len(p) == 0 || p[0] != '{' {
		return fmt.Errorf("decode %T: %w: not a JSON object", out, ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("decode %T: %w: %w", out, ErrInvalid, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("decode %T: %w: trailing data", out, ErrInvalid)
	}
	return nil
}

// DecodeAs decodes a command's payload into a new Req with Decode: the
// decoder of every command whose current encoding is its Go type's JSON.
func DecodeAs[Req any](payload []byte) (*Req, error) {
	req := new(Req)
	if err := Decode(payload, req); err != nil {
		return nil, err
	}
	return req, nil
}
