package coordinator

import (
	"context"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator/state"
)

// Blocking queries, as Consul's and Nomad's: a read with a WaitIndex
// (HTTP: ?index=N) answers once the tables it reads have changed past
// that index, or after WaitTime (?wait=D; default api.DefaultBlockingWait,
// at most api.MaxBlockingWait), whichever comes first; without an index,
// or with one past the tables' index here, it answers at once. Every such
// read answers the tables' index (HTTP: the api.IndexHeader header), which
// the caller passes back as the next index: so it sees every change,
// without polling. The read endpoints
// check their request first, then call waitTables, then read the state.

// waitTables waits as q says for tables to change (ending early when the
// server shuts down or ctx ends) and returns their index.
func (s *Server) waitTables(ctx context.Context, q api.QueryOptions, tables ...state.Table) uint64 {
	// Index 0 would make a client's next call answer at once again: the
	// first index any table can have is 1.
	idx := max(s.State().TableIndex(tables...), 1)
	// An index past this server's (another server's that is ahead, or
	// one from before a data wipe) is answered at once, as Consul does:
	// the client goes on from this server's lower index.
	if q.WaitIndex > 0 && idx == q.WaitIndex {
		wait := q.WaitTime
		if wait <= 0 {
			wait = api.DefaultBlockingWait
		}
		ctx, cancel := context.WithTimeout(ctx, min(wait, api.MaxBlockingWait))
		stop := context.AfterFunc(s.ctx, cancel)
		idx = max(s.State().Wait(ctx, q.WaitIndex, tables...), 1)
		stop()
		cancel()
	}
	return idx
}
