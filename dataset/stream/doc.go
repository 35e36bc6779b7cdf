// Package stream serves dataset versions over Arrow Flight and reads them
// back: the data path of docs/architecture.md between the store that holds versions and
// the workers that train on them.
//
// A Server exposes a dataset.Store. ListFlights and GetFlightInfo describe
// versions (the descriptor path is [name] or [name, version]); DoGet takes a
// JSON Ticket that names a version and either one shard of one epoch of a
// split, streamed in exactly the order a local dataset.Reader would produce,
// or the whole version in file order, which Client.Fetch uses to rebuild the
// version's Arrow file in a local cache keyed (and verified) by its digest.
//
// Examples are sent as Arrow record batches bounded by bytes (a few MiB, at
// least one row), and both ends raise gRPC's 4 MiB message limit so that a
// single large image still fits. Every batch carries its starting position as
// Flight app metadata, so a client always knows the exact resume point.
package stream
