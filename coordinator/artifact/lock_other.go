//go:build !unix

package artifact

import "os"

// flock is a no-op where advisory file locks are not available: a store is
// then safe for one process at a time only.
func flock(f *os.File, exclusive, wait bool) error { return nil }
