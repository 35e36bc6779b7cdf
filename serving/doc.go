// Package serving will be the HTTP inference server for the best checkpoint
// of a job, sweep or model, with dynamic batching and hot reload
// (DESIGN.md). It is built by the serving issue; nothing here is implemented
// yet.
package serving
