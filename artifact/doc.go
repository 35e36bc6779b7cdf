// Package artifact is the coordinators' content-addressed blob store: the
// bytes of dataset versions and checkpoints, named by their SHA-256 digest
// ("sha256:<64 lowercase hex digits>").
//
// In the data flow of docs/architecture.md every coordinator keeps a Store on its own
// disk. A blob is written to the leader's Store (by a CLI upload or a
// worker's checkpoint, through the HTTP Handler mounted at BlobsPath), then
// the leader calls Replicator.Replicate to push it to every other
// coordinator, and only when that returns nil does it propose the Raft entry
// that references the digest. Each peer fsyncs a blob before it answers 2xx,
// so once the entry is committed every coordinator holds the bytes durably
// and losing any one of them loses no data. A coordinator that was down
// while blobs were written calls Replicator.CatchUp with the digests its
// state references to fetch what it lacks from the others.
//
// Writes are atomic: a blob is streamed to a temporary file while it is
// hashed, fsynced, renamed into place and its directory fsynced, so a crash
// leaves the whole blob or none of it; temporary files abandoned by a crash
// are removed when the store is opened. Blobs are immutable and writing the
// same content twice, concurrently or not, is harmless.
package artifact
