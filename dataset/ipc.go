package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ErrCorrupt is returned (wrapped) when a version file cannot be read back,
// or its bytes or content no longer match the digests recorded for it.
var ErrCorrupt = errors.New("corrupt dataset version")

// ErrOrder is returned (wrapped) by VersionWriter.Write and Store.Register
// when examples do not arrive in strictly ascending id order. The order is
// what makes a version file canonical, so it is enforced, not repaired.
var ErrOrder = errors.New("examples out of id order")

// Batching: a record batch holds at most maxBatchRows rows and, for large
// images, about maxBatchBytes of image and mask data, so a writer's memory
// stays bounded whatever the image size.
const (
	maxBatchRows  = 256
	maxBatchBytes = 64 << 20
)

// batchRows is the number of rows per record batch for geometry m.
func batchRows(m Meta) int {
	per := m.ImageBytes() + m.MaskBytes()
	return max(1, min(maxBatchRows, maxBatchBytes/max(per, 1)))
}

// VersionWriter streams examples into the Arrow IPC file format of a version
// (ipc.FileWriter), in record batches of up to 256 rows. Examples must be
// written in strictly ascending id order (byte-wise string order): rows of a
// version file are sorted by id so the file content is canonical. Each
// example is validated against the Meta before it is buffered.
//
// A VersionWriter is not safe for concurrent use.
type VersionWriter struct {
	meta   Meta
	fw     *ipc.FileWriter
	rb     *array.RecordBuilder
	ids    *array.StringBuilder
	splits *array.StringBuilder
	images *array.FixedSizeBinaryBuilder
	masks  *array.FixedSizeBinaryBuilder
	rows   int // rows buffered in rb
	per    int // rows per batch
	n      int // rows written in total
	lastID string
	err    error // sticky: the first write error
	closed bool
}

// NewVersionWriter starts a version file with geometry m on w. Nothing is
// complete until Close returns nil; the caller owns w and closes it after.
func NewVersionWriter(w io.Writer, m Meta) (*VersionWriter, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	schema := NewSchema(m)
	fw, err := ipc.NewFileWriter(w, ipc.WithSchema(schema), ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return nil, fmt.Errorf("start version file: %w", err)
	}
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	vw := &VersionWriter{
		meta:   m,
		fw:     fw,
		rb:     rb,
		ids:    rb.Field(0).(*array.StringBuilder),
		splits: rb.Field(1).(*array.StringBuilder),
		images: rb.Field(2).(*array.FixedSizeBinaryBuilder),
		masks:  rb.Field(3).(*array.FixedSizeBinaryBuilder),
		per:    batchRows(m),
	}
	vw.reserve()
	return vw, nil
}

func (vw *VersionWriter) reserve() {
	vw.ids.Reserve(vw.per)
	vw.splits.Reserve(vw.per)
	vw.images.Reserve(vw.per)
	vw.masks.Reserve(vw.per)
}

// Write appends one example. It fails, and the writer stays failed, if the
// example does not match the Meta, or if its id is not greater than the
// previous one (ErrOrder).
func (vw *VersionWriter) Write(e Example) error {
	if vw.err != nil {
		return vw.err
	}
	if vw.closed {
		return errors.New("write to a closed VersionWriter")
	}
	if err := e.Validate(vw.meta); err != nil {
		return err
	}
	if vw.n > 0 && e.ID <= vw.lastID {
		if e.ID == vw.lastID {
			return fmt.Errorf("%w: duplicate example id %q", ErrOrder, e.ID)
		}
		return fmt.Errorf("%w: example id %q after %q", ErrOrder, e.ID, vw.lastID)
	}
	vw.ids.Append(e.ID)
	vw.splits.Append(e.Split)
	vw.images.Append(e.Image)
	vw.masks.Append(e.Mask)
	vw.lastID = e.ID
	vw.rows++
	vw.n++
	if vw.rows == vw.per {
		return vw.flush()
	}
	return nil
}

// Len is the number of examples written so far.
func (vw *VersionWriter) Len() int { return vw.n }

func (vw *VersionWriter) flush() error {
	if vw.rows == 0 {
		return nil
	}
	rec := vw.rb.NewRecordBatch()
	defer rec.Release()
	vw.rows = 0
	if err := vw.fw.Write(rec); err != nil {
		vw.err = fmt.Errorf("write record batch: %w", err)
		return vw.err
	}
	vw.reserve()
	return nil
}

