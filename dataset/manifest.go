package dataset

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Source kinds recorded in a manifest.
const (
	SourceGen    = "gen"
	SourceIngest = "ingest"
	SourceImport = "import"
)

// Source says where a version's examples came from, so a version can be
// reproduced or traced back: a generator and its parameters, an ingested
// directory and its layout, or an imported file.
type Source struct {
	Kind      string            `json:"kind"`
	Generator string            `json:"generator,omitempty"`
	Layout    string            `json:"layout,omitempty"`
	Path      string            `json:"path,omitempty"`
	Images    string            `json:"images,omitempty"`
	Masks     string            `json:"masks,omitempty"`
	Params    map[string]string `json:"params,omitempty"`
}

// Skipped is an input file left out of a version, and why.
type Skipped struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// String is "path: reason".
func (s Skipped) String() string { return s.Path + ": " + s.Reason }

// Provenance is what a producer reports to Register after its pass over the
// input: the source, the bad files it skipped (ingest --skip-bad) and the
// files it ignored as not being part of the dataset (dotfiles, .mat files).
type Provenance struct {
	Source  Source
	Skipped []Skipped
	Ignored []Skipped
}

// Manifest describes one registered version of a named dataset. It is
// stored as JSON next to the content-addressed version file and is what
// `trainctl dataset show` prints.
type Manifest struct {
	Name string `json:"name"`
	// ID is the version id: the hex SHA-256 of the canonical content (see
	// Digester). It names the version file objects/<id>.arrow.
	ID string `json:"id"`
	// Seq numbers the versions of one name: 1 for v1, 2 for v2, ...
	Seq int `json:"seq"`
	// Parent is the id of the name's latest version when this one was
	// registered, empty for a name's first version.
	Parent        string         `json:"parent,omitempty"`
	Created       string         `json:"created"` // RFC 3339, UTC
	Source        Source         `json:"source"`
	Examples      int            `json:"examples"`
	Counts        map[string]int `json:"counts"`       // examples per split
	ClassPixels   []int64        `json:"class_pixels"` // mask pixels per class, indexed like Meta.Classes
	Bytes         int64          `json:"bytes"`        // size of the version file
	FileSHA256    string         `json:"file_sha256"`  // SHA-256 of the version file's bytes
	SchemaVersion int            `json:"schema_version"`
	Meta          Meta           `json:"meta"`
	Skipped       []Skipped      `json:"skipped,omitempty"`
	Ignored       []Skipped      `json:"ignored,omitempty"`
}

// Version is the seq in its display form, "v3".
func (m Manifest) Version() string { return "v" + strconv.Itoa(m.Seq) }

// Ref is the manifest's canonical reference, "name@v3".
func (m Manifest) Ref() string { return m.Name + "@" + m.Version() }

// contentStats accumulates the per-split counts and class histogram of a
// version while it is written.
type contentStats struct {
	counts map[string]int
	pixels []int64
	n      int
}

func newContentStats(m Meta) *contentStats {
	return &contentStats{counts: map[string]int{SplitTrain: 0, SplitVal: 0}, pixels: make([]int64, len(m.Classes))}
}

// add counts a validated example (mask values are below len(pixels)).
func (s *contentStats) add(e Example) {
	s.n++
	s.counts[e.Split]++
	var hist [256]int64
	for _, v := range e.Mask {
		hist[v]++
	}
	for c := range s.pixels {
		s.pixels[c] += hist[c]
	}
}

// Sentinel errors of references and names, for callers to branch on.
var (
	// ErrNotFound: no dataset of that name, or no version matching the ref.
	ErrNotFound = errors.New("not found")
	// ErrAmbiguous: an id prefix matches more than one version.
	ErrAmbiguous = errors.New("ambiguous version")
	// ErrBadRef: a name or reference is malformed.
	ErrBadRef = errors.New("bad dataset reference")
)

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidateName checks a dataset name: 1 to 64 characters of a-z, 0-9, '.',
// '_' and '-', starting with a letter or digit. Names become directory
// names, so nothing else is allowed.
func ValidateName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%w: dataset name %q: want 1-64 characters of a-z 0-9 . _ - starting with a letter or digit", ErrBadRef, name)
	}
	return nil
}

// Ref is a parsed dataset reference: NAME, NAME@latest, NAME@v3 or
// NAME@<id prefix of at least 6 hex digits>.
type Ref struct {
	Name   string
	Latest bool   // NAME or NAME@latest
	Seq    int    // NAME@v3
	Prefix string // NAME@<hex>
}

// ParseRef parses a dataset reference. Errors wrap ErrBadRef.
func ParseRef(s string) (Ref, error) {
	name, ver, hasVer := strings.Cut(s, "@")
	if err := ValidateName(name); err != nil {
		return Ref{}, fmt.Errorf("reference %q: %w", s, err)
	}
	r := Ref{Name: name}
	switch {
	case !hasVer || ver == "latest":
		r.Latest = true
	case len(ver) > 1 && ver[0] == 'v':
		n, err := strconv.Atoi(ver[1:])
		if err != nil || n < 1 || ver[1] == '+' || ver[1] == '0' {
			return Ref{}, fmt.Errorf("%w: %q: version %q is not v<N> with N >= 1", ErrBadRef, s, ver)
		}
		r.Seq = n
	case isHex(ver) && len(ver) >= MinIDPrefix && len(ver) <= 64:
		r.Prefix = ver
	default:
		return Ref{}, fmt.Errorf("%w: %q: after @ want latest, v<N> or an id prefix of %d-64 lowercase hex digits, got %q", ErrBadRef, s, MinIDPrefix, ver)
	}
	return r, nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// nowRFC3339 is the creation timestamp format of manifests.
func nowRFC3339() string { return time.Now().UTC().Format(time.RFC3339) }
