package coordinator

import (
	"context"
	"fmt"
	"net/http"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// The endpoint layer. Each resource of the API has one endpoint type
// (Jobs, Attempts, Sweeps, Models, Datasets, Workers, Cluster), one file
// each (*_endpoint.go), whose methods all have the shape
//
//	func (e *Jobs) Submit(ctx context.Context, id Identity, req *api.SubmitJobBody) (Reply[*api.Job], error)
//
// and do, in this order: authorize the identity for the endpoint's Action;
// check the request fully (every name and id by api.CheckID, every number
// and length bounded), so bad input is refused by whichever server it
// reaches; forward to the leader if the endpoint writes (leaderOnly);
// check the request against the state and commit. They answer api types
// (convert.go), never the server's own. Transports are thin adapters over
// them: http.go decodes an HTTP request into the endpoint's request and
// writes its Reply or error; the leader's own work calls them directly
// and never its own HTTP API.

// Identity is who sent a request, as its transport authenticated it
// (Server.authenticate). Until the API has authentication every request
// is anonymous: the zero Identity.
type Identity struct {
	// Name is the authenticated principal; empty when anonymous.
	Name string
}

// Action names what an endpoint does, for authorize.
type Action string

// The actions of the endpoints.
const (
	ActionJobSubmit          Action = "job:submit"
	ActionJobRead            Action = "job:read"
	ActionJobCancel          Action = "job:cancel"
	ActionAttemptReport      Action = "attempt:report"
	ActionMetricsReport      Action = "metrics:report"
	ActionCheckpointRegister Action = "checkpoint:register"
	ActionCheckpointRead     Action = "checkpoint:read"
	ActionSweepSubmit        Action = "sweep:submit"
	ActionSweepRead          Action = "sweep:read"
	ActionSweepCancel        Action = "sweep:cancel"
	ActionModelRegister      Action = "model:register"
	ActionModelRead          Action = "model:read"
	ActionDatasetRegister    Action = "dataset:register"
	ActionDatasetRead        Action = "dataset:read"
	ActionDatasetRemove      Action = "dataset:remove"
	ActionWorkerRegister     Action = "worker:register"
	ActionWorkerRead         Action = "worker:read"
	ActionWorkerDrain        Action = "worker:drain"
	ActionClusterRead        Action = "cluster:read"
	ActionClusterJoin        Action = "cluster:join"
)

// authorize reports whether id may perform action; every endpoint calls
// it first. Today every identity may do everything: this is the seam
// where access control goes.
func (s *Server) authorize(_ context.Context, _ Identity, _ Action) error {
	return nil
}

// Reply is what an endpoint answers.
type Reply[T any] struct {
	// Value is the answer, of an api type.
	Value T
	// Created reports that this request created Value, rather than
	// finding it made by an earlier request (HTTP answers 201, not 200).
	Created bool
	// Index is, for a read, the modify index of the tables it read
	// (blocking queries; HTTP sends it as api.IndexHeader), set also
	// when the read answers an error after reading; 0 otherwise.
	Index uint64
	// Header, when set, holds headers of the answer (HTTP sends them).
	Header http.Header
}

// reply is a Reply of v with no index, not created.
func reply[T any](v T) Reply[T] { return Reply[T]{Value: v} }

// ObjectRequest is the request of an endpoint that addresses one object by
// its id (or, for models, its name): in HTTP, the path value.
type ObjectRequest struct {
	ID string
	// QueryOptions makes a read a blocking query.
	api.QueryOptions
}

// ListRequest is the request of a list without a filter.
type ListRequest struct {
	api.QueryOptions
}

// Endpoints are a server's endpoints, one per resource.
type Endpoints struct {
	Jobs     *Jobs
	Attempts *Attempts
	Sweeps   *Sweeps
	Models   *Models
	Datasets *Datasets
	Workers  *Workers
	Cluster  *Cluster
}

func newEndpoints(s *Server) *Endpoints {
	return &Endpoints{
		Jobs:     &Jobs{s},
		Attempts: &Attempts{s},
		Sweeps:   &Sweeps{s},
		Models:   &Models{s},
		Datasets: &Datasets{s},
		Workers:  &Workers{s},
		Cluster:  &Cluster{s},
	}
}

// Endpoints returns the server's endpoints, for callers in the same
// process (the transports, tests).
func (s *Server) Endpoints() *Endpoints { return s.endpoints }

// checkID checks a name or id of kind k that the request gave as field (a
// body field, a path value or a query parameter) by api.CheckID. Errors
// wrap structs.ErrInvalid and name the field.
func checkID(field string, k api.Kind, v string) error {
	if err := api.CheckID(k, v); err != nil {
		return fmt.Errorf("%s: %w: %w", field, structs.ErrInvalid, err)
	}
	return nil
}

// checkOptionalID is checkID for a field that may be empty.
func checkOptionalID(field string, k api.Kind, v string) error {
	if v == "" {
		return nil
	}
	return checkID(field, k, v)
}

// answer converts an FSM response, a *S, to the api type T by conv; a
// response of another type is an internal error.
func answer[S, T any](resp any, conv func(S) T) (*T, error) {
	v, ok := resp.(*S)
	if !ok || v == nil {
		return nil, fmt.Errorf("unexpected response %T from the state machine", resp)
	}
	return convertPtr(v, conv), nil
}
