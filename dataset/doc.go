// Package dataset stores and streams versioned image-segmentation datasets.
//
// A dataset version is an immutable Arrow IPC file whose rows are examples
// (id, split, image, mask) and whose schema metadata carries the image
// geometry and class names. A version's id is the SHA-256 digest of its
// canonical content, so registering the same data twice yields the same
// version, and a changed source yields a new version whose parent is the
// previous one. Versions are produced by the synthetic generator (gen.go) or by
// ingesting image folders (ingest.go), kept in a Store on local disk, and
// streamed to workers in deterministic, sharded, per-epoch shuffled order
// (shard.go, reader.go; Arrow Flight in the stream sub-package).
//
// In the data flow of docs/architecture.md this package is the first stage: the
// coordinator registers versions, workers stream shards of them, and the
// trainer reads examples through Reader.
package dataset
