//go:build unix

package artifact

import (
	"os"
	"syscall"
)

// flock takes an advisory lock on f: exclusive or shared, waiting for it or
// failing at once (wait=false) when another process holds it.
func flock(f *os.File, exclusive, wait bool) error {
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
