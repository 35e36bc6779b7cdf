//go:build unix

package durable

import (
	"os"
	"syscall"
)

// Lock takes an advisory lock on f: exclusive or shared, waiting for it or
// failing at once (wait=false) when another process holds it. The lock is
// released when f is closed.
func Lock(f *os.File, exclusive, wait bool) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if !wait {
		how |= syscall.LOCK_NB
	}
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}
