package tuning

import (
	"errors"
	"fmt"

	"github.com/trainctl/trainctl/jobspec"
)

// CheckModelName reports why name cannot name a model, or nil. A model
// name is 1 to jobspec.MaxNameLen bytes of ASCII letters, digits, '.', '_'
// and '-', starting with a letter or a digit, so that it is one path
// segment of /v1/models/NAME (the registry) and /v1/models/NAME:predict
// (serving) without escaping. A sweep registers its best checkpoint under
// its own name, so sweep specs are held to the same rule as
// `trainctl models register`.
func CheckModelName(name string) error {
	switch {
	case name == "":
		return errors.New("required")
	case len(name) > jobspec.MaxNameLen:
		return fmt.Errorf("is %d bytes, the limit is %d", len(name), jobspec.MaxNameLen)
	case !isAlnum(name[0]):
		return fmt.Errorf("%q must start with a letter or a digit", name)
	}
	for i, r := range name {
		if !isAlnum(r) && r != '.' && r != '_' && r != '-' {
			return fmt.Errorf("%q has %q at byte %d; use letters, digits, '.', '_' and '-'", name, r, i)
		}
	}
	return nil
}

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum[C byte | rune](c C) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
