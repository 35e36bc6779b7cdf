//go:build !unix

package main

import (
	"context"
	"errors"
	"os/exec"
)

// childRSS is not available without getrusage; use -no-rss.
func childRSS(context.Context, *exec.Cmd) (float64, error) {
	return 0, errors.New("peak RSS needs getrusage (unix); run with -no-rss")
}
