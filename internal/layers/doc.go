// Package layers holds the test that keeps trainctl's import graph flowing
// one way (see docs/architecture.md, "Packages and layers"):
//
//	cmd/trainctl
//	  → coordinator, worker, serving        (the roles)
//	  → api                                 (wire types and the Go client)
//	  → tuning                              (sweep specs, searchers, schedulers)
//	  → jobspec, trainer                    (job specs; the engine)
//	  → dataset, artifact, membership       (data, blobs, gossip)
//	  → internal/...
//
// A package may import packages of its own top-level tree and of lower
// layers, never of its own layer or above. coordinator/... is the server's
// own: outside coordinator/ only cmd/trainctl imports it, and only its root
// package, to start a server (tests elsewhere may too, to run one).
package layers