// Close writes the last batch and the file footer. The file is a valid
// version only if Close returns nil. Close is idempotent.
func (vw *VersionWriter) Close() error {
	if vw.closed {
		return vw.err
	}
	vw.closed = true
	defer vw.rb.Release()
	if vw.err == nil {
		vw.err = vw.flush()
	}
	if err := vw.fw.Close(); err != nil && vw.err == nil {
		vw.err = fmt.Errorf("finish version file: %w", err)
	}
	return vw.err
}

// Version is an opened, read-only version file. The whole file is loaded
// into memory once and every Example slices into those bytes, so reading is
// copy-free. A Version is safe for concurrent readers.
type Version struct {
	path    string
	meta    Meta
	schema  *arrow.Schema
	records []arrow.RecordBatch
	starts  []int // starts[b] is the row index of the first row of records[b]
	ids     []*array.String
	splits  []*array.String
	images  []*array.FixedSizeBinary
	masks   []*array.FixedSizeBinary
	n       int
	bySplit map[string][]int
}

// OpenVersionFile loads and checks the version file at path: the schema must
// parse with ParseSchema, every column must be present without nulls, and
// ids must be strictly ascending with a known split. Damage that makes the
// file unreadable gives an error wrapping ErrCorrupt; a readable file with a
// foreign schema gives one wrapping ErrSchema. Mask values are checked by
// Store.Verify, not here, to keep opening cheap.
func OpenVersionFile(path string) (*Version, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("open version %s: %w", path, err)
	}
	v, err := openVersionBytes(data)
	if err != nil {
		return nil, fmt.Errorf("open version %s: %w", path, err)
	}
	v.path = path
	return v, nil
}

// openVersionBytes parses an in-memory version file. Arrow's flatbuffer
// decoding can panic on corrupt input; that is turned into ErrCorrupt.
func openVersionBytes(data []byte) (v *Version, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("%w: unreadable Arrow data: %v", ErrCorrupt, r)
		}
	}()
	// The reader checks the trailing magic only; check the leading one too.
	if !bytes.HasPrefix(data, []byte("ARROW1")) {
		return nil, fmt.Errorf("%w: not an Arrow IPC file: no leading ARROW1 magic (%d bytes)", ErrCorrupt, len(data))
	}
	fr, err := ipc.NewMappedFileReader(data, ipc.WithAllocator(newBudgetAllocator(maxDecodeBytes)))
	if err != nil {
		return nil, fmt.Errorf("%w: not a complete Arrow IPC file (%d bytes): %v", ErrCorrupt, len(data), err)
	}
	defer fr.Close()
	meta, err := ParseSchema(fr.Schema())
	if err != nil {
		return nil, err
	}
	v = &Version{meta: meta, schema: fr.Schema(), bySplit: map[string][]int{}}
	opened := v // v is nil once a return below says so
	ok := false
	defer func() {
		if !ok {
			opened.Close()
		}
	}()
	if nb := fr.NumRecords(); nb > maxVersionBatches {
		return nil, fmt.Errorf("%w: %d record batches, at most %d are read", ErrCorrupt, nb, maxVersionBatches)
	}
	lastID := ""
	for b := range fr.NumRecords() {
		rec, err := fr.RecordBatchAt(b)
		if err != nil {
			return nil, fmt.Errorf("%w: record batch %d: %v", ErrCorrupt, b, err)
		}
		v.records = append(v.records, rec)
		if err := v.addBatch(b, rec, &lastID); err != nil {
			return nil, err
		}
	}
	ok = true
	return v, nil
}

