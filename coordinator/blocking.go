package coordinator

import (
	"context"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/state"
)

// Blocking queries, as Consul's and Nomad's: a read with a WaitIndex
// (HTTP: ?index=N) answers once the tables it reads have changed past
// that index, or after WaitTime (?wait=D; default api.DefaultBlockingWait,
// at most api.MaxBlockingWait), whichever comes first; without an index
// it answers at once. Every such read answers the tables' index (HTTP: the
// api.IndexHeader header), which the caller passes back as the next
// index: so it sees every change, without polling. The read endpoints
// check their request first, then call waitTables, then read the state.

// waitTables waits as q says for tables to change (ending early when the
// server shuts down or ctx ends) and returns their index.
func (s *Server) waitTables(ctx context.Context, q api.QueryOptions, tables ...state.Table) uint64 {
	idx := s.State().TableIndex(tables...)
	if q.WaitIndex > 0 && idx <= q.WaitIndex {
		wait := q.WaitTime
		if wait <= 0 {
			wait = api.DefaultBlockingWait
		}
		ctx, cancel := context.WithTimeout(ctx, min(wait, api.MaxBlockingWait))
		stop := context.AfterFunc(s.ctx, cancel)
		idx = s.State().Wait(ctx, q.WaitIndex, tables...)
		stop()
		cancel()
	}
	// Index 0 would make a client's next call answer at once again: the
	// first index any table can have is 1.
	return max(idx, 1)
}
