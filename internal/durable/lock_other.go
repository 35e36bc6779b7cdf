//go:build !unix

package durable

import "os"

// Lock is a no-op where advisory file locks are not available: a TempDir
// or store is then safe for one process at a time only.
func Lock(f *os.File, exclusive, wait bool) error { return nil }
