package dataset

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
)

// Split names. Every example belongs to exactly one split.
const (
	SplitTrain = "train"
	SplitVal   = "val"
)

// Schema metadata keys written into every version's Arrow schema.
const (
	MetaKeySchemaVersion = "trainctl.schema_version"
	MetaKeyHeight        = "trainctl.height"
	MetaKeyWidth         = "trainctl.width"
	MetaKeyChannels      = "trainctl.channels"
	MetaKeyClasses       = "trainctl.classes"
)

// SchemaVersion is the on-disk schema revision this code writes and reads.
const SchemaVersion = 1

// Column names of the example table, in schema order.
const (
	ColID    = "id"
	ColSplit = "split"
	ColImage = "image"
	ColMask  = "mask"
)

// ErrSchema is returned (wrapped) when an Arrow schema is not a trainctl
// segmentation schema or its metadata is inconsistent.
var ErrSchema = errors.New("invalid dataset schema")

// Meta is the geometry and labelling shared by every example of a version.
type Meta struct {
	Height   int      `json:"height"`
	Width    int      `json:"width"`
	Channels int      `json:"channels"`
	Classes  []string `json:"classes"`
}

// ImageBytes is the length of one example's image: Height*Width*Channels.
func (m Meta) ImageBytes() int { return m.Height * m.Width * m.Channels }

// MaskBytes is the length of one example's mask: Height*Width.
func (m Meta) MaskBytes() int { return m.Height * m.Width }

// Validate reports whether the geometry and classes are usable.
func (m Meta) Validate() error {
	switch {
	case m.Height <= 0 || m.Width <= 0 || m.Height > MaxImageSide || m.Width > MaxImageSide:
		return fmt.Errorf("%w: image size %dx%d: each side must be 1..%d", ErrSchema, m.Height, m.Width, MaxImageSide)
	case m.Channels != 1 && m.Channels != 3:
		return fmt.Errorf("%w: %d channels (want 1 or 3)", ErrSchema, m.Channels)
	case len(m.Classes) < 2 || len(m.Classes) > 255:
		return fmt.Errorf("%w: %d classes (want 2..255)", ErrSchema, len(m.Classes))
	}
	return nil
}

// Example is one labelled image. Image is row-major H×W×C with interleaved
// channels (as decoded images are); Mask is row-major H×W of class indices,
// each below len(Meta.Classes).
type Example struct {
	ID    string
	Split string
	Image []byte
	Mask  []byte
}

// Validate checks an example against the version's geometry and classes.
func (e Example) Validate(m Meta) error {
	if e.ID == "" {
		return errors.New("example has an empty id")
	}
	if e.Split != SplitTrain && e.Split != SplitVal {
		return fmt.Errorf("example %s: split %q (want %q or %q)", e.ID, e.Split, SplitTrain, SplitVal)
	}
	if len(e.Image) != m.ImageBytes() {
		return fmt.Errorf("example %s: image is %d bytes, want %d (%dx%dx%d)", e.ID, len(e.Image), m.ImageBytes(), m.Height, m.Width, m.Channels)
	}
	if len(e.Mask) != m.MaskBytes() {
		return fmt.Errorf("example %s: mask is %d bytes, want %d (%dx%d)", e.ID, len(e.Mask), m.MaskBytes(), m.Height, m.Width)
	}
	nc := byte(len(m.Classes))
	for i, v := range e.Mask {
		if v >= nc {
			return fmt.Errorf("example %s: mask pixel %d has class %d, but there are only %d classes", e.ID, i, v, nc)
		}
	}
	return nil
}

// NewSchema returns the Arrow schema of a version with the given geometry.
// Images and masks are fixed-size binary columns, so a record batch of them
// is one contiguous buffer per column.
func NewSchema(m Meta) *arrow.Schema {
	classes, _ := json.Marshal(m.Classes)
	md := arrow.NewMetadata(
		[]string{MetaKeySchemaVersion, MetaKeyHeight, MetaKeyWidth, MetaKeyChannels, MetaKeyClasses},
		[]string{strconv.Itoa(SchemaVersion), strconv.Itoa(m.Height), strconv.Itoa(m.Width), strconv.Itoa(m.Channels), string(classes)},
	)
	return arrow.NewSchema([]arrow.Field{
		{Name: ColID, Type: arrow.BinaryTypes.String},
		{Name: ColSplit, Type: arrow.BinaryTypes.String},
		{Name: ColImage, Type: &arrow.FixedSizeBinaryType{ByteWidth: m.ImageBytes()}},
		{Name: ColMask, Type: &arrow.FixedSizeBinaryType{ByteWidth: m.MaskBytes()}},
	}, &md)
}

// ParseSchema checks that s is a trainctl segmentation schema and returns its
// Meta. Errors wrap ErrSchema and say which part is wrong.
func ParseSchema(s *arrow.Schema) (Meta, error) {
	md := s.Metadata()
	get := func(k string) (string, error) {
		i := md.FindKey(k)
		if i < 0 {
			return "", fmt.Errorf("%w: metadata key %q missing", ErrSchema, k)
		}
		return md.Values()[i], nil
	}
	atoi := func(k string) (int, error) {
		v, err := get(k)
		if err != nil {
			return 0, err
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("%w: metadata %s=%q is not an integer", ErrSchema, k, v)
		}
		return n, nil
	}
	var m Meta
	sv, err := atoi(MetaKeySchemaVersion)
	if err != nil {
		return m, err
	}
	if sv != SchemaVersion {
		return m, fmt.Errorf("%w: schema version %d, this build reads %d", ErrSchema, sv, SchemaVersion)
	}
	if m.Height, err = atoi(MetaKeyHeight); err != nil {
		return m, err
	}
	if m.Width, err = atoi(MetaKeyWidth); err != nil {
		return m, err
	}
	if m.Channels, err = atoi(MetaKeyChannels); err != nil {
		return m, err
	}
	cl, err := get(MetaKeyClasses)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal([]byte(cl), &m.Classes); err != nil {
		return m, fmt.Errorf("%w: metadata %s is not a JSON string array: %v", ErrSchema, MetaKeyClasses, err)
	}
	if err := m.Validate(); err != nil {
		return m, err
	}
	want := NewSchema(m)
	if len(s.Fields()) != len(want.Fields()) {
		return m, fmt.Errorf("%w: %d columns, want %d", ErrSchema, len(s.Fields()), len(want.Fields()))
	}
	for i, f := range want.Fields() {
		got := s.Field(i)
		if got.Name != f.Name || !arrow.TypeEqual(got.Type, f.Type) {
			return m, fmt.Errorf("%w: column %d is %s %s, want %s %s", ErrSchema, i, got.Name, got.Type, f.Name, f.Type)
		}
	}
	return m, nil
}
