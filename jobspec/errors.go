package jobspec

import (
	"strconv"
	"strings"
)

// FieldError is one problem with one field of a spec. Its message names
// the file and line where Parse knows them:
//
//	job.yaml:7: hyperparameters.lr: "fast" is not a number
//
// and just the field for a spec validated without a file (from JSON):
//
//	hyperparameters.lr: must be a positive number, got -1
type FieldError struct {
	// File is the file name given to Parse ("" for Validate).
	File string
	// Line is the 1-based line of the field's value, or of the key for an
	// unknown or duplicate field (0 when unknown: a missing field).
	Line int
	// Field is the dotted path of the field ("resources.ranks"); empty for
	// a problem with the document as a whole.
	Field string
	// Msg says what is wrong.
	Msg string
}

// Error formats e as FILE:LINE: FIELD: MSG, leaving out what is unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File + ":" + strconv.Itoa(e.Line) + ": ")
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap makes every FieldError match ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Errors is every problem found in a spec, in line order. It is never
// empty when returned as an error.
type Errors []*FieldError

// Error lists the problems one per line.
func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Unwrap returns the individual errors, for errors.Is (ErrInvalid) and
// errors.As (*FieldError).
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
