package stream

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/trainctl/trainctl/dataset"
)

// batchMeta is the Flight app metadata attached to every DoGet record batch:
// the position of the batch's first row. For a shard stream that is the
// (epoch, offset) in the shard's order; for a whole-version stream Offset is
// the file row index and Epoch is zero.
type batchMeta struct {
	Epoch  int `json:"epoch"`
	Offset int `json:"offset"`
	// EpochLen is the number of examples in the shard's epoch (the number
	// of rows for a whole-version stream), so the client can tell where the
	// epoch ends and check that the stream was complete.
	EpochLen int `json:"epoch_len"`
}

// rowOverhead approximates the per-row bytes of the string columns beyond
// the id itself (offsets and the split value), for batch sizing.
const rowOverhead = 16

// rowBytes is the approximate encoded size of one example.
func rowBytes(m dataset.Meta, e dataset.Example) int {
	return m.ImageBytes() + m.MaskBytes() + len(e.ID) + rowOverhead
}

// batchBuilder gathers examples into one Arrow record batch. The image and
// mask buffers are reused from batch to batch: the Flight writer has
// serialised a batch by the time Write returns, so nothing refers to them
// afterwards.
type batchBuilder struct {
	schema *arrow.Schema
	meta   dataset.Meta
	ids    *array.StringBuilder
	splits *array.StringBuilder
	images []byte
	masks  []byte
	rows   int
	bytes  int
}

func newBatchBuilder(schema *arrow.Schema, m dataset.Meta) *batchBuilder {
	return &batchBuilder{
		schema: schema,
		meta:   m,
		ids:    array.NewStringBuilder(memory.DefaultAllocator),
		splits: array.NewStringBuilder(memory.DefaultAllocator),
	}
}

// Append adds e, which must match the version's geometry.
func (b *batchBuilder) Append(e dataset.Example) error {
	if len(e.Image) != b.meta.ImageBytes() || len(e.Mask) != b.meta.MaskBytes() {
		return fmt.Errorf("example %s: image %d and mask %d bytes do not match the schema (%d, %d)",
			e.ID, len(e.Image), len(e.Mask), b.meta.ImageBytes(), b.meta.MaskBytes())
	}
	b.ids.Append(e.ID)
	b.splits.Append(e.Split)
	b.images = append(b.images, e.Image...)
	b.masks = append(b.masks, e.Mask...)
	b.rows++
	b.bytes += rowBytes(b.meta, e)
	return nil
}

// Rows is the number of examples appended since the last Record.
func (b *batchBuilder) Rows() int { return b.rows }

// Bytes is the approximate encoded size of the examples appended since the
// last Record.
func (b *batchBuilder) Bytes() int { return b.bytes }

// Record returns the batch built so far and resets the builder. The record
// refers to the builder's image and mask buffers: it must be written (and
// released) before the next Append.
func (b *batchBuilder) Record() arrow.RecordBatch {
	ids := b.ids.NewArray()
	defer ids.Release()
	splits := b.splits.NewArray()
	defer splits.Release()
	images := fixedBinary(b.schema.Field(2).Type, b.rows, b.images)
	defer images.Release()
	masks := fixedBinary(b.schema.Field(3).Type, b.rows, b.masks)
	defer masks.Release()
	rec := array.NewRecordBatch(b.schema, []arrow.Array{ids, splits, images, masks}, int64(b.rows))
	b.images, b.masks = b.images[:0], b.masks[:0]
	b.rows, b.bytes = 0, 0
	return rec
}

// Release frees the builders.
func (b *batchBuilder) Release() {
	b.ids.Release()
	b.splits.Release()
}

// fixedBinary wraps buf (rows values back to back) as a fixed-size binary
// array without copying.
func fixedBinary(t arrow.DataType, rows int, buf []byte) arrow.Array {
	data := array.NewData(t, rows, []*memory.Buffer{nil, memory.NewBufferBytes(buf)}, nil, 0, 0)
	defer data.Release()
	return array.MakeFromData(data)
}

// recordColumns are the typed columns of a received record batch.
type recordColumns struct {
	ids, splits   *array.String
	images, masks *array.FixedSizeBinary
}

// columnsOf checks that rec has the version's schema and returns its columns.
func columnsOf(rec arrow.RecordBatch, m dataset.Meta) (recordColumns, error) {
	var c recordColumns
	if _, err := dataset.ParseSchema(rec.Schema()); err != nil {
		return c, fmt.Errorf("record batch: %w", err)
	}
	var ok1, ok2, ok3, ok4 bool
	c.ids, ok1 = rec.Column(0).(*array.String)
	c.splits, ok2 = rec.Column(1).(*array.String)
	c.images, ok3 = rec.Column(2).(*array.FixedSizeBinary)
	c.masks, ok4 = rec.Column(3).(*array.FixedSizeBinary)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return c, fmt.Errorf("record batch: unexpected column types %s", rec.Schema())
	}
	if w := c.images.DataType().(*arrow.FixedSizeBinaryType).ByteWidth; w != m.ImageBytes() {
		return c, fmt.Errorf("record batch: image width %d, want %d", w, m.ImageBytes())
	}
	if w := c.masks.DataType().(*arrow.FixedSizeBinaryType).ByteWidth; w != m.MaskBytes() {
		return c, fmt.Errorf("record batch: mask width %d, want %d", w, m.MaskBytes())
	}
	return c, nil
}

// example returns row i. Image and Mask are views into the record's
// buffers; the id is copied so that it stays valid as a Go string.
func (c recordColumns) example(i int) dataset.Example {
	return dataset.Example{
		ID:    strings.Clone(c.ids.Value(i)),
		Split: internSplit(c.splits.Value(i)),
		Image: c.images.Value(i),
		Mask:  c.masks.Value(i),
	}
}

// internSplit returns the package constant for the known split names, so a
// received example's split costs no allocation.
func internSplit(s string) string {
	switch s {
	case dataset.SplitTrain:
		return dataset.SplitTrain
	case dataset.SplitVal:
		return dataset.SplitVal
	}
	return strings.Clone(s)
}
