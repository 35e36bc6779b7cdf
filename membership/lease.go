package membership

import (
	"slices"
	"sync"
	"time"
)

// Lease tracks when each worker was last seen alive and reports those not
// seen for longer than the lease, so the leader can take their assignments
// away (a WorkerDown command). It reads no clock: callers pass the time,
// which keeps it deterministic in tests. Safe for concurrent use.
//
// The leader renews a worker on each sign of life (a join or update event,
// or being alive in [Member.Members] at a periodic tick), checks
// [Lease.Expired] on the same tick, and calls [Lease.Forget] once the
// WorkerDown command for an expired worker has committed. A new leader
// renews every worker it finds in the state, so each gets a full lease
// from the moment leadership changed.
type Lease struct {
	ttl time.Duration

	mu   sync.Mutex
	seen map[string]time.Time
}

// NewLease returns a lease tracker that expires workers not seen for ttl.
func NewLease(ttl time.Duration) *Lease {
	return &Lease{ttl: ttl, seen: make(map[string]time.Time)}
}

// TTL returns the lease duration.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Renew records that id was seen alive at now, starting to track it if it
// was not. A time earlier than the one recorded is ignored.
func (l *Lease) Renew(id string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.seen[id]; !ok || now.After(last) {
		l.seen[id] = now
	}
}

// RenewAlive renews every alive worker in nodes, for example the result of
// [Member.Members]; nodes in another state, coordinators and nodes with
// undecodable metadata are skipped.
func (l *Lease) RenewAlive(nodes []Node, now time.Time) {
	for _, n := range nodes {
		if n.State == StateAlive && n.MetaErr == nil && n.Meta.Role == RoleWorker {
			l.Renew(n.Name, now)
		}
	}
}

// Forget stops tracking id (its lease expired and was acted on, or it left
// gracefully).
func (l *Lease) Forget(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.seen, id)
}

// Expired returns, sorted, the tracked workers last seen at least ttl
// before now. It is idempotent: a worker stays expired until renewed or
// forgotten, so a report lost to a leadership change is repeated.
func (l *Lease) Expired(now time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for id, last := range l.seen {
		if !now.Before(last.Add(l.ttl)) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// NextExpiry returns the earliest time at which a tracked worker's lease
// runs out, or false when none is tracked; a leader can sleep until then
// instead of polling.
func (l *Lease) NextExpiry() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var next time.Time
	found := false
	for _, last := range l.seen {
		if t := last.Add(l.ttl); !found || t.Before(next) {
			next, found = t, true
		}
	}
	return next, found
}
