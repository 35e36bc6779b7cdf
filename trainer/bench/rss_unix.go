//go:build unix

package main

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
)

// childRSS runs cmd to completion and returns its peak resident set size in
// MiB (getrusage ru_maxrss of the child: KiB on Linux, bytes on macOS).
func childRSS(_ context.Context, cmd *exec.Cmd) (float64, error) {
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%s: %w\n%s", cmd, err, out)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, fmt.Errorf("%s: no rusage", cmd)
	}
	if runtime.GOOS == "darwin" {
		return float64(ru.Maxrss) / (1 << 20), nil
	}
	return float64(ru.Maxrss) / 1024, nil
}
