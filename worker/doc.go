// Package worker will be the agent that joins gossip, takes assignments from
// the coordinator's leader, streams dataset shards, runs the trainer and
// reports metrics and checkpoints (DESIGN.md). It is built by the
// cluster-core issue; nothing here is implemented yet.
package worker
