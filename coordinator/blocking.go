package coordinator

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/state"
	"github.com/trainctl/trainctl/coordinator/structs"
)

// Blocking queries, as Consul's and Nomad's: a GET with ?index=N answers
// once the tables it reads have changed past index N, or after ?wait=D
// (default api.DefaultBlockingWait, at most api.MaxBlockingWait), whichever
// comes first; without index it answers at once. Every such GET carries
// the tables' index in the api.IndexHeader header, which the caller passes
// back as the next index: so it sees every change, without polling.

// blockingQuery runs the blocking part of a GET over tables: it parses
// index and wait, waits as they say (ending early when the server shuts
// down or the client goes away), and sets the index header. The handler
// then reads the state and answers. Bad parameters are errors wrapping
// structs.ErrInvalid.
func (s *Server) blockingQuery(w http.ResponseWriter, r *http.Request, tables ...state.Table) error {
	q, err := api.ParseQueryOptions(r.URL.Query())
	if err != nil {
		return fmt.Errorf("%w: %w", structs.ErrInvalid, err)
	}
	idx := s.State().TableIndex(tables...)
	if q.WaitIndex > 0 && idx <= q.WaitIndex {
		ctx, cancel := context.WithTimeout(r.Context(), q.WaitTime)
		stop := context.AfterFunc(s.ctx, cancel)
		idx = s.State().Wait(ctx, q.WaitIndex, tables...)
		stop()
		cancel()
	}
	// Index 0 would make a client's next call answer at once again: the
	// first index any table can have is 1.
	w.Header().Set(api.IndexHeader, strconv.FormatUint(max(idx, 1), 10))
	return nil
}

// blocking wraps a GET handler that reads tables in blockingQuery.
func (s *Server) blocking(h http.HandlerFunc, tables ...state.Table) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.blockingQuery(w, r, tables...); err != nil {
			writeError(w, err)
			return
		}
		h(w, r)
	}
}
