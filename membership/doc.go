// Package membership is trainctl's gossip layer (docs/architecture.md,
// "Roles and data flow"): coordinators and workers run a [Member] over hashicorp/memberlist, each
// advertising a [NodeMeta] (role, cores, GPUs, spot or on-demand, zone,
// version, API and Raft addresses). Every member sees the others' joins,
// metadata updates, graceful leaves and failures as [Event]s; the
// coordinator's leader turns them into Raft commands, and uses a [Lease] to
// take assignments away from a worker that has stopped answering for
// longer than the lease.
//
// A graceful leave (the member announced it with [Member.Leave]) arrives
// as [EventLeave], a failure (the member stopped answering probes and the
// suspicion timeout ran out) as [EventFailed]. memberlist's event delegate
// cannot tell the two apart, so Leave first gossips [NodeMeta.Leaving]
// and the departure of a member whose last metadata carried it is a leave.
// A member that comes back after either arrives as [EventJoin].
package membership