// addBatch checks record batch b and indexes its rows.
func (v *Version) addBatch(b int, rec arrow.RecordBatch, lastID *string) error {
	if rec.NumCols() != 4 {
		return fmt.Errorf("%w: record batch %d has %d columns, want 4", ErrCorrupt, b, rec.NumCols())
	}
	ids, ok1 := rec.Column(0).(*array.String)
	splits, ok2 := rec.Column(1).(*array.String)
	images, ok3 := rec.Column(2).(*array.FixedSizeBinary)
	masks, ok4 := rec.Column(3).(*array.FixedSizeBinary)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return fmt.Errorf("%w: record batch %d has unexpected column types", ErrCorrupt, b)
	}
	rows := int(rec.NumRows())
	if rows < 0 || rows > maxVersionRows-v.n {
		return fmt.Errorf("%w: record batch %d has %d rows, more than the %d a version may have", ErrCorrupt, b, rec.NumRows(), maxVersionRows)
	}
	for c, col := range rec.Columns() {
		if col.Len() != rows {
			return fmt.Errorf("%w: record batch %d column %s has %d rows, want %d", ErrCorrupt, b, rec.ColumnName(c), col.Len(), rows)
		}
		if col.NullN() != 0 {
			return fmt.Errorf("%w: record batch %d column %s has %d nulls", ErrCorrupt, b, rec.ColumnName(c), col.NullN())
		}
	}
	for _, s := range []*array.String{ids, splits} {
		if err := s.ValidateFull(); err != nil {
			return fmt.Errorf("%w: record batch %d: %v", ErrCorrupt, b, err)
		}
	}
	for _, f := range []struct {
		a     *array.FixedSizeBinary
		width int
		name  string
	}{{images, v.meta.ImageBytes(), ColImage}, {masks, v.meta.MaskBytes(), ColMask}} {
		need := (f.a.Data().Offset() + rows) * f.width
		got := 0
		if bufs := f.a.Data().Buffers(); len(bufs) > 1 && bufs[1] != nil {
			got = bufs[1].Len()
		}
		if rows > 0 && got < need {
			return fmt.Errorf("%w: record batch %d column %s has %d value bytes, want %d", ErrCorrupt, b, f.name, got, need)
		}
	}
	v.starts = append(v.starts, v.n)
	v.ids = append(v.ids, ids)
	v.splits = append(v.splits, splits)
	v.images = append(v.images, images)
	v.masks = append(v.masks, masks)
	for r := range rows {
		id, split := ids.Value(r), splits.Value(r)
		row := v.n + r
		if row > 0 && id <= *lastID {
			return fmt.Errorf("%w: row %d id %q is not after %q (rows must be in ascending id order)", ErrCorrupt, row, id, *lastID)
		}
		if id == "" {
			return fmt.Errorf("%w: row %d has an empty id", ErrCorrupt, row)
		}
		if split != SplitTrain && split != SplitVal {
			return fmt.Errorf("%w: example %s: split %q (want %q or %q)", ErrCorrupt, id, split, SplitTrain, SplitVal)
		}
		*lastID = id
		v.bySplit[split] = append(v.bySplit[split], row)
	}
	v.n += rows
	return nil
}

// Path is the file the version was opened from ("" if it was not).
func (v *Version) Path() string { return v.path }

// Meta is the version's geometry and classes.
func (v *Version) Meta() Meta {
	m := v.meta
	m.Classes = append([]string(nil), v.meta.Classes...)
	return m
}

// Schema is the version's Arrow schema, for streaming its rows as record
// batches (the Flight server builds shard batches with it).
func (v *Version) Schema() *arrow.Schema { return v.schema }

// Len is the number of examples.
func (v *Version) Len() int { return v.n }

// locate maps a row index to (batch, row within batch).
func (v *Version) locate(i int) (int, int) {
	if i < 0 || i >= v.n {
		panic(fmt.Sprintf("dataset: example index %d out of range [0, %d)", i, v.n))
	}
	b := sort.Search(len(v.starts), func(b int) bool { return v.starts[b] > i }) - 1
	return b, i - v.starts[b]
}

// Example returns row i (0 <= i < Len; rows are in id order). Its Image and
// Mask slice into the loaded file and must not be modified; they stay valid
// after Close (the memory is garbage collected, not unmapped). It panics on
// an out-of-range index, like a slice.
func (v *Version) Example(i int) Example {
	b, r := v.locate(i)
	img, mask := v.images[b].Value(r), v.masks[b].Value(r)
	return Example{
		ID:    v.ids[b].Value(r),
		Split: v.splits[b].Value(r),
		// Capped, so an append by the caller cannot run into the next row.
		Image: img[:len(img):len(img)],
		Mask:  mask[:len(mask):len(mask)],
	}
}

// SplitIndices returns the row indices of the examples of split, ascending
// (file order, which is id order). The slice is the caller's. An unknown
// split yields an empty slice.
func (v *Version) SplitIndices(split string) []int {
	return append([]int{}, v.bySplit[split]...)
}

// Close releases the record batches. Examples already returned stay valid
// (they slice Go memory); Example and SplitIndices must not be called after.
func (v *Version) Close() error {
	for _, r := range v.records {
		r.Release()
	}
	v.records = nil
	return nil
}
