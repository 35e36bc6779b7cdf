package api

import (
	"errors"
	"fmt"
	"testing"
)

func TestCodes(t *testing.T) {
	for _, sentinel := range []error{ErrNotFound, ErrInvalid, ErrConflict, ErrNotLeader, ErrNoLeader, ErrTooLarge} {
		wrapped := fmt.Errorf("context: %w", sentinel)
		if got := ErrorForCode(Code(wrapped)); got != sentinel {
			t.Errorf("ErrorForCode(Code(%v)) = %v", wrapped, got)
		}
	}
	if Code(errors.New("boom")) != CodeInternal || ErrorForCode(CodeInternal) != nil {
		t.Error("an unknown error should map to internal and back to nil")
	}
}
